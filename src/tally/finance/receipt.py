"""The electronic warehouse receipt: its elements per GB/T 30332-2024 and their rules.

A custodian warehouse issues a receipt with these fields (``receipts.issue``), each checked by
:func:`validate_fields`; a bad one is refused saying which field, what rule and what value,
e.g. ``receipt field 'weight': must be a positive Decimal, got 0``::

    no          receipt number: non-empty text, no "/", at most 64 characters
    depositor   the depositor (存货人): a registered party id or a member org
    goods       goods name                      spec        specification
    quantity    positive Decimal (packages)     unit        the unit of quantity
    weight      positive Decimal, tonnes        packaging   packaging
    lot         the lot id the goods are tagged with (RFID scans name it)
    site        the warehouse site              location    the storage location at the site
    period      {"from": ms, "to": ms}, from < to: the storage period
    fees        {"rate": int minor units, "currency": "CNY"}: storage fees
    insurance   null | {"insurer", "policy", "amount": int minor units}
    commodity   the commodity (``commodity/<name>``) the goods are priced as

Quantities and weights have at most 6 decimal places and are below 10^12; money is integer
minor units. Identifiers that go into state keys (no, depositor, lot, site, location,
commodity) never contain "/". The contract adds the custodian (the issuing warehouse),
the issue time and the receipt's lifecycle fields (see :func:`new_receipt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

FIELDS = (
    "no",
    "depositor",
    "goods",
    "spec",
    "quantity",
    "unit",
    "weight",
    "packaging",
    "lot",
    "site",
    "location",
    "period",
    "fees",
    "insurance",
    "commodity",
)
"""The fields an issuer gives, in the order they are checked."""

STATES = ("live", "pledged", "frozen", "split", "delivered", "cancelled", "disposed")
LIVE_STATES = ("live", "pledged", "frozen")
"""States whose weight counts against the measured stock of the receipt's location."""

MAX_NO = 64
MAX_ID = 64
MAX_TEXT = 256
MAX_PLACES = 6
LIMIT = Decimal(10) ** 12


class ReceiptFieldError(ValueError):
    """A receipt field breaks its rule: ``field`` names it, ``reason`` says how."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"receipt field {field!r}: {reason}")


def show(value: Any) -> str:
    """A value as refusals quote it: Decimals plainly, anything else with its type."""
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value.normalize():f}"
    return f"{type(value).__name__} {value!r}"


def tonnes(value: Decimal) -> str:
    """``Decimal("1E+2")`` as ``"100 t"``."""
    return f"{value.normalize():f} t"


def iso(ms: int) -> str:
    """Milliseconds since the Unix epoch as ISO 8601 UTC (``2023-11-14T22:13:20.000Z``)."""
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def check_id(field: str, value: Any, limit: int = MAX_ID) -> str:
    """Non-empty text without "/" or control characters, at most ``limit`` characters."""
    if not isinstance(value, str) or not value:
        raise ReceiptFieldError(field, f"must be non-empty text, got {show(value)}")
    if "/" in value:
        raise ReceiptFieldError(field, f"must not contain '/', got {value!r}")
    if len(value) > limit:
        raise ReceiptFieldError(field, f"must be at most {limit} characters, got {len(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ReceiptFieldError(field, f"must not contain control characters, got {value!r}")
    return value


def check_no(value: Any, field: str = "no") -> str:
    """A receipt number: non-empty text, no "/", at most 64 characters."""
    return check_id(field, value, MAX_NO)


def check_text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReceiptFieldError(field, f"must be non-empty text, got {show(value)}")
    if len(value) > MAX_TEXT:
        raise ReceiptFieldError(field, f"must be at most {MAX_TEXT} characters, got {len(value)}")
    return value


def check_amount(field: str, value: Any) -> Decimal:
    """A positive Decimal with at most 6 decimal places, below 10^12."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ReceiptFieldError(field, f"must be a positive Decimal, got {show(value)}")
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    if -exp > MAX_PLACES:
        raise ReceiptFieldError(
            field, f"must have at most {MAX_PLACES} decimal places, got {show(value)}"
        )
    if value >= LIMIT:
        raise ReceiptFieldError(field, f"must be below {LIMIT:f}, got {show(value)}")
    return value


def check_int(field: str, value: Any, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ReceiptFieldError(field, f"must be an integer >= {least}, got {show(value)}")
    return value


def _map(field: str, value: Any, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or set(value) != set(keys):
        want = ", ".join(keys)
        raise ReceiptFieldError(field, f"must be a map of exactly {want}, got {show(value)}")
    return value


def _period(value: Any) -> dict[str, int]:
    p = _map("period", value, ("from", "to"))
    start = check_int("period.from", p["from"], 0)
    end = check_int("period.to", p["to"], 0)
    if end <= start:
        raise ReceiptFieldError("period", f"must end after it starts, got from {start} to {end}")
    return {"from": start, "to": end}


def _currency(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isupper():
        raise ReceiptFieldError(field, f"must be an ISO 4217 code like 'CNY', got {show(value)}")
    return value


def _fees(value: Any) -> dict[str, Any]:
    f = _map("fees", value, ("rate", "currency"))
    return {
        "rate": check_int("fees.rate", f["rate"], 0),
        "currency": _currency("fees.currency", f["currency"]),
    }


def _insurance(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    i = _map("insurance", value, ("insurer", "policy", "amount"))
    return {
        "insurer": check_text("insurance.insurer", i["insurer"]),
        "policy": check_text("insurance.policy", i["policy"]),
        "amount": check_int("insurance.amount", i["amount"], 1),
    }


def validate_fields(fields: Any) -> dict[str, Any]:
    """The issuer's receipt fields, checked; raise :class:`ReceiptFieldError` for the first
    field (in :data:`FIELDS` order, unknown fields first) that breaks its rule."""
    if not isinstance(fields, Mapping):
        raise ReceiptFieldError("*", f"the fields must be a map, got {show(fields)}")
    unknown = sorted(str(k) for k in fields if k not in FIELDS)
    if unknown:
        raise ReceiptFieldError(unknown[0], f"unknown (the fields are {', '.join(FIELDS)})")
    for name in FIELDS:
        if name not in fields:
            raise ReceiptFieldError(name, "missing")
    return {
        "no": check_no(fields["no"]),
        "depositor": check_id("depositor", fields["depositor"]),
        "goods": check_text("goods", fields["goods"]),
        "spec": check_text("spec", fields["spec"]),
        "quantity": check_amount("quantity", fields["quantity"]),
        "unit": check_text("unit", fields["unit"]),
        "weight": check_amount("weight", fields["weight"]),
        "packaging": check_text("packaging", fields["packaging"]),
        "lot": check_id("lot", fields["lot"]),
        "site": check_id("site", fields["site"]),
        "location": check_id("location", fields["location"]),
        "period": _period(fields["period"]),
        "fees": _fees(fields["fees"]),
        "insurance": _insurance(fields["insurance"]),
        "commodity": check_id("commodity", fields["commodity"]),
    }


def new_receipt(
    fields: Mapping[str, Any], custodian: str, issued: int, evidence: list[bytes]
) -> dict[str, Any]:
    """The ``rcpt/<no>`` record of a freshly issued receipt (fields already validated): held
    by the depositor, live, with the issue endorsement."""
    return {
        "v": 1,
        **fields,
        "custodian": custodian,
        "issued": issued,
        "holder": fields["depositor"],
        "state": "live",
        "pledgee": None,
        "loan": None,
        "frozen": None,
        "parent": None,
        "children": [],
        "evidence": list(evidence),
        "endorsements": [
            {"t": issued, "act": "receipts.issue", "by": custodian, "to": fields["depositor"]}
        ],
        "seq": 0,
    }


def expired(rec: Mapping[str, Any], t: int) -> bool:
    """Whether the receipt's storage period ended before ``t``."""
    return bool(t > rec["period"]["to"])

"""The bodies of the four-flow documents (:mod:`tally.finance.documents`): one typed, frozen
dataclass per kind and the rules every field obeys (docs/finance-documents.md).

:func:`check_body` checks a body map (or a body object) of a kind: unknown fields first, then
missing ones, then each field in the order of its dataclass, then the rules between fields,
refusing the first broken one as ``<kind> field '<name>': <rule>, got <value>``::

    party ids, contract no, site   text without "/" or control characters, at most 64
    *_tax_id                       unified social credit code: 18 characters, GB 32100-2015
                                   check character (:func:`check_uscc`)
    invoice number (and payment    VAT invoice number: 20 digits (fully digital) or 8, 10,
    ``invoice``)                   12 digits
    other numbers, references      text, at most 64 characters
    quantity, price, rate          positive Decimal, at most 6 places, below 10^12 (an int is
                                   not a Decimal)
    amount, total                  integer minor units in [1, 10^15]; tax in [0, 10^15]
    currency                       ISO 4217 code; "rate" (CNY per unit) iff not CNY
    dates                          ms since the epoch, >= 0
    payment_term_days              0 .. 3660
    readings                       1 .. 1000 distinct 32-byte reading hashes

Between fields: seller ≠ buyer, seller_tax_id ≠ buyer_tax_id, payer ≠ payee; a contract's
``delivery_to`` ≥ ``delivery_from`` and ``amount`` = price × quantity rounded half up (price in
minor units per unit); an invoice's ``total`` = ``amount`` + ``tax``; a waybill's
``delivered`` ≥ ``picked_up``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, NoReturn

from tally.finance.receipt import iso

HOME_CURRENCY = "CNY"
KINDS = ("contract", "order", "invoice", "waybill", "warehouse_in", "warehouse_out",
         "iot_movement", "payment")  # fmt: skip
FLOWS = {"contract": "commercial", "order": "commercial", "invoice": "information",
         "waybill": "logistics", "warehouse_in": "logistics", "warehouse_out": "logistics",
         "iot_movement": "logistics", "payment": "capital"}  # fmt: skip
OWNERS = {"contract": "buyer", "invoice": "seller", "waybill": "carrier",
          "warehouse_in": "warehouse", "warehouse_out": "warehouse"}  # fmt: skip
"""The body field naming the one party that must sign a document of the kind."""
IDENTIFIED = {"invoice": "seller_tax_id", "waybill": "carrier_tax_id"}
"""Kinds with an identity hash, and the body field holding the issuer's tax id."""
MAX_ID, MAX_REF, MAX_TEXT, MAX_UNIT = 64, 64, 256, 16
MAX_AMOUNT = 10**15
MAX_PLACES = 6
MAX_QUANTITY = Decimal(10) ** 12
MAX_TERM_DAYS = 3660
MAX_READINGS = 1000
INVOICE_DIGITS = (20, 8, 10, 12)


class DocumentError(ValueError):
    """A document breaks a rule: ``field`` names it ("" for the envelope), ``kind`` is the
    document's kind once known."""

    def __init__(self, field: str, reason: str, kind: str | None = None) -> None:
        self.field, self.reason, self.kind = field, reason, kind
        subject = kind or "document"
        super().__init__(
            f"{subject} field {field!r}: {reason}" if field else f"{subject}: {reason}"
        )


# -- bodies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractBody:
    """A sales contract (商流), signed by the buyer."""

    seller: str
    buyer: str
    seller_tax_id: str
    buyer_tax_id: str
    goods: str
    quantity: Decimal
    unit: str
    price: Decimal  # minor units of the currency per unit
    amount: int
    currency: str
    delivery_from: int
    delivery_to: int
    payment_term_days: int
    rate: Decimal | None = None


@dataclass(frozen=True)
class OrderBody:
    """A purchase order under a contract (商流), signed by the buyer."""

    contract: str
    quantity: Decimal
    amount: int


@dataclass(frozen=True)
class InvoiceBody:
    """A VAT invoice (信息流), signed by the seller; ``amount`` excludes tax."""

    number: str
    seller: str
    buyer: str
    seller_tax_id: str
    buyer_tax_id: str
    contract: str
    quantity: Decimal
    unit: str
    amount: int  # excluding tax
    tax: int
    total: int
    currency: str
    issued: int
    rate: Decimal | None = None


@dataclass(frozen=True)
class WaybillBody:
    """A waybill (物流), signed by the carrier."""

    number: str
    carrier: str
    carrier_tax_id: str
    shipper: str
    consignee: str
    quantity: Decimal
    unit: str
    picked_up: int
    delivered: int
    origin: str
    destination: str


@dataclass(frozen=True)
class WarehouseBody:
    """A warehouse entry (``warehouse_in``) or exit (``warehouse_out``), signed by the warehouse."""

    number: str
    warehouse: str
    depositor: str
    quantity: Decimal
    unit: str
    at: int


@dataclass(frozen=True)
class IotMovementBody:
    """A movement measured by devices, with the suite hashes of the proven readings."""

    quantity: Decimal
    unit: str
    at: int
    readings: tuple[bytes, ...]  # suite hashes of the proven readings
    site: str


@dataclass(frozen=True)
class PaymentBody:
    """A payment (资金流) of an invoice, signed by the payer or its bank."""

    number: str
    payer: str
    payee: str
    amount: int
    currency: str
    invoice: str  # the VAT invoice number paid
    paid: int
    rate: Decimal | None = None


Body = (ContractBody | OrderBody | InvoiceBody | WaybillBody | WarehouseBody | IotMovementBody
        | PaymentBody)  # fmt: skip
BODIES: dict[str, type[Body]] = {
    "contract": ContractBody, "order": OrderBody, "invoice": InvoiceBody,
    "waybill": WaybillBody, "warehouse_in": WarehouseBody, "warehouse_out": WarehouseBody,
    "iot_movement": IotMovementBody, "payment": PaymentBody,
}  # fmt: skip
OPTIONAL = frozenset({"rate"})


def body_fields(kind: str) -> tuple[str, ...]:
    """The body fields of ``kind`` in the order they are checked."""
    return tuple(f.name for f in dataclasses.fields(BODIES[kind]))


# -- field rules ----------------------------------------------------------------------------


def show(value: Any) -> str:
    """A value as errors quote it: a finite Decimal plainly, anything else with its type."""
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value.normalize():f}"
    return f"{type(value).__name__} {value!r}"


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be non-empty text, got {show(value)}")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters, got {len(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"must not contain control characters, got {value!r}")
    return value


def ident(value: Any) -> str:
    """A party id, trade id or contract number: text without "/", at most 64 characters."""
    _text(value, MAX_ID)
    if "/" in value:
        raise ValueError(f"must not contain '/', got {value!r}")
    return str(value)


def ref(value: Any) -> str:
    """A document number or reference: text, at most 64 characters ("/" allowed)."""
    return _text(value, MAX_REF)


def _unit(value: Any) -> str:
    return _text(value, MAX_UNIT)


def _int(value: Any, least: int, most: int, what: str = "an integer") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"must be {what}, got {show(value)}")
    if not least <= value <= most:
        raise ValueError(f"must be {what} in [{least}, {most}], got {value}")
    return value


def _money(least: int) -> Callable[[Any], int]:
    return lambda v: _int(v, least, MAX_AMOUNT, "an integer amount in minor units")


def ms(value: Any) -> int:
    """A time: integer ms since the epoch, >= 0."""
    return _int(value, 0, 2**63 - 1, "a time in ms")


def _days(value: Any) -> int:
    return _int(value, 0, MAX_TERM_DAYS, "a number of days")


def _positive(value: Any) -> Decimal:
    """A positive Decimal, at most 6 decimal places, below 10^12 (an int is not one)."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValueError(f"must be a positive Decimal, got {show(value)}")
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    if -exp > MAX_PLACES:
        raise ValueError(f"must have at most {MAX_PLACES} decimal places, got {show(value)}")
    if value >= MAX_QUANTITY:
        raise ValueError(f"must be below {MAX_QUANTITY:f}, got {show(value)}")
    return value


def _currency(value: Any) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 3
        or not ("A" <= min(value) <= max(value) <= "Z")
    ):
        raise ValueError(f"must be an ISO 4217 code like 'CNY', got {show(value)}")
    return value


USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters of a unified social credit code (no I, O, S, V, Z), value = index."""
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
"""GB 32100-2015 weights of characters 1..17: 3^(i-1) mod 31."""


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters of a unified social
    credit code: ``31 - (Σ value_i × 3^(i-1) mod 31)``, 31 taken as 0."""
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def check_uscc(value: Any) -> str:
    """An 18-character unified social credit code (统一社会信用代码, GB 32100-2015): allowed
    characters, a 6-digit administrative division code (characters 3-8), the check character."""
    if not isinstance(value, str) or len(value) != 18:
        got = f"{value!r} ({len(value)} characters)" if isinstance(value, str) else show(value)
        raise ValueError(f"must be an 18-character unified social credit code, got {got}")
    for i, c in enumerate(value):
        if c not in USCC_CHARS:
            raise ValueError(
                f"character {i + 1} {c!r} of {value!r} is not allowed in a unified social "
                "credit code (digits and A-Y without I, O, S, V, Z)"
            )
    if not value[2:8].isdigit():
        raise ValueError(
            f"characters 3-8 of {value!r} must be an administrative division code (6 digits), "
            f"got {value[2:8]!r}"
        )
    want = uscc_check_char(value[:17])
    if value[17] != want:
        raise ValueError(
            f"check character of {value!r} is {value[17]!r}, GB 32100-2015 gives {want!r}"
        )
    return value


_tax_id = check_uscc


def invoice_number(value: Any) -> str:
    """A VAT invoice number: 20 digits (fully digital invoice) or 8, 10 or 12 digits."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a VAT invoice number (digits), got {show(value)}")
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"must be digits only, got {value!r}")
    if len(value) not in INVOICE_DIGITS:
        raise ValueError(
            "must have 20 digits (fully digital invoice) or 8, 10 or 12 digits, got "
            f"{len(value)} ({value!r})"
        )
    return value


def _readings(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_READINGS:
        raise ValueError(f"must be a list of 1 to {MAX_READINGS} reading hashes, got {show(value)}")
    seen: set[bytes] = set()
    for i, h in enumerate(value):
        if not isinstance(h, bytes) or len(h) != 32:
            raise ValueError(f"reading {i} must be a 32-byte hash, got {show(h)}")
        if h in seen:
            raise ValueError(f"reading {i} repeats {h.hex()[:16]}…")
        seen.add(h)
    return tuple(value)


_RULES: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(("seller", "buyer", "carrier", "shipper", "consignee", "warehouse",
                     "depositor", "payer", "payee", "contract", "site"), ident),
    **dict.fromkeys(("seller_tax_id", "buyer_tax_id", "carrier_tax_id"), _tax_id),
    **dict.fromkeys(("goods", "origin", "destination"), _text),
    **dict.fromkeys(("quantity", "price", "rate"), _positive),
    **dict.fromkeys(("amount", "total"), _money(1)),
    **dict.fromkeys(("delivery_from", "delivery_to", "issued", "picked_up", "delivered", "at",
                     "paid"), ms),
    "tax": _money(0), "unit": _unit, "currency": _currency, "payment_term_days": _days,
    "readings": _readings, "invoice": invoice_number, "number": ref,
}  # fmt: skip


def _rule(kind: str, name: str) -> Callable[[Any], Any]:
    if name == "number" and kind == "invoice":
        return invoice_number
    return _RULES[name]


def check_body(kind: str, body: Any) -> Body:
    """The body of a ``kind`` document, checked field by field, then across fields; raise
    :class:`DocumentError` for the first broken rule (unknown fields first, then missing)."""
    if kind not in BODIES:
        raise DocumentError("kind", f"must be one of {', '.join(KINDS)}, got {show(kind)}")
    if isinstance(body, BODIES[kind]):
        body = encode_body(body)
    if not isinstance(body, Mapping):
        raise DocumentError("body", f"must be a map, got {show(body)}", kind)
    names = body_fields(kind)
    unknown = sorted(str(k) for k in body if k not in names)
    if unknown:
        raise DocumentError(unknown[0], f"unknown (the fields are {', '.join(names)})", kind)
    out: dict[str, Any] = {}
    for name in names:
        if name not in body:
            if name in OPTIONAL:
                continue
            raise DocumentError(name, "missing", kind)
        try:
            out[name] = _rule(kind, name)(body[name])
        except ValueError as exc:
            raise DocumentError(name, str(exc), kind) from None
    _across(kind, out)
    return BODIES[kind](**out)


def _across(kind: str, b: dict[str, Any]) -> None:
    """The rules between fields of one body."""

    def fail(name: str, reason: str) -> NoReturn:
        raise DocumentError(name, reason, kind)

    for one, other in (("seller", "buyer"), ("seller_tax_id", "buyer_tax_id"), ("payer", "payee")):
        if one in b and b[one] == b[other]:
            fail(other, f"must differ from the {one.replace('_', ' ')}, got {b[one]!r} for both")
    if "currency" in b:
        cur, rate = b["currency"], b.get("rate")
        if cur == HOME_CURRENCY and rate is not None:
            fail("rate", f"must be absent for {HOME_CURRENCY} amounts, got {show(rate)}")
        if cur != HOME_CURRENCY and rate is None:
            fail("rate", f"a {cur} amount needs the rate ({HOME_CURRENCY} per {cur}), none given")
    if kind == "contract":
        start, end = b["delivery_from"], b["delivery_to"]
        if end < start:
            fail("delivery_to", f"{iso(end)} is before delivery_from {iso(start)}")
        with localcontext() as dc:
            dc.prec = 60
            want = int((b["price"] * b["quantity"]).quantize(Decimal(1), ROUND_HALF_UP))
        if b["amount"] != want:
            fail(
                "amount",
                f"must be price {show(b['price'])} × quantity {show(b['quantity'])} = {want} "
                f"(rounded half up), got {b['amount']}",
            )
    if kind == "invoice" and b["total"] != b["amount"] + b["tax"]:
        want = b["amount"] + b["tax"]
        fail(
            "total", f"must be amount + tax = {b['amount']} + {b['tax']} = {want}, got {b['total']}"
        )
    if kind == "waybill" and b["delivered"] < b["picked_up"]:
        fail("delivered", f"{iso(b['delivered'])} is before picked_up {iso(b['picked_up'])}")


def encode_body(body: Body) -> dict[str, Any]:
    """A body object as its payload map (an absent ``rate`` left out, readings as a list)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(body):
        v = getattr(body, f.name)
        if v is None and f.name in OPTIONAL:
            continue
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


__all__ = [
    "BODIES", "FLOWS", "HOME_CURRENCY", "IDENTIFIED", "KINDS", "OWNERS", "Body", "ContractBody",
    "DocumentError", "InvoiceBody", "IotMovementBody", "OrderBody", "PaymentBody",
    "WarehouseBody", "WaybillBody", "body_fields", "check_body", "check_uscc", "encode_body",
    "ident", "invoice_number", "ms", "ref", "show", "uscc_check_char",
]  # fmt: skip

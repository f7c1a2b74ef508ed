"""The release order (§28) and warehouse receipt (§27) records the edge reads from its peer.

:func:`parse_order` checks a ``relord/<site>/<id>`` record against ``docs/formats.md`` §28 —
exactly the documented fields with their types, its key naming its id and the edge's site —
and returns an :class:`Order`; :func:`parse_receipt` checks the fields of an ``rcpt/<no>``
record the edge uses (``v`` 1, its own ``no``, a known ``state``, a well-formed ``frozen``)
and returns a :class:`Receipt`. A record that breaks them raises :class:`RecordError`, which
names the record's key and the first rule broken. The poller that reads these records and
hands the orders to the gateway is :mod:`tally.edge.orders`, which re-exports the public
names here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ORDER_FIELDS = ("id", "receipt", "site", "location", "lot", "weight", "from", "to", "by",
                "loan", "kind", "t")  # fmt: skip
"""The fields of a release order (§28), in the order they are checked."""
KINDS = ("release", "delivery", "disposal")
RECEIPT_STATES = ("live", "pledged", "frozen", "split", "delivered", "cancelled", "disposed")
FROZEN_FIELDS = ("by", "reason", "t", "was")
MAX_ID = 64
MAX_PLACES = 6
_SEQ = re.compile(r"[0-9]{1,20}")


class RecordError(ValueError):
    """A record in the peer's state is not of the documented shape: ``key`` and ``reason``."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"Decimal {value.normalize():f}" if value.is_finite() else f"Decimal {value}"
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 80 else text[:77] + "..."


def _field(key: str, rec: dict[str, Any], name: str, kind: str, within: str = "") -> Any:
    """``rec[name]`` if it is of ``kind``: ``text`` (non-empty, no control characters),
    ``ident`` (text, no "/", at most :data:`MAX_ID` characters) or ``uint``; ``within``
    names the map holding ``rec`` in a refusal."""
    v = rec[name]
    name = within + name
    if kind == "uint":
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise RecordError(key, f"field {name!r} must be an unsigned integer, got {_show(v)}")
        return v
    rule = ""
    if not isinstance(v, str) or not v:
        rule = f"must be non-empty text, got {_show(v)}"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in v):
        rule = f"must not contain control characters, got {v!r}"
    elif kind == "ident" and "/" in v:
        rule = f"must not contain '/', got {v!r}"
    elif kind == "ident" and len(v) > MAX_ID:
        rule = f"must be at most {MAX_ID} characters, got {len(v)}"
    if rule:
        raise RecordError(key, f"field {name!r} {rule}")
    return v


def _exact(key: str, value: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(key, f"{what} must be a map, got {type(value).__name__}")
    for f in fields:
        if f not in value:
            raise RecordError(key, f"missing field {f!r}")
    unknown = sorted(repr(k) for k in value if k not in fields)
    if unknown:
        raise RecordError(key, f"unknown field {unknown[0]} (the fields are {', '.join(fields)})")
    return value


@dataclass(frozen=True)
class Order:
    """One release order (§28), as the edge needs it."""

    id: str
    receipt: str
    location: str
    lot: str
    weight: Decimal
    valid_from: int
    valid_to: int
    by: str
    loan: str | None
    kind: str
    t: int


def orders_prefix(site: str) -> str:
    return f"relord/{site}/"


def parse_order(key: str, value: Any, site: str) -> Order:
    """The release order stored under ``key``; :class:`RecordError` names the first rule it
    breaks."""
    prefix = orders_prefix(site)
    if not key.startswith(prefix):
        raise RecordError(key, f"not a release order of site {site} (those are {prefix}<id>)")
    v = _exact(key, value, ORDER_FIELDS, "a release order")
    oid, receipt = _field(key, v, "id", "text"), _field(key, v, "receipt", "ident")
    if v["site"] != site:
        raise RecordError(key, f"field 'site' must be this edge's site {site!r}, "
                          f"got {_show(v['site'])}")  # fmt: skip
    location, lot = _field(key, v, "location", "ident"), _field(key, v, "lot", "ident")
    w = v["weight"]
    if not isinstance(w, Decimal) or not w.is_finite() or w <= 0 or (
        int(w.normalize().as_tuple().exponent) < -MAX_PLACES
    ):  # fmt: skip
        raise RecordError(key, f"field 'weight' must be a positive Decimal (t) with at most "
                          f"{MAX_PLACES} places, got {_show(w)}")  # fmt: skip
    start, end = _field(key, v, "from", "uint"), _field(key, v, "to", "uint")
    if end <= start:
        raise RecordError(key, f"field 'to' ({end}) must be after 'from' ({start})")
    by = _field(key, v, "by", "text")
    loan = None if v["loan"] is None else _field(key, v, "loan", "ident")
    if v["kind"] not in KINDS:
        raise RecordError(key, f"field 'kind' must be one of {', '.join(KINDS)}, "
                          f"got {_show(v['kind'])}")  # fmt: skip
    kind, t = v["kind"], _field(key, v, "t", "uint")
    stem = f"{receipt}:{kind}:"
    if not (oid.startswith(stem) and _SEQ.fullmatch(oid[len(stem) :])):
        raise RecordError(key, f"field 'id' must be {stem}<seq>, got {oid!r}")
    if key != prefix + oid:
        raise RecordError(key, f"the key must be {prefix}<id>, and the id is {oid!r}")
    return Order(oid, receipt, location, lot, w, start, end, by, loan, kind, t)


@dataclass(frozen=True)
class Receipt:
    """What the edge needs of a warehouse receipt (§27)."""

    no: str
    state: str
    frozen_by: str = ""
    frozen_reason: str = ""


def parse_receipt(key: str, value: Any, no: str) -> Receipt:
    """Receipt ``no`` stored under ``key``; :class:`RecordError` if a field the edge uses
    breaks §27."""
    if not isinstance(value, dict):
        raise RecordError(key, f"a receipt must be a map, got {type(value).__name__}")
    for f in ("v", "no", "state", "frozen"):
        if f not in value:
            raise RecordError(key, f"missing field {f!r}")
    if type(value["v"]) is not int or value["v"] != 1:
        raise RecordError(key, f"field 'v' must be 1, got {_show(value['v'])}")
    if value["no"] != no:
        raise RecordError(key, f"field 'no' must be {no!r}, got {_show(value['no'])}")
    state, frozen = value["state"], value["frozen"]
    if state not in RECEIPT_STATES:
        raise RecordError(key, f"field 'state' must be one of {', '.join(RECEIPT_STATES)}, "
                          f"got {_show(state)}")  # fmt: skip
    if frozen is None:
        if state == "frozen":
            raise RecordError(key, "field 'frozen' must be a map when the state is 'frozen'")
        return Receipt(no, state)
    fz = _exact(key, frozen, FROZEN_FIELDS, "field 'frozen'")
    by, reason = (
        _field(key, fz, "by", "text", "frozen."),
        _field(key, fz, "reason", "text", "frozen."),
    )
    _field(key, fz, "t", "uint", "frozen.")
    if fz["was"] not in ("live", "pledged"):
        raise RecordError(key, f"field 'frozen.was' must be live or pledged, "
                          f"got {_show(fz['was'])}")  # fmt: skip
    return Receipt(no, state, by, reason)

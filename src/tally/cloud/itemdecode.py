"""Decoding one batch item (reading, heartbeat, event, gap certificate, summary) for storage.

What is decoded is kept beside the original COSE bytes for querying: measurements as JSON
``[{"q": quantity, "v": "21.5", "u": "Cel"}]`` (decimals as plain text, never floats nor
exponents) and the other fields as JSON ``meta`` (bytes as lower-case hex).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.cloud.errors import IngestRejected
from tally.cloud.storage.api import NewItem
from tally.crypto import CryptoError, Sign1
from tally.device.envelope import decode_reading
from tally.edge.formats import Gap, decode_event, decode_gap, decode_summary
from tally.formats import CTY_EVENT, CTY_GAP, CTY_HEARTBEAT, CTY_READING, CTY_SUMMARY


def jsonable(v: Any) -> Any:
    """A JSON-safe copy of a decoded CBOR value: bytes → hex, Decimal → text."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def _dumps(v: Any) -> str:
    return json.dumps(jsonable(v), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class DecodedItem:
    """One parsed (not yet verified) item and the columns stored for it."""

    index: int
    kind: str
    msg: Sign1
    hash: bytes
    device: str | None
    edge: str | None
    site: str | None
    boot: int | None
    ctr: int | None
    t: int
    measurements: str = "[]"
    meta: str = "{}"
    rule: str | None = None
    gap: Gap | None = None

    def to_new_item(self, site: str, org: str, assurance: int) -> NewItem:
        return NewItem(
            index=self.index,
            kind=self.kind,
            signer=self.msg.kid,
            device=self.device,
            site=site,
            org=org,
            boot=self.boot,
            ctr=self.ctr,
            t=self.t,
            hash=self.hash,
            assurance=assurance,
            cose=self.msg.encoded,
            measurements=self.measurements,
            meta=self.meta,
            rule=self.rule,
        )


def decode_item(index: int, data: bytes, msg: Sign1) -> DecodedItem:
    """Decode item ``index`` of a batch; raise IngestRejected("malformed") when impossible."""
    h = msg.suite.hash(data)
    cty = msg.content_type
    meta: dict[str, Any]
    try:
        if cty in (CTY_READING, CTY_HEARTBEAT):
            r = decode_reading(msg.payload, heartbeat=cty == CTY_HEARTBEAT)
            ms = [{"q": m.quantity, "v": format(m.value, "f"), "u": m.unit} for m in r.m]
            meta = {"labels": dict(r.labels), "prev": r.prev, "fw": r.fw}
            kind = "heartbeat" if r.heartbeat else "reading"
            return DecodedItem(
                index, kind, msg, h, r.dev, None, None, r.boot, r.ctr, r.t, _dumps(ms), _dumps(meta)
            )
        if cty == CTY_EVENT:
            e = decode_event(msg.payload)
            meta = {
                "kind": e.kind,
                "sev": e.sev,
                "seq": e.seq,
                "devs": list(e.devs),
                "refs": list(e.refs),
                "detail": dict(e.detail),
            }
            return DecodedItem(
                index, "event", msg, h, None, e.edge, e.site, None, e.seq, e.t,
                meta=_dumps(meta), rule=e.rule,
            )  # fmt: skip
        if cty == CTY_GAP:
            g = decode_gap(msg.payload)
            meta = {"from": g.first, "to": g.last, "reason": g.reason}
            return DecodedItem(
                index, "gap", msg, h, g.dev, g.edge, None, g.boot, g.first, g.t,
                meta=_dumps(meta), gap=g,
            )  # fmt: skip
        if cty == CTY_SUMMARY:
            s = decode_summary(msg.payload)
            meta = {
                "from": s.first,
                "to": s.last,
                "n": s.n,
                "root": s.root,
                "stats": [list(x) for x in s.stats],
            }
            return DecodedItem(
                index, "summary", msg, h, s.dev, s.edge, None, s.boot, s.first, s.t,
                meta=_dumps(meta),
            )  # fmt: skip
    except CryptoError as exc:
        raise IngestRejected("malformed", str(exc), index) from None
    raise IngestRejected("malformed", f"content type {cty!r} is not a batch item", index)

"""Signed objects made by the edge, and the uplink protocol's request and receipt.

All are COSE_Sign1 with ``kid`` = the edge id (the receipt: the cloud id). Payloads are
deterministic CBOR maps; ``docs/formats.md`` is the normative description.

Event (``application/tally.event+cbor``) — a rule fired::

    {"v":1, "edge":tstr, "site":tstr, "seq":uint, "rule":tstr, "kind":tstr,
     "sev":"info"|"warning"|"critical", "t":int, "devs":[tstr], "refs":[bstr], "detail":{tstr=>any}}

``refs`` are suite hashes of the envelopes that caused it; ``seq`` is the edge's event number.

Gap certificate (``application/tally.gap+cbor``) — readings of one device that never arrived
or could not be kept; ``from``..``to`` inclusive::

    {"v":1, "edge":tstr, "dev":tstr, "boot":uint, "from":uint, "to":uint, "reason":tstr, "t":int}

Summary (``application/tally.summary+cbor``) — what a full disk made the edge condense::

    {"v":1, "edge":tstr, "dev":tstr, "boot":uint, "from":uint, "to":uint, "n":uint,
     "root":bstr, "stats":[[quantity, min, max, sum, unit]], "t":int}

``root`` is the RFC 9162 root over the condensed envelopes, so any kept original can still
be proven against it.

Batch header (``application/tally.batch+cbor``)::

    {"v":1, "edge":tstr, "site":tstr, "suite":tstr, "ctr":uint, "prev":bstr,
     "t0":int, "t1":int, "n":uint, "root":bstr}

``root`` is the RFC 9162 root (suite hash) over the batch's ``n`` items, each leaf being an
item's COSE bytes, in upload order; ``ctr`` counts the edge's batches from 0 and ``prev`` is
the suite hash of the previous header's COSE bytes (h'' for ctr 0).

Upload (``POST /v1/batches``, ``Content-Type: application/cbor``)::

    {"v":1, "header": bstr (COSE batch header), "items": [bstr (COSE), ...]}

Receipt (``application/tally.receipt+cbor``, signed by the cloud)::

    {"v":1, "cloud":tstr, "edge":tstr, "ctr":uint, "header":bstr, "n":uint, "t":int, "dup":bool}

``header`` is the suite hash of the header's COSE bytes; ``dup`` is true when the cloud had
already stored this batch (the receipt is still a proof of storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally import formats as F
from tally.crypto import DecodeError, SigningKey, cbor, sign1

SEVERITIES = ("info", "warning", "critical")


def _uint(obj: dict[str, Any], name: str, where: str) -> int:
    v: int = F.field(obj, name, int, where)
    if v < 0:
        raise DecodeError(where, f"field {name!r} must not be negative")
    return v


@dataclass(frozen=True)
class Event:
    edge: str
    site: str
    seq: int
    rule: str
    kind: str
    sev: str
    t: int
    devs: tuple[str, ...]
    refs: tuple[bytes, ...]
    detail: tuple[tuple[str, Any], ...] = ()

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "edge": self.edge,
                "site": self.site,
                "seq": self.seq,
                "rule": self.rule,
                "kind": self.kind,
                "sev": self.sev,
                "t": self.t,
                "devs": list(self.devs),
                "refs": list(self.refs),
                "detail": dict(self.detail),
            }
        )


def decode_event(payload: bytes) -> Event:
    where = "event"
    keys = {"v", "edge", "site", "seq", "rule", "kind", "sev", "t", "devs", "refs", "detail"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    sev = F.field(obj, "sev", str, where)
    if sev not in SEVERITIES:
        raise DecodeError(where, f"unknown severity {sev!r}")
    devs = F.field(obj, "devs", (list, tuple), where)
    refs = F.field(obj, "refs", (list, tuple), where)
    if not all(isinstance(d, str) for d in devs) or not all(isinstance(r, bytes) for r in refs):
        raise DecodeError(where, "devs must be text and refs byte strings")
    detail = F.field(obj, "detail", dict, where)
    if not all(isinstance(k, str) for k in detail):
        raise DecodeError(where, "detail keys must be text")
    return Event(
        edge=F.field(obj, "edge", str, where),
        site=F.field(obj, "site", str, where),
        seq=_uint(obj, "seq", where),
        rule=F.field(obj, "rule", str, where),
        kind=F.field(obj, "kind", str, where),
        sev=sev,
        t=F.field(obj, "t", int, where),
        devs=tuple(devs),
        refs=tuple(refs),
        detail=tuple(sorted(detail.items())),
    )


@dataclass(frozen=True)
class Gap:
    edge: str
    dev: str
    boot: int
    first: int
    last: int
    reason: str
    t: int

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "edge": self.edge,
                "dev": self.dev,
                "boot": self.boot,
                "from": self.first,
                "to": self.last,
                "reason": self.reason,
                "t": self.t,
            }
        )

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def decode_gap(payload: bytes) -> Gap:
    where = "gap certificate"
    keys = {"v", "edge", "dev", "boot", "from", "to", "reason", "t"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    g = Gap(
        edge=F.field(obj, "edge", str, where),
        dev=F.field(obj, "dev", str, where),
        boot=_uint(obj, "boot", where),
        first=_uint(obj, "from", where),
        last=_uint(obj, "to", where),
        reason=F.field(obj, "reason", str, where),
        t=F.field(obj, "t", int, where),
    )
    if g.last < g.first:
        raise DecodeError(where, f"empty range {g.first}..{g.last}")
    return g


@dataclass(frozen=True)
class Summary:
    edge: str
    dev: str
    boot: int
    first: int
    last: int
    n: int
    root: bytes
    stats: tuple[tuple[str, Decimal, Decimal, Decimal, str], ...]
    t: int

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "edge": self.edge,
                "dev": self.dev,
                "boot": self.boot,
                "from": self.first,
                "to": self.last,
                "n": self.n,
                "root": self.root,
                "stats": [list(s) for s in self.stats],
                "t": self.t,
            }
        )


def decode_summary(payload: bytes) -> Summary:
    where = "summary"
    keys = {"v", "edge", "dev", "boot", "from", "to", "n", "root", "stats", "t"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    stats = []
    for s in F.field(obj, "stats", (list, tuple), where):
        if (
            not isinstance(s, list | tuple)
            or len(s) != 5
            or not isinstance(s[0], str)
            or not isinstance(s[4], str)
            or not all(isinstance(x, Decimal | int) and not isinstance(x, bool) for x in s[1:4])
        ):
            raise DecodeError(where, "each stat must be [quantity, min, max, sum, unit]")
        stats.append((s[0], Decimal(s[1]), Decimal(s[2]), Decimal(s[3]), s[4]))
    return Summary(
        edge=F.field(obj, "edge", str, where),
        dev=F.field(obj, "dev", str, where),
        boot=_uint(obj, "boot", where),
        first=_uint(obj, "from", where),
        last=_uint(obj, "to", where),
        n=_uint(obj, "n", where),
        root=F.field(obj, "root", bytes, where),
        stats=tuple(stats),
        t=F.field(obj, "t", int, where),
    )


@dataclass(frozen=True)
class BatchHeader:
    edge: str
    site: str
    suite: str
    ctr: int
    prev: bytes
    t0: int
    t1: int
    n: int
    root: bytes

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "edge": self.edge,
                "site": self.site,
                "suite": self.suite,
                "ctr": self.ctr,
                "prev": self.prev,
                "t0": self.t0,
                "t1": self.t1,
                "n": self.n,
                "root": self.root,
            }
        )


def decode_batch_header(payload: bytes) -> BatchHeader:
    where = "batch header"
    keys = {"v", "edge", "site", "suite", "ctr", "prev", "t0", "t1", "n", "root"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    h = BatchHeader(
        edge=F.field(obj, "edge", str, where),
        site=F.field(obj, "site", str, where),
        suite=F.field(obj, "suite", str, where),
        ctr=_uint(obj, "ctr", where),
        prev=F.field(obj, "prev", bytes, where),
        t0=F.field(obj, "t0", int, where),
        t1=F.field(obj, "t1", int, where),
        n=_uint(obj, "n", where),
        root=F.field(obj, "root", bytes, where),
    )
    if h.ctr == 0 and h.prev:
        raise DecodeError(where, "batch 0 must have an empty prev")
    return h


@dataclass(frozen=True)
class Receipt:
    cloud: str
    edge: str
    ctr: int
    header: bytes
    n: int
    t: int
    dup: bool

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "cloud": self.cloud,
                "edge": self.edge,
                "ctr": self.ctr,
                "header": self.header,
                "n": self.n,
                "t": self.t,
                "dup": self.dup,
            }
        )


def decode_receipt(payload: bytes) -> Receipt:
    where = "receipt"
    keys = {"v", "cloud", "edge", "ctr", "header", "n", "t", "dup"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    return Receipt(
        cloud=F.field(obj, "cloud", str, where),
        edge=F.field(obj, "edge", str, where),
        ctr=_uint(obj, "ctr", where),
        header=F.field(obj, "header", bytes, where),
        n=_uint(obj, "n", where),
        t=F.field(obj, "t", int, where),
        dup=F.field(obj, "dup", bool, where),
    )


def encode_upload(header: bytes, items: list[bytes]) -> bytes:
    return cbor.encode({"v": F.FORMAT_VERSION, "header": header, "items": items})


def decode_upload(data: bytes, max_size: int = 16 << 20) -> tuple[bytes, list[bytes]]:
    where = "upload"
    obj = F.check_keys(
        cbor.decode(data, where=where, max_size=max_size), {"v", "header", "items"}, set(), where
    )
    header = F.field(obj, "header", bytes, where)
    items = F.field(obj, "items", (list, tuple), where)
    if not all(isinstance(i, bytes) for i in items):
        raise DecodeError(where, "items must be byte strings")
    return header, list(items)


def sign_object(key: SigningKey, cty: str, signer: str, payload: bytes) -> bytes:
    """Sign an edge or cloud object's payload as COSE_Sign1."""
    return sign1(key, cty, signer, payload)

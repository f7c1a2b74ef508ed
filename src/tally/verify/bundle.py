"""Proof bundles: everything needed to check one reading or edge object offline.

A bundle is deterministic CBOR (itself unsigned: every part inside is signed)::

    {"v": 1, "kind": "tally.bundle", "suite": "intl" | "gm",
     "item": bstr,              ; the COSE_Sign1 bytes of the reading / event / gap / summary
     "index": uint,             ; its leaf index in the batch
     "size": uint,              ; the batch's leaf count (= header "n")
     "path": [bstr],            ; RFC 9162 inclusion proof, leaf to root
     "header": bstr,            ; the edge-signed batch header (COSE_Sign1)
     "registrations": [bstr],   ; signed registrations of the item's signer, the edge and the cloud
     "anchors": {tstr => bstr}, ; organisation root keys the registrations chain to
     ? "receipt": bstr}         ; the cloud's signed receipt for the batch, when stored

The verifier (:mod:`tally.verify.verifier`) trusts only the anchors pinned by a trust file
(or, later, the consortium genesis); anchors carried in the bundle are used only when the
caller accepts them explicitly, and then the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tally import formats as F
from tally.crypto import DecodeError, cbor


@dataclass(frozen=True)
class Bundle:
    suite: str
    item: bytes
    index: int
    size: int
    path: tuple[bytes, ...]
    header: bytes
    registrations: tuple[bytes, ...]
    anchors: dict[str, bytes] = field(default_factory=dict)
    receipt: bytes | None = None

    def encode(self) -> bytes:
        obj = {
            "v": F.FORMAT_VERSION,
            "kind": "tally.bundle",
            "suite": self.suite,
            "item": self.item,
            "index": self.index,
            "size": self.size,
            "path": list(self.path),
            "header": self.header,
            "registrations": list(self.registrations),
            "anchors": dict(self.anchors),
        }
        if self.receipt is not None:
            obj["receipt"] = self.receipt
        return cbor.encode(obj)


_KEYS = {
    "v",
    "kind",
    "suite",
    "item",
    "index",
    "size",
    "path",
    "header",
    "registrations",
    "anchors",
}


def decode_bundle(data: bytes) -> Bundle:
    """Decode a bundle's structure (nothing verified yet); raise DecodeError on any flaw."""
    where = "bundle"
    obj = F.check_keys(cbor.decode(data, where=where, max_size=4 << 20), _KEYS, {"receipt"}, where)
    if obj["kind"] != "tally.bundle":
        raise DecodeError(where, f"kind {obj['kind']!r} is not tally.bundle")
    path = F.field(obj, "path", (list, tuple), where)
    regs = F.field(obj, "registrations", (list, tuple), where)
    anchors = F.field(obj, "anchors", dict, where)
    if not all(isinstance(p, bytes) for p in path):
        raise DecodeError(where, "path elements must be byte strings")
    if not all(isinstance(r, bytes) for r in regs):
        raise DecodeError(where, "registrations must be byte strings")
    if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in anchors.items()):
        raise DecodeError(where, "anchors must map organisation id to key bytes")
    receipt = obj.get("receipt")
    if receipt is not None and not isinstance(receipt, bytes):
        raise DecodeError(where, "receipt must be a byte string")
    index = F.field(obj, "index", int, where)
    size = F.field(obj, "size", int, where)
    if index < 0 or size < 0:
        raise DecodeError(where, "index and size must not be negative")
    return Bundle(
        suite=F.field(obj, "suite", str, where),
        item=F.field(obj, "item", bytes, where),
        index=index,
        size=size,
        path=tuple(path),
        header=F.field(obj, "header", bytes, where),
        registrations=tuple(regs),
        anchors=dict(anchors),
        receipt=receipt,
    )

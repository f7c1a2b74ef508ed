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
     ? "receipt": bstr,         ; the cloud's signed receipt for the batch, when stored
     ? "chain": chain}          ; the header's anchoring, up to a final checkpoint

    chain = {"tx": bstr,        ; the anchoring transaction's CBOR (tally.ledger.formats)
             "index": uint,     ; its position in the transaction log (0-based)
             "size": uint,      ; the log size at the checkpoint (= checkpoint "size")
             "path": [bstr],    ; RFC 9162 inclusion proof of leaf tx in the checkpoint's root
             "checkpoint": bstr,; the checkpoint payload CBOR
             "sigs": [bstr]}    ; checkpoint COSE_Sign1s by >= quorum distinct members

The verifier (:mod:`tally.verify.verifier`) trusts only the anchors pinned by a trust file
or by the consortium genesis; anchors carried in the bundle are used only when the caller
accepts them explicitly, and then the verdict says so. The chain part is checked only
against a genesis (``docs/formats.md`` §15, §17).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tally import formats as F
from tally.crypto import DecodeError, cbor

_CHAIN_KEYS = {"tx", "index", "size", "path", "checkpoint", "sigs"}


@dataclass(frozen=True)
class ChainProof:
    """The bundle's ``chain`` part: the transaction that anchored the bundle's header, its
    RFC 9162 inclusion proof in a checkpoint's transaction log, and that checkpoint with the
    members' signatures. Nothing here is verified by decoding."""

    tx: bytes
    index: int
    size: int
    path: tuple[bytes, ...]
    checkpoint: bytes
    sigs: tuple[bytes, ...]

    def to_obj(self) -> dict[str, Any]:
        """The CBOR map of the ``chain`` part (no ``v``: the bundle's version covers it)."""
        return {
            "tx": self.tx,
            "index": self.index,
            "size": self.size,
            "path": list(self.path),
            "checkpoint": self.checkpoint,
            "sigs": list(self.sigs),
        }

    def encode(self) -> bytes:
        """The deterministic CBOR of :meth:`to_obj`."""
        return cbor.encode(self.to_obj())


def _chain_field(obj: dict[str, Any], name: str, kind: type, where: str, pre: str) -> Any:
    v = obj[name]
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise DecodeError(where, f"{pre}field {name!r} must be int, got {type(v).__name__}")
    if kind is list and isinstance(v, tuple):
        return list(v)
    if not isinstance(v, kind):
        raise DecodeError(
            where, f"{pre}field {name!r} must be {kind.__name__}, got {type(v).__name__}"
        )
    return v


def decode_chain(obj: Any, where: str = "bundle", prefix: str = "chain: ") -> ChainProof:
    """Decode a bundle's ``chain`` map (already CBOR-decoded); nothing is verified.

    Raises DecodeError(``where``, ``prefix + reason``) on any flaw: not a map, missing or
    unknown fields, a field of the wrong type, ``path`` or ``sigs`` elements that are not
    byte strings, a negative ``index`` or ``size``. Inside a bundle the reasons read
    ``chain: missing field(s) ['sigs']`` and the like.
    """
    pre = prefix
    if not isinstance(obj, dict):
        raise DecodeError(where, f"{pre}must be a map, got {type(obj).__name__}")
    keys = set(obj)
    missing = _CHAIN_KEYS - keys
    if missing:
        raise DecodeError(where, f"{pre}missing field(s) {sorted(missing)}")
    extra = keys - _CHAIN_KEYS
    if extra:
        raise DecodeError(where, f"{pre}unknown field(s) {sorted(map(str, extra))}")
    tx = _chain_field(obj, "tx", bytes, where, pre)
    index = _chain_field(obj, "index", int, where, pre)
    size = _chain_field(obj, "size", int, where, pre)
    path = _chain_field(obj, "path", list, where, pre)
    checkpoint = _chain_field(obj, "checkpoint", bytes, where, pre)
    sigs = _chain_field(obj, "sigs", list, where, pre)
    if index < 0 or size < 0:
        raise DecodeError(where, f"{pre}index and size must not be negative")
    if not all(isinstance(p, bytes) for p in path):
        raise DecodeError(where, f"{pre}path elements must be byte strings")
    if not all(isinstance(s, bytes) for s in sigs):
        raise DecodeError(where, f"{pre}sigs must be byte strings")
    return ChainProof(tx, index, size, tuple(path), checkpoint, tuple(sigs))


def decode_chain_proof(data: bytes) -> ChainProof:
    """Decode a ``chain`` part given as its own CBOR bytes (:meth:`ChainProof.encode`);
    raise DecodeError("chain", …) on any flaw."""
    return decode_chain(cbor.decode(data, where="chain"), where="chain", prefix="")


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
    chain: ChainProof | None = None

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
        if self.chain is not None:
            obj["chain"] = self.chain.to_obj()
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
    obj = F.check_keys(
        cbor.decode(data, where=where, max_size=4 << 20), _KEYS, {"receipt", "chain"}, where
    )
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
    chain = decode_chain(obj["chain"], where) if "chain" in obj else None
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
        chain=chain,
    )

"""Transaction bundles: one ledger transaction with everything needed to check it offline.

A transaction bundle is deterministic CBOR (itself unsigned: every part inside is signed)::

    {"v": 1, "kind": "tally.txbundle", "suite": "intl" | "gm",
     "chain": chain,            ; the transaction, its log position and inclusion proof, and
                                ;   the final checkpoint of the block that ordered it
     ? "prev": {"checkpoint": bstr, "sigs": [bstr]}}
                                ; the final checkpoint of the block before (absent for block 1)

``chain`` is the chain part of a reading's proof bundle (:class:`~tally.verify.bundle.
ChainProof`): ``tx`` the transaction CBOR as ordered (proposal and endorsements), ``index`` its
position in the transaction log, ``size`` and ``path`` its RFC 9162 inclusion proof in the log
of ``checkpoint``, and ``sigs`` the members' signatures over that checkpoint. Here the
checkpoint is the one of the transaction's own block, and ``prev`` the one of the block
before, so the block height is proven too: the transaction lies between the two logs' sizes.

The kind ``tally.txbundle`` keeps a transaction bundle from ever being read as a reading's
proof bundle (kind ``tally.bundle``) and the other way round. :mod:`tally.verify.txverify`
checks one against the consortium genesis; :func:`make_tx_bundle` is what a ledger client uses
to put one together (``docs/formats.md`` §33).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tally import formats as F
from tally.crypto import CryptoError, DecodeError, Suite, cbor
from tally.ledger.checkpoint import FinalCheckpoint
from tally.ledger.formats import decode_checkpoint, decode_transaction
from tally.ledger.proofs import ProofError
from tally.verify.bundle import ChainProof, decode_chain

TX_BUNDLE_KIND = "tally.txbundle"
READING_BUNDLE_KIND = "tally.bundle"
MAX_BUNDLE_SIZE = 4 << 20
"""A transaction bundle is at most 4 MiB, as a reading's proof bundle."""

_KEYS = {"v", "kind", "suite", "chain"}
_PREV_KEYS = {"checkpoint", "sigs"}


@dataclass(frozen=True)
class PrevCheckpoint:
    """The bundle's ``prev`` part: the final checkpoint of the block before the
    transaction's, with the members' signatures. Nothing is verified by decoding."""

    checkpoint: bytes
    sigs: tuple[bytes, ...]

    def to_obj(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "sigs": list(self.sigs)}


@dataclass(frozen=True)
class TxBundle:
    """A decoded transaction bundle (see the module docstring)."""

    suite: str
    chain: ChainProof
    prev: PrevCheckpoint | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "v": F.FORMAT_VERSION,
            "kind": TX_BUNDLE_KIND,
            "suite": self.suite,
            "chain": self.chain.to_obj(),
        }
        if self.prev is not None:
            obj["prev"] = self.prev.to_obj()
        return cbor.encode(obj)


def bundle_kind(data: bytes) -> str | None:
    """The ``kind`` of a bundle's top-level map, None when ``data`` is not deterministic CBOR
    of a map with a text ``kind`` (nothing else is checked)."""
    try:
        obj = cbor.decode(data, where="bundle", max_size=MAX_BUNDLE_SIZE)
    except DecodeError:
        return None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def _decode_prev(obj: Any, where: str) -> PrevCheckpoint:
    pre = "prev: "
    if not isinstance(obj, dict):
        raise DecodeError(where, f"{pre}must be a map, got {type(obj).__name__}")
    missing = _PREV_KEYS - set(obj)
    if missing:
        raise DecodeError(where, f"{pre}missing field(s) {sorted(missing)}")
    extra = set(obj) - _PREV_KEYS
    if extra:
        raise DecodeError(where, f"{pre}unknown field(s) {sorted(map(str, extra))}")
    checkpoint, sigs = obj["checkpoint"], obj["sigs"]
    if not isinstance(checkpoint, bytes):
        raise DecodeError(
            where, f"{pre}field 'checkpoint' must be bytes, got {type(checkpoint).__name__}"
        )
    if not isinstance(sigs, list | tuple):
        raise DecodeError(where, f"{pre}field 'sigs' must be list, got {type(sigs).__name__}")
    if not all(isinstance(s, bytes) for s in sigs):
        raise DecodeError(where, f"{pre}sigs must be byte strings")
    return PrevCheckpoint(checkpoint, tuple(sigs))


def decode_tx_bundle(data: bytes) -> TxBundle:
    """Decode a transaction bundle's structure (nothing verified yet).

    Raises DecodeError("bundle", …) on any flaw; a reading's proof bundle is named as such:
    ``kind 'tally.bundle' is a reading's proof bundle, not a transaction bundle
    ('tally.txbundle')``.
    """
    where = "bundle"
    obj = cbor.decode(data, where=where, max_size=MAX_BUNDLE_SIZE)
    if not isinstance(obj, dict):
        raise DecodeError(where, f"must be a map, got {type(obj).__name__}")
    kind = obj.get("kind", TX_BUNDLE_KIND)  # the kind first: it says what else to expect
    if kind == READING_BUNDLE_KIND:
        raise DecodeError(
            where,
            f"kind {READING_BUNDLE_KIND!r} is a reading's proof bundle, not a transaction"
            f" bundle ({TX_BUNDLE_KIND!r})",
        )
    if kind != TX_BUNDLE_KIND:
        raise DecodeError(where, f"kind {kind!r} is not {TX_BUNDLE_KIND!r}")
    obj = F.check_keys(obj, _KEYS, {"prev"}, where)
    prev = _decode_prev(obj["prev"], where) if "prev" in obj else None
    return TxBundle(F.field(obj, "suite", str, where), decode_chain(obj["chain"], where), prev)


def tx_id_of(suite: Suite, tx: bytes) -> bytes:
    """The transaction id of transaction CBOR ``tx``: the suite hash of its proposal's COSE
    bytes; raises DecodeError when ``tx`` is not a transaction."""
    return suite.hash(decode_transaction(tx).proposal)


def make_tx_bundle(
    suite: Suite, tx_id: bytes, chain: ChainProof, prev: FinalCheckpoint | None
) -> bytes:
    """The transaction bundle of ``tx_id`` from its chain part (the checkpoint in it must be
    the final checkpoint of the transaction's block) and the final checkpoint of the block
    before (None for block 1).

    Raises :class:`~tally.ledger.proofs.ProofError` when the parts do not fit together: the
    log position holds another transaction, ``prev`` is missing or not of the block before,
    or the log position is not in the checkpoint's block. The signatures are not checked here
    (:func:`tally.verify.txverify.verify_tx_bundle` does that).
    """
    want = tx_id.hex()[:16]
    try:
        got = tx_id_of(suite, chain.tx)
        cp = decode_checkpoint(chain.checkpoint)
    except CryptoError as exc:
        raise ProofError(f"transaction {want}…: {exc}") from None
    if got != tx_id:
        raise ProofError(
            f"log position {chain.index} holds transaction {got.hex()[:16]}…, not {want}…"
        )
    if not chain.index < cp.size:
        raise ProofError(
            f"log position {chain.index} is not in checkpoint {cp.height} (size {cp.size})"
        )
    if cp.height <= 1:
        return TxBundle(suite.name, chain).encode()
    if prev is None:
        raise ProofError(f"transaction {want}…: no final checkpoint of block {cp.height - 1}")
    before = prev.checkpoint
    if before.height != cp.height - 1:
        raise ProofError(
            f"the previous checkpoint is of block {before.height}, want {cp.height - 1}"
        )
    if before.size > chain.index:
        raise ProofError(
            f"log position {chain.index} is before block {cp.height}"
            f" (block {before.height} ends at log size {before.size})"
        )
    return TxBundle(suite.name, chain, PrevCheckpoint(prev.payload, prev.signatures)).encode()

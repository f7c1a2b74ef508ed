"""Proofs over the transaction log, and the finality of a checkpoint.

A checkpoint's ``size`` and ``root`` describe the transaction log: every ordered transaction
of blocks 1..height, valid or not, RFC 9162 over the transaction CBOR bytes as leaves, hash
= the consortium suite's (see :mod:`tally.ledger.formats`). So anyone holding a final
checkpoint can check, with nothing but the genesis:

- that a transaction is in the log (:func:`verify_tx_inclusion`), given a
  :class:`TxInclusion` made by a peer with :func:`inclusion_proof`;
- that a later checkpoint's log extends an earlier one's (:func:`verify_consistency`),
  given a :class:`Consistency` made with :func:`consistency_proof`: nothing was rewritten;
- that a checkpoint is final (:func:`verify_final_checkpoint`): at least
  ``checkpoint_quorum`` distinct members signed the identical payload bytes.

Encodings (deterministic CBOR), for carrying proofs in bundles::

    tx_inclusion = {"v":1, "index":uint, "size":uint, "path":[bstr]}
    consistency  = {"v":1, "size1":uint, "size2":uint, "path":[bstr]}

``path`` is the RFC 9162 proof (§2.1.3.1 inclusion, §2.1.4.1 consistency), leaf upwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tally import formats as F
from tally.crypto import CryptoError, DecodeError, Suite, VerifyKey, cbor, parse_sign1
from tally.ledger.errors import CheckpointInvalid, LedgerError, NotFinal
from tally.ledger.formats import CTY_CHECKPOINT, Checkpoint, decode_checkpoint
from tally.ledger.genesis import Genesis, Member
from tally.merkle import Hasher, MerkleError, verify_inclusion
from tally.merkle import verify_consistency as merkle_verify_consistency


class ProofError(LedgerError):
    """Raised when a proof cannot be made or does not hold. ``reason`` says what is wrong;
    ``cause`` is the underlying :class:`~tally.merkle.MerkleError` when there is one."""

    def __init__(self, reason: str, cause: MerkleError | None = None) -> None:
        self.reason = reason
        self.cause = cause
        super().__init__(reason)


class InclusionError(ProofError):
    """Raised by :func:`verify_tx_inclusion` when a transaction is not proven to be in a
    checkpoint's log: the proof is for another log size, is malformed, or leads to another
    root (the transaction bytes, index or path were changed)."""


class ConsistencyError(ProofError):
    """Raised by :func:`verify_consistency` when a later checkpoint's log is not proven to
    extend an earlier one's: other chains, heights out of order, a shrinking log, two
    different checkpoints at one height, or a proof that does not hold (a rewritten log)."""


class ProvableLog(Protocol):
    """What a proof is made from: a :class:`tally.merkle.Tree` of transaction bytes, or a
    peer's transaction log (``tally.ledger.txlog.TxLog``)."""

    @property
    def size(self) -> int: ...

    def root_at(self, size: int) -> bytes: ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]: ...


@dataclass(frozen=True)
class TxInclusion:
    """The inclusion proof of the transaction at log position ``index`` in a log of ``size``."""

    index: int
    size: int
    path: tuple[bytes, ...]

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "index": self.index, "size": self.size,
             "path": list(self.path)}
        )  # fmt: skip


@dataclass(frozen=True)
class Consistency:
    """The proof that the log of ``size1`` transactions is a prefix of that of ``size2``."""

    size1: int
    size2: int
    path: tuple[bytes, ...]

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "size1": self.size1, "size2": self.size2,
             "path": list(self.path)}
        )  # fmt: skip


def _uint(obj: dict[str, Any], name: str, where: str) -> int:
    v: int = F.field(obj, name, int, where)
    if v < 0:
        raise DecodeError(where, f"field {name!r} must not be negative")
    return v


def _path(obj: dict[str, Any], where: str) -> tuple[bytes, ...]:
    path = F.field(obj, "path", (list, tuple), where)
    if not all(isinstance(p, bytes) for p in path):
        raise DecodeError(where, "path must be a list of byte strings")
    return tuple(path)


def decode_tx_inclusion(data: bytes) -> TxInclusion:
    """Decode a :class:`TxInclusion`; raise DecodeError on any flaw (nothing is verified)."""
    where = "tx inclusion"
    obj = F.check_keys(cbor.decode(data, where=where), {"v", "index", "size", "path"}, set(), where)
    return TxInclusion(_uint(obj, "index", where), _uint(obj, "size", where), _path(obj, where))


def decode_consistency(data: bytes) -> Consistency:
    """Decode a :class:`Consistency`; raise DecodeError on any flaw (nothing is verified)."""
    where = "consistency proof"
    keys = {"v", "size1", "size2", "path"}
    obj = F.check_keys(cbor.decode(data, where=where), keys, set(), where)
    return Consistency(_uint(obj, "size1", where), _uint(obj, "size2", where), _path(obj, where))


def _hasher(suite: Suite) -> Hasher:
    return Hasher.for_name(suite.hash_name)


def _check_log(log: ProvableLog, cp: Checkpoint) -> None:
    if cp.size > log.size:
        raise ProofError(
            f"checkpoint {cp.height} covers {cp.size} transactions, the log holds {log.size}"
        )
    if log.root_at(cp.size) != cp.root:
        raise ProofError(
            f"the log's root at size {cp.size} is not the root of checkpoint {cp.height}"
        )


# -- making proofs (a peer) -------------------------------------------------------------------


def inclusion_proof(log: ProvableLog, index: int, checkpoint: Checkpoint) -> TxInclusion:
    """The proof that log position ``index`` is in ``checkpoint``'s log.

    Raises :class:`ProofError` if the log does not hold ``checkpoint``'s log (too short, or
    another root at that size) or ``index`` is not below ``checkpoint.size``.
    """
    _check_log(log, checkpoint)
    if not 0 <= index < checkpoint.size:
        raise ProofError(
            f"transaction {index} is not in checkpoint {checkpoint.height}, "
            f"whose log holds transactions 0..{checkpoint.size - 1}"
        )
    return TxInclusion(index, checkpoint.size, tuple(log.inclusion_proof(index, checkpoint.size)))


def consistency_proof(log: ProvableLog, cp1: Checkpoint, cp2: Checkpoint) -> Consistency:
    """The proof that ``cp1``'s log is a prefix of ``cp2``'s.

    Raises :class:`ProofError` if the checkpoints are of other chains or out of order, or
    the log does not hold both of their logs.
    """
    if cp1.chain != cp2.chain:
        raise ProofError("the checkpoints are of different chains")
    if cp1.size > cp2.size:
        raise ProofError(
            f"checkpoint {cp1.height} (size {cp1.size}) is not before "
            f"checkpoint {cp2.height} (size {cp2.size})"
        )
    _check_log(log, cp1)
    _check_log(log, cp2)
    return Consistency(cp1.size, cp2.size, tuple(log.consistency_proof(cp1.size, cp2.size)))


# -- checking proofs (anyone with the genesis) ----------------------------------------------


def verify_tx_inclusion(
    suite: Suite, tx_bytes: bytes, proof: TxInclusion, checkpoint: Checkpoint
) -> None:
    """Return None if ``tx_bytes`` is at ``proof.index`` of ``checkpoint``'s log.

    Raises :class:`InclusionError` naming the checkpoint and what does not hold. The
    checkpoint itself is not checked here: see :func:`verify_final_checkpoint`.
    """
    if proof.size != checkpoint.size:
        raise InclusionError(
            f"the proof is for a log of {proof.size} transactions, "
            f"checkpoint {checkpoint.height} has {checkpoint.size}"
        )
    hasher = _hasher(suite)
    try:
        verify_inclusion(
            hasher,
            proof.index,
            proof.size,
            hasher.hash_leaf(tx_bytes),
            list(proof.path),
            checkpoint.root,
        )
    except MerkleError as exc:
        raise InclusionError(
            f"transaction {suite.hash(tx_bytes).hex()[:16]}… is not proven at index "
            f"{proof.index} of checkpoint {checkpoint.height}: {exc}",
            exc,
        ) from None


def verify_consistency(suite: Suite, cp1: Checkpoint, cp2: Checkpoint, proof: Consistency) -> None:
    """Return None if ``cp2``'s log extends ``cp1``'s (``cp1`` at or before ``cp2``).

    Raises :class:`ConsistencyError` saying what does not hold.
    """
    if cp1.chain != cp2.chain:
        raise ConsistencyError(
            f"checkpoint {cp1.height} is of chain {cp1.chain.hex()[:16]}…, "
            f"checkpoint {cp2.height} of chain {cp2.chain.hex()[:16]}…"
        )
    if cp1.height > cp2.height:
        raise ConsistencyError(f"checkpoint {cp1.height} is after checkpoint {cp2.height}")
    if cp1.height == cp2.height and cp1 != cp2:
        raise ConsistencyError(f"two different checkpoints at height {cp1.height}")
    if cp1.size > cp2.size:
        raise ConsistencyError(
            f"the log shrank from {cp1.size} transactions at height {cp1.height} "
            f"to {cp2.size} at height {cp2.height}"
        )
    if (proof.size1, proof.size2) != (cp1.size, cp2.size):
        raise ConsistencyError(
            f"the proof is for sizes {proof.size1} → {proof.size2}, "
            f"the checkpoints have {cp1.size} → {cp2.size}"
        )
    try:
        merkle_verify_consistency(
            _hasher(suite), cp1.size, cp2.size, list(proof.path), cp1.root, cp2.root
        )
    except MerkleError as exc:
        raise ConsistencyError(
            f"the log of checkpoint {cp2.height} does not extend that of checkpoint "
            f"{cp1.height}: {exc}",
            exc,
        ) from None


def verify_final_checkpoint(
    genesis: Genesis,
    payload: bytes,
    sigs: Sequence[bytes],
    members: Mapping[str, Member] | None = None,
) -> Checkpoint:
    """Check that ``payload`` is a final checkpoint of ``genesis``'s chain; return it.

    Every one of ``sigs`` must be a checkpoint COSE_Sign1 over exactly ``payload``, by a
    distinct member (of ``members``, default the genesis members; a peer passes its current
    membership view so rotated keys are used), with a valid signature; and at least
    ``genesis.checkpoint_quorum`` must be given.

    Raises :class:`CheckpointInvalid` (naming the signer) for a malformed payload, another
    chain, a malformed signature, another payload, a non-member, a duplicate signer or a bad
    signature; :class:`NotFinal` when all are good but too few.
    """
    view = genesis.members if members is None else members
    try:
        cp = decode_checkpoint(payload)
    except DecodeError as exc:
        raise CheckpointInvalid(str(exc)) from None
    if cp.chain != genesis.chain:
        raise CheckpointInvalid(
            f"checkpoint {cp.height} is of chain {cp.chain.hex()[:16]}…, "
            f"the genesis is of {genesis.chain.hex()[:16]}…"
        )
    signers: list[str] = []
    for i, raw in enumerate(sigs):
        try:
            msg = parse_sign1(raw, content_type=CTY_CHECKPOINT, suite=genesis.suite)
        except CryptoError as exc:
            raise CheckpointInvalid(f"signature {i}: {exc}") from None
        org = msg.kid
        if msg.payload != payload:
            raise CheckpointInvalid(f"signature {i} is over another payload", org)
        member = view.get(org)
        if member is None:
            raise CheckpointInvalid(f"signature {i}: {org!r} is not a member", org)
        if org in signers:
            raise CheckpointInvalid(f"signature {i}: {org!r} signed twice", org)
        try:
            msg.verify(VerifyKey(genesis.suite, member.pub))
        except CryptoError as exc:
            raise CheckpointInvalid(f"signature {i}: {exc}", org) from None
        signers.append(org)
    if len(signers) < genesis.checkpoint_quorum:
        raise NotFinal(cp.height, tuple(sorted(signers)), genesis.checkpoint_quorum)
    return cp

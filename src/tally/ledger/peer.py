"""A member's peer: endorses proposals against its state, validates and commits blocks.

Endorse: check the proposal (signed by its creator, a current member, for this chain, not
already ordered), execute the contract function against the current state and sign the
read/write set as an :class:`~tally.ledger.formats.Endorsement`.

Commit: a block must chain (chain id, height = current + 1, ``prev`` = the last block's
hash, ``root`` = the RFC 9162 root of its transactions) or it is refused whole with a
:class:`~tally.ledger.errors.BlockRejected`. Then every transaction is validated in order and
marked with the first failing code:

==========================  ===============================================================
``malformed``               the transaction, its proposal or the proposal's COSE does not decode
``bad_creator_signature``   the creator is not a member, or did not sign the proposal
``revoked_key``             the creator's or an endorser's key is revoked at this height
``wrong_chain``             the proposal names another chain id
``duplicate_tx``            the transaction id was ordered before (in this or an earlier block)
``bad_endorsement``         an endorsement is malformed, by a non-member, badly signed, for
                            another transaction, or a second one by the same member
``endorsement_mismatch``    the endorsements disagree on the reads, writes, result or error
``policy_not_met``          the endorsing members do not satisfy ``contract.fn``'s policy
``contract_error``          the contract refused (the endorsements carry a non-empty error)
``mvcc_conflict``           a read version is not the current committed version
``valid``                   committed: its writes are applied with version (height, index)
==========================  ===============================================================

The transaction id is ``H(proposal COSE bytes)``; every transaction whose envelope decodes
enters the index of ordered ids, whatever its code. MVCC compares against the state
including the writes of earlier valid transactions of the same block. After the block the
peer appends all its transactions to the transaction log, commits the valid writes and the
new state commitment atomically, and signs the checkpoint.

Membership — member keys, revocations and policies — is the genesis as changed by the
``membership`` system contract (:mod:`tally.ledger.contracts.membership`), as the state
including the block's earlier valid writes says for each transaction: a key revoked by
transaction ``i`` of block ``h`` is refused from transaction ``i + 1`` on. The peer reads it
once per block and again after each valid transaction that writes a ``member/`` key (the
policies: a ``policy/`` key), which gives the same view as reading it for every transaction.

Files in the peer's directory: ``txlog.bin`` (:mod:`tally.ledger.txlog`). The log is
written before the state; on open a log ahead of the state is cut back to the state's
height (the orderer delivers those blocks again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.crypto import CryptoError, InvalidSignature, SigningKey, VerifyKey, parse_sign1
from tally.ledger.client import agreement, decode_like
from tally.ledger.contract import Registry, execute
from tally.ledger.contracts.keys import MEMBER, POLICY
from tally.ledger.contracts.membership import member_records, policy_view
from tally.ledger.errors import ProposalRejected, TxLogError
from tally.ledger.formats import (
    CTY_ENDORSEMENT,
    CTY_PROPOSAL,
    Block,
    Checkpoint,
    Endorsement,
    Proposal,
    Transaction,
    Version,
    decode_proposal,
    decode_transaction,
    state_step,
    state_zero,
)
from tally.ledger.genesis import Genesis, Member
from tally.ledger.orderer import check_block
from tally.ledger.policy import describe, satisfied
from tally.ledger.state import StateError, StateStore, StateView, check_key, encode_value
from tally.ledger.txlog import TxLog
from tally.merkle import Hasher

VALID = "valid"
MALFORMED = "malformed"
BAD_CREATOR_SIGNATURE = "bad_creator_signature"
REVOKED_KEY = "revoked_key"
WRONG_CHAIN = "wrong_chain"
DUPLICATE_TX = "duplicate_tx"
BAD_ENDORSEMENT = "bad_endorsement"
ENDORSEMENT_MISMATCH = "endorsement_mismatch"
POLICY_NOT_MET = "policy_not_met"
CONTRACT_ERROR = "contract_error"
MVCC_CONFLICT = "mvcc_conflict"

CODES = (
    VALID, MALFORMED, BAD_CREATOR_SIGNATURE, REVOKED_KEY, WRONG_CHAIN, DUPLICATE_TX,
    BAD_ENDORSEMENT, ENDORSEMENT_MISMATCH, POLICY_NOT_MET, CONTRACT_ERROR, MVCC_CONFLICT,
)  # fmt: skip


@dataclass(frozen=True)
class TxStatus:
    """The outcome of one ordered transaction."""

    index: int
    tx_id: bytes | None
    """``H(proposal COSE bytes)``; None when the transaction envelope does not decode."""
    code: str
    reason: str
    """Why the transaction is invalid ("" when valid)."""
    result: Any = None
    """The contract's result, when the endorsements decoded."""
    error: str = ""
    """The contract's error, for ``contract_error``."""


@dataclass(frozen=True)
class BlockResult:
    """What committing a block did: one status per transaction and the signed checkpoint."""

    height: int
    block_hash: bytes
    statuses: tuple[TxStatus, ...]
    checkpoint: Checkpoint
    signed_checkpoint: bytes


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


class _Overlay:
    """The committed state plus the writes of the block's earlier valid transactions."""

    def __init__(self, base: StateView) -> None:
        self.base = base
        self.writes: dict[str, tuple[Any, Version]] = {}

    def get(self, key: str) -> tuple[Any, Version] | None:
        if key in self.writes:
            value, version = self.writes[key]
            return None if value is None else (value, version)
        return self.base.get(key)

    def range(self, prefix: str) -> list[tuple[str, Any, Version]]:
        out = {k: (v, ver) for k, v, ver in self.base.range(prefix)}
        for k, (v, ver) in self.writes.items():
            if k.startswith(prefix):
                if v is None:
                    out.pop(k, None)
                else:
                    out[k] = (v, ver)
        return [(k, v, ver) for k, (v, ver) in sorted(out.items())]


@dataclass(frozen=True)
class MemberView:
    """The members as the state says at one point: keys and roles, and revoked keys with the
    height from which they are invalid (see :mod:`tally.ledger.contracts.membership`)."""

    members: dict[str, Member]
    revoked: dict[str, int]

    def is_revoked(self, org: str, height: int) -> bool:
        at = self.revoked.get(org)
        return at is not None and at <= height

    @classmethod
    def read(cls, state: StateView, genesis: Genesis) -> MemberView:
        records = member_records(state, genesis)
        return cls(
            {org: r.member for org, r in records.items()},
            {
                org: r.version[0]
                for org, r in records.items()
                if r.revoked and r.version is not None
            },
        )


_KEYS_MAX = 1024
"""Most member keys a peer keeps parsed (``VerifyKey``) at once."""


class _Views:
    """Membership and policies as ``state`` says, read when first needed and kept until
    :meth:`wrote` is told of a write that changes them (``member/*``: the members, which
    also decide ``satisfied``; ``policy/*``: the policies)."""

    def __init__(self, state: StateView, genesis: Genesis) -> None:
        self.state = state
        self.genesis = genesis
        self._members: MemberView | None = None
        self._policies: dict[tuple[str, str], Any | None] = {}
        self._satisfied: dict[tuple[str, str, frozenset[str]], bool] = {}

    @property
    def members(self) -> MemberView:
        """``MemberView.read(state, genesis)``; do not modify it."""
        if self._members is None:
            self._members = MemberView.read(self.state, self.genesis)
        return self._members

    def policy(self, contract: str, fn: str) -> Any | None:
        """``policy_view(state, genesis, contract, fn)``."""
        name = (contract, fn)
        if name in self._policies:
            return self._policies[name]
        policy = policy_view(self.state, self.genesis, contract, fn)
        self._policies[name] = policy
        return policy

    def satisfied(self, contract: str, fn: str, policy: Any, orgs: frozenset[str]) -> bool:
        """``satisfied(policy, orgs, members)`` for ``policy`` = :meth:`policy` of
        ``contract.fn``."""
        key = (contract, fn, orgs)
        got = self._satisfied.get(key)
        if got is None:
            got = satisfied(policy, orgs, self.members.members)
            self._satisfied[key] = got
        return got

    def wrote(self, keys: Iterable[str]) -> None:
        """The keys a valid transaction wrote to ``state``: forget what they change."""
        for key in keys:
            if key.startswith(MEMBER):
                self._members = None
                self._satisfied.clear()
            elif key.startswith(POLICY):
                self._policies.clear()
                self._satisfied.clear()


class Peer:
    """One member organisation's peer over a state store and a directory for its tx log."""

    def __init__(
        self,
        org: str,
        key: SigningKey,
        genesis: Genesis,
        state: StateStore,
        contracts: Registry,
        directory: Path,
    ) -> None:
        self.org = org
        self.key = key
        self.genesis = genesis
        self.suite = genesis.suite
        self.chain = genesis.chain
        self.state = state
        self.contracts = contracts
        self.directory = directory
        self.txlog = TxLog(directory / "txlog.bin", Hasher.for_name(self.suite.hash_name))
        height = state.height()
        if self.txlog.height > height:
            self.txlog.truncate(height)
        elif self.txlog.height < height:
            self.txlog.close()
            raise TxLogError(
                str(self.txlog.path), f"log at height {self.txlog.height}, state at {height}"
            )
        self._committed: tuple[int, _Views] | None = None
        self._keys: dict[bytes, VerifyKey] = {}
        self._seen: set[bytes] = set()
        for tx in self.txlog.txs():
            tx_id = self._tx_id(tx)
            if tx_id is not None:
                self._seen.add(tx_id)

    # -- state ---------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """The height of the last committed block (0 at genesis)."""
        return self.state.height()

    @property
    def block_hash(self) -> bytes:
        """The hash of the last committed block; the chain id at genesis."""
        return self.txlog.block_hash or self.chain

    def commitment(self) -> bytes:
        """The state commitment after the last committed block (``state_zero`` at genesis)."""
        if self.state.height() == 0:
            return state_zero(self.suite, self.chain)
        return self.state.commitment()

    def members(self) -> dict[str, Member]:
        """The current members (genesis, changed by the membership contract), revoked
        ones included."""
        return dict(self._views().members.members)

    def member_view(self) -> MemberView:
        """The current members and revocations."""
        view = self._views().members
        return MemberView(dict(view.members), dict(view.revoked))

    def policy(self, contract: str, fn: str) -> Any | None:
        """The current policy of ``contract.fn`` (see
        :func:`~tally.ledger.contracts.membership.policy_view`)."""
        return self._views().policy(contract, fn)

    def _views(self, height: int | None = None) -> _Views:
        """Membership and policies of the committed state at ``height`` (default: now),
        kept while the state stays at that height (a store changes only with its height)."""
        h = self.state.height() if height is None else height
        if self._committed is None or self._committed[0] != h:
            self._committed = (h, _Views(self.state, self.genesis))
        return self._committed[1]

    def _verify_key(self, pub: bytes) -> VerifyKey:
        """``VerifyKey(suite, pub)``, parsed once per key (raises as the constructor)."""
        key = self._keys.get(pub)
        if key is None:
            key = VerifyKey(self.suite, pub)
            if len(self._keys) >= _KEYS_MAX:
                self._keys.clear()
            self._keys[pub] = key
        return key

    def seen(self, tx_id: bytes) -> bool:
        """True if ``tx_id`` was ordered in a committed block."""
        return tx_id in self._seen

    def checkpoint(self) -> Checkpoint:
        """The checkpoint of the current height."""
        h = self.height
        return Checkpoint(
            chain=self.chain,
            height=h,
            block=self.block_hash,
            state=self.commitment(),
            size=self.txlog.size_at(h),
            root=self.txlog.root_at(self.txlog.size_at(h)),
        )

    def sign_checkpoint(self) -> bytes:
        """The current checkpoint signed by this peer's member key."""
        return self.checkpoint().sign(self.key, self.org)

    def close(self) -> None:
        self.txlog.close()
        self.state.close()

    # -- endorse -------------------------------------------------------------------------

    def endorse(self, proposal_cose: bytes) -> bytes:
        """Execute a proposal against the current state; return the signed Endorsement.

        Raises :class:`ProposalRejected` (with the validation code it would get) for a
        proposal that is malformed, not signed by a current member, for another chain or
        already ordered. A contract that refuses still gets an endorsement, whose ``error``
        says why.
        """
        height = self.state.height()
        view = self._views(height).members
        try:
            proposal = self._check_proposal(proposal_cose, view, height + 1)
        except _Invalid as exc:
            raise ProposalRejected(exc.code, exc.reason) from None
        tx_id = self.suite.hash(proposal_cose)
        if tx_id in self._seen:
            raise ProposalRejected(DUPLICATE_TX, f"transaction {tx_id.hex()[:16]}… was ordered")
        members = dict(view.members)  # the contract's own copy
        reads, writes, result, error = execute(self.contracts, self.state, proposal, tx_id, members)
        return Endorsement(tx_id, self.org, reads, writes, result, error).sign(self.key)

    # -- commit --------------------------------------------------------------------------

    def commit(self, block: Block) -> BlockResult:
        """Validate and commit the next block; return the statuses and signed checkpoint.

        Raises a :class:`~tally.ledger.errors.BlockRejected` subclass (nothing committed)
        when the block does not chain onto this peer's last block.
        """
        check_block(self.genesis, block, self.height + 1, self.block_hash)
        height = block.height
        overlay = _Overlay(self.state)
        views = _Views(overlay, self.genesis)
        seen: set[bytes] = set()
        statuses: list[TxStatus] = []
        applied: list[tuple[str, Any, Version]] = []
        for index, tx in enumerate(block.txs):
            status, writes = self._validate(self._decode(tx), index, height, overlay, views, seen)
            statuses.append(status)
            version = (height, index)
            for key, value in writes:
                overlay.writes[key] = (value, version)
                applied.append((key, value, version))
            if writes:
                views.wrote(key for key, _ in writes)
        commitment = state_step(self.suite, self.commitment(), applied)
        block_hash = block.hash(self.suite)
        self.txlog.append_block(height, block_hash, block.txs)
        try:
            self.state.apply(height, applied, commitment)
        except BaseException:
            self.txlog.truncate(height - 1)  # keep the log at the state's height
            raise
        self._seen |= seen
        cp = self.checkpoint()
        return BlockResult(height, block_hash, tuple(statuses), cp, cp.sign(self.key, self.org))

    def _validate(
        self,
        t: Transaction | None,
        index: int,
        height: int,
        overlay: _Overlay,
        views: _Views,
        seen: set[bytes],
    ) -> tuple[TxStatus, Sequence[tuple[str, Any]]]:
        tx_id = None if t is None else self.suite.hash(t.proposal)
        result: Any = None
        try:
            if t is None or tx_id is None:
                raise _Invalid(MALFORMED, "the transaction does not decode")
            duplicate = tx_id in self._seen or tx_id in seen
            seen.add(tx_id)
            proposal = self._check_proposal(t.proposal, views.members, height)
            if duplicate:
                raise _Invalid(DUPLICATE_TX, f"transaction {tx_id.hex()[:16]}… was ordered before")
            endorsement = self._check_endorsements(t.endorsements, tx_id, proposal, views, height)
            result = endorsement.result
            if endorsement.error:
                return TxStatus(index, tx_id, CONTRACT_ERROR, endorsement.error, result,
                                endorsement.error), ()  # fmt: skip
            for key, version in endorsement.reads:
                current = overlay.get(key)
                have = current[1] if current is not None else None
                if have != version:
                    raise _Invalid(
                        MVCC_CONFLICT, f"read {key!r} at version {_v(version)}, now {_v(have)}"
                    )
            for key, value in endorsement.writes:
                _check_write(key, value)
        except _Invalid as exc:
            return TxStatus(index, tx_id, exc.code, exc.reason, result), ()
        return TxStatus(index, tx_id, VALID, "", result), endorsement.writes

    def _tx_id(self, tx: bytes) -> bytes | None:
        t = self._decode(tx)
        return None if t is None else self.suite.hash(t.proposal)

    @staticmethod
    def _decode(tx: bytes) -> Transaction | None:
        try:
            return decode_transaction(tx)
        except CryptoError:
            return None

    def _check_proposal(self, cose: bytes, view: MemberView, height: int) -> Proposal:
        try:
            msg = parse_sign1(cose, content_type=CTY_PROPOSAL, suite=self.suite)
            proposal = decode_proposal(msg.payload)
        except CryptoError as exc:
            raise _Invalid(MALFORMED, f"proposal: {exc}") from None
        if msg.kid != proposal.creator:
            raise _Invalid(
                BAD_CREATOR_SIGNATURE, f"signed by {msg.kid!r} for creator {proposal.creator!r}"
            )
        member = view.members.get(proposal.creator)
        if member is None:
            raise _Invalid(BAD_CREATOR_SIGNATURE, f"creator {proposal.creator!r} is not a member")
        if view.is_revoked(member.org, height):
            raise _Invalid(REVOKED_KEY, f"the key of creator {proposal.creator!r} is revoked")
        try:
            msg.verify(self._verify_key(member.pub))
        except CryptoError as exc:
            raise _Invalid(BAD_CREATOR_SIGNATURE, str(exc)) from None
        if proposal.chain != self.chain:
            raise _Invalid(WRONG_CHAIN, f"proposal for chain {proposal.chain.hex()[:16]}…")
        return proposal

    def _check_endorsements(
        self,
        raw: Sequence[bytes],
        tx_id: bytes,
        proposal: Proposal,
        views: _Views,
        height: int,
    ) -> Endorsement:
        members = views.members
        ends: dict[str, Endorsement] = {}
        agreements: dict[str, bytes] = {}
        known: tuple[bytes, Endorsement] | None = None
        for i, cose in enumerate(raw):
            try:
                msg = parse_sign1(cose, content_type=CTY_ENDORSEMENT, suite=self.suite)
            except CryptoError as exc:
                raise _Invalid(BAD_ENDORSEMENT, f"endorsement {i}: {exc}") from None
            member = members.members.get(msg.kid)
            if member is None:
                raise _Invalid(BAD_ENDORSEMENT, f"endorsement {i}: {msg.kid!r} is not a member")
            if members.is_revoked(member.org, height):
                raise _Invalid(REVOKED_KEY, f"endorsement {i}: the key of {msg.kid!r} is revoked")
            try:
                msg.verify(self._verify_key(member.pub))
                e = decode_like(msg.payload, msg.kid, known)
            except InvalidSignature:
                raise _Invalid(
                    BAD_ENDORSEMENT, f"endorsement {i}: not signed by {msg.kid!r}"
                ) from None
            except CryptoError as exc:
                raise _Invalid(BAD_ENDORSEMENT, f"endorsement {i}: {exc}") from None
            if e.org != msg.kid:
                raise _Invalid(BAD_ENDORSEMENT, f"endorsement {i}: org {e.org!r} signed by "
                               f"{msg.kid!r}")  # fmt: skip
            if e.tx != tx_id:
                raise _Invalid(BAD_ENDORSEMENT, f"endorsement {i} by {e.org!r} is for another "
                               "transaction")  # fmt: skip
            if e.org in ends:
                raise _Invalid(BAD_ENDORSEMENT, f"two endorsements by {e.org!r}")
            ends[e.org] = e
            agreements[e.org] = agreement(msg.payload, e)
            if known is None:
                known = (msg.payload, e)
        if not ends:
            raise _Invalid(POLICY_NOT_MET, "no endorsements")
        first = next(iter(ends.values()))
        agreed = agreements[first.org]
        differ = sorted(o for o, a in agreements.items() if a != agreed)
        if differ:
            raise _Invalid(ENDORSEMENT_MISMATCH, f"{', '.join(differ)} disagree with {first.org!r}")
        name = f"{proposal.contract}.{proposal.fn}"
        policy = views.policy(proposal.contract, proposal.fn)
        if policy is None:
            raise _Invalid(POLICY_NOT_MET, f"no policy for {name}")
        if not views.satisfied(proposal.contract, proposal.fn, policy, frozenset(ends)):
            raise _Invalid(
                POLICY_NOT_MET,
                f"{', '.join(sorted(ends))} do not satisfy {name}: {describe(policy)}",
            )
        return first


def _check_write(key: str, value: Any) -> None:
    try:
        check_key(key)
        if value is not None:
            encode_value(key, value)
    except StateError as exc:
        raise _Invalid(BAD_ENDORSEMENT, f"write {exc}") from None


def _v(version: Version | None) -> str:
    return "absent" if version is None else f"{version[0]}.{version[1]}"

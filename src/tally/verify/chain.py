"""The chain checks of a proof bundle: its header anchored up to a final checkpoint.

Given the consortium's :class:`~tally.ledger.genesis.Genesis` and the bundle's ``chain``
part (:class:`~tally.verify.bundle.ChainProof`), :mod:`tally.verify.verifier` runs these in
order, one verdict step each (``docs/formats.md`` §17 lists every reason):

1. :func:`check_checkpoint` (step ``checkpoint``): the payload decodes and names the
   genesis chain;
2. :func:`check_quorum` (step ``quorum``): the signatures are COSE_Sign1 by distinct genesis
   members over exactly that payload, at least ``checkpoint_quorum`` of them
   (:func:`tally.ledger.proofs.verify_final_checkpoint`);
3. :func:`check_tx_inclusion` (step ``chain inclusion``): RFC 9162 inclusion of the
   transaction bytes at ``index`` in the checkpoint's log
   (:func:`tally.ledger.proofs.verify_tx_inclusion`);
4. :func:`check_anchoring_tx` (step ``anchoring transaction``): the transaction is a call of
   ``anchoring.anchor_batch`` with the bundle's header, by a genesis member, on this chain;
   every endorsement is a genesis member's, for this transaction, all agree, without error,
   and together they satisfy the genesis policy of ``anchoring.anchor_batch``; the writes
   record the header's hash under ``anchor/<edge>/<ctr>``.

Each check raises :class:`ChainCheckFailed` with the step's detail. Membership changes after
genesis (rotated or revoked member keys, changed policies) are not followed: the genesis
members and policies are the reference.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from tally.crypto import CryptoError, DecodeError, Suite, VerifyKey, parse_sign1
from tally.device.trust import Trust
from tally.edge.formats import BatchHeader, decode_batch_header
from tally.ledger.contracts.keys import batch_key
from tally.ledger.errors import CheckpointInvalid, NotFinal
from tally.ledger.formats import (
    CTY_ENDORSEMENT,
    CTY_PROPOSAL,
    Checkpoint,
    Endorsement,
    Proposal,
    decode_checkpoint,
    decode_endorsement,
    decode_proposal,
    decode_transaction,
)
from tally.ledger.genesis import Genesis
from tally.ledger.policy import describe, satisfied
from tally.ledger.proofs import InclusionError, TxInclusion, verify_final_checkpoint
from tally.ledger.proofs import verify_tx_inclusion as ledger_verify_tx_inclusion
from tally.merkle import RootMismatchError
from tally.verify.bundle import ChainProof

ANCHOR_CONTRACT = "anchoring"
ANCHOR_FN = "anchor_batch"


class ChainCheckFailed(Exception):
    """Raised by a chain check when it does not hold; ``detail`` is the step's reason."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class AnchorTx:
    """What the anchoring transaction established."""

    tx_id: bytes
    creator: str
    endorsers: tuple[str, ...]
    policy: str
    t: int


_CHAIN_IDS: dict[int, tuple[weakref.ref[Genesis], bytes]] = {}


def chain_id(genesis: Genesis) -> bytes:
    """``genesis.chain`` (the suite hash of its body), remembered per genesis object: a
    verifier checking many bundles against one genesis encodes its body once."""
    known = _CHAIN_IDS.get(id(genesis))
    if known is not None and known[0]() is genesis:
        return known[1]
    cid = genesis.chain
    key = id(genesis)
    _CHAIN_IDS[key] = (weakref.ref(genesis, lambda _r: _CHAIN_IDS.pop(key, None)), cid)
    return cid


def trust_disagreement(trust: Trust, genesis: Genesis) -> str | None:
    """Why ``trust`` contradicts ``genesis`` (another suite, an organisation that is not a
    member, another key for a member), or None when it agrees."""
    if trust.suite is not genesis.suite:
        return f"trust file suite {trust.suite.name!r}, genesis suite {genesis.suite.name!r}"
    for org, key in sorted(trust.orgs.items()):
        member = genesis.members.get(org)
        if member is None:
            return f"trust file organisation {org!r} is not a genesis member"
        if member.pub != key.raw:
            return f"trust file key of {org!r} differs from the genesis member's"
    return None


def short(h: bytes) -> str:
    """The first 4 bytes of a hash in hex, then an ellipsis."""
    return h[:4].hex() + "…"


def check_checkpoint(genesis: Genesis, chain_id: bytes, proof: ChainProof) -> Checkpoint:
    """Decode the checkpoint payload and check it is of the genesis chain."""
    cp = decode_checkpoint(proof.checkpoint)
    if cp.chain != chain_id:
        raise ChainCheckFailed(f"chain id {short(cp.chain)}, genesis {short(chain_id)}")
    return cp


def check_quorum(genesis: Genesis, proof: ChainProof) -> tuple[str, ...]:
    """Check the checkpoint is final under the genesis; return the signers, sorted."""
    try:
        verify_final_checkpoint(genesis, proof.checkpoint, proof.sigs)
    except NotFinal as exc:
        who = f" ({', '.join(exc.signers)})" if exc.signers else ""
        raise ChainCheckFailed(
            f"{len(exc.signers)} distinct members signed, quorum is {exc.quorum}{who}"
        ) from None
    except CheckpointInvalid as exc:
        raise ChainCheckFailed(exc.reason) from None
    return tuple(sorted(parse_sign1(s).kid for s in proof.sigs))


def check_tx_inclusion(suite: Suite, proof: ChainProof, cp: Checkpoint) -> None:
    """Check the transaction bytes are at ``proof.index`` of the checkpoint's log."""
    try:
        ledger_verify_tx_inclusion(
            suite, proof.tx, TxInclusion(proof.index, proof.size, proof.path), cp
        )
    except InclusionError as exc:
        cause = exc.cause
        if isinstance(cause, RootMismatchError):
            raise ChainCheckFailed(
                f"root mismatch: checkpoint root {short(cause.expected)},"
                f" calculated {short(cause.calculated)}"
            ) from None
        raise ChainCheckFailed(str(cause) if cause is not None else exc.reason) from None


def _member_key(genesis: Genesis, org: str, what: str) -> VerifyKey:
    key = genesis.key(org)
    if key is None:
        raise ChainCheckFailed(f"{what}: {org!r} is not a genesis member")
    return key


def _check_proposal(genesis: Genesis, chain_id: bytes, raw: bytes) -> Proposal:
    try:
        msg = parse_sign1(raw, content_type=CTY_PROPOSAL, suite=genesis.suite)
        p = decode_proposal(msg.payload)
    except DecodeError as exc:
        raise ChainCheckFailed(
            str(exc) if exc.where == "proposal" else f"proposal: {exc}"
        ) from None
    except CryptoError as exc:
        raise ChainCheckFailed(f"proposal: {exc}") from None
    if msg.kid != p.creator:
        raise ChainCheckFailed(f"proposal signed by {msg.kid!r} for creator {p.creator!r}")
    key = _member_key(genesis, p.creator, "proposal creator")
    if p.chain != chain_id:
        raise ChainCheckFailed(f"proposal of chain {short(p.chain)}, genesis {short(chain_id)}")
    try:
        msg.verify(key)
    except CryptoError as exc:
        raise ChainCheckFailed(f"proposal: {exc}") from None
    return p


def _header_name(raw: Any) -> tuple[str, int] | None:
    """(edge, ctr) of a batch header's COSE bytes, None if they are not one."""
    if not isinstance(raw, bytes):
        return None
    try:
        h = decode_batch_header(parse_sign1(raw).payload)
    except CryptoError:
        return None
    return h.edge, h.ctr


def _check_call(p: Proposal, header: bytes, h: BatchHeader, suite: Suite) -> None:
    if (p.contract, p.fn) != (ANCHOR_CONTRACT, ANCHOR_FN):
        raise ChainCheckFailed(f"a call of {p.contract}.{p.fn}, not {ANCHOR_CONTRACT}.{ANCHOR_FN}")
    if len(p.args) != 1:
        raise ChainCheckFailed(f"{ANCHOR_FN} with {len(p.args)} arguments, want 1 (the header)")
    arg = p.args[0]
    if arg == header:
        return
    mine = f"batch {h.ctr} of {h.edge}"
    other = _header_name(arg)
    if other is None:
        raise ChainCheckFailed(f"its argument is not a batch header; the bundle's header is {mine}")
    if other == (h.edge, h.ctr):
        raise ChainCheckFailed(
            f"anchors another header of {mine} ({short(suite.hash(arg))}),"
            f" the bundle's header hashes to {short(suite.hash(header))}"
        )
    raise ChainCheckFailed(f"anchors batch {other[1]} of {other[0]}, the bundle's header is {mine}")


def _check_endorsements(
    genesis: Genesis, raws: tuple[bytes, ...], tx_id: bytes
) -> dict[str, Endorsement]:
    ends: dict[str, Endorsement] = {}
    for i, raw in enumerate(raws):
        what = f"endorsement {i}"
        try:
            msg = parse_sign1(raw, content_type=CTY_ENDORSEMENT, suite=genesis.suite)
        except CryptoError as exc:
            raise ChainCheckFailed(f"{what}: {exc}") from None
        key = _member_key(genesis, msg.kid, what)
        try:
            msg.verify(key)
            e = decode_endorsement(msg.payload)
        except CryptoError as exc:
            raise ChainCheckFailed(f"{what}: {exc}") from None
        if e.org != msg.kid:
            raise ChainCheckFailed(f"{what}: org {e.org!r} signed by {msg.kid!r}")
        if e.tx != tx_id:
            raise ChainCheckFailed(f"{what} by {e.org!r} is for another transaction")
        if e.org in ends:
            raise ChainCheckFailed(f"two endorsements by {e.org!r}")
        ends[e.org] = e
    if not ends:
        raise ChainCheckFailed("no endorsements")
    first = next(iter(ends.values()))
    agreed = first.agreement()
    differ = sorted(o for o, e in ends.items() if e is not first and e.agreement() != agreed)
    if differ:
        raise ChainCheckFailed(f"endorsements by {', '.join(differ)} disagree with {first.org!r}")
    return ends


def check_anchoring_tx(
    genesis: Genesis, chain_id: bytes, tx: bytes, header: bytes, h: BatchHeader
) -> AnchorTx:
    """Check ``tx`` is the endorsed ``anchoring.anchor_batch`` call of ``header`` (whose
    decoded, verified form is ``h``) under the genesis members and policy."""
    suite = genesis.suite
    t = decode_transaction(tx)
    p = _check_proposal(genesis, chain_id, t.proposal)
    _check_call(p, header, h, suite)
    tx_id = suite.hash(t.proposal)
    ends = _check_endorsements(genesis, t.endorsements, tx_id)
    e = next(iter(ends.values()))
    if e.error:
        raise ChainCheckFailed(f"the contract refused: {e.error}")
    policy = genesis.policy(ANCHOR_CONTRACT, ANCHOR_FN)
    if policy is None:
        raise ChainCheckFailed(f"the genesis has no policy for {ANCHOR_CONTRACT}.{ANCHOR_FN}")
    orgs = tuple(sorted(ends))
    text = describe(policy)
    if not satisfied(policy, set(orgs), genesis.members):
        raise ChainCheckFailed(f"endorsements by {', '.join(orgs)} do not satisfy {text}")
    key = batch_key(h.edge, h.ctr)
    written = dict(e.writes)
    if key not in written:
        raise ChainCheckFailed(f"the endorsed writes do not record {key}")
    value = written[key]
    digest = suite.hash(header)
    got = value.get("hash") if isinstance(value, dict) else None
    if got != digest:
        shown = short(got) if isinstance(got, bytes) else repr(got)
        raise ChainCheckFailed(f"{key} records hash {shown}, the header hashes to {short(digest)}")
    return AnchorTx(tx_id, p.creator, orgs, text, p.t)

"""Transaction bundles (:mod:`tally.verify.txbundle`) built from the consortium's peers.

:func:`consortium_tx_bundle` builds the bundle of a committed transaction from a member's own
peer in an in-process :class:`~tally.ledger.consortium.Consortium`; :func:`remote_tx_bundle`
from member peers reached over HTTP (:class:`~tally.ledger.remote.RemoteConsortium`). Each
takes the transaction's inclusion path in the transaction log at the final checkpoint of its
block, and that block's and the previous block's final checkpoints, and raises
:class:`~tally.ledger.proofs.ProofError` while the bundle cannot be made (the transaction is
not committed, a checkpoint is not final yet, no peer proves the path). The cloud's ledger
links call them (:meth:`tally.cloud.anchoring.ConsortiumLink.tx_bundle`,
:meth:`tally.cloud.anchoring.RemoteLedgerLink.tx_bundle`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import httpx

from tally.ledger.checkpoint import FinalCheckpoint
from tally.ledger.consortium import Consortium
from tally.ledger.proofs import ProofError, TxInclusion, inclusion_proof, verify_tx_inclusion
from tally.ledger.remote import RemoteConsortium
from tally.verify.bundle import ChainProof
from tally.verify.txbundle import make_tx_bundle

__all__ = ["consortium_tx_bundle", "remote_tx_bundle"]


async def consortium_tx_bundle(consortium: Consortium, member: str, tx_id: bytes) -> bytes:
    """The transaction bundle (:mod:`tally.verify.txbundle`) of ``tx_id``, from ``member``'s
    own peer and the final checkpoints of the transaction's block and the block before,
    for a transaction committed while this consortium runs. Raises
    :class:`~tally.ledger.proofs.ProofError` when the peer is not running, the
    transaction is not committed there, or those checkpoints are not final (yet)."""
    c = consortium
    peer = c.peers.get(member)
    if peer is None:
        raise ProofError(f"the peer of {member!r} is not running")
    found = next(
        ((h, s.index) for h, res in sorted(c.results[member].items())
         for s in res.statuses if s.tx_id == tx_id),
        None,
    )  # fmt: skip
    if found is None:
        raise ProofError(f"transaction {tx_id.hex()[:16]}… is not committed at {member}")
    height, index = found[0], peer.txlog.size_at(found[0] - 1) + found[1]
    final = c.collector.final(height)
    prev = c.collector.final(height - 1) if height > 1 else None
    if final is None or (height > 1 and prev is None):
        missing = height if final is None else height - 1
        raise ProofError(f"the checkpoint of block {missing} is not final (yet)")
    proof = inclusion_proof(peer.txlog, index, final.checkpoint)
    chain = ChainProof(peer.txlog.tx(index), index, proof.size, proof.path,
                       final.payload, final.signatures)  # fmt: skip
    return make_tx_bundle(c.genesis.suite, tx_id, chain, prev)


async def remote_tx_bundle(
    remote: RemoteConsortium, member: str, tx_id: bytes, finals: Mapping[int, FinalCheckpoint]
) -> bytes:
    """The transaction bundle (:mod:`tally.verify.txbundle`) of ``tx_id``: where the peers
    (``member``'s first) say it was committed, the final checkpoints of its block and the
    block before as the peers signed them, and the inclusion path a peer gives, checked
    against the checkpoint's root. Raises :class:`~tally.ledger.proofs.ProofError` when
    no peer reached knows the transaction, a checkpoint is not final, no peer gives the
    path, or what the peers gave does not prove it. ``finals`` (height -> final checkpoint)
    are those already seen: the block's is taken from there before the peers are asked."""
    suite = remote.genesis.suite
    orgs = sorted(remote.peers, key=lambda o: (o != member, o))
    where: tuple[int, int] | None = None
    for org in orgs:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            resp = await remote.http.get(f"{remote.peers[org]}/v1/tx/{tx_id.hex()}",
                                         timeout=remote.request_timeout)  # fmt: skip
            got = resp.json() if resp.status_code == 200 else {}
            if got.get("start") is not None:
                where = int(got["height"]), int(got["start"]) + int(got["index"])
                break
    if where is None:
        raise ProofError(f"transaction {tx_id.hex()[:16]}… is not committed at any peer")
    height, index = where
    final = finals.get(height) or await remote.final_checkpoint(height)
    prev = await remote.final_checkpoint(height - 1) if height > 1 else None
    if final is None or (height > 1 and prev is None):
        missing = height if final is None else height - 1
        raise ProofError(f"the checkpoint of block {missing} is not final (yet)")
    cp = final.checkpoint
    for org in orgs:
        entry = await remote.log_entry(org, index, cp.size)
        if entry is not None:
            verify_tx_inclusion(suite, entry.tx, TxInclusion(index, cp.size, entry.path), cp)
            chain = ChainProof(entry.tx, index, cp.size, entry.path, final.payload,
                               final.signatures)  # fmt: skip
            return make_tx_bundle(suite, tx_id, chain, prev)
    raise ProofError(f"no peer gives log position {index} at size {cp.size}")

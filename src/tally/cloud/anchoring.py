"""Anchoring stored batches on the consortium ledger, and the chain part of proof bundles.

The cloud talks to the ledger through a :class:`LedgerLink`:

* ``await link.anchor_batch(header_cose)`` submits ``anchoring.anchor_batch`` with the
  edge-signed batch header as the cloud's organisation (a consortium member) and returns an
  :class:`AnchorResult` once the transaction is committed and a checkpoint covering it is
  final;
* ``link.chain_proof(log_index)`` gives the bundle's ``chain`` part
  (:class:`tally.verify.bundle.ChainProof`): the transaction bytes, its RFC 9162 inclusion
  path in the transaction log at the latest final checkpoint covering ``log_index``, that
  checkpoint's payload and the members' signatures over it — or None while no final
  checkpoint covers it;
* ``await link.tx_bundle(tx_id)`` gives the transaction bundle of any committed transaction
  (:mod:`tally.verify.txbundle`: a pledge, a price, a margin call, checkable offline with the
  genesis alone) once the checkpoint of its block is final; the links build it with
  :mod:`tally.cloud.txproofs`.

:class:`ConsortiumLink` implements it for the in-process
:class:`~tally.ledger.consortium.Consortium` (``tally demo``), :class:`RemoteLedgerLink` for
peers running as their own services (:mod:`tally.ledger.peerservice`, ``[cloud.ledger]``).
The :class:`Anchorer` is the cloud's background task: it anchors every stored batch, per edge
in counter order (the ``anchoring`` contract enforces counter and hash-chain continuity, so
order matters), and records each outcome in storage
(:class:`~tally.cloud.storage.api.AnchorRecord`):

* ``pending`` when submitted; a transient failure (the ledger times out, the endorsers
  disagree, an MVCC race) keeps it pending and the batch is tried again after
  ``retry_ms``;
* ``anchored`` with the transaction id, height and log index when committed as valid;
* ``refused`` with the contract's reason (a missing, repeated or unchained batch, an edge the
  chain does not know) — and the next batch of the edge is tried.

A batch whose predecessor is not stored waits up to ``hold_ms`` (uploads may arrive out of
order), then is submitted anyway so that the ledger says what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tally.cloud.ingest import now_ms
from tally.cloud.storage.api import (
    ANCHORED,
    PENDING,
    REFUSED,
    AnchorRecord,
    BatchRecord,
    Storage,
)
from tally.cloud.txproofs import consortium_tx_bundle, remote_tx_bundle
from tally.crypto import SigningKey
from tally.ledger.checkpoint import FinalCheckpoint
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.errors import LedgerError, TxTimeout
from tally.ledger.peer import CONTRACT_ERROR, MVCC_CONFLICT, VALID
from tally.ledger.proofs import TxInclusion, inclusion_proof, verify_tx_inclusion
from tally.ledger.remote import RemoteConsortium, RemoteResult
from tally.verify.bundle import ChainProof

log = logging.getLogger("tally.cloud.anchoring")

TRANSIENT_CODES = frozenset({MVCC_CONFLICT})
"""Validation codes after which the same batch is simply submitted again."""


@dataclass(frozen=True)
class AnchorResult:
    """The outcome of one anchoring (or registering) transaction.

    ``code`` is the peer's validation code (``valid``, ``contract_error``, …); ``reason``
    the contract's refusal or the validation reason ("" when valid); ``log_index`` the
    transaction's position in the ledger's transaction log.
    """

    tx_id: bytes
    code: str
    height: int
    log_index: int
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.code == VALID


class LedgerLink(Protocol):
    """What the cloud needs of the consortium ledger (see the module docstring)."""

    async def anchor_batch(self, header_cose: bytes) -> AnchorResult: ...

    async def chain_proof(self, log_index: int) -> ChainProof | None: ...

    async def tx_bundle(self, tx_id: bytes) -> bytes: ...


class ConsortiumLink:
    """A :class:`LedgerLink` to an in-process consortium, speaking as member ``org``.

    Proofs come from ``org``'s own peer (its transaction log) and the consortium's checkpoint
    collector. Call it from the consortium's event loop.
    """

    def __init__(
        self, consortium: Consortium, org: str, timeout: float = 10.0, attempts: int = 3
    ) -> None:
        if org not in consortium.genesis.members:
            raise ValueError(f"{org!r} is not a member of consortium {consortium.genesis.name!r}")
        self.consortium = consortium
        self.org = org
        self.timeout = timeout
        self.attempts = max(1, attempts)

    async def anchor_batch(self, header_cose: bytes) -> AnchorResult:
        """Anchor an edge batch header; raises LedgerError on a transient failure."""
        return await self._submit("anchoring", "anchor_batch", header_cose)

    async def register(self, registration_cose: bytes) -> AnchorResult:
        """Record a signed registration with the ``registry`` contract (the chain then says
        which key is genuine); raises LedgerError on a transient failure."""
        return await self._submit("registry", "register", registration_cose)

    async def _submit(self, contract: str, fn: str, arg: bytes) -> AnchorResult:
        c = self.consortium
        proposal, endorsements = c.endorse(contract, fn, [arg], self.org)
        tx = Client.transaction(proposal, endorsements)
        r = await self._settle(tx)
        # every peer holds the same log; the cloud's own, when it runs, is where proofs come from
        org = self.org if self.org in c.peers else next(iter(c.peers), None)
        if org is None:
            raise LedgerError("no peer is running")
        await c.wait_height(r.height, [org], self.timeout)
        index = c.peers[org].txlog.size_at(r.height - 1) + r.index
        reason = r.error if r.code == CONTRACT_ERROR else r.reason
        return AnchorResult(r.tx_id, r.code, r.height, index, reason)

    async def _settle(self, tx: bytes) -> TxResult:
        """Order ``tx`` and wait for its final checkpoint. After a timeout the same bytes are
        submitted again (ordering them is idempotent), so a slow transaction is never
        replaced by a second one that the contract would refuse as a repeat."""
        for attempt in range(self.attempts):
            try:
                return await self.consortium.submit_tx(
                    tx, final=True, timeout=self.timeout, prefer=self.org
                )
            except TxTimeout:
                if attempt == self.attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def chain_proof(self, log_index: int) -> ChainProof | None:
        """The chain part for the transaction at ``log_index`` (None while not final)."""
        c = self.consortium
        peer = c.peers.get(self.org)
        latest = c.collector.latest_final()
        if peer is None or latest is None:
            return None
        txlog = peer.txlog
        for height in range(min(peer.height, latest.checkpoint.height), 0, -1):
            final = c.collector.final(height)
            if final is None:
                continue
            cp = final.checkpoint
            if cp.size <= log_index:
                return None  # earlier checkpoints are smaller still
            proof = inclusion_proof(txlog, log_index, cp)
            return ChainProof(
                tx=txlog.tx(log_index),
                index=log_index,
                size=proof.size,
                path=proof.path,
                checkpoint=final.payload,
                sigs=final.signatures,
            )
        return None

    async def tx_bundle(self, tx_id: bytes) -> bytes:
        """The transaction bundle (:mod:`tally.verify.txbundle`) of ``tx_id``, from ``org``'s
        own peer: :func:`tally.cloud.txproofs.consortium_tx_bundle` (ProofError while it
        cannot be made)."""
        return await consortium_tx_bundle(self.consortium, self.org, tx_id)

    def checkpoints_final(self) -> int:
        """How many heights up to the latest final one have a final checkpoint."""
        latest = self.consortium.collector.latest_final()
        if latest is None:
            return 0
        col = self.consortium.collector
        return sum(1 for h in range(1, latest.checkpoint.height + 1) if col.final(h) is not None)


class RemoteLedgerLink:
    """A :class:`LedgerLink` to member peers reached over HTTP
    (:class:`~tally.ledger.remote.RemoteConsortium`), speaking as member ``org`` with its
    member ``key``.

    Every transaction's final checkpoint is remembered; the chain part of log position ``i``
    is built from the latest final checkpoint seen whose log covers ``i`` and the inclusion
    path that ``org``'s own peer (else any peer) gives at that checkpoint's size, checked
    against the checkpoint's root before it is handed out. :meth:`chain_proof` answers from
    that cache, and when nothing is cached (e.g. after a restart) asks the peers then and
    there. Call it from the loop that runs :meth:`anchor_batch`; :meth:`close` it at the end.
    """

    def __init__(
        self, remote: RemoteConsortium, org: str, key: SigningKey, timeout: float = 15.0
    ) -> None:
        member = remote.genesis.members.get(org)
        if member is None:
            raise ValueError(f"{org!r} is not a member of consortium {remote.genesis.name!r}")
        if key.public.raw != member.pub:
            raise ValueError(f"the key given is not the genesis key of member {org!r}")
        self.remote = remote
        self.org = org
        self.key = key
        self.timeout = timeout
        self._finals: dict[int, FinalCheckpoint] = {}  # height -> final checkpoint
        self._proofs: dict[int, ChainProof] = {}  # log index -> chain part

    async def close(self) -> None:
        await self.remote.close()

    async def anchor_batch(self, header_cose: bytes) -> AnchorResult:
        """Anchor an edge batch header; raises LedgerError on a transient failure."""
        return await self._submit("anchoring", "anchor_batch", header_cose)

    async def register(self, registration_cose: bytes) -> AnchorResult:
        """Record a signed registration with the ``registry`` contract; raises LedgerError
        on a transient failure."""
        return await self._submit("registry", "register", registration_cose)

    async def _submit(self, contract: str, fn: str, arg: bytes) -> AnchorResult:
        r: RemoteResult = await self.remote.submit(
            contract, fn, [arg], self.org, self.key, timeout=self.timeout
        )
        self._finals[r.height] = r.final_checkpoint
        if r.log_index is None:
            raise LedgerError("the peer did not report the transaction's log position")
        reason = r.error if r.code == CONTRACT_ERROR else r.reason
        if r.valid:  # the chain part now, while the peers are at hand (best effort)
            try:
                await self.fetch_proof(r.log_index)
            except (LedgerError, OSError) as exc:
                log.warning("no chain part yet for log position %d: %s", r.log_index, exc)
        return AnchorResult(r.tx_id, r.code, r.height, r.log_index, reason)

    async def chain_proof(self, log_index: int) -> ChainProof | None:
        """The chain part of ``log_index``: cached, else built from the peers now (after a
        restart nothing is cached); None while no final checkpoint covers it or the peers
        cannot be reached."""
        got = self._proofs.get(log_index)
        if got is not None:
            return got
        try:
            return await self.fetch_proof(log_index)
        except (LedgerError, OSError) as exc:
            log.warning("no chain part for log position %d: %s", log_index, exc)
            return None

    def _covering(self, log_index: int) -> FinalCheckpoint | None:
        for height in sorted(self._finals, reverse=True):
            final = self._finals[height]
            if final.checkpoint.size > log_index:
                return final
        return None

    async def fetch_proof(self, log_index: int) -> ChainProof | None:
        """Build (and cache) the chain part of ``log_index`` from the latest final checkpoint
        seen that covers it — asking the peers for the latest one when none seen does —
        and the inclusion path from a peer. None while no final checkpoint covers it;
        raises ProofError when the peer's answer does not prove it."""
        final = self._covering(log_index)
        if final is None:
            final = await self._latest_final()
            if final is None or final.checkpoint.size <= log_index:
                return None
        cp = final.checkpoint
        orgs = sorted(self.remote.peers, key=lambda o: (o != self.org, o))
        entry = None
        for org in orgs:
            entry = await self.remote.log_entry(org, log_index, cp.size)
            if entry is not None:
                break
        if entry is None:
            return None
        suite = self.remote.genesis.suite
        verify_tx_inclusion(suite, entry.tx, TxInclusion(log_index, cp.size, entry.path), cp)
        proof = ChainProof(
            tx=entry.tx,
            index=log_index,
            size=cp.size,
            path=entry.path,
            checkpoint=final.payload,
            sigs=final.signatures,
        )
        self._proofs[log_index] = proof
        return proof

    async def tx_bundle(self, tx_id: bytes) -> bytes:
        """The transaction bundle (:mod:`tally.verify.txbundle`) of ``tx_id``, from the peers
        (``org``'s first) and the final checkpoints seen:
        :func:`tally.cloud.txproofs.remote_tx_bundle` (ProofError while it cannot be made)."""
        return await remote_tx_bundle(self.remote, self.org, tx_id, self._finals)

    async def _latest_final(self) -> FinalCheckpoint | None:
        heights = []
        for org in sorted(self.remote.peers, key=lambda o: (o != self.org, o)):
            status = await self.remote.status(org)
            if status is not None:
                heights.append(int(status["height"]))
        for height in sorted({h for h in heights if h > 0}, reverse=True)[:3]:
            final = await self.remote.final_checkpoint(height)
            if final is not None:
                self._finals[height] = final
                return final
        return None


@dataclass
class AnchorStats:
    """What the anchorer did since it started."""

    anchored: int = 0
    refused: int = 0
    retries: int = 0
    last_error: str = ""
    refusals: list[str] = field(default_factory=list)


class Anchorer:
    """Anchors every stored batch through ``link`` and records the outcomes in ``storage``.

    Run :meth:`step` for one pass, or :meth:`start` / :meth:`stop` for the background task
    that polls every ``poll_ms`` (and is woken at once by :meth:`notify`).
    """

    def __init__(
        self,
        storage: Storage,
        link: LedgerLink,
        clock: Callable[[], int] = now_ms,
        retry_ms: int = 500,
        hold_ms: int = 30_000,
        poll_ms: int = 100,
        batch_limit: int = 200,
    ) -> None:
        self.storage = storage
        self.link = link
        self.clock = clock
        self.retry_ms = retry_ms
        self.hold_ms = hold_ms
        self.poll_ms = poll_ms
        self.batch_limit = batch_limit
        self.stats = AnchorStats()
        self._settled: dict[str, int] = {}  # edge -> highest ctr anchored or refused
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- one pass ------------------------------------------------------------------------

    async def step(self) -> int:
        """Anchor, per edge in counter order, every batch that can be anchored now; return
        how many were settled (anchored or refused). Stops an edge at its first transient
        failure (to keep the order) and at a batch that waits for its predecessor."""
        todo = await asyncio.to_thread(self.storage.batches_to_anchor, self.batch_limit)
        by_edge: dict[str, list[BatchRecord]] = {}
        for b in todo:
            by_edge.setdefault(b.edge, []).append(b)
        settled = 0
        for batches in by_edge.values():
            for b in batches:
                if not await self._ready(b) or not await self._anchor(b):
                    break
                settled += 1
        return settled

    async def _ready(self, b: BatchRecord) -> bool:
        if b.ctr == 0 or self._settled.get(b.edge) == b.ctr - 1:
            return True
        before = await asyncio.to_thread(self.storage.batch, b.edge, b.ctr - 1)
        if before is None:
            return self.clock() - b.received >= self.hold_ms  # then the ledger says "missing"
        got = await asyncio.to_thread(self.storage.anchors, [before.id])
        rec = got.get(before.id)
        return rec is not None and rec.state in (ANCHORED, REFUSED)

    async def _anchor(self, b: BatchRecord) -> bool:
        """Submit batch ``b``; record the outcome; False on a transient failure."""
        record = self.storage.record_anchor
        await asyncio.to_thread(record, AnchorRecord(b.id, PENDING, t=self.clock()))
        try:
            r = await self.link.anchor_batch(b.header)
        except (LedgerError, TimeoutError, OSError) as exc:
            return await self._transient(b, f"{type(exc).__name__}: {exc}")
        if r.code in TRANSIENT_CODES:
            return await self._transient(b, f"{r.code}: {r.reason}")
        if r.valid:
            rec = AnchorRecord(b.id, ANCHORED, r.tx_id, r.height, r.log_index, "", self.clock())
            self.stats.anchored += 1
        else:
            reason = r.reason if r.code == CONTRACT_ERROR else f"{r.code}: {r.reason}"
            rec = AnchorRecord(b.id, REFUSED, r.tx_id, r.height, r.log_index, reason, self.clock())
            self.stats.refused += 1
            self.stats.refusals.append(f"batch {b.ctr} of {b.edge}: {reason}")
            log.warning("the ledger refused batch %d of %s: %s", b.ctr, b.edge, reason)
        await asyncio.to_thread(record, rec)
        self._settled[b.edge] = b.ctr
        return True

    async def _transient(self, b: BatchRecord, why: str) -> bool:
        self.stats.retries += 1
        self.stats.last_error = why
        log.info("anchoring batch %d of %s failed, will retry: %s", b.ctr, b.edge, why)
        rec = AnchorRecord(b.id, PENDING, reason=why, t=self.clock())
        await asyncio.to_thread(self.storage.record_anchor, rec)
        return False

    # -- the background task -------------------------------------------------------------

    def notify(self) -> None:
        """Look for new batches now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="anchorer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            retries = self.stats.retries
            try:
                await self.step()
                failed = self.stats.retries > retries
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the task die: say why and try again
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("anchoring pass failed")
                failed = True
            wait = (self.retry_ms if failed else self.poll_ms) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

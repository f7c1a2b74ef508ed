"""Failure scenarios of a running consortium: four members (a bank a, a core enterprise b, a
warehouse c, a logistics firm d), a toy contract needing any two endorsements, checkpoints
final with three signatures. Workers keep submitting transactions (each puts one value under
its own key, so every transaction is valid) while something breaks:

* the NATS server leading the JetStream orderer's transaction stream is killed and later
  restarted (a real local 3-server cluster on free ports);
* one peer is cut off from new blocks (stopped) while the others go on, then reconnected.

Each story then checks what the members can rely on: every acknowledged transaction is in
exactly one block, every peer reaches the same height and state commitment, checkpoints
stay final with the quorum, and a peer that was away signs only what it has applied.

Every wait polls a condition with a deadline; nothing sleeps for a fixed time. Without a
``nats-server`` binary the JetStream story is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from services import require_nats_server
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, OrdererFactory, TxResult
from tally.ledger.contract import Context, Contract, Registry, function
from tally.ledger.formats import Block, decode_checkpoint
from tally.ledger.genesis import Genesis, Ordering
from tally.ledger.jetstream import JetStreamOrderer
from tally.ledger.natscluster import NatsCluster

MEMBERS = [("a", ["bank"]), ("b", ["core_enterprise"]), ("c", ["warehouse"]), ("d", ["logistics"])]
ORGS = [org for org, _ in MEMBERS]
POLICY = "2-OF(org:a, org:b, org:c, org:d)"
QUORUM = 3
WORKERS = 4
POLL = 0.01
SUBMIT_TIMEOUT = 15.0
"""Bound on one submit (ordering, commit and finality), failover included."""
PHASE_TIMEOUT = 20.0
"""Bound on each phase of a story."""

pytestmark = pytest.mark.timeout(90)


class Toy(Contract):
    """Puts one value under a key; reads nothing, so concurrent transactions never conflict."""

    name = "toy"

    @function
    def put(self, ctx: Context, key: str, value: Any) -> Any:
        ctx.put(key, value)
        return value


@dataclass(frozen=True)
class Sent:
    """One transaction a worker submitted and the outcome its submit returned."""

    key: str
    value: int
    tx: bytes
    result: TxResult
    started: float
    """Loop time when the worker began submitting it."""


class Flow:
    """``workers`` tasks submitting ``toy.put`` of distinct keys until :meth:`finish`. A
    worker whose submit raises ends, and the error surfaces from the next :meth:`until`."""

    def __init__(
        self, c: Consortium, workers: int = WORKERS, creators: tuple[str, ...] = ORGS
    ) -> None:
        self.c = c
        self.creators = creators
        self.sent: list[Sent] = []
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._work(w), name=f"worker {w}")
            for w in range(workers)
        ]

    async def _work(self, w: int) -> None:
        loop = asyncio.get_running_loop()
        i = 0
        while not self._stop.is_set():
            creator = self.creators[(w + i) % len(self.creators)]
            key = f"w{w}/{i:04d}"
            started = loop.time()
            tx = Client.transaction(*self.c.endorse("toy", "put", [key, i], creator))
            r = await self.c.submit_tx(tx, timeout=SUBMIT_TIMEOUT, prefer=creator)
            self.sent.append(Sent(key, i, tx, r, started))
            i += 1

    def since(self, t: float) -> list[Sent]:
        """The transactions whose submit began at loop time ``t`` or later."""
        return [s for s in self.sent if s.started >= t]

    def _check_workers(self) -> None:
        for task in self._tasks:
            if task.done():
                task.result()  # raises the worker's error
                raise AssertionError(f"{task.get_name()} ended before it was stopped")

    async def until(self, what: str, probe: Callable[[], bool]) -> None:
        """Poll ``probe`` while the workers run; fail after PHASE_TIMEOUT seconds."""
        try:
            async with asyncio.timeout(PHASE_TIMEOUT):
                while not probe():
                    self._check_workers()
                    await asyncio.sleep(POLL)
        except TimeoutError:
            raise AssertionError(f"not within {PHASE_TIMEOUT} s: {what}") from None

    async def finish(self) -> list[Sent]:
        """Stop the workers after their current submit; every submit must have succeeded."""
        self._stop.set()
        async with asyncio.timeout(SUBMIT_TIMEOUT + 5):
            await asyncio.gather(*self._tasks)
        return self.sent

    async def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def make_consortium(
    directory: Path, ordering: Ordering, orderer: OrdererFactory | None = None
) -> Consortium:
    return await Consortium.create(
        directory,
        members=MEMBERS,
        policies={"toy.*": POLICY},
        quorum=QUORUM,
        suite="intl",
        ordering=ordering,
        contracts=Registry(Toy()),
        orderer=orderer,
    )


async def ordered_blocks(c: Consortium, height: int) -> list[Block]:
    """Blocks 1..``height`` as the orderer delivers them."""
    blocks: list[Block] = []
    it = c.orderer.blocks(1)
    try:
        async with asyncio.timeout(PHASE_TIMEOUT):
            async for block in it:
                blocks.append(block)
                if block.height >= height:
                    break
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
    assert [b.height for b in blocks] == list(range(1, height + 1))
    return blocks


async def assert_settled(c: Consortium, sent: list[Sent]) -> int:
    """Every submit committed valid under a final checkpoint; every transaction submitted is
    in exactly one block, where its result says; every peer is at the same height and state
    commitment and signed the final checkpoint of every height. Returns the height."""
    for s in sent:
        r = s.result
        assert r.valid, (s.key, r.code, r.reason)
        assert r.final_checkpoint is not None and r.final_checkpoint.checkpoint.height == r.height
        assert len(r.final_checkpoint.signers) >= QUORUM
    top = max(s.result.height for s in sent)
    await c.wait_height(top, timeout=PHASE_TIMEOUT)
    assert c.orderer.height() == top  # no block beyond the last transaction's
    blocks = await ordered_blocks(c, top)
    ordered = [tx for b in blocks for tx in b.txs]
    assert len(ordered) == len(set(ordered)) == len(sent)  # each transaction exactly once
    assert set(ordered) == {s.tx for s in sent}  # and nothing else
    for s in sent:
        assert blocks[s.result.height - 1].txs[s.result.index] == s.tx
    first = c.peers[ORGS[0]]
    for org in ORGS:
        peer = c.peers[org]
        assert peer.height == top
        assert peer.commitment() == first.commitment()
        assert peer.checkpoint() == first.checkpoint()
        assert list(peer.txlog.txs()) == ordered
        for s in sent:
            got = peer.state.get(s.key)
            assert got is not None and got[0] == s.value
    for h in range(1, top + 1):
        final = c.collector.final(h)
        assert final is not None, f"checkpoint {h} is not final"
        signed = c.collector.signers(h)
        assert set(signed) == set(ORGS), (h, sorted(signed))
        assert set(signed.values()) == {final.payload}, f"peers disagree at height {h}"
    assert c.alarms == [] and c.rejections == [] and c.invalid_checkpoints == []
    return top


# -- killing a NATS server ------------------------------------------------------------------------


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    require_nats_server()
    async with NatsCluster(tmp_path / "nats", size=3) as c:
        yield c


async def stream_leader(cluster: NatsCluster, stream: str) -> str:
    """The name (``n<i>``) of the server leading ``stream``'s Raft group, once it has one."""
    nc = await nats.connect(cluster.urls, connect_timeout=2, max_reconnect_attempts=5)
    try:
        js = nc.jetstream(timeout=2.0)
        async with asyncio.timeout(PHASE_TIMEOUT):
            while True:
                try:
                    info = await js.stream_info(stream)
                except (nats.errors.Error, TimeoutError):
                    info = None  # no leader to answer yet
                if info is not None and info.cluster is not None and info.cluster.leader:
                    return info.cluster.leader
                await asyncio.sleep(POLL)
    finally:
        await nc.close()


async def test_killing_the_transaction_stream_leader_loses_and_repeats_nothing(
    tmp_path: Path, cluster: NatsCluster
) -> None:
    """Four workers submit through a JetStream orderer on three NATS servers. After 20
    transactions have committed, the server leading the transaction stream is SIGKILLed:
    submits in flight are retried by the orderer, the two remaining servers elect a new
    leader, and 20 transactions submitted after the kill commit in blocks above every
    height reached before it, each under a final checkpoint. The server is restarted with
    its data and 10 more commit. Then every acknowledged transaction is in exactly one
    block, all four peers agree on height, state commitment and every checkpoint."""

    def factory(genesis: Genesis, _directory: Path) -> JetStreamOrderer:
        return JetStreamOrderer(genesis, cluster.urls, timeout=SUBMIT_TIMEOUT)

    c = await make_consortium(tmp_path / "consortium", Ordering("jetstream", 20, 20), factory)
    flows: list[Flow] = []
    try:
        orderer = c.orderer
        assert isinstance(orderer, JetStreamOrderer)
        await orderer.start()
        leader_name = await stream_leader(cluster, orderer.tx_stream)
        leader = int(leader_name.removeprefix("n"))
        loop = asyncio.get_running_loop()

        flow = Flow(c)
        flows.append(flow)
        await flow.until("20 transactions before the kill", lambda: len(flow.sent) >= 20)
        height_at_kill = max(p.height for p in c.peers.values())
        killed_at = loop.time()
        cluster.kill(leader)
        assert not cluster.running(leader)
        await flow.until(
            "20 transactions submitted after the kill",
            lambda: len(flow.since(killed_at)) >= 20,
        )
        after_kill = flow.since(killed_at)
        assert all(s.result.height > height_at_kill for s in after_kill)
        assert all(s.result.final_checkpoint is not None for s in after_kill)
        new_leader = await stream_leader(cluster, orderer.tx_stream)
        assert new_leader != leader_name  # the survivors took over the stream

        await cluster.restart(leader)
        assert cluster.running(leader)
        restarted_at = loop.time()
        await flow.until(
            "10 transactions submitted after the restart",
            lambda: len(flow.since(restarted_at)) >= 10,
        )
        sent = await flow.finish()

        top = await assert_settled(c, sent)
        assert top > max(s.result.height for s in after_kill) >= height_at_kill + 1
    finally:
        for f in flows:
            await f.abort()
        await c.close()


# -- cutting a peer off ---------------------------------------------------------------------------


async def test_a_peer_cut_off_signs_nothing_it_missed_then_catches_up(tmp_path: Path) -> None:
    """Four workers submit through the solo orderer. After 10 transactions peer d is cut off
    (stopped: it receives no blocks and endorses nothing). Transactions go on and every
    height while d is away becomes final with a, b and c alone; d has signed none of them.
    d reconnects (restarted from its files) while the workers keep going: it replays the
    blocks it missed, its checkpoint for every height equals the final one (the same state
    commitment as the others at each height), and it signs the following checkpoints."""
    c = await make_consortium(tmp_path, Ordering("solo", 50, 10))
    flows: list[Flow] = []
    try:
        flow = Flow(c)
        flows.append(flow)
        await flow.until("10 transactions", lambda: len(flow.sent) >= 10)
        d_height = c.peers["d"].height
        await c.stop_peer("d")
        assert not c.running("d")
        # d's last signature is for the height it had applied when it stopped
        signed_by_d = [h for h in range(1, d_height + 2) if "d" in c.collector.signers(h)]
        assert signed_by_d == list(range(1, d_height + 1))

        def finals_without_d() -> int:
            latest = c.collector.latest_final()
            return 0 if latest is None else latest.checkpoint.height

        await flow.until(
            "20 transactions and 3 final heights while d is away",
            lambda: (
                sum(s.result.height > d_height for s in flow.sent) >= 20
                and finals_without_d() >= d_height + 3
            ),
        )
        missed = range(d_height + 1, finals_without_d() + 1)
        for h in missed:
            final = c.collector.final(h)
            assert final is not None and final.signers == ("a", "b", "c")
            assert "d" not in c.collector.signers(h)
        assert not any(h in c.results["d"] for h in missed)

        await c.restart_peer("d")
        tip = max(p.height for p in c.peers.values())
        await flow.until("d catches up", lambda: c.peers["d"].height >= tip)
        caught_up_at = asyncio.get_running_loop().time()
        await flow.until(
            "10 transactions after d caught up", lambda: len(flow.since(caught_up_at)) >= 10
        )
        sent = await flow.finish()

        top = await assert_settled(c, sent)  # d signed every height with the final payload
        assert top > missed[-1]
        for h in missed:
            final = c.collector.final(h)
            assert final is not None and "d" not in final.signers  # final before d was back
            state_by_org = {
                org: decode_checkpoint(p).state for org, p in c.collector.signers(h).items()
            }
            assert state_by_org["d"] == state_by_org["a"] == final.checkpoint.state
        later = {s.result.height for s in sent if s.started >= caught_up_at}
        assert later and all("d" in c.collector.signers(h) for h in later)
    finally:
        for f in flows:
            await f.abort()
        await c.close()


async def test_a_partitioned_peer_keeps_running_stops_signing_and_recovers(tmp_path: Path) -> None:
    """Like the cut-off above, but a true partition: peer d keeps running (and may still be
    asked to endorse) while no blocks reach it. Its height stands still and it signs no
    checkpoint for the heights it misses, which a, b and c finalise alone. When the link is
    back it catches up without a restart and co-signs again. (A member learns its
    transactions' outcome from its own peer, so the workers here create as a, b and c.)"""
    c = await make_consortium(tmp_path, Ordering("solo", 50, 10))
    flows: list[Flow] = []
    try:
        flow = Flow(c, creators=("a", "b", "c"))
        flows.append(flow)
        await flow.until("10 transactions", lambda: len(flow.sent) >= 10)
        c.partition("d")
        await flow.until("a block after the partition", lambda: c.orderer.height() > 0)
        d_height = c.peers["d"].height

        def finals() -> int:
            latest = c.collector.latest_final()
            return 0 if latest is None else latest.checkpoint.height

        await flow.until(
            "20 transactions and 3 final heights while d is partitioned",
            lambda: (
                sum(s.result.height > d_height + 1 for s in flow.sent) >= 20
                and finals() >= d_height + 4
            ),
        )
        assert c.running("d")
        assert c.peers["d"].height <= d_height + 1  # at most a block already in flight
        stood = c.peers["d"].height
        for h in range(stood + 1, finals() + 1):
            assert "d" not in c.collector.signers(h)
            final = c.collector.final(h)
            assert final is not None and final.signers == ("a", "b", "c")

        c.reconnect("d")
        tip = max(p.height for p in c.peers.values())
        await flow.until("d catches up", lambda: c.peers["d"].height >= tip)
        back_at = asyncio.get_running_loop().time()
        await flow.until("10 transactions after d is back", lambda: len(flow.since(back_at)) >= 10)
        sent = await flow.finish()
        await assert_settled(c, sent)
        later = {s.result.height for s in sent if s.started >= back_at}
        assert later and all("d" in c.collector.signers(h) for h in later)
    finally:
        for f in flows:
            await f.abort()
        await c.close()

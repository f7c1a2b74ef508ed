"""The JetStream orderer on a real local 3-server NATS cluster (started per test on free
ports): blocks with the right chain and roots, idempotent submits, a server killed while
transactions flow, two cutters racing, and a restarted orderer resuming.

Every wait is bounded by ``asyncio.timeout``; there are no fixed sleeps. Without a
``nats-server`` binary the tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.js.errors import NoStreamResponseError

from services import require_nats_server
from tally.crypto import INTL, SigningKey, cbor
from tally.ledger.formats import Block
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.jetstream import JetStreamOrderer, OrdererUnavailable
from tally.ledger.natscluster import NatsCluster
from tally.ledger.orderer import Orderer, build_block, check_block
from tally.ledger.solo import wall_clock_ms
from tally.merkle import Hasher, Tree

DEADLINE = 20.0


def make_genesis(max_txs: int = 3, max_ms: int = 30) -> Genesis:
    key = SigningKey(INTL, bytes(range(32)))
    return Genesis(
        name="jetstream-orderer-test",
        suite=INTL,
        t=0,
        members={"bank": Member("bank", ("bank",), key.public.raw)},
        policies={},
        checkpoint_quorum=1,
        ordering=Ordering("jetstream", max_txs, max_ms),
    )


def tx(i: int) -> bytes:
    return cbor.encode({"v": 1, "proposal": i.to_bytes(4, "big"), "endorsements": []})


class FrozenClock:
    """A clock in ms that stands still (blocks are then cut by count only) until ``run()``
    makes it move with the wall clock from where it stood."""

    def __init__(self, now: int = 5_000_000) -> None:
        self.now = now
        self.since: int | None = None

    def run(self) -> None:
        self.since = wall_clock_ms()

    def __call__(self) -> int:
        return self.now + (wall_clock_ms() - self.since if self.since is not None else 0)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    require_nats_server()
    async with NatsCluster(tmp_path / "nats", size=3) as c:
        yield c


async def collect(
    orderer: Orderer, genesis: Genesis, until: Callable[[list[Block]], bool], start: int = 1
) -> list[Block]:
    """Blocks from ``start`` on, each checked against the previous, until ``until`` holds."""
    got: list[Block] = []
    prev: bytes | None = genesis.chain if start == 1 else None
    async with asyncio.timeout(DEADLINE):
        async for block in orderer.blocks(start):
            check_block(genesis, block, start + len(got), prev or block.prev)
            prev = block.hash(genesis.suite)
            got.append(block)
            if until(got):
                return got
    raise AssertionError("the block iteration ended early")


def txs_of(blocks: list[Block]) -> list[bytes]:
    return [t for b in blocks for t in b.txs]


async def raw_headers(cluster: NatsCluster, stream: str, last: int) -> list[dict[str, str]]:
    """The headers of blocks 1..last as stored in the blocks stream."""
    nc = await nats.connect(cluster.urls)
    try:
        js = nc.jetstream()
        return [dict((await js.get_msg(stream, seq)).headers or {}) for seq in range(1, last + 1)]
    finally:
        await nc.close()


def assert_ranges_contiguous(headers: list[dict[str, str]]) -> None:
    nxt = 1
    for h, hdr in enumerate(headers, start=1):
        assert int(hdr["Tally-Height"]) == h
        assert int(hdr["Tally-Tx-First"]) == nxt
        assert int(hdr["Tally-Tx-Last"]) >= nxt
        nxt = int(hdr["Tally-Tx-Last"]) + 1


async def test_submit_builds_chained_blocks_with_roots(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=3, max_ms=30)
    clock = FrozenClock(10**12)
    async with JetStreamOrderer(g, cluster.urls, clock=clock) as o:
        assert isinstance(o, Orderer)
        sent = [tx(i) for i in range(10)]
        for t in sent[:9]:
            await o.submit(t)
        blocks = await collect(o, g, lambda bs: len(bs) == 3)  # cut by count
        clock.run()  # now max_ms can pass: the last block is cut by time
        await o.submit(sent[9])
        blocks += await collect(o, g, lambda bs: len(bs) == 1, start=4)
        assert txs_of(blocks) == sent  # one submitter: stream order is submission order
        assert [len(b.txs) for b in blocks] == [3, 3, 3, 1]
        assert [b.t for b in blocks[:3]] == [10**12] * 3  # block time is the cutter's clock
        assert 10**12 + 30 <= blocks[3].t < 10**12 + 30 + 1000 * DEADLINE
        hasher = Hasher.for_name(g.suite.hash_name)
        for b in blocks:
            tree = Tree(hasher)
            tree.extend(b.txs)
            assert b.root == tree.root()
        assert o.height() == 4
        info = (await raw_headers(cluster, o.block_stream, 4))[-1]
        assert int(info["Tally-Tx-Last"]) == 10
        assert_ranges_contiguous(await raw_headers(cluster, o.block_stream, 4))
        with pytest.raises(ValueError):
            o.blocks(0)


async def test_duplicate_submits_are_ordered_once(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=4)
    async with JetStreamOrderer(g, cluster.urls) as o:
        await o.submit(tx(1))
        await asyncio.gather(*(o.submit(tx(2)) for _ in range(5)))
        await o.submit(tx(1))
        await o.submit(tx(3))
        blocks = await collect(o, g, lambda bs: len(txs_of(bs)) >= 3)
        assert txs_of(blocks) == [tx(1), tx(2), tx(3)]
        nc = await nats.connect(cluster.urls)
        try:
            info = await nc.jetstream().stream_info(o.tx_stream)
        finally:
            await nc.close()
        assert info.state.messages == 3  # JetStream stored each transaction once
        assert info.config.num_replicas == 3


async def test_a_killed_server_loses_nothing_acknowledged(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=20, max_ms=20)
    total, kill_after = 240, 60
    acked: list[bytes] = []
    async with JetStreamOrderer(g, cluster.urls, timeout=15.0) as o:
        nc = await nats.connect(cluster.urls)
        try:
            info = await nc.jetstream().stream_info(o.tx_stream)
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader is not None
        leader = int(info.cluster.leader.removeprefix("n"))  # the TX stream's Raft leader
        killed = asyncio.Event()
        queue = list(range(total))

        async def worker() -> None:
            while queue:
                t = tx(queue.pop(0))
                await o.submit(t)  # retries transient errors itself, up to its timeout
                acked.append(t)
                if len(acked) == kill_after and not killed.is_set():
                    cluster.kill(leader)
                    killed.set()

        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(worker() for _ in range(4)))
        assert killed.is_set() and not cluster.running(leader)
        assert len(acked) == total
        blocks = await collect(o, g, lambda bs: len(txs_of(bs)) >= total)
        ordered = txs_of(blocks)
        assert len(ordered) == len(set(ordered)) == total  # no tx in two blocks
        assert set(ordered) == set(acked)  # nothing acknowledged is lost
        assert all(len(b.txs) <= 20 for b in blocks)
        assert_ranges_contiguous(await raw_headers(cluster, o.block_stream, len(blocks)))
        # the killed server rejoins (same ports and data) and ordering goes on
        await cluster.restart(leader)
        await o.submit(tx(total))
        more = await collect(o, g, lambda bs: tx(total) in bs[-1].txs, start=len(blocks) + 1)
        assert txs_of(more) == [tx(total)]


async def test_two_cutters_never_store_two_blocks_at_one_height(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=5, max_ms=10)
    async with (
        JetStreamOrderer(g, cluster.urls) as a,
        JetStreamOrderer(g, cluster.urls) as b,
    ):
        sent = [tx(i) for i in range(150)]
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(x.submit(t) for t in sent for x in (a, b)))
        blocks = await collect(a, g, lambda bs: len(txs_of(bs)) >= len(sent))
        ordered = txs_of(blocks)
        assert len(ordered) == len(set(ordered)) == len(sent)
        assert set(ordered) == set(sent)
        # every stored block was published by exactly one of the cutters (a follower may see
        # the last block just before its cutter has the PubAck)
        async with asyncio.timeout(DEADLINE):
            while a.blocks_published + b.blocks_published < len(blocks):
                await asyncio.sleep(0.02)
        assert a.blocks_published + b.blocks_published == len(blocks)
        again = await collect(b, g, lambda bs: len(bs) == len(blocks))
        assert again == blocks
        assert_ranges_contiguous(await raw_headers(cluster, a.block_stream, len(blocks)))


async def test_a_cutter_that_loses_the_race_adopts_the_winner(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=3)
    async with (
        JetStreamOrderer(g, cluster.urls, cut=False) as client,
        JetStreamOrderer(g, cluster.urls, clock=FrozenClock()) as cutter,
    ):
        await client.submit(tx(1))
        # another cutter stores block 1 = [tx 1] while ``cutter`` still holds it pending
        rival = build_block(g, 1, g.chain, 42, [tx(1)])
        headers = {
            "Nats-Expected-Last-Sequence": "0",
            "Tally-Height": "1",
            "Tally-Tx-First": "1",
            "Tally-Tx-Last": "1",
        }
        nc = await nats.connect(cluster.urls)
        try:
            js = nc.jetstream()
            async with asyncio.timeout(DEADLINE):
                while True:
                    try:
                        await js.publish(
                            cutter.block_subject,
                            rival.to_cbor(),
                            stream=cutter.block_stream,
                            headers=dict(headers),
                        )
                        break
                    except NoStreamResponseError:  # this server does not know the leader yet
                        await asyncio.sleep(0.02)
        finally:
            await nc.close()
        for i in (2, 3, 4):
            await client.submit(tx(i))
        blocks = await collect(cutter, g, lambda bs: len(bs) >= 2)
        assert blocks[0] == rival
        assert blocks[1].txs == (tx(2), tx(3), tx(4))
        async with asyncio.timeout(DEADLINE):  # a follower may see block 2 before its PubAck
            while cutter.blocks_published < 1 or client.height() < 2:
                await asyncio.sleep(0.02)
        # its own block 1 was refused (or, after a transient error, never sent): it adopted
        # the rival's and ordered block 2 after it, without tx 1 again
        assert cutter.blocks_refused <= 1 and cutter.blocks_published == 1
        assert cutter.height() == client.height() == 2  # the client follows the tip too
        assert_ranges_contiguous(await raw_headers(cluster, cutter.block_stream, 2))


async def test_a_restarted_orderer_resumes_after_the_last_block(cluster: NatsCluster) -> None:
    g = make_genesis(max_txs=2)
    first = JetStreamOrderer(g, cluster.urls)
    for i in range(4):
        await first.submit(tx(i))
    before = await collect(first, g, lambda bs: len(bs) >= 2)
    await first.close()
    async with JetStreamOrderer(g, cluster.urls, cut=False) as client:
        for i in range(4, 9):
            await client.submit(tx(i))
        await client.submit(tx(0))  # already ordered: not again
        assert client.height() == 2
    async with JetStreamOrderer(g, cluster.urls) as again:
        assert again.height() == 2
        blocks = await collect(again, g, lambda bs: len(txs_of(bs)) >= 9)
        assert blocks[:2] == before
        assert txs_of(blocks) == [tx(i) for i in range(9)]
        assert_ranges_contiguous(await raw_headers(cluster, again.block_stream, len(blocks)))


async def test_the_cluster_syncs_every_write_and_cleans_up(tmp_path: Path) -> None:
    require_nats_server()
    cluster = NatsCluster(tmp_path, size=3)
    async with cluster:
        root = cluster.directory
        ports = [int(u.rsplit(":", 1)[1]) for u in cluster.urls]
        assert len(set(ports)) == 3 and not {4222, 6222} & set(ports)
        for i in range(3):
            conf = (root / f"n{i}" / "server.conf").read_text()
            assert "sync_interval: always" in conf
            assert cluster.running(i)
        pids = [cluster.pid(i) for i in range(3)]
    assert not any(cluster.running(i) for i in range(3))
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):  # stopped and reaped
            os.kill(pid, 0)
    assert not root.exists()


async def test_unreachable_servers_raise_orderer_unavailable(free_port: Callable[[], int]) -> None:
    o = JetStreamOrderer(make_genesis(), [f"nats://127.0.0.1:{free_port()}"], timeout=0.5)
    with pytest.raises(OrdererUnavailable):
        await o.submit(tx(1))

"""The solo orderer: cutting by size and by time, the hash chain, idempotent submits,
recovery after a restart or a torn last record, and several subscribers.

Waits are bounded: every wait for a block runs under ``asyncio.timeout``; no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from tally.crypto import INTL, SigningKey, cbor
from tally.ledger.formats import Block
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.orderer import BlockLogCorrupt, Orderer, OrdererClosed, OrdererLocked
from tally.ledger.solo import SoloOrderer
from tally.merkle import Hasher, Tree

DEADLINE = 5.0


def make_genesis(max_txs: int = 3, max_ms: int = 40) -> Genesis:
    key = SigningKey(INTL, bytes(range(32)))
    return Genesis(
        name="solo-orderer-test",
        suite=INTL,
        t=0,
        members={"bank": Member("bank", ("bank",), key.public.raw)},
        policies={},
        checkpoint_quorum=1,
        ordering=Ordering("solo", max_txs, max_ms),
    )


def tx(i: int) -> bytes:
    return cbor.encode({"v": 1, "proposal": i.to_bytes(4, "big"), "endorsements": []})


def frame(payload: bytes) -> bytes:
    """A log record: u32 length, payload, u32 CRC-32 of the payload (big-endian)."""
    return struct.pack(">I", len(payload)) + payload + struct.pack(">I", zlib.crc32(payload))


class FakeClock:
    """A clock in ms that moves only when the test says so."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def take(orderer: Orderer, from_height: int, n: int) -> list[Block]:
    """The next ``n`` blocks from ``from_height``, failing after DEADLINE seconds."""
    out: list[Block] = []
    async with asyncio.timeout(DEADLINE):
        async for block in orderer.blocks(from_height):
            out.append(block)
            if len(out) == n:
                break
    return out


async def until(cond: Callable[[], bool], what: str) -> None:
    """Poll ``cond()`` until true, failing after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def check_chain(g: Genesis, blocks: list[Block], first_prev: bytes | None = None) -> None:
    prev = g.chain if first_prev is None else first_prev
    hasher = Hasher.for_name(g.suite.hash_name)
    for i, b in enumerate(blocks):
        assert b.chain == g.chain
        assert b.height == blocks[0].height + i
        assert b.prev == prev, f"block {b.height} does not name its parent"
        tree = Tree(hasher)
        tree.extend(b.txs)
        assert b.root == tree.root(), f"block {b.height} root"
        prev = b.hash(g.suite)
    ts = [b.t for b in blocks]
    assert ts == sorted(ts)


@asynccontextmanager
async def opened(g: Genesis, d: Path, clock: FakeClock | None = None) -> AsyncIterator[SoloOrderer]:
    o = SoloOrderer(g, d, clock=clock) if clock is not None else SoloOrderer(g, d)
    try:
        yield o
    finally:
        await o.close()


async def test_cuts_by_size_then_by_time(tmp_path: Path) -> None:
    g = make_genesis(max_txs=3, max_ms=30)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        assert isinstance(o, Orderer)
        await asyncio.gather(*(o.submit(tx(i)) for i in range(7)))
        full = await take(o, 1, 2)
        assert [len(b.txs) for b in full] == [3, 3]
        assert [b.t for b in full] == [clock.now, clock.now]
        assert o.pending() == 1 and o.height() == 2
        # The seventh waits for max_ms on the orderer clock, which only the test moves.
        clock.now += 30
        (late,) = await take(o, 3, 1)
        assert late.txs == (tx(6),)
        assert late.t == clock.now, "cut before max_ms had passed on the orderer clock"
        check_chain(g, [*full, late])
        assert sorted(t for b in [*full, late] for t in b.txs) == sorted(tx(i) for i in range(7))


async def test_cuts_by_time_on_the_wall_clock(tmp_path: Path) -> None:
    g = make_genesis(max_txs=100, max_ms=40)
    async with opened(g, tmp_path) as o:
        before = time.time_ns() // 1_000_000
        await o.submit(tx(1))
        await o.submit(tx(2))
        (block,) = await take(o, 1, 1)
        assert block.txs == (tx(1), tx(2))
        assert block.t >= before + 40
        assert o.pending() == 0


async def test_hash_chain_and_roots(tmp_path: Path) -> None:
    g = make_genesis(max_txs=4, max_ms=20)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        for i in range(18):
            await o.submit(tx(i))
            clock.now += 1
        clock.now += 20
        blocks = await take(o, 1, 5)
        check_chain(g, blocks)
        assert [len(b.txs) for b in blocks] == [4, 4, 4, 4, 2]
        assert [t for b in blocks for t in b.txs] == [tx(i) for i in range(18)]
        assert o.height() == 5


async def test_duplicates_are_acknowledged_and_ordered_once(tmp_path: Path) -> None:
    g = make_genesis(max_txs=5, max_ms=20)
    async with opened(g, tmp_path) as o:
        await asyncio.gather(*(o.submit(tx(i % 3)) for i in range(12)))  # 3 distinct
        (b1,) = await take(o, 1, 1)
        assert sorted(b1.txs) == sorted([tx(0), tx(1), tx(2)])
        await o.submit(tx(1))  # already ordered: acknowledged, not ordered again
        await o.submit(tx(9))
        (b2,) = await take(o, 2, 1)
        assert b2.txs == (tx(9),)
        assert o.pending() == 0


async def test_restart_keeps_the_chain_and_orders_pending(tmp_path: Path) -> None:
    g = make_genesis(max_txs=2, max_ms=50)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        for i in range(5):
            await o.submit(tx(i))
        before = await take(o, 1, 2)
        assert o.pending() == 1  # tx(4) is durable but not yet ordered
    async with opened(g, tmp_path, clock) as o:
        assert o.height() == 2
        assert o.pending() == 1
        await o.submit(tx(0))  # ordered before the restart: not again
        await o.submit(tx(4))  # pending before the restart: not twice
        assert o.pending() == 1
        clock.now += 50
        (after,) = await take(o, 3, 1)
        assert after.txs == (tx(4),)
        replay = await take(o, 1, 3)
        assert replay[:2] == before
        check_chain(g, replay)


async def test_a_torn_last_block_is_dropped_and_the_log_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = make_genesis(max_txs=2, max_ms=20)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        for i in range(6):
            await o.submit(tx(i))
        blocks = await take(o, 1, 3)
    log_path = tmp_path / "blocks.log"
    size = log_path.stat().st_size
    last = len(blocks[2].to_cbor()) + 8
    with open(log_path, "r+b") as f:
        f.truncate(size - last // 2)  # crash in the middle of writing block 3 ...
    # ... when its transactions were still in the pending log
    (tmp_path / "pending.log").write_bytes(b"TLYPND01" + frame(tx(4)) + frame(tx(5)))
    with caplog.at_level(logging.WARNING, logger="tally.ledger.solo"):
        async with opened(g, tmp_path, clock) as o:
            assert o.height() == 2
            assert log_path.stat().st_size == size - last
            assert o.pending() == 2
            await o.submit(tx(4))  # a client's retry: already pending
            await o.submit(tx(100))
            await o.submit(tx(101))
            new3, new4 = await take(o, 3, 2)
            assert new3.txs == (tx(4), tx(5))
            assert new4.txs == (tx(100), tx(101))
            check_chain(g, [*blocks[:2], new3, new4])
    assert "torn last record" in caplog.text
    async with opened(g, tmp_path) as o:  # the repaired log opens cleanly
        assert o.height() == 4
        assert await take(o, 1, 4) == [*blocks[:2], new3, new4]


async def test_a_crash_between_block_and_pending_rewrite_orders_nothing_twice(
    tmp_path: Path,
) -> None:
    g = make_genesis(max_txs=2, max_ms=20)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        await o.submit(tx(1))
        await o.submit(tx(2))
        (b1,) = await take(o, 1, 1)
    # Block 1 reached the disk, the rewrite of the pending log did not.
    stale = b"TLYPND01" + frame(tx(1)) + frame(tx(2)) + frame(tx(2)) + frame(tx(3))
    (tmp_path / "pending.log").write_bytes(stale)
    async with opened(g, tmp_path, clock) as o:
        assert o.pending() == 1
        assert (tmp_path / "pending.log").read_bytes() == b"TLYPND01" + frame(tx(3))
        clock.now += 20
        (b2,) = await take(o, 2, 1)
        assert b2.txs == (tx(3),)
        check_chain(g, [b1, b2])


async def test_zero_filled_tail_is_dropped(tmp_path: Path) -> None:
    g = make_genesis(max_txs=1, max_ms=20)
    async with opened(g, tmp_path) as o:
        await o.submit(tx(1))
        await take(o, 1, 1)
    size = (tmp_path / "blocks.log").stat().st_size
    with open(tmp_path / "blocks.log", "ab") as f:
        f.write(bytes(4096))  # the file grew but the data never reached the disk
    async with opened(g, tmp_path) as o:
        assert o.height() == 1
    assert (tmp_path / "blocks.log").stat().st_size == size


async def test_damage_before_the_end_is_refused(tmp_path: Path) -> None:
    g = make_genesis(max_txs=1, max_ms=20)
    async with opened(g, tmp_path) as o:
        for i in range(3):
            await o.submit(tx(i))
        await take(o, 1, 3)
    path = tmp_path / "blocks.log"
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01  # inside block 1's payload
    path.write_bytes(bytes(data))
    with pytest.raises(BlockLogCorrupt) as err:
        SoloOrderer(g, tmp_path)
    assert err.value.offset == 8 and "checksum" in err.value.reason
    assert path.read_bytes() == bytes(data), "a damaged log must not be truncated"


async def test_a_directory_of_another_chain_is_refused(tmp_path: Path) -> None:
    g = make_genesis(max_txs=1, max_ms=20)
    async with opened(g, tmp_path) as o:
        await o.submit(tx(1))
        await take(o, 1, 1)
    other = replace(g, name="another consortium")
    with pytest.raises(BlockLogCorrupt, match="chain"):
        SoloOrderer(other, tmp_path)


async def test_one_orderer_per_directory(tmp_path: Path) -> None:
    g = make_genesis()
    async with opened(g, tmp_path):
        with pytest.raises(OrdererLocked):
            SoloOrderer(g, tmp_path)
    async with opened(g, tmp_path) as o:  # released on close
        assert o.height() == 0


async def test_subscribers_see_the_same_blocks_in_order(tmp_path: Path) -> None:
    g = make_genesis(max_txs=3, max_ms=10)
    clock = FakeClock()
    async with opened(g, tmp_path, clock) as o:
        early = [asyncio.create_task(take(o, 1, 6)) for _ in range(3)]
        for i in range(8):
            await o.submit(tx(i))
        mid = asyncio.create_task(take(o, 2, 5))
        for i in range(8, 16):
            await o.submit(tx(i))
        clock.now += 10  # the sixteenth
        seen = await asyncio.gather(*early)
        assert seen[0] == seen[1] == seen[2]
        assert await mid == seen[0][1:]
        check_chain(g, seen[0])
        assert [t for b in seen[0] for t in b.txs] == [tx(i) for i in range(16)]


async def test_close_ends_subscriptions_and_refuses_submits(tmp_path: Path) -> None:
    g = make_genesis(max_txs=1, max_ms=10)
    o = SoloOrderer(g, tmp_path)
    await o.submit(tx(1))
    got: list[Block] = []

    async def follow() -> None:
        async for b in o.blocks(1):
            got.append(b)

    task = asyncio.create_task(follow())
    await until(lambda: len(got) == 1, "the first block")
    await o.close()
    async with asyncio.timeout(DEADLINE):
        await task  # the iteration ended
    with pytest.raises(OrdererClosed):
        await o.submit(tx(2))
    with pytest.raises(ValueError):
        o.blocks(0)

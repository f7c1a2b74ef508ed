"""The solo orderer survives SIGKILL: a child process submits transactions from several
concurrent clients, writing the hash of each one to an "acked" file as soon as its
``submit()`` returns; the test kills it at an arbitrary moment, several times over, each
new child resubmitting some earlier transactions. Then the test reopens the directory and
checks the invariants:

- every acknowledged transaction is in a block, exactly once;
- no transaction is in two blocks;
- the block log holds heights 1, 2, 3, … once each, and the chain links and roots hold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from tally.crypto import INTL, SigningKey
from tally.ledger.formats import Block, decode_block
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.orderer import block_root
from tally.ledger.solo import SoloOrderer

DEADLINE = 10.0
ROUNDS = 3
ACKS_PER_ROUND = 150

CHILD = r"""
import asyncio, os, sys
from tally.crypto import INTL, SigningKey, cbor
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.solo import SoloOrderer

directory, acked_path, round_no = sys.argv[1], sys.argv[2], int(sys.argv[3])
key = SigningKey(INTL, bytes(range(32)))
genesis = Genesis("crash-test", INTL, 0, {"bank": Member("bank", ("bank",), key.public.raw)},
                  {}, 1, Ordering("solo", 7, 3))

def tx(i):
    return cbor.encode({"v": 1, "proposal": i.to_bytes(8, "big"), "endorsements": []})

async def main():
    orderer = SoloOrderer(genesis, directory)
    acked = os.open(acked_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    counter = iter(range(round_no * 1_000_000, (round_no + 1) * 1_000_000))

    async def client(n):
        while True:
            i = next(counter)
            j = i
            if i % 5 == 0 and round_no:  # repeat a transaction of the previous round
                j = i - 999_989
            elif i % 5 == 0 and i:  # repeat a recent one of this round
                j = i - 3
            t = tx(j)
            await orderer.submit(t)
            os.write(acked, INTL.hash(t).hex().encode() + b"\n")

    await asyncio.gather(*(client(n) for n in range(8)))

asyncio.run(main())
"""


def read_log(path: Path) -> list[Block]:
    """Parse blocks.log independently of the orderer: magic, then framed records."""
    data = path.read_bytes()
    assert data[:8] == b"TLYBLK01"
    out, off = [], 8
    while off < len(data):
        (n,) = struct.unpack_from(">I", data, off)
        payload = data[off + 4 : off + 4 + n]
        (crc,) = struct.unpack_from(">I", data, off + 4 + n)
        assert zlib.crc32(payload) == crc, f"bad record at {off}"
        out.append(decode_block(payload))
        off += 8 + n
    return out


def acked_hashes(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return [bytes.fromhex(line) for line in path.read_text().split("\n") if len(line) == 64]


async def test_sigkill_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    directory = tmp_path / "orderer"
    acked_path = tmp_path / "acked"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    key = SigningKey(INTL, bytes(range(32)))
    genesis = Genesis(
        "crash-test", INTL, 0, {"bank": Member("bank", ("bank",), key.public.raw)},
        {}, 1, Ordering("solo", 7, 3),
    )  # fmt: skip

    for round_no in range(ROUNDS):
        want = len(acked_hashes(acked_path)) + ACKS_PER_ROUND
        child = subprocess.Popen(
            [sys.executable, str(script), str(directory), str(acked_path), str(round_no)],
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + DEADLINE
            while len(acked_hashes(acked_path)) < want:
                assert child.poll() is None, child.communicate()[1].decode()
                assert time.monotonic() < deadline, "the child acknowledged too few"
                await asyncio.sleep(0.005)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=DEADLINE)
            assert child.stderr is not None
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL

    acked = set(acked_hashes(acked_path))
    assert len(acked) >= ROUNDS * ACKS_PER_ROUND * 0.7  # repeats are acknowledged too

    orderer = SoloOrderer(genesis, directory)  # recovers, then orders what was pending
    try:
        deadline = time.monotonic() + DEADLINE
        while orderer.pending():
            assert time.monotonic() < deadline, "recovered transactions were not ordered"
            await asyncio.sleep(0.005)
        height = orderer.height()
    finally:
        await orderer.close()

    blocks = read_log(directory / "blocks.log")
    assert [b.height for b in blocks] == list(range(1, height + 1)), "two blocks at a height"
    prev = genesis.chain
    for b in blocks:
        assert b.prev == prev and b.chain == genesis.chain
        assert b.root == block_root(INTL, b.txs)
        prev = b.hash(INTL)

    ordered = [INTL.hash(t) for b in blocks for t in b.txs]
    assert len(ordered) == len(set(ordered)), "a transaction was ordered twice"
    missing = acked - set(ordered)
    assert not missing, f"{len(missing)} acknowledged transactions were lost"
    # Repeats (of this round and of the previous one) were acknowledged, yet ordered once.
    assert len(acked_hashes(acked_path)) > len(acked)

"""The ledger benchmark's growth measurements: proofs as the log grows, and a peer catching up.

**Proofs**: a :class:`tally.merkle.Tree` of 10^3, 10^5 and 10^6 leaves built directly;
inclusion and consistency proof generation and verification, median µs over random
indices and sizes.

**Catch-up**: a consortium runs a few transactions; then ``catchup_blocks`` more blocks are
appended to the solo orderer's durable block log (written in its documented record layout
while the consortium is closed; the blocks carry real endorsed transactions), the
consortium is opened again and one peer, left behind at the old height, is restarted alone:
it replays every block from the orderer's log, validates and commits each (signatures,
policy, MVCC, fsynced tx log and state) and hands each checkpoint to the collector. Reported:
blocks/s and tx/s until it reaches the orderer's height.
"""

from __future__ import annotations

import os
import random
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from tally.bench.common import median, note, rounded
from tally.bench.ledger import CONTRACT, ORGS, POLICY, QUORUM, members, registry
from tally.crypto import SigningKey, parse_sign1
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium
from tally.ledger.formats import Endorsement, Proposal, decode_transaction
from tally.ledger.genesis import Genesis, Ordering
from tally.ledger.orderer import build_block
from tally.merkle import Hasher, Tree, verify_consistency, verify_inclusion

LAGGARD = "logistics"
_U32 = struct.Struct(">I")


# -- proofs ---------------------------------------------------------------------------------------


def _us(samples: list[float]) -> float:
    return round(median(samples) * 1e6, 2)


def proof_times(size: int, samples: int, seed: int = 7) -> dict[str, Any]:
    """Build a tree of ``size`` leaves; median µs to make and to check proofs in it."""
    hasher = Hasher.for_name("sha256")
    tree = Tree(hasher)
    t = time.perf_counter()
    for i in range(size):
        tree.append(i.to_bytes(8, "big"))
    build = time.perf_counter() - t
    root = tree.root()
    rng = random.Random(seed)
    inc_gen: list[float] = []
    inc_ver: list[float] = []
    con_gen: list[float] = []
    con_ver: list[float] = []
    inc_len = con_len = 0
    for _ in range(samples):
        i = rng.randrange(size)
        leaf = tree.leaf_hash(i)
        t = time.perf_counter()
        p = tree.inclusion_proof(i, size)
        t1 = time.perf_counter()
        verify_inclusion(hasher, i, size, leaf, p, root)
        t2 = time.perf_counter()
        inc_gen.append(t1 - t)
        inc_ver.append(t2 - t1)
        inc_len = max(inc_len, len(p))
        s1 = rng.randrange(1, size)
        r1 = tree.root_at(s1)
        t = time.perf_counter()
        q = tree.consistency_proof(s1, size)
        t1 = time.perf_counter()
        verify_consistency(hasher, s1, size, q, r1, root)
        t2 = time.perf_counter()
        con_gen.append(t1 - t)
        con_ver.append(t2 - t1)
        con_len = max(con_len, len(q))
    return {
        "leaves": size,
        "build_s": round(build, 3),
        "inclusion_proof_us": _us(inc_gen),
        "inclusion_verify_us": _us(inc_ver),
        "inclusion_hashes_max": inc_len,
        "consistency_proof_us": _us(con_gen),
        "consistency_verify_us": _us(con_ver),
        "consistency_hashes_max": con_len,
        "samples": samples,
    }


# -- catch-up -------------------------------------------------------------------------------------


def presigned_txs(
    genesis: Genesis, keys: dict[str, SigningKey], count: int, run: str, t: int
) -> list[bytes]:
    """``count`` endorsed ``bench.put`` transactions, each endorsed by its creator and the
    next org; the endorsements are what a peer signs for them (checked by the caller)."""
    out: list[bytes] = []
    suite = genesis.suite
    for i in range(count):
        creator = ORGS[i % len(ORGS)]
        other = ORGS[(i + 1) % len(ORGS)]
        key = f"{run}/{i:08d}"
        proposal = Proposal(
            genesis.chain, CONTRACT, "put", (key, i), creator, os.urandom(16), t
        ).sign(keys[creator])
        tx_id = suite.hash(proposal)
        ends = [
            Endorsement(tx_id, org, (), ((key, i),), None, "").sign(keys[org])
            for org in sorted((creator, other))
        ]
        out.append(Client.transaction(proposal, ends))
    return out


def append_blocks(
    genesis: Genesis, path: Path, height: int, prev: bytes, t: int, blocks: list[list[bytes]]
) -> None:
    """Append ``blocks`` after ``height`` to a closed solo orderer's ``blocks.log`` (record
    layout of :mod:`tally.ledger.solo`), fsynced once at the end."""
    with open(path, "ab") as f:
        for txs in blocks:
            height += 1
            t += 1
            b = build_block(genesis, height, prev, t, txs)
            payload = b.to_cbor()
            f.write(_U32.pack(len(payload)) + payload + _U32.pack(zlib.crc32(payload)))
            prev = b.hash(genesis.suite)
        f.flush()
        os.fsync(f.fileno())


async def catch_up(directory: Path, blocks: int, per_block: int, json_only: bool) -> dict[str, Any]:
    ordering = Ordering("solo", 100, 20)
    c = await Consortium.create(
        directory,
        members(),
        {f"{CONTRACT}.*": POLICY},
        QUORUM,
        "intl",
        ordering,
        contracts=registry(),
        name="tally-bench-catchup",
    )
    genesis, keys = c.genesis, c.keys
    try:
        for i in range(4):
            r = await c.submit(CONTRACT, "put", [f"pre/{i}", i], ORGS[i])
            assert r.valid
        await c.wait_height(c.orderer.height())
        h0 = c.orderer.height()
        prev = c.peers[LAGGARD].block_hash
        # the hand-built endorsements are byte for byte what a peer signs
        (sample,) = presigned_txs(genesis, keys, 1, "check", 1)
        st = decode_transaction(sample)
        for e in st.endorsements:
            org = parse_sign1(e).kid
            if c.peers[org].endorse(st.proposal) != e:
                raise RuntimeError("presigned endorsement differs from the peer's")
    finally:
        await c.close()
    t = time.perf_counter()
    txs = presigned_txs(genesis, keys, blocks * per_block, "cu", genesis.t + 1)
    sign_s = time.perf_counter() - t
    chunks = [txs[i * per_block : (i + 1) * per_block] for i in range(blocks)]
    t = time.perf_counter()
    append_blocks(genesis, directory / "orderer" / "blocks.log", h0, prev, genesis.t + 1, chunks)
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    c2 = Consortium(directory, genesis, keys, registry())
    open_s = time.perf_counter() - t
    target = h0 + blocks
    try:
        if c2.orderer.height() != target:
            raise RuntimeError(f"orderer at {c2.orderer.height()}, want {target}")
        note(json_only, f"  catch-up: {blocks} blocks x {per_block} tx; restarting {LAGGARD}")
        t = time.perf_counter()
        peer = await c2.restart_peer(LAGGARD)
        start_height = peer.height
        await c2.wait_height(target, [LAGGARD], timeout=3600)
        dt = time.perf_counter() - t
        bad = sum(
            1
            for h in range(h0 + 1, target + 1)
            for s in c2.results[LAGGARD][h].statuses
            if s.code != "valid"
        )
        if bad:
            raise RuntimeError(f"{bad} catch-up transactions invalid")
    finally:
        await c2.close()
    return {
        "blocks": blocks,
        "txs_per_block": per_block,
        "txs": blocks * per_block,
        "from_height": start_height,
        "to_height": target,
        "seconds": round(dt, 3),
        "blocks_per_s": rounded(blocks / dt),
        "tx_per_s": rounded(blocks * per_block / dt),
        "prepare": {
            "sign_s": round(sign_s, 2),
            "write_blocks_s": round(write_s, 2),
            "orderer_open_s": round(open_s, 2),
        },
    }

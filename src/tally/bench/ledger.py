"""``tally bench ledger``: the consortium ledger's throughput, time to finality, proofs and
catch-up.

**Throughput and finality** (``solo``, ``jetstream``): an in-process
:class:`~tally.ledger.consortium.Consortium` of 4 member peers (SQLite state, fsynced tx
logs) with a 2-of-4 endorsement policy and a checkpoint quorum of 3, running a benchmark
contract that puts one value under a distinct key per transaction (no reads, so no MVCC
conflicts). ``n`` transactions are submitted with at most ``concurrency`` in flight; each
goes propose → endorse (2 peers) → order → validate and commit on all 4 peers → checkpoint
final. Timed per transaction: from the start of its submit to the moment the checkpoint
covering its block is final (``p50_final_s``, ``p95_final_s``); ``tx_per_s`` = committed
transactions ÷ wall time of the whole batch. ``jetstream`` orders through a
``JetStreamOrderer`` on a local 3-server NATS cluster (``sync_interval: always``).

**Efficiency** = ``tx_per_s`` × ``checks_per_tx`` ÷ the bare verify rate, where the bare
rate is :meth:`tally.crypto.VerifyKey.verify` over the Sig_structures of the run's own
proposals and endorsements, built beforehand (best of 3 passes, right after the run, in
the same process). ``checks_per_tx`` counts every signature check the
consortium makes per committed transaction: each of the 4 peers verifies the creator's
signature and each endorsement when it validates the block; each endorsing peer verifies
the proposal; the checkpoint collector verifies each peer's checkpoint signature, once per
block (so ÷ transactions per block).

**Proofs** and **catch-up**: see :mod:`tally.bench.ledger_growth`.
"""

from __future__ import annotations

import asyncio
import importlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.bench.common import emit, machine, median, note, percentile, rounded
from tally.crypto import VerifyKey, parse_sign1
from tally.crypto.cose import sig_structure
from tally.ledger.consortium import Consortium, OrdererFactory
from tally.ledger.contract import Context, Contract, Registry, function
from tally.ledger.formats import decode_transaction
from tally.ledger.genesis import Genesis, Ordering

ORGS = ("bank", "core", "warehouse", "logistics")
ROLES = {
    "bank": "bank",
    "core": "core_enterprise",
    "warehouse": "warehouse",
    "logistics": "logistics",
}
POLICY = "2-OF(org:bank, org:core, org:warehouse, org:logistics)"
QUORUM = 3
CONTRACT = "bench"
GOAL_EFFICIENCY = {"solo": 0.5, "jetstream": 0.35}
GOAL_P95_S = {"solo": 1.0, "jetstream": 2.0}
PROOF_SIZES = (10**3, 10**5, 10**6)


class BenchKV(Contract):
    """The benchmark contract: ``put(key, value)`` stores a value and returns nothing."""

    name = CONTRACT

    @function
    def put(self, ctx: Context, key: str, value: Any) -> None:
        ctx.put(key, value)


def registry() -> Registry:
    return Registry(BenchKV())


def members() -> list[tuple[str, list[str]]]:
    return [(o, [ROLES[o]]) for o in ORGS]


# -- the bare verify rate -------------------------------------------------------------------------

VerifyJob = list[tuple[VerifyKey, bytes, bytes]]


def verify_job(genesis: Genesis, txs: Sequence[bytes]) -> VerifyJob:
    """(key, signature, Sig_structure) of every proposal and endorsement in ``txs``."""
    job: VerifyJob = []
    for tx in txs:
        t = decode_transaction(tx)
        for cose in (t.proposal, *t.endorsements):
            m = parse_sign1(cose, suite=genesis.suite)
            key = genesis.key(m.kid)
            assert key is not None
            job.append((key, m.signature, sig_structure(m.protected, m.payload)))
    return job


def verify_rate(job: VerifyJob, runs: int = 3) -> float:
    """Bare :meth:`VerifyKey.verify` calls per second over ``job``, best of ``runs``."""
    best = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        for key, sig, msg in job:
            key.verify(sig, msg)
        dt = time.perf_counter() - t
        if dt > 0:
            best = max(best, len(job) / dt)
    return best


# -- throughput and finality ----------------------------------------------------------------------


async def _one(
    c: Consortium, i: int, run: str, sem: asyncio.Semaphore, out: list[tuple[float, float, Any]]
) -> None:
    async with sem:
        creator = ORGS[i % len(ORGS)]
        t0 = time.perf_counter()
        r = await c.submit(CONTRACT, "put", [f"{run}/{i:07d}", i], creator, timeout=60.0)
        out.append((t0, time.perf_counter(), r))


async def _batch(
    c: Consortium, run: str, n: int, concurrency: int
) -> list[tuple[float, float, Any]]:
    sem = asyncio.Semaphore(concurrency)
    out: list[tuple[float, float, Any]] = []
    await asyncio.gather(*(_one(c, i, run, sem, out) for i in range(n)))
    return out


async def measure_consortium(
    c: Consortium, n: int, concurrency: int, warmup: int, json_only: bool, label: str
) -> tuple[dict[str, Any], list[bytes]]:
    """Submit ``warmup`` then ``n`` transactions to a running consortium; the measurements
    and the measured run's transaction bytes."""
    await _batch(c, "warmup", warmup, concurrency)
    peer = c.peers[ORGS[0]]
    await c.wait_height(peer.height)
    h0 = peer.height
    t = time.perf_counter()
    out = await _batch(c, "run", n, concurrency)
    wall = time.perf_counter() - t
    await c.wait_height(max(r.height for _, _, r in out))  # every peer, for the counts
    blocks = peer.height - h0
    bad = [r for _, _, r in out if not r.valid]
    if bad:
        raise RuntimeError(f"{len(bad)} benchmark transactions invalid, e.g. {bad[0]}")
    heights = {r.height for _, _, r in out}
    lat = [t1 - t0 for t0, t1, _ in out]
    # the run's transactions, for the verify job and for counting endorsements
    size0 = peer.txlog.size_at(h0)
    txs = [peer.txlog.tx(i) for i in range(size0, peer.txlog.size)]
    endorsements = sum(len(decode_transaction(tx).endorsements) for tx in txs) / len(txs)
    peers = len(c.genesis.members)
    per_block = len(txs) / blocks
    checks = peers * (1 + endorsements) + endorsements + peers / per_block
    tx_per_s = n / wall
    note(
        json_only,
        f"  {label}: {n} tx in {wall:.2f} s = {tx_per_s:.0f} tx/s, "
        f"{blocks} blocks, p95 {percentile(lat, 95):.3f} s",
    )
    return {
        "tx_per_s": rounded(tx_per_s),
        "p50_final_s": round(median(lat), 4),
        "p95_final_s": round(percentile(lat, 95), 4),
        "max_final_s": round(max(lat), 4),
        "checks_per_tx": round(checks, 4),
        "checks": {
            "validate_per_peer": round(1 + endorsements, 4),
            "peers": peers,
            "endorse": round(endorsements, 4),
            "checkpoint_per_block": peers,
            "txs_per_block": round(per_block, 2),
        },
        "committed": n,
        "blocks": blocks,
        "heights_touched": len(heights),
        "wall_s": round(wall, 3),
    }, txs


def _finish(mode: str, m: dict[str, Any], rate: float) -> dict[str, Any]:
    eff = m["tx_per_s"] * m["checks_per_tx"] / rate if rate else 0.0
    m["verify_rate_per_s"] = rounded(rate)
    m["efficiency"] = round(eff, 3)
    m["goal_efficiency"] = GOAL_EFFICIENCY[mode]
    m["goal_p95_final_s"] = GOAL_P95_S[mode]
    m["goal_met"] = {
        "efficiency": eff >= GOAL_EFFICIENCY[mode],
        "p95_final": m["p95_final_s"] < GOAL_P95_S[mode],
    }
    return m


async def run_mode(
    mode: str,
    directory: Path,
    n: int,
    concurrency: int,
    ordering: Ordering,
    warmup: int,
    json_only: bool,
    orderer: OrdererFactory | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {} if orderer is None else {"orderer": orderer}
    c = await Consortium.create(
        directory,
        members(),
        {f"{CONTRACT}.*": POLICY},
        QUORUM,
        "intl",
        ordering,
        contracts=registry(),
        name=f"tally-bench-{mode}",
        **kwargs,
    )
    try:
        m, txs = await measure_consortium(c, n, concurrency, warmup, json_only, mode)
    finally:
        await c.close()
    return _finish(mode, m, verify_rate(verify_job(c.genesis, txs)))


# -- jetstream ------------------------------------------------------------------------------------


def jetstream_unavailable() -> str | None:
    """None when the JetStream orderer, the cluster helper and a nats-server are there."""
    try:
        js = importlib.import_module("tally.ledger.jetstream")
        nc = importlib.import_module("tally.ledger.natscluster")
    except ImportError as exc:
        return f"cannot import the JetStream orderer: {exc}"
    if not hasattr(js, "JetStreamOrderer"):
        return "tally.ledger.jetstream has no JetStreamOrderer"
    try:
        nc.find_nats_server()
    except Exception as exc:
        return str(exc)
    return None


# -- the command ----------------------------------------------------------------------------------


async def _ledger_bench(
    n: int,
    concurrency: int,
    max_txs: int,
    max_ms: int,
    warmup: int,
    proof_sizes: Sequence[int],
    proof_samples: int,
    catchup_blocks: int,
    catchup_per_block: int,
    modes: Sequence[str],
    json_only: bool,
) -> dict[str, Any]:
    from tally.bench.ledger_growth import catch_up, proof_times  # it imports this module

    result: dict[str, Any] = {"benchmark": "ledger", "suite": "intl"}
    ordering = Ordering("solo", max_txs, max_ms)
    with tempfile.TemporaryDirectory(prefix="tally-bench-ledger-") as d:
        base = Path(d)
        if "solo" in modes:
            note(json_only, f"ledger bench (solo): {n} tx, {concurrency} in flight")
            result["solo"] = await run_mode(
                "solo", base / "solo", n, concurrency, ordering, warmup, json_only
            )
        if "jetstream" in modes:
            why = jetstream_unavailable()
            if why is not None:
                result["jetstream"] = {"skipped": why}
                note(json_only, f"ledger bench (jetstream): skipped: {why}")
            else:
                result["jetstream"] = await _jetstream(
                    base / "jetstream", n, concurrency, max_txs, max_ms, warmup, json_only
                )
        note(json_only, f"ledger bench: proofs at {', '.join(map(str, proof_sizes))} leaves")
        result["proofs"] = [proof_times(s, proof_samples) for s in proof_sizes]
        if catchup_blocks:
            result["catch_up"] = await catch_up(
                base / "catchup", catchup_blocks, catchup_per_block, json_only
            )
    result["params"] = {
        "n": n,
        "concurrency": concurrency,
        "warmup": warmup,
        "ordering": {"max_txs": max_txs, "max_ms": max_ms},
        "peers": len(ORGS),
        "policy": POLICY,
        "checkpoint_quorum": QUORUM,
        "contract": "bench.put: one value under a distinct key per transaction",
        "state": "SQLite per peer (WAL, synchronous FULL)",
    }
    result["machine"] = machine()
    return result


async def _jetstream(
    directory: Path,
    n: int,
    concurrency: int,
    max_txs: int,
    max_ms: int,
    warmup: int,
    json_only: bool,
) -> dict[str, Any]:
    js = importlib.import_module("tally.ledger.jetstream")
    nc = importlib.import_module("tally.ledger.natscluster")
    directory.mkdir(parents=True, exist_ok=True)
    async with nc.NatsCluster(directory, 3) as cluster:
        note(json_only, f"ledger bench (jetstream, 3 servers): {n} tx, {concurrency} in flight")

        def factory(genesis: Genesis, _d: Path) -> Any:
            return js.JetStreamOrderer(genesis, cluster.urls)

        out = await run_mode(
            "jetstream",
            directory / "consortium",
            n,
            concurrency,
            Ordering("jetstream", max_txs, max_ms),
            warmup,
            json_only,
            factory,
        )
    out["servers"] = 3
    return out


def ledger_bench(
    n: int = 2000,
    concurrency: int = 200,
    max_txs: int = 100,
    max_ms: int = 20,
    warmup: int = 50,
    proof_sizes: Sequence[int] = PROOF_SIZES,
    proof_samples: int = 200,
    catchup_blocks: int = 10_000,
    catchup_per_block: int = 2,
    modes: Sequence[str] = ("solo", "jetstream"),
    json_only: bool = True,
) -> dict[str, Any]:
    return asyncio.run(
        _ledger_bench(
            n,
            concurrency,
            max_txs,
            max_ms,
            warmup,
            proof_sizes,
            proof_samples,
            catchup_blocks,
            catchup_per_block,
            modes,
            json_only,
        )
    )


def run_ledger_bench(
    n: int, concurrency: int, max_txs: int, max_ms: int, catchup_blocks: int, json_only: bool
) -> int:
    """The ``tally bench ledger`` command."""
    r = ledger_bench(
        n, concurrency, max_txs, max_ms, catchup_blocks=catchup_blocks, json_only=json_only
    )
    lines = []
    for mode in ("solo", "jetstream"):
        x = r.get(mode, {})
        if "skipped" in x:
            lines.append(f"{mode}: skipped ({x['skipped']})")
        elif x:
            lines.append(
                f"{mode}: {x['tx_per_s']} tx/s, final p50 {x['p50_final_s']} s "
                f"p95 {x['p95_final_s']} s, efficiency {x['efficiency']} "
                f"({x['checks_per_tx']} checks/tx, verify {x['verify_rate_per_s']}/s)"
            )
    return emit(r, json_only, lines)

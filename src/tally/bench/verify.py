"""``tally bench verify``: how long the offline verifier takes for one reading's proof bundle.

Readings of simulated devices go through the cloud's real ingest into a SQLite store (one
edge-signed batch of ``batch`` readings); the cloud then builds each reading's proof bundle
(:func:`tally.cloud.proofs.build_bundle`: item, inclusion path, edge header, registrations of
device, edge and cloud, anchors, receipt). Timed: :func:`tally.verify.verifier.verify_bundle`
with the trust file pinned, one call per bundle, ``rounds`` passes over ``bundles`` different
bundles. Reported: median and p95 per call (goal median < 2 ms), for each suite asked for.
Every verdict must be valid, else the benchmark fails.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from tally.bench.common import emit, machine, median, note, percentile
from tally.bench.world import CLOUD, T0, make_batches, make_world, presign
from tally.cloud.ingest import Ingestor
from tally.cloud.keys import CloudIdentity
from tally.cloud.proofs import build_bundle
from tally.cloud.registry import accept_signed
from tally.cloud.storage import open_storage
from tally.verify.verifier import verify_bundle

GOAL_MEDIAN_MS = 2.0


def make_bundles(suite: str, bundles: int, batch: int) -> tuple[list[bytes], Any]:
    """Encoded proof bundles of ``bundles`` readings (spread over one stored batch of
    ``batch``) and the trust to verify them with."""
    world = make_world(suite, min(batch, 100))
    per_device = -(-batch // len(world.signers))
    envelopes = [e for _, e in presign(world.signers, per_device, 1000, world.profiles)][:batch]
    (b,) = make_batches(world, envelopes, batch, T0 + per_device * 1000)
    with tempfile.TemporaryDirectory(prefix="tally-bench-verify-") as d:
        storage = open_storage(f"sqlite:///{d}/cloud.db")
        try:
            storage.migrate()
            for reg in world.registrations:
                accept_signed(reg, world.trust, storage, T0)
            ingestor = Ingestor(storage, world.trust, CloudIdentity(CLOUD, "bank", world.cloud_key))
            ingestor.ingest(b.header, b.items)
            step = max(1, len(envelopes) // bundles)
            out = []
            for env in envelopes[::step][:bundles]:
                item = storage.item(world.suite.hash(env))
                assert item is not None
                out.append(build_bundle(storage, world.trust, item, CLOUD).encode())
        finally:
            storage.close()
    return out, world.trust


def measure_suite(suite: str, bundles: int, rounds: int, batch: int) -> dict[str, Any]:
    data, trust = make_bundles(suite, bundles, batch)
    for d in data:  # warm-up, and every bundle must verify
        v = verify_bundle(d, trust)
        if not v.ok:
            raise RuntimeError(f"benchmark bundle does not verify: {v.reason}")
    times: list[float] = []
    for _ in range(rounds):
        for d in data:
            t = time.perf_counter()
            verify_bundle(d, trust)
            times.append((time.perf_counter() - t) * 1000)
    med = median(times)
    return {
        "median_ms": round(med, 3),
        "p95_ms": round(percentile(times, 95), 3),
        "min_ms": round(min(times), 3),
        "calls": len(times),
        "bundle_bytes": round(sum(len(d) for d in data) / len(data)),
        "goal_median_ms": GOAL_MEDIAN_MS,
        "goal_met": med < GOAL_MEDIAN_MS,
    }


def verify_bench(
    suites: tuple[str, ...] = ("intl", "gm"),
    bundles: int = 200,
    rounds: int = 5,
    batch: int = 1000,
    json_only: bool = True,
) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "verify", "suites": {}}
    for s in suites:
        note(json_only, f"verify bench ({s}): {bundles} bundles x {rounds} rounds")
        result["suites"][s] = measure_suite(s, bundles, rounds, batch)
    result["goal_met"] = all(r["goal_met"] for r in result["suites"].values())
    result["params"] = {"bundles": bundles, "rounds": rounds, "batch": batch, "pinned": True}
    result["machine"] = machine()
    return result


def run_verify_bench(suites: tuple[str, ...], bundles: int, rounds: int, json_only: bool) -> int:
    """The ``tally bench verify`` command."""
    r = verify_bench(suites, bundles, rounds, json_only=json_only)
    lines = [
        f"{s}: median {x['median_ms']} ms, p95 {x['p95_ms']} ms "
        f"(goal median < {x['goal_median_ms']} ms: {'met' if x['goal_met'] else 'NOT met'})"
        for s, x in r["suites"].items()
    ]
    return emit(r, json_only, lines)

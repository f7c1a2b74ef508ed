"""``tally bench edge``: the edge pipeline's rate against this machine's bare verify rate.

Two numbers measured side by side, alternating, in one run:

* ``verify_ceiling_per_s``: :meth:`tally.crypto.VerifyKey.verify` over pre-built
  Sig_structures of the same envelopes (many device keys, one call each): what signature
  checking alone costs, the most an edge could admit per core;
* ``pipeline_per_s``: the whole gateway (:meth:`tally.edge.gateway.EdgeGateway.ingest_many`
  in chunks, then :meth:`~tally.edge.gateway.EdgeGateway.tick` once per simulated second to
  seal a batch): strict decode, registry lookup, verify, continuity, the durable SQLite WAL
  outbox (``synchronous=FULL``, one fsync per chunk) and a realistic site rule set.

``ratio`` = pipeline / ceiling (goal 0.8 for ``intl``). Then scaling, one worker per core:
the pipeline in 1 process, then in 2 processes (each with its own outbox and half of the
devices), and the bare verify likewise, so the pipeline's scaling can be read against the
machine's own. Envelopes are pre-signed by simulated devices (label ``sim = "1"``) before
anything is timed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tally.bench.common import emit, machine, note, rounded
from tally.bench.world import (
    EDGE,
    ORG,
    SITE,
    T0,
    World,
    make_world,
    presign,
    site_rules,
)
from tally.crypto import VerifyKey, parse_sign1
from tally.crypto.cose import sig_structure
from tally.edge.config import EdgeConfig
from tally.edge.gateway import EdgeGateway
from tally.edge.registry import Registry

GOAL_RATIO = {"intl": 0.8, "gm": 0.8}
GOAL_SCALING = 1.6
DEVICES = 1000
STEP_MS = 1000
CHUNK = 500
"""Envelopes per ``ingest_many`` call (one outbox transaction, one fsync)."""

Rounds = list[list[bytes]]
"""``rounds[k]``: reading ``k`` of every device, devices in a fixed order."""

VerifyJob = list[tuple[VerifyKey, bytes, bytes]]


# -- pre-signing (in parallel: SM2 signing is slow) --------------------------------------------


def _sign_part(world: World, part: int, parts: int, per_device: int, out: Connection) -> None:
    signers = world.signers[part::parts]
    rounds: Rounds = [[] for _ in range(per_device)]
    for k, (_, env) in enumerate(presign(signers, per_device, STEP_MS, world.profiles, part)):
        rounds[k // len(signers)].append(env)
    out.send(rounds)
    out.close()


def sign_rounds(world: World, per_device: int, workers: int) -> Rounds:
    """Pre-sign ``per_device`` readings of every device of ``world`` with ``workers`` processes
    (fork); rounds are interleaved back into one device order (``part::parts``)."""
    if workers <= 1 or len(world.signers) < 2:
        rounds: Rounds = [[] for _ in range(per_device)]
        n = len(world.signers)
        for k, (_, env) in enumerate(presign(world.signers, per_device, STEP_MS, world.profiles)):
            rounds[k // n].append(env)
        return rounds
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    for p in range(workers):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_sign_part, args=(world, p, workers, per_device, send))
        proc.start()
        send.close()
        pipes.append(recv)
        procs.append(proc)
    parts: list[Rounds] = [r.recv() for r in pipes]
    for proc in procs:
        proc.join()
    return [[env for part in parts for env in part[k]] for k in range(per_device)]


# -- the two measurements ----------------------------------------------------------------------


def verify_job(world: World, envelopes: Sequence[bytes]) -> VerifyJob:
    """(key, signature, Sig_structure) per envelope, built before timing."""
    keys = {s.dev: s.key.public for s in world.signers}
    job: VerifyJob = []
    for env in envelopes:
        m = parse_sign1(env)
        job.append((keys[m.kid], m.signature, sig_structure(m.protected, m.payload)))
    return job


def run_verify(job: VerifyJob) -> tuple[int, float]:
    """Verify every signature of ``job``; return (count, seconds)."""
    t = time.perf_counter()
    for key, sig, msg in job:
        key.verify(sig, msg)
    return len(job), time.perf_counter() - t


def open_gateway(world: World, directory: Path) -> tuple[EdgeGateway, list[int]]:
    """A gateway with a fresh outbox under ``directory``, every device registered, the site
    rules, and a settable clock (``clock[0]``, ms)."""
    registry = Registry(world.trust)
    for reg in world.registrations:
        registry.add_registration(reg)
    clock = [T0]
    cfg = EdgeConfig.model_validate(
        {
            "id": EDGE,
            "org": ORG,
            "site": SITE,
            "suite": world.suite.name,
            "data_dir": directory,
            "rules": site_rules(),
        }
    )
    gw = EdgeGateway(cfg, key=world.edge_key, registry=registry, clock=lambda: clock[0])
    gw.open()
    return gw, clock


def feed(gw: EdgeGateway, clock: list[int], rounds: Rounds, chunk: int = CHUNK) -> int:
    """Feed ``rounds`` to an open gateway, ticking after each round; return the count."""
    count = 0
    for k, envs in enumerate(rounds):
        clock[0] = T0 + k * STEP_MS + STEP_MS // 2
        for i in range(0, len(envs), chunk):
            gw.ingest_many(envs[i : i + chunk], "bench")
        count += len(envs)
        gw.tick(clock[0])
    return count


def run_pipeline(world: World, rounds: Rounds) -> tuple[int, float, dict[str, Any]]:
    """Feed ``rounds`` through a fresh gateway; return (count, seconds, gateway stats).

    Opening the gateway (verifying every registration) is not timed."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-edge-") as d:
        gw, clock = open_gateway(world, Path(d))
        try:
            t = time.perf_counter()
            count = feed(gw, clock, rounds)
            dt = time.perf_counter() - t
            stats = gw.stats()
        finally:
            gw.outbox.close()
    return count, dt, stats


# -- scaling: one worker per core ---------------------------------------------------------------


def _worker(kind: str, world: World, payload: Any, go: Any, out: Connection) -> None:
    with tempfile.TemporaryDirectory(prefix="tally-bench-edge-") as d:
        job = verify_job(world, payload) if kind == "verify" else None
        gw, clock = open_gateway(world, Path(d)) if job is None else (None, [T0])
        out.send("ready")
        go.wait()
        start = time.monotonic()
        n = run_verify(job or [])[0] if gw is None else feed(gw, clock, payload)
        end = time.monotonic()
        if gw is not None:
            gw.outbox.close()
    out.send((n, start, end))
    out.close()


def parallel_rate(kind: str, world: World, payloads: Sequence[Any]) -> float:
    """Run one worker process (fork) per payload, started together; the total rate/s from
    the first start to the last finish."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    pipes, procs = [], []
    for payload in payloads:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(kind, world, payload, go, send))
        proc.start()
        send.close()
        pipes.append(recv)
        procs.append(proc)
    for r in pipes:
        r.recv()
    go.set()
    results = [r.recv() for r in pipes]
    for proc in procs:
        proc.join()
    total = sum(n for n, _, _ in results)
    span = max(e for _, _, e in results) - min(s for _, s, _ in results)
    return total / span if span > 0 else 0.0


def _split_rounds(rounds: Rounds, parts: int) -> list[Rounds]:
    return [[r[p::parts] for r in rounds] for p in range(parts)]


# -- the benchmark ------------------------------------------------------------------------------


def edge_bench(
    suite: str,
    n: int,
    devices: int = DEVICES,
    json_only: bool = True,
    repeats: int = 2,
    scaling: bool = True,
) -> dict[str, Any]:
    """Measure and return the result object (see the module docstring)."""
    devices = max(2, min(devices, n))
    per_device = max(1, n // devices)
    cores = os.cpu_count() or 1
    note(json_only, f"edge bench ({suite}): {devices} devices x {per_device} readings")
    world = make_world(suite, devices)
    t = time.perf_counter()
    rounds = sign_rounds(world, per_device, min(cores, 4))
    sign_s = time.perf_counter() - t
    envelopes = [e for r in rounds for e in r]
    job = verify_job(world, envelopes)
    ceilings: list[float] = []
    pipelines: list[float] = []
    stats: dict[str, Any] = {}
    for _ in range(repeats):
        cnt, dt = run_verify(job)
        ceilings.append(cnt / dt)
        cnt, dt, stats = run_pipeline(world, rounds)
        pipelines.append(cnt / dt)
        note(json_only, f"  ceiling {ceilings[-1]:.0f}/s, pipeline {pipelines[-1]:.0f}/s")
    ceiling, pipeline = max(ceilings), max(pipelines)
    ratio = pipeline / ceiling if ceiling else 0.0
    goal = GOAL_RATIO[suite]
    result: dict[str, Any] = {
        "benchmark": "edge",
        "suite": suite,
        "n": len(envelopes),
        "verify_ceiling_per_s": rounded(ceiling),
        "pipeline_per_s": rounded(pipeline),
        "ratio": round(ratio, 3),
        "goal": goal,
        "goal_met": ratio >= goal,
        "runs": {
            "verify_ceiling_per_s": [rounded(x) for x in ceilings],
            "pipeline_per_s": [rounded(x) for x in pipelines],
        },
        "params": {
            "devices": devices,
            "readings_per_device": per_device,
            "step_ms": STEP_MS,
            "chunk": CHUNK,
            "outbox_synchronous": "full",
            "rules": [r["id"] for r in site_rules()],
            "repeats": repeats,
            "presign_s": round(sign_s, 2),
        },
        "pipeline_check": {
            "accepted": stats.get("accepted", 0),
            "rejected": stats.get("rejected", {}),
            "events": stats.get("events", {}),
            "batches_sealed": stats.get("batches_sealed", 0),
        },
    }
    if scaling:
        note(json_only, "  scaling: 1 and 2 processes")
        halves = _split_rounds(rounds, 2)
        half_envs = [[e for r in h for e in r] for h in halves]
        p1 = p2 = v1 = v2 = 0.0
        for _ in range(repeats + 1):  # best of a few, the four measurements interleaved
            p1 = max(p1, parallel_rate("pipeline", world, [rounds]))
            p2 = max(p2, parallel_rate("pipeline", world, halves))
            v1 = max(v1, parallel_rate("verify", world, [envelopes]))
            v2 = max(v2, parallel_rate("verify", world, half_envs))
        s = p2 / p1 if p1 else 0.0
        result["scaling"] = {
            "pipeline_1_proc_per_s": rounded(p1),
            "pipeline_2_proc_per_s": rounded(p2),
            "scaling_1_to_2": round(s, 3),
            "goal": GOAL_SCALING,
            "goal_met": s >= GOAL_SCALING,
            "verify_1_proc_per_s": rounded(v1),
            "verify_2_proc_per_s": rounded(v2),
            "ceiling_scaling_1_to_2": round(v2 / v1 if v1 else 0.0, 3),
            "cores": cores,
        }
        result["scaling_1_to_2"] = result["scaling"]["scaling_1_to_2"]
    result["machine"] = machine()
    return result


def default_n(suite: str) -> int:
    """Envelopes per measurement by default: SM2 signs and verifies ~10x slower than Ed25519,
    so ``gm`` uses fewer to stay near a minute."""
    return 4000 if suite == "gm" else 20_000


def run_edge_bench(suite: str, n: int, json_only: bool) -> int:
    """The ``tally bench edge`` command: print the JSON result; return the exit status."""
    if suite not in GOAL_RATIO:
        raise SystemExit(f"unknown suite {suite!r} (intl or gm)")
    r = edge_bench(suite, n, json_only=json_only)
    summary = [
        f"verify ceiling {r['verify_ceiling_per_s']}/s, pipeline {r['pipeline_per_s']}/s, "
        f"ratio {r['ratio']} (goal {r['goal']}: {'met' if r['goal_met'] else 'NOT met'})"
    ]
    if "scaling" in r:
        sc = r["scaling"]
        summary.append(
            f"scaling 1->2 processes {sc['scaling_1_to_2']} (goal {sc['goal']}), "
            f"machine ceiling scaling {sc['ceiling_scaling_1_to_2']}"
        )
    return emit(r, json_only, summary)

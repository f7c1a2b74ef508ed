"""``tally bench memory``: the edge's resident memory with 10,000 registered devices and an
hour of cloud outage buffered in its outbox.

What "an hour of outage" means here: ``devices`` devices (default 10,000, ``intl``) each
send one reading every ``interval_s`` simulated seconds (default 120) for ``minutes``
simulated minutes (default 60): 300,000 signed envelopes by default (``--interval 60``
gives 600,000; the default keeps the run near a minute on two cores). The cloud is
unreachable the whole time (no uplink is configured, so nothing is ever receipted): every
admitted reading stays in the outbox on disk, and every simulated minute the gateway ticks
and seals a batch, as it does in service. Simulated time runs faster than real time (the
edge clock is driven by the benchmark); what the edge holds in memory does not depend on
how fast the hour passes. A device reading every 10 s would be 6× the envelopes on disk
but the same per-device state in memory.

The edge runs alone in a fresh subprocess (``spawn``), so its RSS is its own: the registry
of verified registrations, continuity state of every device, the rules' per-device state,
SQLite's page cache. Envelopes are signed by producer processes and streamed to it round by
round over pipes, so no backlog is held in the edge's memory except what the edge itself
keeps. RSS (``VmRSS``) is sampled from ``/proc/self/status`` every simulated 5 minutes;
the peak is ``VmHWM`` at the end (goal < 200 MB). The outbox file size (database + WAL) is
reported beside it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tally.bench.common import emit, machine, note, rss_mb
from tally.bench.world import SIM, T0, World, make_world, measurements

GOAL_PEAK_MB = 200.0
CHUNK = 500


def _produce(
    world: World, part: int, parts: int, rounds: int, step_ms: int, out: Connection
) -> None:
    signers = world.signers[part::parts]
    profiles = world.profiles
    try:
        for k in range(rounds):
            t = T0 + k * step_ms
            out.send_bytes(
                b"".join(
                    len(e).to_bytes(4, "big") + e
                    for e in (
                        s.next(t, measurements(profiles[s.dev], k, part + i * parts), SIM)
                        for i, s in enumerate(signers)
                    )
                )
            )
    finally:
        out.close()


def _split(frame: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(frame):
        n = int.from_bytes(frame[i : i + 4], "big")
        out.append(frame[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _edge(
    suite: str,
    edge_secret: bytes,
    edge_public: bytes,
    trust_cbor: bytes,
    registrations: list[bytes],
    inputs: list[Connection],
    rounds: int,
    step_ms: int,
    directory: str,
    out: Connection,
) -> None:
    """The edge process: registry, gateway, then every round from every producer."""
    from tally.bench.world import EDGE, ORG, SITE, site_rules
    from tally.crypto import SigningKey, get_suite
    from tally.device.trust import decode_trust
    from tally.edge.config import EdgeConfig
    from tally.edge.gateway import EdgeGateway
    from tally.edge.registry import Registry

    samples: list[dict[str, Any]] = [{"at": "imported", **rss_mb()}]
    s = get_suite(suite)
    key = SigningKey(s, edge_secret, edge_public)
    registry = Registry(decode_trust(trust_cbor))
    for reg in registrations:
        registry.add_registration(reg)
    del registrations
    samples.append({"at": f"{len(registry)} registrations", **rss_mb()})
    clock = [T0]
    cfg = EdgeConfig.model_validate(
        {
            "id": EDGE,
            "org": ORG,
            "site": SITE,
            "suite": suite,
            "data_dir": Path(directory),
            "rules": site_rules(),
        }
    )
    gw = EdgeGateway(cfg, key=key, registry=registry, clock=lambda: clock[0])
    gw.open()
    samples.append({"at": "gateway open", **rss_mb()})
    every = max(1, 300_000 // step_ms)
    t = time.perf_counter()
    for k in range(rounds):
        clock[0] = T0 + k * step_ms + 500
        for conn in inputs:
            envs = _split(conn.recv_bytes())
            for i in range(0, len(envs), CHUNK):
                gw.ingest_many(envs[i : i + CHUNK], "bench")
        gw.tick(clock[0])
        if (k + 1) % every == 0 or k == rounds - 1:
            samples.append({"at": f"{(k + 1) * step_ms // 60_000} min", **rss_mb()})
    elapsed = time.perf_counter() - t
    stats = gw.stats()
    files = {p.name: p.stat().st_size for p in Path(directory).glob("outbox.sqlite*")}
    gw.outbox.close()
    out.send(
        {
            "samples": samples,
            "final": rss_mb(),
            "elapsed_s": elapsed,
            "files": files,
            "stats": {
                k: stats[k]
                for k in ("received", "accepted", "batches_sealed", "rejected", "events")
            },
            "outbox": stats["outbox"],
        }
    )
    out.close()


def memory_bench(
    devices: int = 10_000,
    minutes: int = 60,
    interval_s: int = 120,
    producers: int | None = None,
    json_only: bool = True,
) -> dict[str, Any]:
    suite = "intl"
    step_ms = interval_s * 1000
    rounds = max(1, minutes * 60 // interval_s)
    producers = producers or max(1, (os.cpu_count() or 1) - 1)
    note(json_only, f"memory bench: {devices} devices x {rounds} readings ({producers} signers)")
    world = make_world(suite, devices)
    with tempfile.TemporaryDirectory(prefix="tally-bench-memory-") as d:
        spawn, fork = mp.get_context("spawn"), mp.get_context("fork")
        result_recv, result_send = spawn.Pipe(duplex=False)
        ins, outs = zip(*(spawn.Pipe(duplex=False) for _ in range(producers)), strict=True)
        edge = spawn.Process(
            target=_edge,
            args=(
                suite,
                world.edge_key.secret_bytes(),
                world.edge_key.public.raw,
                world.trust.to_cbor(),
                world.registrations,
                list(ins),
                rounds,
                step_ms,
                d,
                result_send,
            ),
        )
        edge.start()
        t = time.perf_counter()
        procs: list[Any] = []
        for p, conn in enumerate(outs):
            proc = fork.Process(target=_produce, args=(world, p, producers, rounds, step_ms, conn))
            proc.start()
            procs.append(proc)
        for c in (*ins, *outs, result_send):
            c.close()
        r = result_recv.recv()
        wall = time.perf_counter() - t
        for proc in (*procs, edge):
            proc.join()
    peak = r["final"]["peak_rss_mb"]
    outbox_bytes = sum(r["files"].values())
    return {
        "benchmark": "memory",
        "suite": suite,
        "peak_rss_mb": round(peak, 1),
        "goal_peak_rss_mb": GOAL_PEAK_MB,
        "goal_met": peak < GOAL_PEAK_MB,
        "outbox_file_mb": round(outbox_bytes / 1e6, 1),
        "outbox_files": r["files"],
        "envelopes": r["stats"]["received"],
        "rss_samples": [{"at": s["at"], "rss_mb": round(s["rss_mb"], 1)} for s in r["samples"]],
        "pipeline_check": r["stats"],
        "outbox": r["outbox"],
        "edge_ingest_s": round(r["elapsed_s"], 1),
        "wall_s": round(wall, 1),
        "params": {
            "devices": devices,
            "simulated_minutes": minutes,
            "interval_s": interval_s,
            "readings_per_device": rounds,
            "producers": producers,
            "chunk": CHUNK,
            "cloud": "unreachable (no uplink): nothing receipted",
        },
        "machine": machine(),
    }


def run_memory_bench(devices: int, minutes: int, interval_s: int, json_only: bool) -> int:
    """The ``tally bench memory`` command."""
    r = memory_bench(devices, minutes, interval_s, json_only=json_only)
    line = (
        f"peak RSS {r['peak_rss_mb']} MB with {r['params']['devices']} devices and "
        f"{r['envelopes']} envelopes buffered (goal < {GOAL_PEAK_MB} MB: "
        f"{'met' if r['goal_met'] else 'NOT met'}); outbox {r['outbox_file_mb']} MB on disk"
    )
    return emit(r, json_only, [line])

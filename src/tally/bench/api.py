"""``tally bench api``: p95 latency of the API's dashboards and lists under concurrent
clients, against the trivial ``GET /v1/ping`` measured in the same run.

Set-up (:mod:`tally.bench.api_server`): a database (a temp SQLite file, or the PostgreSQL
database ``database_url`` names, which must be empty) is migrated and loaded with the
SIMULATED read model at ``scale`` (:mod:`tally.cloud.views.seed`: 38,894 organisations, 40,000
loans, 60,000 receipts, 100,000 notes … at 1.0), and one user per role is created: a bank credit
officer, a supplier operator, a core enterprise operator, a warehouse operator (with its
sites), a regulator auditor and a government viewer. The cloud app serves it with uvicorn in
a separate process on a free port of 127.0.0.1, so the load generator does not share the GIL
with the server.

Load (this process): every user logs in (``POST /v1/session``); then ``clients`` concurrent
clients (httpx, asyncio, one keep-alive connection each) send requests back to back for
``seconds``. Each client walks the same cycle from its own starting point, alternating the
trivial ping with one of :data:`TARGETS` (dashboards as their users, ``/v1/loans?limit=50`` as
the bank, ``/v1/receipts`` as the warehouse, ``/v1/chain/blocks`` as the regulator), so every
endpoint and the baseline are measured under the same load. Latency is from sending a
request to having read the whole response. Every target is asked once before the clock starts
(a warm-up, not measured).

Result: ``baseline_p50_ms``/``baseline_p95_ms`` (ping), per endpoint ``p50_ms``, ``p95_ms``,
``n``, ``errors`` (any status but 200, or no response) and ``ratio_p95`` = p95 ÷ the baseline's
p95; the goal is every ratio ≤ :data:`GOAL_RATIO` with no error. Any error makes the command
exit 1.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tally.bench.api_server import Users, prepare, start_server
from tally.bench.common import emit, machine, median, note, percentile
from tally.cloud.errors import CloudError

GOAL_RATIO = 10.0
UNLOADED_N = 5
SESSION_COOKIE = "__Host-tally_session"


@dataclass(frozen=True)
class Target:
    """One measured request: its name in the result, its path, the role that asks."""

    name: str
    path: str
    role: str | None


PING = Target("ping", "/v1/ping", None)
TARGETS = (
    Target("portfolio", "/v1/dashboards/portfolio", "bank"),
    Target("supplier", "/v1/dashboards/supplier", "supplier"),
    Target("core", "/v1/dashboards/core", "core"),
    Target("warehouse", "/v1/dashboards/warehouse", "warehouse"),
    Target("aggregates", "/v1/aggregates", "government"),
    Target("loans", "/v1/loans?limit=50", "bank"),
    Target("receipts", "/v1/receipts", "warehouse"),
    Target("chain_blocks", "/v1/chain/blocks", "regulator"),
)


@dataclass
class Tally:
    """Latencies (ms) and status counts per target name."""

    ms: dict[str, list[float]]
    status: dict[str, Counter[int]]

    @classmethod
    def empty(cls) -> Tally:
        names = [PING.name] + [t.name for t in TARGETS]
        return cls({n: [] for n in names}, {n: Counter() for n in names})


def cycle() -> list[Target]:
    """The request cycle every client walks: ping, target 1, ping, target 2, …"""
    out: list[Target] = []
    for t in TARGETS:
        out += [PING, t]
    return out


async def login(base: str, users: Users) -> dict[str, dict[str, str]]:
    """Log every user in; role → the request headers carrying its session cookie."""
    headers: dict[str, dict[str, str]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for role, (tenant, username, password) in users.logins.items():
            body = {"tenant": tenant, "username": username, "password": password}
            r = await c.post("/v1/session", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"login of the {role} user failed: {r.status_code} {r.text}")
            secret = r.cookies.get(SESSION_COOKIE)
            if not secret:
                raise RuntimeError(f"login of the {role} user set no session cookie")
            headers[role] = {"cookie": f"{SESSION_COOKIE}={secret}"}
    return headers


async def _client(
    base: str, headers: dict[str, dict[str, str]], plan: list[Target], start: int,
    deadline: float, out: Tally,
) -> None:  # fmt: skip
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:
        i = start
        while time.perf_counter() < deadline:
            t = plan[i % len(plan)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await c.get(t.path, headers=headers.get(t.role or "", {}))
                await r.aread()
                code = r.status_code
            except httpx.HTTPError:
                code = 0
            out.ms[t.name].append((time.perf_counter() - t0) * 1000)
            out.status[t.name][code] += 1


async def unloaded(base: str, headers: dict[str, dict[str, str]]) -> Tally:
    """One client, one request at a time: a warm-up request per target, then
    :data:`UNLOADED_N` measured ones each (what a request costs with no queue)."""
    out = Tally.empty()
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        for t in (PING, *TARGETS):
            for k in range(UNLOADED_N + 1):
                t0 = time.perf_counter()
                r = await c.get(t.path, headers=headers.get(t.role or "", {}))
                if k:
                    out.ms[t.name].append((time.perf_counter() - t0) * 1000)
                out.status[t.name][r.status_code] += 1
    bad = {n: dict(s) for n, s in out.status.items() if set(s) != {200}}
    if bad:
        raise RuntimeError(f"a request without load was answered other than 200: {bad}")
    return out


async def load(
    base: str, headers: dict[str, dict[str, str]], clients: int, seconds: float
) -> tuple[Tally, float]:
    """Run ``clients`` clients for ``seconds``; the tally and the wall time."""
    out = Tally.empty()
    plan = cycle()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    await asyncio.gather(
        *(_client(base, headers, plan, k * len(plan) // clients, deadline, out)
          for k in range(clients))
    )  # fmt: skip
    return out, time.perf_counter() - t0


def _stats(ms: list[float], status: Counter[int]) -> dict[str, Any]:
    return {
        "p50_ms": round(median(ms), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "n": len(ms),
        "errors": sum(n for code, n in status.items() if code != 200),
        "status": {str(k): v for k, v in sorted(status.items())},
    }


def result_of(tally: Tally, wall_s: float, alone: Tally) -> dict[str, Any]:
    """The measured part of the result (``alone``: the requests without load)."""
    base = _stats(tally.ms[PING.name], tally.status[PING.name])
    b95 = base["p95_ms"]
    endpoints = {t.name: _stats(tally.ms[t.name], tally.status[t.name]) for t in TARGETS}
    for name, e in [(PING.name, base), *endpoints.items()]:
        e["unloaded_p50_ms"] = round(median(alone.ms[name]), 2)
    ratios = {n: round(e["p95_ms"] / b95, 2) if b95 > 0 else None for n, e in endpoints.items()}
    errors = base["errors"] + sum(e["errors"] for e in endpoints.values())
    total = base["n"] + sum(e["n"] for e in endpoints.values())
    return {
        "baseline_p50_ms": base["p50_ms"],
        "baseline_p95_ms": b95,
        "baseline": base,
        "endpoints": endpoints,
        "ratio_p95": ratios,
        "goal_ratio_p95": GOAL_RATIO,
        "goal_met": errors == 0 and all(r is not None and r <= GOAL_RATIO for r in ratios.values()),
        "errors": errors,
        "requests": total,
        "requests_per_s": round(total / wall_s, 1) if wall_s > 0 else 0.0,
    }


def api_bench(
    scale: float = 1.0, clients: int = 50, seconds: float = 30.0,
    database_url: str | None = None, json_only: bool = True, seed: int = 7,
) -> dict[str, Any]:  # fmt: skip
    """Run the benchmark; the result as a JSON-able dict (see the module)."""
    if clients < 1 or seconds <= 0:
        raise ValueError("clients must be >= 1 and seconds > 0")
    with tempfile.TemporaryDirectory(prefix="tally-bench-api-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'cloud.db'}"
        backend = sa.make_url(url).get_backend_name()
        note(json_only, f"api bench: seeding scale {scale} into {backend}")
        t = time.perf_counter()
        summary, users = prepare(url, scale, seed)
        seeded = time.perf_counter() - t
        note(json_only, f"  {summary.rows} rows in {seeded:.1f} s; starting the server")
        server = start_server(url, Path(tmp))
        try:
            base = f"http://127.0.0.1:{server.port}"
            note(json_only, f"  {clients} clients for {seconds:g} s against {base}")
            headers = asyncio.run(login(base, users))
            alone = asyncio.run(unloaded(base, headers))
            tally, wall = asyncio.run(load(base, headers, clients, seconds))
        finally:
            server.stop()
    out: dict[str, Any] = {"benchmark": "api", "simulated": True}
    out.update(result_of(tally, wall, alone))
    out.update({
        "scale": scale, "rows": summary.rows, "rows_by_kind": summary.counts,
        "seed_s": round(seeded, 2), "clients": clients, "seconds": seconds,
        "database": backend, "tenants": {r: u[0] for r, u in users.logins.items()},
        "machine": machine(),
    })  # fmt: skip
    return out


def table(r: dict[str, Any]) -> list[str]:
    """The readable table of a result."""
    lines = [
        f"API p95 under {r['clients']} clients, scale {r['scale']} ({r['rows']} rows, "
        f"{r['database']}), {r['requests_per_s']} req/s:",
        f"  {'endpoint':<14}{'alone ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'n':>8}{'errors':>8}"
        f"{'p95/ping':>10}",
    ]
    rows = [(PING.name, r["baseline"], 1.0), *((n, e, r["ratio_p95"][n]) for n, e in
                                              r["endpoints"].items())]  # fmt: skip
    for name, e, ratio in rows:
        lines.append(
            f"  {name:<14}{e['unloaded_p50_ms']:>10}{e['p50_ms']:>10}{e['p95_ms']:>10}{e['n']:>8}"
            f"{e['errors']:>8}{ratio!s:>10}"
        )
    verdict = "met" if r["goal_met"] else "NOT met"
    lines.append(f"goal: every p95 <= {GOAL_RATIO:g} x ping's, no errors: {verdict}")
    return lines


def run_api_bench(
    scale: float, clients: int, seconds: float, json_out: bool, database_url: str | None
) -> int:
    """The ``tally bench api`` command: 1 when any request was answered with an error (or
    the server did not start, the database was not empty, or a login or a request without
    load failed)."""
    try:
        r = api_bench(scale, clients, seconds, database_url, json_only=json_out)
    except (RuntimeError, CloudError) as exc:  # e.g. a database that is not empty
        print(f"tally bench api: {exc}", file=sys.stderr)
        return 1
    emit(r, json_out, table(r))
    return 1 if r["errors"] else 0

"""Smoke test of ``tally bench ingest``: tiny sizes, JSON shape, positive numbers.

The PostgreSQL case needs the server at 127.0.0.1:5432 (skipped without it, failed when
``CI=true``); the benchmark's throwaway databases must be gone afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa
from bench_support import check_machine, positive, round_trips_as_json, unavailable

from tally.bench.ingest import PG_ADMIN_URL, ingest_bench, pg_available

BACKEND_KEYS = {"ingest_per_s", "plain_per_s", "ratio", "goal", "goal_met", "stored"}


def _check_backend(b: dict[str, object], n: int) -> None:
    assert set(b) >= BACKEND_KEYS
    positive(b["ingest_per_s"], b["plain_per_s"], b["ratio"])
    assert b["stored"] == n and b["plain_stored"] == n
    assert b["goal"] == 0.5


def test_ingest_bench_sqlite() -> None:
    r = ingest_bench("intl", 200, batch=50, postgres=False, sqlite=True)
    assert r["benchmark"] == "ingest" and r["n"] == 200
    _check_backend(r["backends"]["sqlite"], 200)
    check_machine(r)
    round_trips_as_json(r)


def _bench_databases() -> set[str]:
    eng = sa.create_engine(PG_ADMIN_URL)
    try:
        with eng.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'tally_bench_%'")
            )
            return {r[0] for r in rows}
    finally:
        eng.dispose()


def test_ingest_bench_postgres_drops_its_databases() -> None:
    why = pg_available()
    if why is not None:
        unavailable("PostgreSQL", why)
    before = _bench_databases()
    r = ingest_bench("intl", 200, batch=100, postgres=True, sqlite=False)
    _check_backend(r["backends"]["postgresql"], 200)
    assert r["ratio"] == r["backends"]["postgresql"]["ratio"]
    assert _bench_databases() <= before

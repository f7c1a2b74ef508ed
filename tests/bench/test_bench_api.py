"""Smoke test of ``tally bench api``: the simulated read model at scale 0.01, a server
process, four clients for two seconds; the JSON's shape and that every request was answered
200 (never its speed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.api import GOAL_RATIO, TARGETS, api_bench, run_api_bench, table
from tally.bench.api_server import prepare

ENDPOINTS = {t.name for t in TARGETS}


def test_api_bench_small() -> None:
    r = api_bench(scale=0.01, clients=4, seconds=2.0)
    assert r["simulated"] is True and r["benchmark"] == "api"
    assert r["scale"] == 0.01 and r["clients"] == 4 and r["database"] == "sqlite"
    assert set(r["endpoints"]) == ENDPOINTS == set(r["ratio_p95"])
    assert r["endpoints"].keys() >= {"portfolio", "supplier", "core", "warehouse",
                                     "aggregates", "loans", "receipts", "chain_blocks"}  # fmt: skip
    for name, e in r["endpoints"].items():
        assert set(e) == {"p50_ms", "p95_ms", "n", "errors", "status", "unloaded_p50_ms"}
        positive(e["unloaded_p50_ms"])
        assert e["errors"] == 0 and e["status"] == {"200": e["n"]}, (name, e)
        positive(e["n"], e["p50_ms"], e["p95_ms"], r["ratio_p95"][name])
        assert e["p95_ms"] >= e["p50_ms"]
        assert r["ratio_p95"][name] == pytest.approx(e["p95_ms"] / r["baseline_p95_ms"], abs=0.01)
    base = r["baseline"]
    assert base["status"] == {"200": base["n"]} and base["n"] >= len(ENDPOINTS)
    positive(r["baseline_p50_ms"], r["baseline_p95_ms"], r["rows"], r["requests_per_s"])
    assert r["errors"] == 0
    assert r["requests"] == base["n"] + sum(e["n"] for e in r["endpoints"].values())
    assert r["goal_met"] == all(x <= GOAL_RATIO for x in r["ratio_p95"].values())
    assert r["rows"] == sum(r["rows_by_kind"].values()) and r["rows_by_kind"]["org"] == 394
    assert set(r["tenants"]) == {"bank", "supplier", "core", "warehouse", "regulator",
                                 "government"}  # fmt: skip
    check_machine(r)
    round_trips_as_json(r)
    lines = table(r)
    assert any(line.split()[0] == "portfolio" for line in lines[2:-1])


def test_api_bench_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="clients"):
        run_api_bench(0.01, 0, 1.0, True, None)


def test_api_bench_refuses_a_database_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    prepare(url, 0.002)
    assert run_api_bench(0.002, 1, 1.0, True, url) == 1
    err = capsys.readouterr().err
    assert err.startswith("tally bench api: bulk_load org: nothing loaded"), err

"""Smoke test of ``tally bench edge``: tiny sizes, JSON shape, positive numbers."""

from __future__ import annotations

import json

import pytest
from bench_support import check_machine, positive, round_trips_as_json
from typer.testing import CliRunner

from tally.bench.edge import edge_bench
from tally.cli import app

REQUIRED = {"verify_ceiling_per_s", "pipeline_per_s", "ratio", "suite", "n", "goal", "goal_met"}


def test_edge_bench_intl_with_scaling() -> None:
    r = edge_bench("intl", 200, devices=20, repeats=1, scaling=True)
    assert set(r) >= REQUIRED
    assert r["suite"] == "intl" and r["n"] == 200 and r["goal"] == 0.8
    positive(r["verify_ceiling_per_s"], r["pipeline_per_s"], r["ratio"])
    assert r["goal_met"] == (r["ratio"] >= 0.8)
    assert r["pipeline_check"]["accepted"] == 200
    assert r["pipeline_check"]["rejected"] == {}
    sc = r["scaling"]
    positive(
        sc["pipeline_1_proc_per_s"],
        sc["pipeline_2_proc_per_s"],
        sc["verify_1_proc_per_s"],
        sc["verify_2_proc_per_s"],
        sc["scaling_1_to_2"],
        sc["ceiling_scaling_1_to_2"],
    )
    assert r["scaling_1_to_2"] == sc["scaling_1_to_2"] and sc["goal"] == 1.6
    check_machine(r)
    round_trips_as_json(r)


def test_edge_bench_gm() -> None:
    r = edge_bench("gm", 100, devices=10, repeats=1, scaling=False)
    assert r["suite"] == "gm" and r["n"] == 100
    positive(r["verify_ceiling_per_s"], r["pipeline_per_s"], r["ratio"])
    assert r["pipeline_check"]["accepted"] == 100


def test_edge_bench_cli_prints_json_only() -> None:
    res = CliRunner().invoke(app, ["bench", "edge", "--json", "--n", "100"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r) >= REQUIRED and r["n"] == 100


def test_edge_bench_unknown_suite() -> None:
    with pytest.raises(SystemExit):
        from tally.bench.edge import run_edge_bench

        run_edge_bench("nope", 100, True)

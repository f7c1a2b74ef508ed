"""Smoke test of ``tally bench graph``: tiny scales, the JSON's shape, positive numbers, and
detection scored against the planted (synthetic) truth."""

from __future__ import annotations

import pytest
from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.graph import PATTERNS, parse_scales, run


def test_graph_bench_tiny() -> None:
    r = run(scales=(0.02, 0.01), seed=5, repeat=1)
    assert r["benchmark"] == "graph" and r["synthetic"] is True
    assert list(r["timings"]) == ["0.01", "0.02"]
    for key, s in r["timings"].items():
        assert s["scale"] == float(key)
        positive(
            s["firms"],
            s["records"],
            s["edges"],
            s["generate_s"],
            s["build_s"],
            s["circles_s"],
            s["exposure_s"],
            s["features_s"],
            s["calibrate_s"],
            s["graph_mb"],
            s["peak_rss_mb"],
            *s["per_firm_us"].values(),
        )
        assert s["firms_with_exposure"] > 0 and s["circles_found"] > 0
        assert set(s["detection"]) == set(PATTERNS)
    assert r["timings"]["0.02"]["firms"] > r["timings"]["0.01"]["firms"]
    g = r["growth"]
    assert (g["from_scale"], g["to_scale"], g["goal"]) == (0.01, 0.02, 2.0)
    assert set(g["per_firm_ratio"]) == {"build", "circles", "exposure"}
    assert g["goal_met"] == all(v <= 2.0 for v in g["per_firm_ratio"].values())
    assert set(r["detection"]) == set(PATTERNS)
    for v in r["detection"].values():
        assert set(v) == {"precision", "recall"}
        assert 0 <= v["precision"] <= 1 and 0 <= v["recall"] <= 1
    assert r["detection"]["guarantee_circles"] == {"precision": 1.0, "recall": 1.0}
    assert r["detection"]["circular_trades"] == {"precision": 1.0, "recall": 1.0}
    assert r["detection_goal_met"] == all(min(v.values()) >= 0.95 for v in r["detection"].values())
    assert (
        0.5 < r["scorecard_auc"] <= 1
        and r["scorecard_auc"] == r["timings"]["0.02"]["scorecard"]["auc_held_out"]
    )
    assert "synthetic" in r["params"]["data"]
    check_machine(r)
    round_trips_as_json(r)


def test_bad_parameters_are_refused() -> None:
    assert parse_scales("0.1,0.5,1") == (0.1, 0.5, 1.0)
    with pytest.raises(ValueError, match="scales must be numbers separated by commas, got 'a'"):
        parse_scales("0.1,a")
    with pytest.raises(ValueError, match=r"scales must be in \(0, 10.0\]"):
        run(scales=(0.0,))
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        run(scales=(0.01,), repeat=0)

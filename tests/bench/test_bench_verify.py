"""Smoke test of ``tally bench verify``: tiny sizes, JSON shape, positive numbers."""

from __future__ import annotations

from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.verify import make_bundles, verify_bench
from tally.verify.verifier import verify_bundle


def test_verify_bench_both_suites() -> None:
    r = verify_bench(("intl", "gm"), bundles=3, rounds=2, batch=10)
    assert set(r["suites"]) == {"intl", "gm"}
    for s in r["suites"].values():
        positive(s["median_ms"], s["p95_ms"], s["min_ms"], s["bundle_bytes"])
        assert s["calls"] == 6
        assert s["p95_ms"] >= s["median_ms"] >= s["min_ms"]
        assert s["goal_met"] == (s["median_ms"] < 2.0)
    assert r["goal_met"] == all(s["goal_met"] for s in r["suites"].values())
    check_machine(r)
    round_trips_as_json(r)


def test_benchmark_bundles_are_valid_and_distinct() -> None:
    bundles, trust = make_bundles("intl", 4, 8)
    assert len(set(bundles)) == 4
    assert all(verify_bundle(b, trust).ok for b in bundles)

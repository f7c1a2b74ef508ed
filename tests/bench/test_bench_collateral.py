"""Smoke test of ``tally bench collateral``: tiny sizes, JSON shape, positive numbers."""

from __future__ import annotations

from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.collateral import build, run


def test_collateral_bench_tiny() -> None:
    r = run(sizes=(40, 200), steps=2, removals=5)
    assert [s["loans"] for s in r["sizes"]] == [40, 200]
    for s in r["sizes"]:
        positive(s["per_loan_us"], s["tick_ms"], s["ticks"], s["loans_per_tick"], s["build_s"])
        assert s["ticks"] == 2 * 8  # one tick per commodity per step
    per = [s["per_loan_us"] for s in r["sizes"]]
    assert r["flatness"] == round(max(per) / min(per), 3)
    assert r["flatness"] >= 1
    assert r["goal_met"] == (r["flatness"] <= 2.0)
    for key in ("removal_to_alert_us", "drop_reading_to_alert_us"):
        lat = r[key]
        positive(lat["p50"], lat["p95"])
        assert lat["p95"] >= lat["p50"]
        assert lat["n"] == 5
    check_machine(r)
    round_trips_as_json(r)


def test_benchmark_portfolio_is_measured_priced_and_covered() -> None:
    mon, _, locations = build(100, seed=2)
    assert len(mon.loan_ids()) == 100
    assert len(locations) == 100 // 8
    coverages = [mon.coverage(lid) for lid in mon.loan_ids()]
    assert all(c is not None and 1.5 <= c <= 1.8 for c in coverages), coverages
    assert {mon.state(lid) for lid in mon.loan_ids()} == {"ok"}

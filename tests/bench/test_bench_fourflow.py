"""Smoke test of ``tally bench fourflow``: tiny sizes, JSON shape, positive numbers, and every
planted fault found by exactly its rule."""

from __future__ import annotations

from collections import Counter

import pytest
from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.fourflow import FAULTS, generate, run, run_fourflow_bench


def test_fourflow_bench_tiny() -> None:
    r = run(sizes=(600, 3000), batch=10, anomalies=0.2)
    assert r["benchmark"] == "fourflow"
    docs = [s["documents"] for s in r["sizes"]]
    assert 600 <= docs[0] < 610 and 3000 <= docs[1] < 3010
    for s in r["sizes"]:
        positive(s["documents"], s["trades"], s["per_trade_us"], s["trades_per_s"],
                 s["judged_per_trade"], s["report_us"], s["feed_s"], s["build_s"])  # fmt: skip
        assert s["judged_per_trade"] >= 1
        assert 5 <= s["documents"] / s["trades"] <= 9
    per = [s["per_trade_us"] for s in r["sizes"]]
    assert r["flatness"] == round(max(per) / min(per), 3) and r["flatness"] >= 1
    assert r["goal_flatness"] == 2.0 and r["goal_met"] == (r["flatness"] <= 2.0)
    d = r["detected"]
    assert d["planted"] > 0 and d["pending"] == 0
    assert d["precision"] == 1.0 and d["recall"] == 1.0
    assert d["false_positive"] == 0 and d["false_negative"] == 0
    assert d["exact_rule"] == d["planted"] == d["true_positive"] == d["found"]
    by_rule = d["by_size"]["3000"]["by_rule"]
    assert set(by_rule) == set(FAULTS)
    assert all(v["planted"] > 0 and v["found"] == v["planted"] for v in by_rule.values())
    assert r["params"]["documents"] == "synthetic views, unsigned"
    check_machine(r)
    round_trips_as_json(r)


def test_generated_book_is_seeded_and_shaped() -> None:
    a, b = generate(2000, seed=3), generate(2000, seed=3)
    assert a.docs == b.docs and a.planted == b.planted
    assert generate(2000, seed=4).docs != a.docs
    kinds = Counter(d.kind for d in a.docs)
    assert kinds["contract"] == a.trades
    assert a.trades <= kinds["invoice"] <= 3 * a.trades
    assert kinds["waybill"] == kinds["warehouse_in"] == kinds["iot_movement"] == a.trades
    assert len({d.trade for d in a.docs}) == a.trades
    clean = generate(2000, seed=3, anomalies=0.0)
    assert clean.planted == {}


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"sizes \(\) must be document counts >= 100"):
        run(sizes=())
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        run(sizes=(100,), batch=0)
    with pytest.raises(ValueError, match=r"anomalies must be a share in \[0, 0.5\], got 0.9"):
        run(sizes=(100,), anomalies=0.9)


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_fourflow_bench((300,), json_only=True) == 0
    out = capsys.readouterr()
    assert '"benchmark": "fourflow"' in out.out and out.err == ""

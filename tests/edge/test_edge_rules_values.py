"""Value rules: threshold, rate_of_change and tamper fire exactly at their limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from edge_rules_support import MIN, Feed, det, engine, kinds

COLD: dict[str, Any] = {
    "id": "cold",
    "type": "threshold",
    "severity": "critical",
    "profile": "temp_humidity",
    "quantity": "temperature",
    "min": "2",
    "max": "8",
}


def temps(values: list[str], rule: dict[str, Any], step: int = MIN) -> list[list[str]]:
    e, f = engine(rule), Feed()
    return [
        kinds(e.observe(f.obs("th-1", "temp_humidity", i * step, {"temperature": v})))
        for i, v in enumerate(values)
    ]


def test_threshold_limits_are_in_range() -> None:
    assert temps(["2", "8", "2.00", "8.00"], COLD) == [[], [], [], []]
    assert temps(["8.01"], COLD) == [["out_of_range"]]
    assert temps(["1.99"], COLD) == [["out_of_range"]]


def test_threshold_fires_once_per_excursion_then_clears() -> None:
    got = temps(["5", "9", "10", "9", "7", "9"], COLD)
    assert got == [[], ["out_of_range"], [], [], ["out_of_range_cleared"], ["out_of_range"]]


def test_threshold_detail_and_severity() -> None:
    e, f = engine(COLD), Feed()
    o1 = f.obs("th-1", "temp_humidity", 1000, {"temperature": "1.5"})
    (fire,) = e.observe(o1)
    assert (fire.rule, fire.sev, fire.t, fire.devs, fire.refs) == (
        "cold",
        "critical",
        1000,
        ("th-1",),
        (o1.env_hash,),
    )
    d = det(fire)
    assert d == {
        "quantity": "temperature",
        "value": Decimal("1.5"),
        "unit": "Cel",
        "side": "below",
        "min": Decimal(2),
        "max": Decimal(8),
        "since_ms": 1000,
        "duration_ms": 0,
    }
    assert [k for k, _ in fire.detail] == sorted(d)
    (clear,) = e.observe(f.obs("th-1", "temp_humidity", 5000, {"temperature": "3"}))
    assert clear.sev == "info" and det(clear)["worst"] == Decimal("1.5")


def test_threshold_for_ms_boundary() -> None:
    rule = {**COLD, "for_ms": 10 * MIN}
    # out at 0, 5, 10 min: fires when the excursion has lasted exactly for_ms
    assert temps(["9", "9", "9", "9"], rule, 5 * MIN) == [[], [], ["out_of_range"], []]
    # back in range at 5 min: a short excursion fires nothing, not even "cleared"
    assert temps(["9", "7", "9", "9"], rule, 5 * MIN) == [[], [], [], []]


def test_threshold_hysteresis_and_max_only() -> None:
    rule = {**COLD, "hysteresis": "0.5"}
    assert temps(["9", "7.8", "7.5"], rule) == [["out_of_range"], [], ["out_of_range_cleared"]]
    hot = {"id": "hot", "type": "threshold", "quantity": "temperature", "max": "30"}
    assert temps(["-40", "30", "30.1"], hot) == [[], [], ["out_of_range"]]


def test_threshold_ignores_other_devices_and_quantities() -> None:
    e, f = engine(COLD), Feed()
    assert e.observe(f.obs("lc-1", "load_cell", 0, {"temperature": "99"})) == []
    assert e.observe(f.obs("th-1", "temp_humidity", 0, {"humidity": "99"})) == []
    assert e.observe(f.obs("th-1", "temp_humidity", 0, heartbeat=True)) == []


FAST: dict[str, Any] = {
    "id": "fast",
    "type": "rate_of_change",
    "devices": ["lc-1"],
    "quantity": "weight",
    "max_per_min": "2",
    "direction": "down",
}


def weights(values: list[str], rule: dict[str, Any], step: int = 30_000) -> list[list[str]]:
    e, f = engine(rule), Feed()
    return [
        kinds(e.observe(f.obs("lc-1", "load_cell", i * step, {"weight": v})))
        for i, v in enumerate(values)
    ]


def test_rate_limit_is_exclusive() -> None:
    # 30 s steps: a 1 t fall is exactly 2 t/min (no firing), 1.001 t is above
    assert weights(["10", "9", "8"], FAST) == [[], [], []]
    assert weights(["10", "8.999"], FAST) == [[], ["rate_exceeded"]]


def test_rate_direction_and_rearm() -> None:
    assert weights(["10", "12"], FAST) == [[], []]
    both = {**FAST, "direction": "both"}
    assert weights(["10", "12"], both) == [[], ["rate_exceeded"]]
    assert weights(["20", "15", "10", "10", "5"], FAST) == [
        [],
        ["rate_exceeded"],
        [],
        [],
        ["rate_exceeded"],
    ]


def test_rate_detail_is_exact() -> None:
    e, f = engine(FAST), Feed()
    a = f.obs("lc-1", "load_cell", 0, {"weight": "10"})
    b = f.obs("lc-1", "load_cell", 45_000, {"weight": "8"})
    e.observe(a)
    (fire,) = e.observe(b)
    assert fire.refs == (a.env_hash, b.env_hash)
    d = det(fire)
    assert d["rate_per_min"] == Decimal("-2.666667") and d["dt_ms"] == 45_000
    assert not any(isinstance(v, float) for v in d.values())


def test_rate_ignores_out_of_order_readings() -> None:
    e, f = engine(FAST), Feed()
    e.observe(f.obs("lc-1", "load_cell", 60_000, {"weight": "10"}))
    assert e.observe(f.obs("lc-1", "load_cell", 60_000, {"weight": "0"})) == []
    assert e.observe(f.obs("lc-1", "load_cell", 0, {"weight": "0"})) == []
    assert kinds(e.observe(f.obs("lc-1", "load_cell", 90_000, {"weight": "8"}))) == [
        "rate_exceeded"
    ]


def test_tamper_quantity_latches() -> None:
    e, f = engine({"id": "tmp", "type": "tamper", "profile": "door_tamper"}), Feed()
    seq = ["0", "1", "1", "0", "1"]
    got = [
        kinds(e.observe(f.obs("door-1", "door_tamper", i, {"tamper": v})))
        for i, v in enumerate(seq)
    ]
    assert got == [[], ["tamper"], [], [], ["tamper"]]
    assert e.rules[0].sev == "critical"


def test_tamper_label_fires_every_event() -> None:
    e, f = engine({"id": "tl", "type": "tamper", "label": "event"}), Feed()
    labels = ["door_open", "tamper", "tamper", "tamper_reset"]
    got = [
        kinds(e.observe(f.obs("door-1", "door_tamper", i, labels={"event": ev})))
        for i, ev in enumerate(labels)
    ]
    assert got == [[], ["tamper"], ["tamper"], []]

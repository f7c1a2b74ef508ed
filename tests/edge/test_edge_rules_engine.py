"""The engine: routing by device and profile, site, determinism and cost per reading."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

import pytest
from edge_rules_support import MIN, Feed, engine, kinds

from tally.edge.rules import Firing, Observation, RuleEngine

RULES: list[dict[str, Any]] = [
    {
        "id": "cold",
        "type": "threshold",
        "profile": "temp_humidity",
        "quantity": "temperature",
        "max": "8",
        "min": "2",
    },
    {
        "id": "lc1-fast",
        "type": "rate_of_change",
        "devices": ["lc-1"],
        "quantity": "weight",
        "max_per_min": "1",
    },
    {
        "id": "both",
        "type": "threshold",
        "devices": ["th-1"],
        "profile": "temp_humidity",
        "quantity": "temperature",
        "max": "30",
    },
    {"id": "live", "type": "offline", "timeout_ms": 5 * MIN, "profile": "load_cell"},
    {
        "id": "a1",
        "type": "plausibility",
        "location": "A1",
        "devices": ["lc-1"],
        "window_ms": 5 * MIN,
    },
]


def test_rule_ids_in_config_order() -> None:
    assert engine(*RULES).rule_ids() == ["cold", "lc1-fast", "both", "live", "a1"]


def test_rules_meet_only_their_devices_in_config_order() -> None:
    e, f = engine(*RULES), Feed()
    fired = e.observe(f.obs("th-1", "temp_humidity", 0, {"temperature": "31"}))
    assert [x.rule for x in fired] == ["cold", "both"]  # "both" once, though it matches twice
    assert e.observe(f.obs("th-9", "gps_tracker", 0, {"temperature": "99"})) == []
    assert e.observe(f.obs("lc-2", "load_cell", 0, {"weight": "1"})) == []
    assert e.observe(f.obs("lc-2", "load_cell", 1000, {"weight": "100"})) == []
    e.observe(f.obs("lc-1", "load_cell", 0, {"weight": "1"}))
    assert kinds(e.observe(f.obs("lc-1", "load_cell", 1000, {"weight": "100"}))) == [
        "rate_exceeded"
    ]


def test_observations_of_another_site_are_not_for_this_engine() -> None:
    e = engine(*RULES)
    other = Feed(site="S2").obs("th-1", "temp_humidity", 0, {"temperature": "99"})
    assert e.observe(other) == []


def test_authorise_release_checks_its_arguments() -> None:
    e = engine(*RULES)
    for args in [
        ("A1", Decimal(0), (), 0, 1, "R"),
        ("A1", Decimal("NaN"), (), 0, 1, "R"),
        ("A1", Decimal(1), (), 2, 1, "R"),
        ("A1", Decimal(1), (), 0, 1, ""),
    ]:
        with pytest.raises(ValueError):
            e.authorise_release(*args)
    e.authorise_release("Z9", Decimal(1), ("L",), 0, 1, "R")  # no rule for Z9: nothing to do


def _story(seed: int) -> list[tuple[str, object]]:
    """Random readings, heartbeats, releases and ticks, with everything that fired."""
    rng = random.Random(seed)
    f = Feed()
    events: list[tuple[str, object]] = []
    t = 0
    for _ in range(400):
        t += rng.randint(1_000, 60_000)
        roll = rng.random()
        if roll < 0.1:
            events.append(("tick", t))
        elif roll < 0.12:
            events.append(("release", (Decimal(rng.randint(1, 9)), t)))
        else:
            dev, profile, q, v = rng.choice(
                [
                    ("th-1", "temp_humidity", "temperature", str(rng.randint(0, 12))),
                    ("th-2", "temp_humidity", "temperature", str(rng.randint(0, 35))),
                    ("lc-1", "load_cell", "weight", str(40 - rng.randint(0, 30))),
                ]
            )
            events.append(("obs", f.obs(dev, profile, t, {q: v}, received=t)))
    return events


def _play(events: list[tuple[str, object]]) -> list[Firing]:
    e = RuleEngine.from_config(RULES, "S1")
    out: list[Firing] = []
    for i, (what, arg) in enumerate(events):
        if what == "tick":
            assert isinstance(arg, int)
            out += e.tick(arg)
        elif what == "release":
            assert isinstance(arg, tuple)
            q, t = arg
            e.authorise_release("A1", q, ("L",), t, t + 10 * MIN, f"R{i}")
        else:
            assert isinstance(arg, Observation)
            out += e.observe(arg)
    return out


def test_same_observations_same_firings() -> None:
    events = _story(5)
    first = _play(events)
    assert len({x.rule for x in first}) >= 4  # the story exercises most rules
    assert _play(events) == first
    assert _play(_story(6)) != first


def test_unmatched_readings_are_cheap() -> None:
    e, f = engine(*RULES), Feed()
    obs = [f.obs(f"cam-{i % 50}", "camera_ai", i, {"object_count": 1}) for i in range(20_000)]
    start = time.perf_counter()
    for o in obs:
        e.observe(o)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{elapsed / len(obs) * 1e6:.1f} µs per unmatched reading"

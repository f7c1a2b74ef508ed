"""Plausibility: weight drops at a location against RFID out-scans and authorised releases."""

from __future__ import annotations

from decimal import Decimal

import pytest
from edge_rules_support import MIN, Feed, det, engine, kinds

from tally.edge.rules import Firing, RuleEngine

T0 = 1_710_000_000_000
WINDOW = 10 * MIN
RULE = {
    "id": "a1",
    "type": "plausibility",
    "location": "A1",
    "devices": ["lc-a1"],
    "tolerance": "0.2",
    "window_ms": WINDOW,
}


class Warehouse:
    """A load cell reporting every 5 s and a gate, fed into one engine."""

    def __init__(self, rule: dict[str, object] = RULE, start_t: str = "40.000") -> None:
        self.e: RuleEngine = engine(rule)
        self.f = Feed()
        self.stock = Decimal(start_t)
        self.t = T0
        self.fired: list[Firing] = []

    def run_until(self, t_end: int, labels: dict[str, str] | None = None) -> None:
        while self.t < t_end:
            self.t += 5_000
            o = self.f.obs("lc-a1", "load_cell", self.t, {"weight": str(self.stock)}, labels)
            self.fired += self.e.observe(o)

    def move(self, delta: str) -> None:
        self.stock += Decimal(delta)

    def scan(self, lot: str, direction: str = "out", **labels: str) -> None:
        o = self.f.obs(
            "gate-1",
            "rfid_gate",
            self.t,
            {"rssi": "-57", "read_count": 9},
            {"tag": f"urn:epc:{lot}", "direction": direction, "lot": lot, **labels},
        )
        self.fired += self.e.observe(o)


def test_a_release_with_out_scans_explains_the_drop() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.e.authorise_release(
        "A1", Decimal("10.000"), ("LOT-1", "LOT-2"), w.t, w.t + 3_600_000, "REL-1"
    )
    w.run_until(w.t + 30_000)
    w.move("-6.000")  # LOT-1 leaves the platform ...
    w.run_until(w.t + 30_000)
    w.scan("LOT-1", release="REL-1")  # ... and is scanned out at the dock
    w.run_until(w.t + 90_000)
    w.move("-4.000")
    w.run_until(w.t + 30_000)
    w.scan("LOT-2", release="REL-1")
    w.run_until(w.t + 3 * WINDOW)
    w.fired += w.e.tick(w.t + 3 * WINDOW)
    assert w.fired == []


def test_b_night_removal_without_scans_fires_critical_with_numbers() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    drop_at = w.t + 5_000
    w.move("-4.000")
    w.run_until(drop_at + WINDOW - 5_000)
    assert w.fired == []  # still within the window: scans could yet arrive
    w.run_until(drop_at + WINDOW)
    (fire,) = w.fired
    assert (fire.rule, fire.kind, fire.sev, fire.t, fire.devs) == (
        "a1",
        "unexplained_weight_drop",
        "critical",
        drop_at + WINDOW,
        ("lc-a1",),
    )
    assert len(fire.refs) == 2  # the reading before the drop and the one showing it
    d = det(fire)
    assert d["drop_t"] == Decimal("4.000")
    assert d["explained_rfid_t"] == 0 and d["explained_release_t"] == 0
    assert d["unexplained_t"] == Decimal("4.000") and d["tolerance_t"] == Decimal("0.2")
    assert (d["location"], d["scans_out"], d["releases"]) == ("A1", 0, "")
    assert (d["from_ms"], d["to_ms"], d["window_ms"]) == (drop_at, drop_at, WINDOW)
    assert not any(isinstance(v, float) for v in d.values())
    w.run_until(w.t + 3 * WINDOW)
    assert len(w.fired) == 1  # once per episode


def test_c_partial_explanation_by_release_and_scan() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.e.authorise_release("A1", Decimal("5"), ("LOT-1",), w.t, w.t + 3_600_000, "REL-2")
    w.move("-8.000")  # the released 5 t and 3 t more
    w.run_until(w.t + 60_000)
    w.scan("LOT-1")  # no release label: the lot names the release
    w.run_until(w.t + 2 * WINDOW)
    (fire,) = w.fired
    d = det(fire)
    assert (d["drop_t"], d["explained_rfid_t"], d["explained_release_t"], d["unexplained_t"]) == (
        Decimal(8),
        Decimal(5),
        Decimal(5),
        Decimal(3),
    )
    assert d["scans_out"] == 1 and d["releases"] == "REL-2"
    assert set(fire.devs) == {"lc-a1", "gate-1"} and len(fire.refs) == 3


def test_c_partial_explanation_by_scan_quantity_only() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.move("-4.000")
    w.run_until(w.t + 60_000)
    w.scan("LOT-9", location="A1", weight="2.5")  # the gate knows the lot's weight
    w.run_until(w.t + 2 * WINDOW)
    (fire,) = w.fired
    d = det(fire)
    assert (d["explained_rfid_t"], d["explained_release_t"], d["unexplained_t"]) == (
        Decimal("2.5"),
        0,
        Decimal("1.5"),
    )


@pytest.mark.parametrize(("drop", "fires"), [("-4.200", False), ("-4.201", True)])
def test_tolerance_boundary(drop: str, fires: bool) -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.e.authorise_release("A1", Decimal("4"), ("LOT-1",), w.t, w.t + 3_600_000, "REL-3")
    w.move(drop)
    w.run_until(w.t + 2 * WINDOW)
    assert kinds(w.fired) == (["unexplained_weight_drop"] if fires else [])


def test_release_outside_validity_or_used_up_explains_nothing() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    valid = (w.t + WINDOW, w.t + 4 * WINDOW)
    w.e.authorise_release("A1", Decimal("5"), ("LOT-1",), *valid, "R")
    w.move("-5.000")  # too early for the release
    w.run_until(w.t + 2 * WINDOW)
    assert det(w.fired[0])["explained_release_t"] == 0
    w.move("-5.000")  # now inside its validity: explained
    w.run_until(w.t + 2 * WINDOW)
    assert len(w.fired) == 1
    w.e.authorise_release("A1", Decimal("5"), ("LOT-1",), *valid, "R")  # again: a no-op
    with pytest.raises(ValueError, match="other terms"):
        w.e.authorise_release("A1", Decimal("6"), ("LOT-1",), 0, 1, "R")


def test_release_quantity_is_used_up() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.e.authorise_release("A1", Decimal("5"), ("LOT-1",), w.t, w.t + 10 * WINDOW, "R")
    w.move("-5.000")
    w.run_until(w.t + 2 * WINDOW)
    w.move("-5.000")
    w.run_until(w.t + 2 * WINDOW)
    (fire,) = w.fired
    assert det(fire)["unexplained_t"] == Decimal(5)


def test_scans_of_other_locations_and_in_scans_explain_nothing() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.e.authorise_release("B2", Decimal("5"), ("LOT-1",), w.t, w.t + 3_600_000, "RB")
    w.move("-5.000")
    w.run_until(w.t + 60_000)
    w.scan("LOT-1")  # a lot of location B2
    w.scan("LOT-7", location="B2", weight="5")
    w.scan("LOT-8", direction="in", location="A1", weight="5")
    w.run_until(w.t + 2 * WINDOW)
    (fire,) = w.fired
    assert det(fire)["scans_out"] == 0 and det(fire)["unexplained_t"] == Decimal(5)


def test_noise_unstable_readings_and_rises_do_not_count() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.move("-0.040")  # within min_delta
    w.run_until(w.t + MIN)
    w.move("-3")
    w.run_until(w.t + MIN, labels={"stable": "0"})  # settling: ignored ...
    w.move("3")  # ... and back before it was ever stable
    w.run_until(w.t + 2 * WINDOW, labels={"stable": "1"})
    w.move("10")  # goods arrive
    w.run_until(w.t + 2 * WINDOW)
    assert w.fired == []


def test_tick_closes_an_episode_when_readings_stop() -> None:
    w = Warehouse()
    w.run_until(T0 + MIN)
    w.move("-4")
    w.run_until(w.t + 5_000)  # the last reading shows the drop
    assert w.e.tick(w.t + WINDOW - 1) == []
    (fire,) = w.e.tick(w.t + WINDOW)
    assert fire.t == w.t + WINDOW
    assert w.e.tick(w.t + 10 * WINDOW) == []


def test_load_cells_by_profile_need_the_location_label() -> None:
    rule = {
        "id": "b2",
        "type": "plausibility",
        "location": "B2",
        "profile": "load_cell",
        "window_ms": WINDOW,
    }
    e, f = engine(rule), Feed()
    for loc in ("B2", "C3"):
        e.observe(f.obs(f"lc-{loc}", "load_cell", T0, {"weight": "10"}, {"location": loc}))
        e.observe(f.obs(f"lc-{loc}", "load_cell", T0 + 5_000, {"weight": "5"}, {"location": loc}))
    fired = e.tick(T0 + 5_000 + WINDOW)
    assert [x.devs for x in fired] == [("lc-B2",)]

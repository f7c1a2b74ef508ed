"""The simulated warehouse site: sensors agree physically; incidents break it on purpose."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.device.sim import (
    INCIDENT_KINDS,
    PROFILES,
    SIM_LABEL,
    Incident,
    Sample,
    SimClock,
    Site,
    build_demo_site,
    demo_incidents,
    local_ms,
)
from tally.device.sim.incidents import (
    CLOCK_SKEW,
    COOLING_FAILURE,
    DEVICE_UNPLUGGED,
    GOODS_REMOVED_AT_NIGHT,
    make_incident,
)

OFFSET = 480
NOON = local_ms(2024, 3, 12, 12, 0, OFFSET)  # a Tuesday
DAY_MS = 86_400_000


def run(site: Site, start: int, wall_s: float = 60) -> list[tuple[int, list[Sample]]]:
    return list(site.run(start, wall_s))


def flat(ticks: list[tuple[int, list[Sample]]]) -> list[Sample]:
    return [s for _, batch in ticks for s in batch]


def demo_run(seed: int = 7) -> tuple[Site, list[Incident], list[tuple[int, list[Sample]]]]:
    site = build_demo_site(seed)
    incidents = demo_incidents(site, NOON, 60 * int(site.time_scale * 1000))
    site.schedule(incidents)
    return site, incidents, run(site, NOON)


def test_demo_site_has_a_few_dozen_devices_across_all_profiles() -> None:
    site = build_demo_site(1)
    assert len(site.devices) == 30
    assert {m.profile for m in site.devices.values()} == set(PROFILES)
    assert len(build_demo_site(1, n_devices=40).devices) == 40
    for loc, cell_id in site.locations.items():
        assert site.devices[cell_id].profile in ("load_cell", "weighbridge")
        assert site.stock_t(loc) == sum(lot.quantity_t for lot in site.lots_in(loc))
    with pytest.raises(ValueError):
        build_demo_site(1, n_devices=5)


def test_demo_run_is_deterministic_and_labelled() -> None:
    _, _, a = demo_run(3)
    _, _, b = demo_run(3)
    _, _, c = demo_run(4)
    assert a == b
    assert a != c
    samples = flat(a)
    assert len(samples) > 1000
    assert all(SIM_LABEL in s.labels for s in samples)
    assert all(isinstance(m.value, Decimal) for s in samples for m in s.measurements)


def test_load_cells_match_ground_truth() -> None:
    site, _incidents, ticks = demo_run(5)
    checked = 0
    for s in flat(ticks):
        loc = s.label("location")
        if loc in site.locations and s.label("stable") == "1":
            w = s.value("weight")
            assert w is not None
            assert abs(w - site.stock_t(loc, s.t_ms)) <= Decimal("0.1"), s
            checked += 1
    assert checked > 500
    kinds = {m.kind for m in site.movements}
    assert {"receipt", "release", "unauthorised"} <= kinds


def test_goods_removed_at_night_drops_weight_without_out_scan() -> None:
    site, incidents, ticks = demo_run(7)
    theft = next(i for i in incidents if i.kind == GOODS_REMOVED_AT_NIGHT)
    assert theft.param("local_time") == "02:00"
    assert (theft.at_ms + OFFSET * 60_000) % DAY_MS == 2 * 3_600_000
    samples = flat(ticks)
    weights = [
        (s.t_ms, s.value("weight"))
        for s in samples
        if s.device_id == theft.device_id and s.label("stable") == "1"
    ]
    before = [w for t, w in weights if t < theft.at_ms and w is not None][-1]
    after = next(w for t, w in weights if t >= theft.at_ms and w is not None)
    amount = Decimal(theft.param("amount_t") or "0")
    assert amount > Decimal(1)
    assert abs((before - after) - amount) < Decimal("0.2")
    window = range(theft.at_ms - 3_600_000, theft.at_ms + 3_600_000)
    scans = [s for s in samples if s.label("direction") == "out" and s.t_ms in window]
    assert scans == []
    assert not [r for r in site.releases if r.at_ms in window]
    unauthorised = [m for m in site.movements if m.kind == "unauthorised"]
    assert [m.at_ms for m in unauthorised] == [theft.at_ms]
    # the dock door opened and a camera saw people at the same time
    near = [s for s in samples if 0 <= s.t_ms - theft.at_ms < 600_000]
    assert {s.label("event") for s in near} >= {"door_open", "person_detected"}


def test_authorised_release_gives_scans_and_weight_drop() -> None:
    site = build_demo_site(11, auto_activity=False)
    loc = "A-03"
    cell = site.locations[loc]
    lots = site.lots_in(loc)
    t0 = NOON
    site.tick(t0)
    rel = site.release([lot.lot_id for lot in lots[:2]], t0 + 1_000)
    assert site.releases == [rel]
    assert rel.release_id.startswith("REL-")
    samples = [s for t in range(t0 + 5_000, t0 + 15 * 60_000, 5_000) for s in site.tick(t)]
    outs = [s for s in samples if s.label("direction") == "out"]
    assert sorted(s.label("lot") or "" for s in outs) == sorted(rel.lot_ids)
    assert {s.label("release") for s in outs} == {rel.release_id}
    assert {s.label("tag") for s in outs} == {lot.tag for lot in lots[:2]}
    w = [s.value("weight") for s in samples if s.device_id == cell and s.label("stable") == "1"]
    drop = (w[0] or Decimal(0)) - (w[-1] or Decimal(0))
    assert abs(drop - sum(lot.quantity_t for lot in lots[:2])) < Decimal("0.03")
    with pytest.raises(ValueError):
        site.release([lots[0].lot_id], t0 + 20 * 60_000)  # already gone


def test_receipt_scans_in_and_raises_weight() -> None:
    site = build_demo_site(12, auto_activity=False)
    site.tick(NOON)
    before = site.stock_t("A-02")
    lot = site.receive("A-02", Decimal("7.25"), "cotton", NOON + 1_000)
    samples = [s for t in range(NOON + 5_000, NOON + 5 * 60_000, 5_000) for s in site.tick(t)]
    ins = [s for s in samples if s.label("direction") == "in"]
    assert [s.label("lot") for s in ins] == [lot.lot_id]
    assert site.stock_t("A-02") == before + Decimal("7.250")


def test_demo_incidents_fit_a_60_second_real_time_run() -> None:
    site = build_demo_site(2)
    incidents = demo_incidents(site, NOON, 60_000)
    assert sorted(i.kind for i in incidents) == sorted(INCIDENT_KINDS)
    assert all(NOON < i.at_ms < NOON + 60_000 for i in incidents)
    site.schedule(incidents)
    seen: list[Incident] = []
    ticks = []
    for t, batch in site.run(NOON, 60, time_scale=1.0):
        seen.extend(site.incidents_due(t))
        ticks.append((t, batch))
    assert Counter(i.kind for i in seen) == Counter(INCIDENT_KINDS)
    theft = next(i for i in incidents if i.kind == GOODS_REMOVED_AT_NIGHT)
    assert theft.param("local_time") is None  # no night in a minute: mid-run instead
    assert any(m.kind == "unauthorised" for m in site.movements)


def test_unplugged_device_is_silent_and_clock_skew_shifts_time() -> None:
    site, incidents, ticks = demo_run(8)
    unplugged = next(i for i in incidents if i.kind == DEVICE_UNPLUGGED)
    skew = next(i for i in incidents if i.kind == CLOCK_SKEW)
    own = [s for s in flat(ticks) if s.device_id == unplugged.device_id]
    assert not [s for s in own if unplugged.active(s.t_ms)]
    assert [s for s in own if s.t_ms < unplugged.at_ms]
    assert [s for s in own if s.t_ms >= unplugged.at_ms + unplugged.duration_ms]
    assert site.is_unplugged(unplugged.device_id, unplugged.at_ms)
    offsets = {s.t_ms - t for t, batch in ticks for s in batch if s.device_id == skew.device_id}
    minutes = int(skew.param("skew_minutes") or 0)
    assert offsets == {0, minutes * 60_000}
    assert site.clock_offset_ms(skew.device_id, skew.at_ms) == minutes * 60_000


def test_incidents_due_reports_each_start_once() -> None:
    site = build_demo_site(9, auto_activity=False)
    inc = make_incident("forged_signature", site.device_ids("door_tamper")[0], NOON + 2_500)
    site.schedule([inc])
    got = []
    for t in (NOON, NOON + 1_000, NOON + 2_000, NOON + 3_000, NOON + 4_000):
        site.tick(t)
        got.append((t, site.incidents_due(t)))
    assert [t for t, due in got if due] == [NOON + 3_000]
    assert not inc.physical


def test_cooling_failure_breaks_the_cold_chain() -> None:
    site = build_demo_site(10)
    duration = 60 * int(site.time_scale * 1000)
    incidents = demo_incidents(site, NOON, duration, cooling_failure=True)
    site.schedule(incidents)
    fail = next(i for i in incidents if i.kind == COOLING_FAILURE)
    temps = [
        (s.t_ms, s.value("temperature"))
        for s in flat(run(site, NOON))
        if s.device_id == fail.device_id
    ]
    outside = [t for t, v in temps if v is not None and not Decimal(2) <= v <= Decimal(8)]
    assert outside
    assert all(fail.at_ms <= t for t in outside)


def test_time_goes_forward_only() -> None:
    site = build_demo_site(1)
    site.tick(NOON)
    with pytest.raises(ValueError):
        site.tick(NOON - 1)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([60.0, 720.0, 1440.0]))
def test_site_invariants_hold_for_any_seed(seed: int, scale: float) -> None:
    site = build_demo_site(seed, n_devices=16, time_scale=scale)
    clock = SimClock(NOON, scale)
    site.schedule(demo_incidents(site, NOON, int(clock.at(30_000) - NOON)))
    last_kwh: dict[str, Decimal] = {}
    for _, batch in site.run(NOON, 30):
        for s in batch:
            assert SIM_LABEL in s.labels
            kwh = s.value("energy")
            if kwh is not None:
                assert kwh >= last_kwh.get(s.device_id, kwh)
                last_kwh[s.device_id] = kwh
            t = s.value("temperature")
            if t is not None and site.is_cold_room(s.device_id):
                assert Decimal(2) <= t <= Decimal(8)
            w = s.value("weight")
            if w is not None:
                assert w >= 0
    for loc in site.locations:
        assert site.stock_t(loc) == sum(lot.quantity_t for lot in site.lots_in(loc))

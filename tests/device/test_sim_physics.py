"""Physical sanity of the individual sensor models."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.device.sim import Sample, SensorModel, local_ms, make_model
from tally.device.sim.electricity_meter import ElectricityMeter
from tally.device.sim.gps_tracker import distance_m
from tally.device.sim.load_cell import LoadCell
from tally.device.sim.temp_humidity import TempHumidity

MONDAY = local_ms(2024, 3, 11, 0, 0)
HOUR = 3_600_000


def drive(model: SensorModel, start: int, hours: float, step_ms: int) -> list[Sample]:
    out: list[Sample] = []
    for t in range(start, start + int(hours * HOUR) + 1, step_ms):
        while (s := model.step(t)) is not None:
            out.append(s)
    return out


def values(samples: list[Sample], quantity: str) -> list[Decimal]:
    return [v for s in samples if (v := s.value(quantity)) is not None]


def test_cold_chain_stays_between_2_and_8() -> None:
    for seed in range(5):
        model = make_model("temp_humidity", f"cold-{seed}", seed, mode="cold_chain")
        samples = drive(model, MONDAY, 72, 30_000)
        temps = values(samples, "temperature")
        assert min(temps) >= Decimal(2) and max(temps) <= Decimal(8)
        # the compressor cycles: both states are seen, the temperature saw-tooths
        assert {s.label("compressor") for s in samples} == {"on", "off"}
        assert max(temps) - min(temps) > Decimal(2)
        assert all(Decimal(0) <= h <= Decimal(100) for h in values(samples, "humidity"))


def test_cooling_failure_warms_the_room() -> None:
    model = TempHumidity("cold-1", random.Random(1), mode="cold_chain")
    drive(model, MONDAY, 2, 30_000)
    model.set_cooling_failed(True)
    temps = values(drive(model, MONDAY + 2 * HOUR + 30_000, 6, 30_000), "temperature")
    assert max(temps) > Decimal(8)
    assert temps[-1] < Decimal(20)  # warms towards ambient, not beyond


def test_silo_follows_the_day_slowly() -> None:
    model = make_model("temp_humidity", "silo-1", 2, mode="silo", interval_ms=60_000)
    temps = values(drive(model, MONDAY, 48, 60_000), "temperature")
    assert Decimal(10) < min(temps) and max(temps) < Decimal(18)
    steps = [abs(b - a) for a, b in itertools.pairwise(temps)]
    assert max(steps) < Decimal("0.3")  # no jumps from one minute to the next


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    gaps=st.lists(st.integers(1_000, 3 * HOUR), min_size=5, max_size=60),
)
def test_meter_energy_is_monotonic_and_matches_power(seed: int, gaps: list[int]) -> None:
    meter = ElectricityMeter("meter-1", random.Random(seed), interval_ms=1_000)
    t = MONDAY
    samples: list[Sample] = []
    for gap in gaps:
        t += gap
        s = meter.step(t)
        assert s is not None
        samples.append(s)
    kwh = values(samples, "energy")
    assert all(b >= a for a, b in itertools.pairwise(kwh))
    kw = values(samples, "power")
    assert all(p >= 0 for p in kw)
    hours = (t - MONDAY - gaps[0]) / HOUR
    used = float(kwh[-1] - kwh[0])
    assert used <= 200.0 * hours + 0.01  # never above the plant's peak load


def test_meter_follows_shifts() -> None:
    meter = make_model("electricity_meter", "meter-1", 3)
    samples = drive(meter, MONDAY, 24 * 7, 15 * 60_000)

    def mean_kw(weekday: int, hour: int) -> float:
        ps = [
            float(v)
            for s in samples
            if (v := s.value("power")) is not None
            and (s.t_ms - MONDAY) // (24 * HOUR) == weekday
            and (s.t_ms - MONDAY) % (24 * HOUR) // HOUR == hour
        ]
        return sum(ps) / len(ps)

    assert mean_kw(1, 10) > 3 * mean_kw(1, 3)  # Tuesday: day shift vs night
    assert mean_kw(6, 10) < 0.5 * mean_kw(1, 10)  # Sunday is idle


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    moves=st.lists(
        st.tuples(st.integers(0, 20 * 60), st.decimals("-5", "15", places=3)),
        min_size=1,
        max_size=8,
    ),
)
def test_load_cell_matches_movements_within_noise(
    seed: int, moves: list[tuple[int, Decimal]]
) -> None:
    cell = LoadCell("lc-1", random.Random(seed), initial_t="30.000", auto_movements=False)
    for offset_s, delta in moves:
        cell.schedule_movement(MONDAY + offset_s * 1000, delta)
    tolerance = Decimal(str(6 * cell.noise_t + cell.max_drift_t))
    for s in drive(cell, MONDAY, 0.5, 1_000):
        w = s.value("weight")
        assert w is not None
        expected = max(cell.expected_t(s.t_ms), Decimal(0))
        if s.label("stable") == "1":
            assert abs(w - expected) <= tolerance
    assert cell.expected_t(MONDAY + HOUR) == Decimal("30.000") + sum(d for _, d in moves)


def test_load_cell_settles_after_a_load_event() -> None:
    cell = LoadCell(
        "lc-1", random.Random(9), initial_t="10.000", auto_movements=False, interval_ms=500
    )
    cell.schedule_movement(MONDAY + 60_000, Decimal("12.000"))
    samples = drive(cell, MONDAY, 0.05, 500)
    during = [s for s in samples if 0 <= s.t_ms - (MONDAY + 60_000) < 3_000]
    after = [s for s in samples if s.t_ms - (MONDAY + 60_000) > 30_000]
    assert any(s.label("stable") == "0" for s in during)
    assert all(s.label("stable") == "1" for s in after)
    assert all(abs(v - Decimal("22")) < Decimal("0.02") for v in values(after, "weight"))


def test_standalone_load_cell_moves_goods_in_working_hours() -> None:
    cell = make_model("load_cell", "lc-1", 4)
    assert isinstance(cell, LoadCell)
    drive(cell, MONDAY, 24 * 5, 60_000)
    assert cell.movements
    for at, _ in cell.movements:
        hour = (at - MONDAY) % (24 * HOUR) / HOUR
        assert 7 <= hour < 18
    assert all(Decimal(0) <= cell.expected_t(at) <= cell.capacity_t for at, _ in cell.movements)


def test_gps_speed_is_plausible() -> None:
    for profile in ("gps_tracker", "vehicle_obd"):
        model = make_model(profile, "truck-1", 5, interval_ms=10_000)
        samples = drive(model, MONDAY, 24, 10_000)
        speeds = values(samples, "speed")
        assert max(speeds) <= Decimal(120) and min(speeds) >= 0
        assert any(v == 0 for v in speeds) and any(v > 60 for v in speeds)
        pos = [(float(s.value("latitude") or 0), float(s.value("longitude") or 0)) for s in samples]
        travelled = 0.0
        for (a, b), (s0, s1) in zip(
            itertools.pairwise(pos), itertools.pairwise(samples), strict=True
        ):
            d = distance_m(a, b)
            travelled += d
            kmh = d / ((s1.t_ms - s0.t_ms) / 1000) * 3.6
            assert kmh < 130, (s0, s1)
        assert travelled > 200_000


def test_obd_odometer_and_fuel() -> None:
    model = make_model("vehicle_obd", "truck-2", 6, interval_ms=60_000)
    samples = drive(model, MONDAY, 48, 60_000)
    odo = values(samples, "odometer")
    assert all(b >= a for a, b in itertools.pairwise(odo))
    assert odo[-1] - odo[0] > 300
    fuel = values(samples, "fuel_level")
    assert all(Decimal(0) < f <= Decimal(100) for f in fuel)
    moving = [s for s in samples if (s.value("speed") or 0) > 0]
    assert all(s.value("engine_on") == 1 for s in moving)


def test_equipment_hours_count_only_running_time() -> None:
    model = make_model("equipment_hours", "fork-1", 7)
    samples = drive(model, MONDAY, 24 * 7, 60_000)
    hours = values(samples, "run_hours")
    assert all(b >= a for a, b in itertools.pairwise(hours))
    gained = float(hours[-1] - hours[0])
    assert 10 < gained < 5 * 11  # working hours only, with pauses
    night = [s for s in samples if (s.t_ms - MONDAY) % (24 * HOUR) < 6 * HOUR]
    assert all(s.value("engine_on") == 0 for s in night)


def test_occupancy_and_pos_by_hour() -> None:
    model = make_model("occupancy_pos", "hotel-1", 8)
    samples = drive(model, MONDAY, 24 * 7, 15 * 60_000)
    assert len(samples) == 24 * 7
    assert all(s.t_ms % HOUR == 0 for s in samples)
    occ = values(samples, "occupancy")
    assert all(Decimal(0) <= o <= Decimal(100) for o in occ)
    tx = values(samples, "pos_transactions")
    by_hour = [
        sum(
            float(v)
            for v, s in zip(tx, samples, strict=True)
            if (s.t_ms - HOUR - MONDAY) % (24 * HOUR) // HOUR == h
        )
        for h in range(24)
    ]
    assert by_hour[8] > 4 * by_hour[3]  # breakfast vs the middle of the night


def test_camera_confidence_in_range() -> None:
    model = make_model("camera_ai", "cam-1", 9)
    samples = drive(model, MONDAY, 48, 60_000)
    conf = values(samples, "confidence")
    assert conf and all(Decimal("0.50") <= c <= Decimal("0.99") for c in conf)
    assert {s.label("event") for s in samples} >= {"person_detected", "forklift_detected"}
    assert math.isclose(len(samples), 2 * 11 * 21.5, rel_tol=0.35)

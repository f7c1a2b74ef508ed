"""Every sensor profile: determinism, exact quantized values, simulated-data label."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tally.device.sim import (
    PROFILES,
    QUANTITIES,
    SIM_LABEL,
    Sample,
    SensorModel,
    local_ms,
    make_model,
    measure,
)
from tally.device.sim.base import next_local_time

START = local_ms(2024, 3, 11, 0, 0)  # a Monday, 00:00 UTC
STEP_MS = 5 * 60_000
HOURS = 72


def drive(
    model: SensorModel, start: int = START, hours: int = HOURS, step_ms: int = STEP_MS
) -> list[Sample]:
    out: list[Sample] = []
    for t in range(start, start + hours * 3_600_000 + 1, step_ms):
        while (s := model.step(t)) is not None:
            out.append(s)
    return out


def assert_well_formed(s: Sample) -> None:
    assert SIM_LABEL in s.labels
    assert list(s.labels) == sorted(s.labels)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.labels)
    for m in s.measurements:
        unit, res = QUANTITIES[m.quantity]
        assert m.unit == unit
        assert isinstance(m.value, Decimal)
        assert m.value.is_finite()
        assert m.value.as_tuple().exponent == res.as_tuple().exponent, m
        assert m.value == m.value.quantize(res)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_produces_well_formed_samples(profile: str) -> None:
    model = make_model(profile, f"dev-{profile}", seed=11)
    assert model.profile == profile
    assert isinstance(model, SensorModel)
    samples = drive(model)
    assert samples, profile
    assert any(s.measurements for s in samples)
    for s in samples:
        assert s.device_id == f"dev-{profile}"
        assert START <= s.t_ms <= START + HOURS * 3_600_000
        assert_well_formed(s)
    times = [s.t_ms for s in samples]
    assert times == sorted(times)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_same_seed_same_samples(profile: str) -> None:
    a = drive(make_model(profile, "dev-1", seed=42), hours=30)
    b = drive(make_model(profile, "dev-1", seed=42), hours=30)
    c = drive(make_model(profile, "dev-1", seed=43), hours=30)
    assert a == b
    assert a != c


def test_seed_depends_on_device_id() -> None:
    a = drive(make_model("temp_humidity", "dev-1", seed=1), hours=2)
    b = drive(make_model("temp_humidity", "dev-2", seed=1), hours=2)
    assert [s.measurements for s in a] != [s.measurements for s in b]


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown sensor profile"):
        make_model("lava_lamp", "dev-1", seed=1)


def test_params_are_passed_to_the_model() -> None:
    model = make_model("temp_humidity", "silo-1", seed=3, mode="silo", interval_ms=60_000)
    samples = drive(model, hours=1, step_ms=60_000)
    assert len(samples) == 61
    assert all(s.label("mode") == "silo" for s in samples)


def test_measure_quantizes_and_normalises_negative_zero() -> None:
    m = measure("weight", 1234.5674999)
    assert m.value == Decimal("1234.567") and m.unit == "t"
    assert str(measure("temperature", -0.001).value) == "0.00"
    assert str(measure("latitude", Decimal("51.12345678")).value) == "51.123457"
    with pytest.raises(KeyError):
        measure("mood", 1)


def test_next_local_time() -> None:
    t = local_ms(2024, 3, 12, 12, 0, utc_offset_min=60)
    night = next_local_time(t, 2, 0, utc_offset_min=60)
    assert night == local_ms(2024, 3, 13, 2, 0, utc_offset_min=60)
    assert next_local_time(night, 2, 0, utc_offset_min=60) == night


def test_event_sensors_are_silent_without_events() -> None:
    gate = make_model("rfid_gate", "gate-1", seed=5, rate_per_h=0.0)
    assert drive(gate, hours=24) == []
    door = make_model("door_tamper", "door-1", seed=5)
    night = local_ms(2024, 3, 11, 0, 0)  # doors only open in working hours
    assert drive(door, start=night, hours=6) == []

"""The wire conventions: topic scheme, media types, MQTT versions, Modbus register map."""

from __future__ import annotations

import pytest

from tally.device.modbus_meter import (
    STATUS_SIMULATED,
    STATUS_VALID,
    MeterValues,
    SteadyLoad,
    decode_registers,
    encode_registers,
)
from tally.device.publish import (
    TopicError,
    mqtt_protocol,
    parse_uplink_topic,
    uplink_filter,
    uplink_topic,
)
from tally.device.publish.wire import looks_like_sign1


def test_topic_scheme() -> None:
    assert uplink_topic("site-1", "dev-7") == "tally/site-1/dev-7/up"
    assert uplink_filter("site-1") == "tally/site-1/+/up"
    assert parse_uplink_topic("tally/site-1/dev-7/up") == ("site-1", "dev-7")
    for bad in ("tally/site-1/dev-7/down", "tally/site-1/up", "x/site/dev/up", "tally//d/up"):
        assert parse_uplink_topic(bad) is None


@pytest.mark.parametrize("bad", ["", "a/b", "+", "a#", "nul\x00"])
def test_ids_that_cannot_be_one_topic_level_are_refused(bad: str) -> None:
    with pytest.raises(TopicError) as info:
        uplink_topic("site", bad)
    assert info.value.what == "device" and info.value.value == bad


def test_mqtt_versions() -> None:
    assert mqtt_protocol("3.1.1").name == "V311" and mqtt_protocol(4).name == "V311"
    assert mqtt_protocol("5").name == "V5" and mqtt_protocol(5).name == "V5"
    with pytest.raises(ValueError, match="unsupported MQTT version"):
        mqtt_protocol("3.1")


def test_cose_sign1_prefix() -> None:
    assert looks_like_sign1(b"\xd2\x84\x58")
    assert not looks_like_sign1(b"\x84\x58") and not looks_like_sign1(b"")


def test_register_map_example_of_the_docstring() -> None:
    v = MeterValues(125_000_123, 45_678, STATUS_VALID | STATUS_SIMULATED)
    regs = encode_registers(v)
    assert regs == [0x0773, 0x59BB, 0x0000, 0xB26E, 0x0003, 0x0001]
    assert decode_registers(regs) == v


def test_energy_register_rolls_over_like_a_meter_and_bad_maps_are_refused() -> None:
    assert decode_registers(encode_registers(MeterValues(2**32 + 5, 0))).energy_wh == 5
    with pytest.raises(ValueError, match="register map version"):
        decode_registers([0, 0, 0, 0, 1, 2])
    with pytest.raises(ValueError, match="expected 6 registers"):
        decode_registers([0, 0, 0])


def test_steady_load_integrates_in_whole_watt_hours() -> None:
    load = SteadyLoad(power_w=1_000, initial_wh=10, start_ms=0)
    assert load.values_at(0).energy_wh == 10
    assert load.values_at(3_599_999).energy_wh == 10 + 999
    assert load.values_at(3_600_000).energy_wh == 1_010

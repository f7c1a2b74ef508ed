"""The Modbus meter as a Modbus client sees it (pymodbus client, real TCP)."""

from __future__ import annotations

from pymodbus.client import AsyncModbusTcpClient

from tally.device.modbus_meter import (
    REGISTER_COUNT,
    STATUS_SIMULATED,
    STATUS_VALID,
    ModbusMeter,
    SteadyLoad,
    decode_registers,
)


async def test_input_and_holding_registers_show_the_same_read_only_values() -> None:
    t = [0]
    async with ModbusMeter(
        source=SteadyLoad(90_000, 1_000, simulated=False), clock=lambda: t[0]
    ) as m:
        client = AsyncModbusTcpClient("127.0.0.1", port=m.port, timeout=2, retries=0)
        try:
            assert await client.connect()
            ir = await client.read_input_registers(0, count=REGISTER_COUNT, device_id=1)
            t[0] = 40_000  # 40 s at 90 kW = 1000 Wh
            hr = await client.read_holding_registers(0, count=REGISTER_COUNT, device_id=1)
            wr = await client.write_register(0, 7, device_id=1)
            beyond = await client.read_input_registers(4, count=3, device_id=1)
        finally:
            client.close()
    assert decode_registers(ir.registers).energy_wh == 1_000
    assert decode_registers(hr.registers).energy_wh == 2_000
    assert ir.registers[2:4] == [0x0001, 0x5F90]  # 90000 W
    assert ir.registers[4] == STATUS_VALID
    assert wr.isError() and wr.exception_code == 2
    assert beyond.isError()
    assert m.reads == 2 and m.last is not None and m.last.energy_wh == 2_000


async def test_default_source_is_the_simulated_plant_meter() -> None:
    t = [1_700_000_000_000]  # a Tuesday, 22:13 UTC
    async with ModbusMeter(clock=lambda: t[0], seed=7) as m:
        first = m.values()
        t[0] += 3_600_000
        later = m.values()
    assert first.status == STATUS_VALID | STATUS_SIMULATED
    assert 120_000_000 <= first.energy_wh < later.energy_wh  # starts near 125 MWh, grows
    assert later.power_w > 0

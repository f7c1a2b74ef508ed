"""Modbus: the poller reads real ModbusMeter servers and decodes their registers exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from tally.device.envelope import Measurement
from tally.device.modbus_meter import ModbusMeter, SteadyLoad
from tally.edge.adapters import MeterTarget, ModbusPoller

Reading = tuple[str, int, tuple[Measurement, ...], tuple[tuple[str, str], ...]]


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.01)


class Sink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(
        self, dev: str, t_ms: int, ms: tuple[Measurement, ...], labels: tuple[tuple[str, str], ...]
    ) -> None:
        self.readings.append((dev, t_ms, ms, labels))


async def test_poll_decodes_energy_and_power_exactly() -> None:
    sim_t = [1_700_000_000_000]
    # 4,000,000.123 kWh: past 2**31 Wh, so a signed decoding would go wrong
    load = SteadyLoad(power_w=45_678, initial_wh=4_000_000_123, start_ms=sim_t[0])
    sink = Sink()
    async with ModbusMeter(source=load, clock=lambda: sim_t[0]) as meter:
        poller = ModbusPoller(
            [MeterTarget("meter-7", "127.0.0.1", meter.port, labels=(("line", "2"),))],
            sink,
            clock=lambda: 42,
        )
        assert await poller.poll_once() == 1
        sim_t[0] += 3_600_000  # one simulated hour at 45.678 kW
        assert await poller.poll_once() == 1
        await poller.stop()
    (d1, t1, m1, l1), (_, _, m2, _) = sink.readings
    assert d1 == "meter-7" and t1 == 42
    assert m1 == (
        Measurement("energy", Decimal("4000000.123"), "kWh"),
        Measurement("power", Decimal("45.678"), "kW"),
    )
    assert m2[0].value == Decimal("4000045.801")
    assert str(m2[0].value) == "4000045.801"  # exact, three decimals, no float
    assert l1 == (("line", "2"), ("sim", "1"))


async def test_background_polling_stops_producing_when_a_meter_stops_answering() -> None:
    sink = Sink()
    errors: list[tuple[str, str]] = []
    async with ModbusMeter(source=SteadyLoad(1000, 5), unit_id=3) as a, ModbusMeter() as b:
        targets = [
            MeterTarget("a", "127.0.0.1", a.port, unit_id=3),
            MeterTarget("b", "127.0.0.1", b.port),  # the simulated plant meter
        ]
        async with ModbusPoller(
            targets,
            sink,
            interval_ms=20,
            timeout=0.5,
            on_poll_error=lambda d, r: errors.append((d, r)),
        ) as poller:
            await wait_until(lambda: poller.stats["a"].readings >= 3, what="readings of a")
            await a.stop()
            await wait_until(lambda: poller.stats["a"].consecutive_failures >= 3, what="failures")
            produced = poller.stats["a"].readings
            await wait_until(lambda: poller.stats["b"].readings >= produced + 3, what="b goes on")
            assert poller.stats["a"].readings == produced  # no readings without answers
            await a.start()  # the meter comes back on the same port
            await wait_until(lambda: poller.stats["a"].readings > produced, what="recovery")
    stats = poller.stats
    assert stats["a"].failures >= 3 and stats["a"].consecutive_failures == 0
    assert stats["b"].failures == 0
    assert errors and {d for d, _ in errors} == {"a"}
    b_readings = [r for r in sink.readings if r[0] == "b"]
    energy = [r[2][0].value for r in b_readings]
    assert energy == sorted(energy)  # the simulated energy register never goes down
    assert all(("sim", "1") in r[3] for r in b_readings)


async def test_wrong_unit_and_a_raising_callback_are_counted_not_fatal() -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("gateway bug")

    async with ModbusMeter(source=SteadyLoad(1, 1), unit_id=5) as meter:
        wrong = ModbusPoller([MeterTarget("m", "127.0.0.1", meter.port, unit_id=9)], Sink())
        assert await wrong.poll_once() == 0
        assert wrong.stats["m"].failures == 1 and wrong.stats["m"].last_error
        await wrong.stop()
        raising = ModbusPoller([MeterTarget("m", "127.0.0.1", meter.port, unit_id=5)], broken)
        assert await raising.poll_once() == 0
        assert await raising.poll_once() == 0
        assert raising.stats["m"].failures == 2
        await raising.stop()

"""A Modbus TCP electricity meter that cannot sign: the edge polls it and signs for it.

The meter answers function codes 3 (read holding registers) and 4 (read input registers)
with the same six read-only registers; writes are refused with exception 2 (illegal data
address). Register map (16-bit registers, 32-bit values big-endian: high word first)::

    address  count  name        type     meaning
    0        2      ENERGY      uint32   cumulative active energy, Wh (= kWh x 1000);
                                         rolls over at 2**32 like a real meter's counter
    2        2      POWER       uint32   present active power, W
    4        1      STATUS      bits     bit 0: data valid; bit 1: simulated data;
                                         other bits 0
    5        1      MAP_VERSION uint16   1 (this register map)

E.g. 125000.123 kWh and 45.678 kW, valid and simulated, read as
``[0x0773, 0x59BB, 0x0000, 0xB26E, 0x0003, 0x0001]``.

Values follow simulated time, given by ``clock`` (milliseconds since the Unix epoch; the wall
clock by default): each read asks the meter's :class:`MeterSource` for the values at that
instant. The default source is :class:`SimulatedMeterSource` over the
:class:`~tally.device.sim.electricity_meter.ElectricityMeter` model (shift pattern, slow
wander, noise); :class:`SteadyLoad` is a deterministic constant load.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tally.device.modbus_registers import (
    MAP_VERSION as MAP_VERSION,
)
from tally.device.modbus_registers import (
    REG_ENERGY as REG_ENERGY,
)
from tally.device.modbus_registers import (
    REG_MAP_VERSION as REG_MAP_VERSION,
)
from tally.device.modbus_registers import (
    REG_POWER as REG_POWER,
)
from tally.device.modbus_registers import (
    REG_STATUS as REG_STATUS,
)
from tally.device.modbus_registers import (
    REGISTER_COUNT as REGISTER_COUNT,
)
from tally.device.modbus_registers import (
    STATUS_SIMULATED as STATUS_SIMULATED,
)
from tally.device.modbus_registers import (
    STATUS_VALID as STATUS_VALID,
)
from tally.device.modbus_registers import (
    UINT32_MOD as UINT32_MOD,
)
from tally.device.modbus_registers import (
    MeterValues as MeterValues,
)
from tally.device.modbus_registers import (
    decode_registers as decode_registers,
)
from tally.device.modbus_registers import (
    encode_registers as encode_registers,
)
from tally.device.sim.electricity_meter import ElectricityMeter


class MeterSource(Protocol):
    """Where the meter's values come from: a function of simulated time."""

    def values_at(self, t_ms: int) -> MeterValues: ...


class SteadyLoad:
    """A constant load of ``power_w`` from ``start_ms``: energy grows linearly (floor to Wh)."""

    def __init__(
        self, power_w: int, initial_wh: int = 0, start_ms: int = 0, simulated: bool = True
    ) -> None:
        self.power_w = power_w
        self.initial_wh = initial_wh
        self.start_ms = start_ms
        self._status = STATUS_VALID | (STATUS_SIMULATED if simulated else 0)

    def values_at(self, t_ms: int) -> MeterValues:
        elapsed = max(0, t_ms - self.start_ms)
        return MeterValues(
            self.initial_wh + self.power_w * elapsed // 3_600_000, self.power_w, self._status
        )


class SimulatedMeterSource:
    """Values from the simulated electricity meter model (always flagged simulated)."""

    def __init__(self, model: ElectricityMeter) -> None:
        self.model = model
        self._power_w: int | None = None

    def values_at(self, t_ms: int) -> MeterValues:
        sample = self.model.step(t_ms)
        if sample is not None:
            kw = sample.value("power")
            if kw is not None:
                self._power_w = int(kw * 1000)
        if self._power_w is None:
            self._power_w = round(self.model.power_pattern_kw(t_ms) * 1000)
        energy_wh = round(self.model.energy_kwh * 1000)
        return MeterValues(energy_wh, self._power_w, STATUS_VALID | STATUS_SIMULATED)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ModbusMeter:
    """A Modbus TCP server showing one meter; ``async with ModbusMeter() as m: m.port``.

    ``port`` 0 picks a free port. ``unit_id`` 0 answers any unit id. With no ``source``,
    a :class:`SimulatedMeterSource` seeded by ``seed`` is used.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        source: MeterSource | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        unit_id: int = 1,
        device_id: str = "meter-1",
        seed: int = 0,
    ) -> None:
        self.host = host
        self._port = port
        self.unit_id = unit_id
        self.clock = clock
        self.source: MeterSource = source or SimulatedMeterSource(
            ElectricityMeter(device_id, random.Random(seed), interval_ms=1000)
        )
        self.last: MeterValues | None = None
        """The values shown by the most recent read."""
        self.reads = 0
        self._server: ModbusTcpServer | None = None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the meter has not started yet")
        return self._port

    async def __aenter__(self) -> ModbusMeter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host``:``port``; raise OSError if the address cannot be bound."""
        if self._server is not None:
            return
        device = SimDevice(
            id=self.unit_id,
            simdata=[
                SimData(
                    address=0,
                    count=REGISTER_COUNT,
                    values=0,
                    datatype=DataType.REGISTERS,
                    readonly=True,
                )
            ],
            action=self._on_access,
        )
        server = ModbusTcpServer(device, address=(self.host, self._port))
        await server.serve_forever(background=True)
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        if not sockets:
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise OSError(f"Modbus meter could not listen on {self.host}:{self._port}")
        self._port = int(sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    def values(self) -> MeterValues:
        """The values the meter shows now (as a read would)."""
        return self.source.values_at(self.clock())

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS
        v = self.values()
        registers[0:REGISTER_COUNT] = encode_registers(v)
        self.last = v
        self.reads += 1
        return None

"""Modbus poller: reads meters that cannot sign, for the gateway to sign with the edge key.

Every ``interval_ms`` each configured meter is read (function code 4, input registers, or
3 with ``register_kind="holding"``; six registers from address 0, the map of
:mod:`tally.device.modbus_registers`) and decoded exactly::

    energy  kWh  = Decimal(uint32 at 0..1).scaleb(-3)    e.g. 125000123 -> 125000.123
    power   kW   = Decimal(uint32 at 2..3).scaleb(-3)    e.g. 45678     -> 45.678

A valid read calls ``on_unsigned(device_id, t_ms, measurements, labels)`` with ``t_ms`` from
the edge's clock at the read and the meter's configured labels, plus ``("sim", "1")`` when the
meter flags its data as simulated. A read that fails (no connection, timeout, Modbus
exception, wrong register map, status without "data valid") produces no reading: it is
counted per meter in :attr:`ModbusPoller.stats`, logged, and passed to ``on_poll_error``;
the edge's offline rule sees the missing readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from tally.device.envelope import Measurement
from tally.device.modbus_registers import (
    REGISTER_COUNT,
    STATUS_SIMULATED,
    STATUS_VALID,
    MeterValues,
    decode_registers,
)
from tally.edge.adapters.base import OnUnsigned

log = logging.getLogger(__name__)

OnPollError = Callable[[str, str], None]
"""``on_poll_error(device_id, reason)``."""


@dataclass(frozen=True)
class MeterTarget:
    """One meter to poll: its device id, address, Modbus unit id and labels."""

    device_id: str
    host: str
    port: int = 502
    unit_id: int = 1
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class MeterStats:
    """Counters of one meter."""

    polls: int = 0
    readings: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""


@dataclass
class _Meter:
    target: MeterTarget
    client: AsyncModbusTcpClient | None = None
    stats: MeterStats = field(default_factory=MeterStats)


class PollFailed(Exception):
    """Raised inside a poll when a meter gave no valid reading; ``reason`` says why."""

    def __init__(self, device_id: str, reason: str) -> None:
        self.device_id = device_id
        self.reason = reason
        super().__init__(f"meter {device_id}: {reason}")


def measurements_of(v: MeterValues) -> tuple[Measurement, ...]:
    """Energy (kWh) and power (kW) of decoded registers, as exact decimals."""
    return (
        Measurement("energy", Decimal(v.energy_wh).scaleb(-3), "kWh"),
        Measurement("power", Decimal(v.power_w).scaleb(-3), "kW"),
    )


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ModbusPoller:
    """Polls ``meters`` every ``interval_ms``; ``timeout`` bounds one connect or read (s)."""

    def __init__(
        self,
        meters: Sequence[MeterTarget],
        on_unsigned: OnUnsigned,
        *,
        interval_ms: int = 1000,
        timeout: float = 1.0,
        register_kind: Literal["input", "holding"] = "input",
        clock: Callable[[], int] = _wall_ms,
        on_poll_error: OnPollError | None = None,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        ids = [m.device_id for m in meters]
        if len(set(ids)) != len(ids):
            raise ValueError("each meter needs its own device id")
        self._meters = [_Meter(m) for m in meters]
        self._on_unsigned = on_unsigned
        self._on_poll_error = on_poll_error
        self.interval_ms = interval_ms
        self.timeout = timeout
        self.register_kind = register_kind
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def stats(self) -> dict[str, MeterStats]:
        return {m.target.device_id: m.stats for m in self._meters}

    async def __aenter__(self) -> ModbusPoller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Poll in the background, first at once, then every ``interval_ms``."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="modbus-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for m in self._meters:
            self._disconnect(m)

    async def poll_once(self) -> int:
        """Poll every meter once, concurrently; return how many gave a reading."""
        results = await asyncio.gather(*(self._poll(m) for m in self._meters))
        return sum(results)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.interval_ms / 1000.0
        next_at = loop.time()
        while True:
            await self.poll_once()
            next_at += period
            now = loop.time()
            if next_at < now:  # overran: skip missed ticks rather than burst
                next_at = now + period - ((now - next_at) % period)
            await asyncio.sleep(next_at - now)

    async def _poll(self, m: _Meter) -> bool:
        m.stats.polls += 1
        try:
            values = await self._read(m)
            if not values.status & STATUS_VALID:
                raise PollFailed(
                    m.target.device_id, f"meter reports invalid data (status 0x{values.status:04x})"
                )
            t_ms = self.clock()
            labels = dict(m.target.labels)
            if values.status & STATUS_SIMULATED:
                labels["sim"] = "1"
            self._on_unsigned(
                m.target.device_id, t_ms, measurements_of(values), tuple(sorted(labels.items()))
            )
        except PollFailed as exc:
            self._failed(m, exc.reason)
            return False
        except Exception as exc:  # the callback raised: count it, keep polling
            log.exception("reading of meter %s not taken by the gateway", m.target.device_id)
            self._failed(m, f"callback raised {exc!r}")
            return False
        m.stats.readings += 1
        m.stats.consecutive_failures = 0
        return True

    async def _read(self, m: _Meter) -> MeterValues:
        t = m.target
        try:
            client = await self._connected(m)
            read = (
                client.read_input_registers
                if self.register_kind == "input"
                else client.read_holding_registers
            )
            async with asyncio.timeout(self.timeout):
                resp = await read(0, count=REGISTER_COUNT, device_id=t.unit_id)
        except (ModbusException, OSError, TimeoutError) as exc:
            self._disconnect(m)
            raise PollFailed(t.device_id, f"{type(exc).__name__}: {exc}") from exc
        if resp.isError():
            raise PollFailed(t.device_id, f"Modbus exception response {resp}")
        try:
            return decode_registers(list(resp.registers))
        except ValueError as exc:
            raise PollFailed(t.device_id, str(exc)) from exc

    async def _connected(self, m: _Meter) -> AsyncModbusTcpClient:
        if m.client is not None and m.client.connected:
            return m.client
        self._disconnect(m)
        t = m.target
        client = AsyncModbusTcpClient(
            t.host, port=t.port, timeout=self.timeout, retries=0, reconnect_delay=0
        )
        m.client = client
        async with asyncio.timeout(self.timeout):
            ok = await client.connect()
        if not ok:
            raise OSError(f"cannot connect to {t.host}:{t.port}")
        return client

    def _disconnect(self, m: _Meter) -> None:
        client, m.client = m.client, None
        if client is not None:
            client.close()

    def _failed(self, m: _Meter, reason: str) -> None:
        s = m.stats
        s.failures += 1
        s.consecutive_failures += 1
        s.last_error = reason
        if s.consecutive_failures == 1 or s.consecutive_failures % 100 == 0:
            log.warning(
                "meter %s: %s (%d failed polls in a row)",
                m.target.device_id,
                reason,
                s.consecutive_failures,
            )
        if self._on_poll_error is not None:
            try:
                self._on_poll_error(m.target.device_id, reason)
            except Exception:
                log.exception("poll-error callback raised")

"""The register map of tally's Modbus TCP electricity meter (a meter that cannot sign).

16-bit registers, 32-bit values big-endian (high word first), answered to function codes 3
and 4 alike::

    address  count  name        type     meaning
    0        2      ENERGY      uint32   cumulative active energy, Wh (= kWh x 1000);
                                         rolls over at 2**32 like a real meter's counter
    2        2      POWER       uint32   present active power, W
    4        1      STATUS      bits     bit 0: data valid; bit 1: simulated data;
                                         other bits 0
    5        1      MAP_VERSION uint16   1 (this register map)

E.g. 125000.123 kWh and 45.678 kW, valid and simulated, read as
``[0x0773, 0x59BB, 0x0000, 0xB26E, 0x0003, 0x0001]``.

Pure data: the meter (:mod:`tally.device.modbus_meter`) and the edge's poller share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

REG_ENERGY = 0
REG_POWER = 2
REG_STATUS = 4
REG_MAP_VERSION = 5
REGISTER_COUNT = 6
MAP_VERSION = 1

STATUS_VALID = 0x0001
STATUS_SIMULATED = 0x0002

UINT32_MOD = 1 << 32


@dataclass(frozen=True)
class MeterValues:
    """What the meter shows at one instant: integer Wh and W, and its status bits."""

    energy_wh: int
    power_w: int
    status: int = STATUS_VALID


def encode_registers(v: MeterValues) -> list[int]:
    """The six registers showing ``v`` (energy modulo 2**32; power clamped to uint32)."""
    e = v.energy_wh % UINT32_MOD
    p = min(max(v.power_w, 0), UINT32_MOD - 1)
    return [e >> 16, e & 0xFFFF, p >> 16, p & 0xFFFF, v.status & 0xFFFF, MAP_VERSION]


def decode_registers(regs: Sequence[int]) -> MeterValues:
    """Inverse of :func:`encode_registers`; raises ValueError for a wrong count or map."""
    if len(regs) != REGISTER_COUNT:
        raise ValueError(f"expected {REGISTER_COUNT} registers, got {len(regs)}")
    if any(not 0 <= r <= 0xFFFF for r in regs):
        raise ValueError("register value out of 16-bit range")
    if regs[REG_MAP_VERSION] != MAP_VERSION:
        raise ValueError(f"unknown register map version {regs[REG_MAP_VERSION]}")
    energy = (regs[REG_ENERGY] << 16) | regs[REG_ENERGY + 1]
    power = (regs[REG_POWER] << 16) | regs[REG_POWER + 1]
    return MeterValues(energy, power, regs[REG_STATUS])

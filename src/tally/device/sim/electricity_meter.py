"""Electricity meters: production activity of a borrower's plant.

Power follows the shift pattern: a base load day and night, two shifts on weekdays
(06-14, 14-22) with ramps at the edges and a dip at the midday break, one morning shift
on Saturday, base load only on Sunday; a slow multiplicative wander and fast noise come
on top.  Energy is the integral of power, so the kWh register never goes down.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

from tally.device.sim.base import (
    Clock,
    Periodic,
    Sample,
    local_hour,
    local_weekday,
    make_sample,
    measure,
    substeps,
)


def _ramp(hour: float, start: float, end: float, width: float = 0.5) -> float:
    """1 inside [start, end], linear ramps of ``width`` hours at both edges, else 0."""
    if hour < start - width or hour > end + width:
        return 0.0
    if hour < start:
        return (hour - (start - width)) / width
    if hour > end:
        return ((end + width) - hour) / width
    return 1.0


def shift_factor(t_ms: int, utc_offset_min: int = 0) -> float:
    """Share of the production load running at ``t_ms`` (0 = idle, 1 = full)."""
    hour, day = local_hour(t_ms, utc_offset_min), local_weekday(t_ms, utc_offset_min)
    if day == 6:
        return 0.0
    if day == 5:
        return 0.6 * _ramp(hour, 6.0, 14.0)
    f = _ramp(hour, 6.0, 22.0)
    if 12.0 <= hour < 12.5:
        f *= 0.7
    return f


class ElectricityMeter:
    """Cumulative energy (kWh, 0.001) and present power (kW, 0.01)."""

    profile = "electricity_meter"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        base_kw: float = 18.0,
        shift_kw: float = 120.0,
        initial_kwh: Decimal | str | float = "125000.000",
        interval_ms: int = 15_000,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self._rng = rng
        self._base = base_kw
        self._shift = shift_kw
        self._offset_min = utc_offset_min
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self.energy_kwh = float(Decimal(str(initial_kwh)))
        self._wander = 0.0

    def power_pattern_kw(self, t_ms: int) -> float:
        return self._base + self._shift * shift_factor(t_ms, self._offset_min)

    def _power(self, t_ms: int) -> float:
        return max(0.0, self.power_pattern_kw(t_ms) * (1.0 + self._wander))

    def step(self, t_ms: int) -> Sample | None:
        dt_s = self._clock.advance(t_ms)
        t = t_ms - dt_s * 1000.0
        for h in substeps(dt_s, 60.0):
            a = math.exp(-h / 1800.0)
            self._wander = self._wander * a + 0.06 * math.sqrt(1 - a * a) * self._rng.gauss(0, 1)
            t += h * 1000.0
            self.energy_kwh += self._power(int(t)) * h / 3600.0
        if not self._periodic.due(t_ms):
            return None
        kw = max(0.0, self._power(t_ms) * (1.0 + self._rng.gauss(0, 0.015)))
        return make_sample(
            self.device_id, t_ms, (measure("energy", self.energy_kwh), measure("power", kw))
        )

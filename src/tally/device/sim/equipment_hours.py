"""Leased equipment: an engine-hours counter and the machine's position.

The machine runs in bouts during working hours (a few tens of minutes on, shorter
pauses) and stands still at night and on weekends.  Now and then it is moved to another
spot within ``roam_m`` of its base.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

from tally.device.sim.base import (
    Clock,
    Periodic,
    Sample,
    is_working_time,
    make_sample,
    measure,
    substeps,
)
from tally.device.sim.gps_tracker import M_PER_DEG_LAT, LatLon, jitter


class EquipmentHours:
    """Reports ``run_hours`` (h, 0.01), ``engine_on`` and the position fix."""

    profile = "equipment_hours"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        base: LatLon = (51.905000, 4.330000),
        roam_m: float = 150.0,
        initial_hours: Decimal | str | float = "2345.00",
        mean_on_min: float = 45.0,
        mean_off_min: float = 15.0,
        interval_ms: int = 60_000,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self._rng = rng
        self._base = base
        self._roam = roam_m
        self._pos = base
        self._on_rate = 1.0 / (mean_on_min * 60.0)
        self._off_rate = 1.0 / (mean_off_min * 60.0)
        self._offset_min = utc_offset_min
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self.run_hours = float(Decimal(str(initial_hours)))
        self.running = False

    def _move(self) -> None:
        r = self._roam * math.sqrt(self._rng.random())
        a = self._rng.uniform(0, 2 * math.pi)
        lat = self._base[0] + r * math.cos(a) / M_PER_DEG_LAT
        lon = self._base[1] + r * math.sin(a) / (
            M_PER_DEG_LAT * math.cos(math.radians(self._base[0]))
        )
        self._pos = (lat, lon)

    def step(self, t_ms: int) -> Sample | None:
        dt_s = self._clock.advance(t_ms)
        t = t_ms - dt_s * 1000.0
        for h in substeps(dt_s, 60.0):
            t += h * 1000.0
            if not is_working_time(int(t), self._offset_min):
                self.running = False
            elif self.running:
                if self._rng.random() < h * self._on_rate:
                    self.running = False
            elif self._rng.random() < h * self._off_rate:
                self.running = True
                if self._rng.random() < 0.2:
                    self._move()
            if self.running:
                self.run_hours += h / 3600.0
        if not self._periodic.due(t_ms):
            return None
        lat, lon = jitter(self._rng, self._pos, 3.0)
        return make_sample(
            self.device_id,
            t_ms,
            (
                measure("run_hours", self.run_hours),
                measure("engine_on", int(self.running)),
                measure("latitude", lat),
                measure("longitude", lon),
            ),
        )

"""Vehicle OBD dongles (automotive lending): position, odometer, speed, engine, fuel.

Built on the truck kinematics of :mod:`tally.device.sim.gps_tracker`; the odometer is the
distance driven, fuel burns with distance and idling and is topped up at the route's
first waypoint when low.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal

from tally.device.sim.base import Clock, Periodic, Sample, make_sample, measure, substeps
from tally.device.sim.gps_tracker import DEFAULT_ROUTE, LatLon, RouteFollower, fix_measurements


class VehicleObd:
    """Reports position, ``speed``, ``odometer`` (km, 0.1), ``engine_on``, ``fuel_level``."""

    profile = "vehicle_obd"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        waypoints: Sequence[LatLon] = DEFAULT_ROUTE,
        cruise_kmh: float = 85.0,
        initial_km: Decimal | str | float = "152340.0",
        tank_l: float = 400.0,
        l_per_100km: float = 30.0,
        idle_l_per_h: float = 2.5,
        interval_ms: int = 10_000,
    ) -> None:
        self.device_id = device_id
        self._rng = rng
        self.route = RouteFollower(rng, waypoints, cruise_kmh=cruise_kmh)
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self._initial_km = float(Decimal(str(initial_km)))
        self._tank = tank_l
        self._burn = l_per_100km / 100_000.0
        self._idle = idle_l_per_h / 3600.0
        self.fuel_l = tank_l * rng.uniform(0.5, 0.95)

    @property
    def odometer_km(self) -> float:
        return self._initial_km + self.route.distance_m / 1000.0

    def step(self, t_ms: int) -> Sample | None:
        for h in substeps(self._clock.advance(t_ms), 30.0):
            before = self.route.distance_m
            self.route.advance(h)
            burned = (self.route.distance_m - before) * self._burn
            if self.route.engine_on:
                burned += h * self._idle
            self.fuel_l = max(0.0, self.fuel_l - burned)
            if self.route.at_origin and self.fuel_l < 0.4 * self._tank:
                self.fuel_l = self._tank * 0.98
        if not self._periodic.due(t_ms):
            return None
        fix = fix_measurements(self._rng, self.route, 2.5)
        return make_sample(
            self.device_id,
            t_ms,
            (
                *fix,
                measure("odometer", self.odometer_km),
                measure("engine_on", int(self.route.engine_on)),
                measure("fuel_level", 100.0 * self.fuel_l / self._tank),
            ),
        )

"""GPS trackers on trucks: driving a route between waypoints at road speeds.

:class:`RouteFollower` is the vehicle kinematics shared with the OBD profile: the truck
accelerates to a cruise speed that wanders a little, brakes before each waypoint, dwells
there (loading, unloading, a break), then drives the next leg; the route is driven back
and forth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from tally.device.sim.base import (
    Clock,
    Measurement,
    Periodic,
    Sample,
    make_sample,
    measure,
    substeps,
)

EARTH_RADIUS_M = 6_371_000.0
M_PER_DEG_LAT = 111_320.0

LatLon = tuple[float, float]

DEFAULT_ROUTE: tuple[LatLon, ...] = (
    (35.990500, 120.207800),  # Qingdao Qianwan port
    (36.063600, 120.107400),  # Huangdao logistics park
    (36.285300, 120.033600),  # Jiaozhou
    (36.383600, 119.755100),  # Gaomi
    (36.707000, 119.161700),  # Weifang
)


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance (haversine)."""
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing_deg(a: LatLon, b: LatLon) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    y = math.sin(lo2 - lo1) * math.cos(la2)
    x = math.cos(la1) * math.sin(la2) - math.sin(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return math.degrees(math.atan2(y, x)) % 360.0


def jitter(rng: random.Random, pos: LatLon, sigma_m: float) -> LatLon:
    """A position fix with Gaussian error of ``sigma_m`` metres per axis."""
    dlat = rng.gauss(0, sigma_m) / M_PER_DEG_LAT
    dlon = rng.gauss(0, sigma_m) / (M_PER_DEG_LAT * math.cos(math.radians(pos[0])))
    return pos[0] + dlat, pos[1] + dlon


class RouteFollower:
    """Kinematics of a vehicle driving a route back and forth."""

    ACCEL = 0.8  # m/s^2
    BRAKE = 1.5  # m/s^2
    MAX_H_S = 2.0

    def __init__(
        self,
        rng: random.Random,
        waypoints: Sequence[LatLon] = DEFAULT_ROUTE,
        *,
        cruise_kmh: float = 80.0,
        dwell_s: tuple[float, float] = (300.0, 1800.0),
        idle_s: float = 120.0,
    ) -> None:
        if len(waypoints) < 2:
            raise ValueError("a route needs at least two waypoints")
        self._rng = rng
        self._wp = [tuple(map(float, w)) for w in waypoints]
        self.cruise_mps = cruise_kmh / 3.6
        self._dwell_range = dwell_s
        self._idle_s = idle_s
        self._leg = 0  # driving from _wp[_order[_leg]] to _wp[_order[_leg + 1]]
        self._order = list(range(len(self._wp)))
        self._along_m = 0.0
        self.speed_mps = 0.0
        self._target = self.cruise_mps
        self._dwell_left = rng.uniform(0.0, dwell_s[0])
        self._dwell_elapsed = 0.0
        self.distance_m = 0.0
        self.arrivals = 0
        self._leg_len = distance_m(*self.leg)

    @property
    def leg(self) -> tuple[LatLon, LatLon]:
        a, b = self._order[self._leg], self._order[self._leg + 1]
        return (self._wp[a][0], self._wp[a][1]), (self._wp[b][0], self._wp[b][1])

    @property
    def dwelling(self) -> bool:
        return self._dwell_left > 0

    @property
    def engine_on(self) -> bool:
        return not self.dwelling or self._dwell_elapsed < self._idle_s

    @property
    def at_origin(self) -> bool:
        return self.dwelling and self._order[self._leg] == 0

    def position(self) -> LatLon:
        a, b = self.leg
        frac = min(1.0, self._along_m / max(self._leg_len, 1e-9))
        return a[0] + (b[0] - a[0]) * frac, a[1] + (b[1] - a[1]) * frac

    def heading(self) -> float:
        return bearing_deg(*self.leg)

    def advance(self, dt_s: float) -> None:
        for h in substeps(dt_s, self.MAX_H_S):
            self._substep(h)

    def _substep(self, h: float) -> None:
        if self._dwell_left > 0:
            self._dwell_left -= h
            self._dwell_elapsed += h
            self.speed_mps = 0.0
            return
        if self._rng.random() < h / 120.0:
            self._target = self.cruise_mps * self._rng.uniform(0.75, 1.1)
        remaining = self._leg_len - self._along_m
        v = self.speed_mps
        target = self._target
        if remaining < v * v / (2 * self.BRAKE) + 5 * v:
            target = max(3.0, math.sqrt(max(0.0, 2 * self.BRAKE * remaining)))
        v = min(target, v + self.ACCEL * h) if v < target else max(target, v - self.BRAKE * h)
        self.speed_mps = v
        step = min(v * h, remaining)
        self._along_m += step
        self.distance_m += step
        if self._along_m >= self._leg_len - 1e-6:
            self._arrive()

    def _arrive(self) -> None:
        self.arrivals += 1
        self._leg += 1
        if self._leg >= len(self._order) - 1:
            self._order.reverse()
            self._leg = 0
        self._along_m = 0.0
        self._leg_len = distance_m(*self.leg)
        self.speed_mps = 0.0
        self._dwell_left = self._rng.uniform(*self._dwell_range)
        self._dwell_elapsed = 0.0


class GpsTracker:
    """Reports latitude, longitude (1e-6 deg), speed and heading of a truck."""

    profile = "gps_tracker"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        waypoints: Sequence[LatLon] = DEFAULT_ROUTE,
        cruise_kmh: float = 80.0,
        interval_ms: int = 10_000,
        fix_sigma_m: float = 2.5,
    ) -> None:
        self.device_id = device_id
        self._rng = rng
        self.route = RouteFollower(rng, waypoints, cruise_kmh=cruise_kmh)
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self._sigma = fix_sigma_m

    def step(self, t_ms: int) -> Sample | None:
        self.route.advance(self._clock.advance(t_ms))
        if not self._periodic.due(t_ms):
            return None
        return make_sample(
            self.device_id, t_ms, fix_measurements(self._rng, self.route, self._sigma)
        )


def fix_measurements(
    rng: random.Random, route: RouteFollower, sigma_m: float
) -> tuple[Measurement, ...]:
    """Position, speed and heading as a GNSS receiver reports them."""
    lat, lon = jitter(rng, route.position(), sigma_m)
    kmh = route.speed_mps * 3.6
    if kmh > 0:
        kmh = max(0.0, kmh + rng.gauss(0, 0.4))
    heading = round(route.heading(), 1) % 360.0
    return (
        measure("latitude", lat),
        measure("longitude", lon),
        measure("speed", kmh),
        measure("heading", heading),
    )

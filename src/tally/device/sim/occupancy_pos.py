"""Hotels: room occupancy and point-of-sale transactions, reported per local hour.

Guests check out in the morning and check in from the early afternoon towards a nightly
target that depends on the day of the week (busier on Friday and Saturday).  Till
transactions follow breakfast, lunch, dinner and the bar.
"""

from __future__ import annotations

import random

from tally.device.sim.base import HOUR_MS, Sample, local_datetime, make_sample, measure, poisson

NIGHT_TARGET = (0.66, 0.70, 0.72, 0.74, 0.88, 0.90, 0.55)  # by weekday, Monday first
MAX_CATCH_UP_H = 24 * 7


def pos_rate(hour: int, guests: float) -> float:
    """Expected till transactions in the local hour starting at ``hour``."""
    if 7 <= hour < 10:
        return 0.25 * guests + 4
    if 12 <= hour < 14:
        return 25.0
    if 19 <= hour < 22:
        return 0.15 * guests + 18
    if hour >= 22:
        return 12.0
    if hour < 6:
        return 1.0
    return 6.0


class OccupancyPos:
    """Emits one sample per completed hour: ``occupancy`` (%) and ``pos_transactions``."""

    profile = "occupancy_pos"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        rooms: int = 120,
        guests_per_room: float = 1.6,
        utc_offset_min: int = 0,
    ) -> None:
        if rooms <= 0:
            raise ValueError("rooms must be positive")
        self.device_id = device_id
        self._rng = rng
        self.rooms = rooms
        self._gpr = guests_per_room
        self._offset_min = utc_offset_min
        self.occupied = round(rooms * rng.uniform(0.55, 0.8))
        self._next_end: int | None = None

    def _hour_boundary_after(self, t_ms: int) -> int:
        off = self._offset_min * 60_000
        return (t_ms + off) // HOUR_MS * HOUR_MS + HOUR_MS - off

    def _advance_hour(self, start_ms: int) -> int:
        local = local_datetime(start_ms, self._offset_min)
        hour = local.hour
        if 7 <= hour < 12:
            leaving = min(self.occupied, poisson(self._rng, self.occupied * 0.11))
            self.occupied -= leaving
        elif 13 <= hour < 22:
            target = round(
                self.rooms * NIGHT_TARGET[local.weekday()] * self._rng.uniform(0.95, 1.05)
            )
            missing = max(0, min(self.rooms, target) - self.occupied)
            arriving = min(missing, poisson(self._rng, missing / (22 - hour)))
            self.occupied += arriving
        return poisson(self._rng, pos_rate(hour, self.occupied * self._gpr))

    def step(self, t_ms: int) -> Sample | None:
        if self._next_end is None:
            self._next_end = self._hour_boundary_after(t_ms)
            return None
        if t_ms < self._next_end:
            return None
        if t_ms - self._next_end > MAX_CATCH_UP_H * HOUR_MS:
            self._next_end = self._hour_boundary_after(t_ms) - MAX_CATCH_UP_H * HOUR_MS
        end = self._next_end
        start = end - HOUR_MS
        transactions = self._advance_hour(start)
        self._next_end = end + HOUR_MS
        period = local_datetime(start, self._offset_min).strftime("%Y-%m-%dT%H")
        return make_sample(
            self.device_id,
            end,
            (
                measure("occupancy", 100.0 * self.occupied / self.rooms),
                measure("pos_transactions", transactions),
            ),
            {"period": period},
        )

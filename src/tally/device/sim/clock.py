"""Time compression: simulated time runs ``time_scale`` times faster than the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEMO_TIME_SCALE = 1440.0
"""A simulated day per wall minute: a 60 s demo shows a whole day and night."""


@dataclass(frozen=True)
class SimClock:
    """Maps wall time elapsed since the start of a run to simulated Unix time (ms)."""

    start_ms: int
    time_scale: float = DEMO_TIME_SCALE

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")

    def at(self, wall_elapsed_ms: int | float) -> int:
        """Simulated time after ``wall_elapsed_ms`` of wall time."""
        return self.start_ms + round(wall_elapsed_ms * self.time_scale)

    def wall_ms(self, sim_ms: int) -> float:
        """Wall time (ms since the start) at which simulated time ``sim_ms`` is reached."""
        return (sim_ms - self.start_ms) / self.time_scale

    def ticks(self, wall_seconds: float, wall_tick_ms: int = 1000) -> list[int]:
        """Simulated times of ticks every ``wall_tick_ms`` over a run, both ends included."""
        if wall_tick_ms <= 0:
            raise ValueError("wall_tick_ms must be positive")
        n = int(wall_seconds * 1000) // wall_tick_ms
        return [self.at(k * wall_tick_ms) for k in range(n + 1)]


def local_ms(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, utc_offset_min: int = 0
) -> int:
    """Unix time (ms) of a local wall time at a fixed UTC offset."""
    local = datetime(year, month, day, hour, minute) - timedelta(minutes=utc_offset_min)
    return (local - datetime(1970, 1, 1)) // timedelta(milliseconds=1)

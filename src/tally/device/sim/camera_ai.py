"""Cameras with on-board detection: one sample per detection event.

Detections follow the working day (people and forklifts during shifts, a few trucks, a
guard's round now and then at night); each carries a confidence in [0.50, 0.99].
"""

from __future__ import annotations

import random

from tally.device.sim.base import (
    EventQueue,
    PoissonProcess,
    Sample,
    is_working_time,
    make_sample,
    measure,
)

DAY_RATES: dict[str, float] = {
    "person_detected": 12.0,
    "forklift_detected": 8.0,
    "truck_detected": 1.5,
}
NIGHT_RATES: dict[str, float] = {"person_detected": 0.3}


class CameraAi:
    """Reports detections with ``confidence`` and ``object_count``; ``None`` when idle."""

    profile = "camera_ai"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        day_rates: dict[str, float] | None = None,
        night_rates: dict[str, float] | None = None,
        zone: str | None = None,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self.zone = zone
        self._rng = rng
        self._day = dict(DAY_RATES if day_rates is None else day_rates)
        self._night = dict(NIGHT_RATES if night_rates is None else night_rates)
        self._offset_min = utc_offset_min
        rate_max = max(sum(self._day.values()), sum(self._night.values()))
        self._proc = PoissonProcess(rng, self._rate, rate_max)
        self._queue: EventQueue[tuple[str, int]] = EventQueue()

    def _rates(self, t_ms: int) -> dict[str, float]:
        return self._day if is_working_time(t_ms, self._offset_min) else self._night

    def _rate(self, t_ms: int) -> float:
        return sum(self._rates(t_ms).values())

    def detect(self, t_ms: int, event: str, count: int = 1) -> None:
        """Something is seen at ``t_ms`` (e.g. ``person_detected``)."""
        self._queue.push(t_ms, (event, count))

    def step(self, t_ms: int) -> Sample | None:
        for at in self._proc.events_until(t_ms):
            rates = self._rates(at)
            if rates:
                kinds = sorted(rates)
                kind = self._rng.choices(kinds, weights=[rates[k] for k in kinds])[0]
                count = self._rng.choice((1, 1, 1, 2, 3)) if kind == "person_detected" else 1
                self.detect(at, kind, count)
        due = self._queue.pop_due(t_ms)
        if due is None:
            return None
        at, (event, count) = due
        confidence = min(0.99, max(0.5, self._rng.betavariate(9.0, 1.5)))
        labels = {"event": event}
        if self.zone is not None:
            labels["zone"] = self.zone
        return make_sample(
            self.device_id,
            at,
            (measure("confidence", confidence), measure("object_count", count)),
            labels,
        )

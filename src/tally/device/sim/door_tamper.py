"""Door contacts with a tamper switch: one sample per change of state.

Doors open now and then during working hours and close again after up to a few
minutes.  The tamper switch latches when the housing is opened until it is reset.
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

EVENTS = ("door_open", "door_close", "tamper", "tamper_reset")


class DoorTamper:
    """Reports ``door_open`` and ``tamper`` (0/1) whenever either changes."""

    profile = "door_tamper"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        opens_per_h: float = 4.0,
        open_s: tuple[float, float] = (15.0, 240.0),
        tamper_per_h: float = 0.0,
        door: str | None = None,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self.door = door
        self._rng = rng
        self._opens = opens_per_h
        self._open_s = open_s
        self._offset_min = utc_offset_min
        self._queue: EventQueue[str] = EventQueue()
        self._door_proc = PoissonProcess(rng, self._open_rate, opens_per_h)
        self._tamper_proc = PoissonProcess(rng, lambda _t: tamper_per_h, tamper_per_h)
        self._open_until = -1
        self.door_open = False
        self.tamper = False

    def _open_rate(self, t_ms: int) -> float:
        return self._opens if is_working_time(t_ms, self._offset_min) else 0.0

    def open_door(self, t_ms: int, duration_ms: int) -> None:
        """The door is opened at ``t_ms`` and closed ``duration_ms`` later."""
        self._queue.push(t_ms, "door_open")
        self._queue.push(t_ms + duration_ms, "door_close")
        self._open_until = max(self._open_until, t_ms + duration_ms)

    def trigger_tamper(self, t_ms: int) -> None:
        self._queue.push(t_ms, "tamper")

    def reset_tamper(self, t_ms: int) -> None:
        self._queue.push(t_ms, "tamper_reset")

    def step(self, t_ms: int) -> Sample | None:
        for at in self._door_proc.events_until(t_ms):
            if at > self._open_until:
                self.open_door(at, int(self._rng.uniform(*self._open_s) * 1000))
        for at in self._tamper_proc.events_until(t_ms):
            self.trigger_tamper(at)
        due = self._queue.pop_due(t_ms)
        if due is None:
            return None
        at, event = due
        if event == "door_open":
            self.door_open = True
        elif event == "door_close":
            self.door_open = False
        else:
            self.tamper = event == "tamper"
        labels = {"event": event}
        if self.door is not None:
            labels["door"] = self.door
        return make_sample(
            self.device_id,
            at,
            (measure("door_open", int(self.door_open)), measure("tamper", int(self.tamper))),
            labels,
        )

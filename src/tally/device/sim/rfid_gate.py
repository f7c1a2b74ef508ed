"""RFID gates at dock doors: one sample per tagged lot passing, with its direction."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tally.device.sim.base import (
    EventQueue,
    PoissonProcess,
    Sample,
    is_working_time,
    make_sample,
    measure,
)

EPC_COMPANY = "4012345"


def epc_tag(rng: random.Random, company: str = EPC_COMPANY) -> str:
    """An EPC SGTIN-like tag URI with a random item reference and serial."""
    item = rng.randrange(1, 1_000_000)
    serial = rng.randrange(1, 2**38)
    return f"urn:epc:id:sgtin:{company}.{item:06d}.{serial}"


@dataclass(frozen=True)
class Scan:
    """A tag passing the gate."""

    tag: str
    direction: str  # "in" | "out"
    lot: str | None = None
    release: str | None = None


class RfidGate:
    """Reports each tag that passes; returns ``None`` when no tag is passing.

    With ``rate_per_h`` > 0 the gate also sees unrelated tagged goods during working hours
    (for standalone use); a site drives it with :meth:`enqueue_scan` and a rate of 0.
    """

    profile = "rfid_gate"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        rate_per_h: float = 6.0,
        gate: str | None = None,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self.gate = gate
        self._rng = rng
        self._rate = rate_per_h
        self._offset_min = utc_offset_min
        self._queue: EventQueue[Scan] = EventQueue()
        self._auto = PoissonProcess(rng, self._traffic_rate, rate_per_h)
        self.scans_total = 0

    def _traffic_rate(self, t_ms: int) -> float:
        return self._rate if is_working_time(t_ms, self._offset_min) else 0.0

    def enqueue_scan(
        self,
        t_ms: int,
        tag: str,
        direction: str,
        *,
        lot: str | None = None,
        release: str | None = None,
    ) -> None:
        """A tag will pass the gate at ``t_ms`` going ``direction`` ("in" or "out")."""
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        self._queue.push(t_ms, Scan(tag, direction, lot, release))

    def step(self, t_ms: int) -> Sample | None:
        for at in self._auto.events_until(t_ms):
            self.enqueue_scan(at, epc_tag(self._rng), self._rng.choice(("in", "out")))
        due = self._queue.pop_due(t_ms)
        if due is None:
            return None
        at, scan = due
        self.scans_total += 1
        rssi = min(-30.0, max(-80.0, self._rng.gauss(-57.0, 5.0)))
        labels = {"tag": scan.tag, "direction": scan.direction}
        if scan.lot is not None:
            labels["lot"] = scan.lot
        if scan.release is not None:
            labels["release"] = scan.release
        if self.gate is not None:
            labels["gate"] = self.gate
        return make_sample(
            self.device_id,
            at,
            (measure("rssi", rssi), measure("read_count", self._rng.randint(3, 25))),
            labels,
        )

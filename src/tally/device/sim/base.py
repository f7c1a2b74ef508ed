"""Data model and shared helpers of the sensor simulators.

Every value a simulator emits is an exact :class:`~decimal.Decimal` quantized to the
resolution of its quantity (see :data:`QUANTITIES`); units are UCUM codes.  Models are
driven by the simulated time passed to :meth:`SensorModel.step` and draw all randomness
from the :class:`random.Random` they were given, so a seed fixes every sample.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Generic, Protocol, TypeVar, runtime_checkable

from tally.device.envelope import Measurement as Measurement

SIM_LABEL: tuple[str, str] = ("sim", "1")
"""Label carried by every simulated sample so stored data can be shown as simulated."""

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

QUANTITIES: dict[str, tuple[str, Decimal]] = {
    "weight": ("t", Decimal("0.001")),
    "temperature": ("Cel", Decimal("0.01")),
    "humidity": ("%", Decimal("0.1")),
    "energy": ("kWh", Decimal("0.001")),
    "power": ("kW", Decimal("0.01")),
    "latitude": ("deg", Decimal("0.000001")),
    "longitude": ("deg", Decimal("0.000001")),
    "speed": ("km/h", Decimal("0.1")),
    "heading": ("deg", Decimal("0.1")),
    "odometer": ("km", Decimal("0.1")),
    "fuel_level": ("%", Decimal("0.1")),
    "run_hours": ("h", Decimal("0.01")),
    "engine_on": ("1", Decimal("1")),
    "door_open": ("1", Decimal("1")),
    "tamper": ("1", Decimal("1")),
    "rssi": ("dB[mW]", Decimal("0.1")),
    "read_count": ("1", Decimal("1")),
    "confidence": ("1", Decimal("0.01")),
    "object_count": ("1", Decimal("1")),
    "occupancy": ("%", Decimal("0.1")),
    "pos_transactions": ("1", Decimal("1")),
}
"""Quantity name -> (UCUM unit, resolution) for every quantity the simulators emit."""


@dataclass(frozen=True)
class Sample:
    """What one device reports at one instant of its own clock."""

    device_id: str
    t_ms: int
    measurements: tuple[Measurement, ...]
    labels: tuple[tuple[str, str], ...] = ()

    def value(self, quantity: str) -> Decimal | None:
        for m in self.measurements:
            if m.quantity == quantity:
                return m.value
        return None

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@runtime_checkable
class SensorModel(Protocol):
    """A simulated sensor.  ``step`` returns the next sample due at or before ``t_ms``.

    Periodic sensors report at most once per call; event sensors return one queued event
    per call (older first), so calling ``step`` until it returns ``None`` drains a tick.
    """

    device_id: str
    profile: str

    def step(self, t_ms: int) -> Sample | None: ...


def measure(quantity: str, value: float | int | Decimal) -> Measurement:
    """Build a measurement of a known quantity, quantized to its resolution."""
    unit, res = QUANTITIES[quantity]
    d = value if isinstance(value, Decimal) else Decimal(value)
    q = d.quantize(res, rounding=ROUND_HALF_EVEN)
    if q.is_zero():
        q = abs(q)
    return Measurement(quantity, q, unit)


def make_sample(
    device_id: str,
    t_ms: int,
    measurements: tuple[Measurement, ...] | list[Measurement],
    labels: Mapping[str, str] | None = None,
) -> Sample:
    """Build a sample labelled as simulated, its labels sorted by key."""
    merged = dict(labels or {})
    merged[SIM_LABEL[0]] = SIM_LABEL[1]
    return Sample(device_id, t_ms, tuple(measurements), tuple(sorted(merged.items())))


def derive_seed(seed: int | str, *parts: str) -> int:
    """A stable 64-bit seed derived from ``seed`` and names (independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(seed).encode())
    for p in parts:
        h.update(b"\x00" + p.encode())
    return int.from_bytes(h.digest(), "big")


def local_datetime(t_ms: int, utc_offset_min: int = 0) -> datetime:
    """Local wall time at ``t_ms`` for a fixed UTC offset (naive, no DST)."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=t_ms + utc_offset_min * 60_000)


def local_hour(t_ms: int, utc_offset_min: int = 0) -> float:
    """Hour of the local day in [0, 24)."""
    return ((t_ms + utc_offset_min * 60_000) % DAY_MS) / HOUR_MS


def local_weekday(t_ms: int, utc_offset_min: int = 0) -> int:
    """Local day of the week, Monday = 0 (1970-01-01 was a Thursday)."""
    return ((t_ms + utc_offset_min * 60_000) // DAY_MS + 3) % 7


def is_working_time(
    t_ms: int, utc_offset_min: int = 0, start_h: float = 7.0, end_h: float = 18.0
) -> bool:
    """Monday to Friday between ``start_h`` and ``end_h`` local."""
    return (
        local_weekday(t_ms, utc_offset_min) < 5
        and start_h <= local_hour(t_ms, utc_offset_min) < end_h
    )


def next_local_time(t_ms: int, hour: int, minute: int, utc_offset_min: int = 0) -> int:
    """The first instant at or after ``t_ms`` whose local time is ``hour:minute``."""
    off = utc_offset_min * 60_000
    day_start = (t_ms + off) // DAY_MS * DAY_MS - off
    cand = day_start + hour * HOUR_MS + minute * 60_000
    return cand if cand >= t_ms else cand + DAY_MS


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson variate (Knuth for small means, rounded normal otherwise)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class PoissonProcess:
    """Event times of a Poisson process with a time-varying rate, by thinning.

    ``rate`` gives events per hour at a time; ``rate_max`` bounds it from above.
    """

    def __init__(self, rng: random.Random, rate: Callable[[int], float], rate_max: float) -> None:
        self._rng = rng
        self._rate = rate
        self._rate_max = rate_max
        self._candidate: float | None = None

    def events_until(self, t_ms: int) -> list[int]:
        """Event times in (previous call, ``t_ms``]; the first call only starts the clock."""
        if self._rate_max <= 0:
            return []
        if self._candidate is None:
            self._candidate = t_ms + self._gap()
            return []
        out: list[int] = []
        while self._candidate <= t_ms:
            at = int(self._candidate)
            if self._rng.random() * self._rate_max < self._rate(at):
                out.append(at)
            self._candidate += self._gap()
        return out

    def _gap(self) -> float:
        return self._rng.expovariate(self._rate_max / HOUR_MS)


class Periodic:
    """Reporting schedule: due on the first call, then every ``interval_ms`` (no catch-up)."""

    def __init__(self, interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        self.interval_ms = interval_ms
        self._next: int | None = None

    def due(self, t_ms: int) -> bool:
        if self._next is None or t_ms >= self._next:
            self._next = t_ms + self.interval_ms
            return True
        return False


T = TypeVar("T")


class EventQueue(Generic[T]):
    """Time-ordered pending events (stable for equal times)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._seq = 0

    def push(self, t_ms: int, payload: T) -> None:
        heapq.heappush(self._heap, (t_ms, self._seq, payload))
        self._seq += 1

    def pop_due(self, t_ms: int) -> tuple[int, T] | None:
        if self._heap and self._heap[0][0] <= t_ms:
            at, _, payload = heapq.heappop(self._heap)
            return at, payload
        return None

    def __len__(self) -> int:
        return len(self._heap)


class Clock:
    """Elapsed simulated time between successive ``step`` calls of one model."""

    def __init__(self) -> None:
        self.last_ms: int | None = None

    def advance(self, t_ms: int) -> float:
        """Seconds since the previous call (0 on the first call or if time went back)."""
        prev, self.last_ms = self.last_ms, t_ms
        if prev is None or t_ms <= prev:
            return 0.0
        return (t_ms - prev) / 1000.0


def substeps(dt_s: float, max_h_s: float) -> list[float]:
    """Split ``dt_s`` into equal integration steps of at most ``max_h_s`` seconds."""
    if dt_s <= 0:
        return []
    n = max(1, math.ceil(dt_s / max_h_s))
    return [dt_s / n] * n

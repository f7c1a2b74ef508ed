"""Load cells and weighbridges: the stock of one storage location in tonnes.

The reading is the true stock (initial stock plus every movement so far) plus a slowly
drifting zero offset (mean-reverting, bounded), white noise, and a damped oscillation
that settles within a few seconds after each load event.
"""

from __future__ import annotations

import functools
import math
import random
from decimal import Decimal

from tally.device.sim.base import (
    Clock,
    Periodic,
    PoissonProcess,
    Sample,
    is_working_time,
    make_sample,
    measure,
)

TONNE = Decimal("0.001")


def _dec(x: Decimal | str | float | int) -> Decimal:
    return (x if isinstance(x, Decimal) else Decimal(str(x))).quantize(TONNE)


class LoadCell:
    """Stock of a storage location (profiles ``load_cell`` and ``weighbridge``)."""

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        profile: str = "load_cell",
        initial_t: Decimal | str | float = "20.000",
        capacity_t: Decimal | str | float = "200.000",
        noise_t: float = 0.002,
        max_drift_t: float = 0.01,
        drift_tau_s: float = 6 * 3600.0,
        settle_tau_s: float = 3.0,
        settle_period_s: float = 1.6,
        interval_ms: int = 5_000,
        auto_movements: bool = True,
        movement_rate_per_h: float = 0.8,
        location: str | None = None,
        utc_offset_min: int = 0,
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.location = location
        self.initial_t = _dec(initial_t)
        self.capacity_t = _dec(capacity_t)
        self.noise_t = noise_t
        self.max_drift_t = max_drift_t
        self._rng = rng
        self._drift_tau_s = drift_tau_s
        self._settle_tau_s = settle_tau_s
        self._settle_period_s = settle_period_s
        self._offset_min = utc_offset_min
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self._drift = 0.0
        self._movements: list[tuple[int, Decimal]] = []
        self._auto = (
            PoissonProcess(rng, self._movement_rate, movement_rate_per_h)
            if auto_movements
            else None
        )
        self._rate = movement_rate_per_h

    # -- physical interface -------------------------------------------------------------
    def schedule_movement(self, at_ms: int, delta_t: Decimal | str | float) -> None:
        """Goods arrive (positive) or leave (negative) the platform at ``at_ms``."""
        self._movements.append((at_ms, _dec(delta_t)))
        self._movements.sort(key=lambda m: m[0])

    @property
    def movements(self) -> tuple[tuple[int, Decimal], ...]:
        return tuple(self._movements)

    def expected_t(self, t_ms: int) -> Decimal:
        """True stock at ``t_ms``: initial stock plus all movements up to then."""
        return self.initial_t + sum(
            (d for at, d in self._movements if at <= t_ms), Decimal("0.000")
        )

    # -- model --------------------------------------------------------------------------
    def _movement_rate(self, t_ms: int) -> float:
        return self._rate if is_working_time(t_ms, self._offset_min) else 0.0

    def _auto_move(self, t_ms: int) -> None:
        if self._auto is None:
            return
        for at in self._auto.events_until(t_ms):
            stock = self.expected_t(at)
            size = _dec(self._rng.uniform(2.0, 15.0))
            fill = float(stock / self.capacity_t) if self.capacity_t else 1.0
            inbound = self._rng.random() > fill
            if inbound and stock + size > self.capacity_t:
                inbound = False
            delta = size if inbound else -min(size, stock)
            if delta:
                self.schedule_movement(at, delta)

    def _update_drift(self, dt_s: float) -> None:
        if dt_s <= 0:
            return
        a = math.exp(-dt_s / self._drift_tau_s)
        sd = self.max_drift_t / 3.0
        self._drift = self._drift * a + sd * math.sqrt(1 - a * a) * self._rng.gauss(0, 1)
        self._drift = max(-self.max_drift_t, min(self.max_drift_t, self._drift))

    def _transient(self, t_ms: int) -> float:
        total = 0.0
        horizon = 12 * self._settle_tau_s
        for at, d in self._movements:
            age = (t_ms - at) / 1000.0
            if 0 <= age < horizon:
                total -= (
                    float(d)
                    * math.exp(-age / self._settle_tau_s)
                    * math.cos(2 * math.pi * age / self._settle_period_s)
                )
        return total

    def step(self, t_ms: int) -> Sample | None:
        self._auto_move(t_ms)
        self._update_drift(self._clock.advance(t_ms))
        if not self._periodic.due(t_ms):
            return None
        transient = self._transient(t_ms)
        noise = self._rng.gauss(0, self.noise_t)
        reading = self.expected_t(t_ms) + Decimal(self._drift + transient + noise)
        reading = max(reading, Decimal(0))
        labels = {"stable": "1" if abs(transient) < 3 * self.noise_t else "0"}
        if self.location is not None:
            labels["location"] = self.location
        return make_sample(self.device_id, t_ms, (measure("weight", reading),), labels)


weighbridge = functools.partial(
    LoadCell,
    profile="weighbridge",
    initial_t="80.000",
    capacity_t="1000.000",
    noise_t=0.01,
    max_drift_t=0.04,
    interval_ms=10_000,
    movement_rate_per_h=1.5,
)
"""A weighbridge under a bulk yard: coarser noise, larger capacity (keywords override)."""

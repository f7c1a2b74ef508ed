"""``rate_of_change``: a quantity changing faster than ``max_per_min`` units per minute.

Each reading is compared with the device's previous reading of the quantity (by the
device clock; a reading not later than the previous one is ignored). The rate
``Δvalue / Δt`` is compared exactly (``|Δvalue| · 60000 > max_per_min · Δt_ms``), so a rate
equal to the limit does not fire. ``direction`` limits it to rises (``up``) or falls
(``down``). It fires ``rate_exceeded`` once per episode; a later pair within the limit
re-arms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec

_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
_RATE_QUANTUM = Decimal("0.000001")
MINUTE_MS = 60_000


@dataclass
class _Last:
    t: int
    value: Decimal
    ref: bytes
    active: bool = False


class RateOfChange(Rule):
    TYPE = "rate_of_change"
    KEYS = SELECTOR_KEYS | {"quantity", "max_per_min", "direction"}

    def __init__(
        self,
        rule_id: str,
        sev: str,
        selector: Selector,
        quantity: str,
        max_per_min: Decimal,
        direction: str = "both",
    ) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.quantity = quantity
        self.max_per_min = max_per_min
        self.direction = direction
        self._last: dict[str, _Last] = {}

    @classmethod
    def from_spec(cls, spec: Spec) -> RateOfChange:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        quantity = spec.string("quantity")
        limit = spec.decimal("max_per_min")
        if limit <= 0:
            raise spec.error("max_per_min", f"must be positive, got {limit}")
        direction = spec.choice("direction", ("both", "up", "down"), "both")
        return cls(spec.rule_id, sev, selector, quantity, limit, direction)

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        m = next((x for x in r.m if x.quantity == self.quantity), None)
        if m is None:
            return
        last = self._last.get(obs.dev)
        if last is None:
            self._last[obs.dev] = _Last(r.t, m.value, obs.env_hash)
            return
        dt = r.t - last.t
        if dt <= 0:
            return
        dv = _CTX.subtract(m.value, last.value)
        if self.direction == "up":
            moved = max(dv, Decimal(0))
        elif self.direction == "down":
            moved = max(-dv, Decimal(0))
        else:
            moved = abs(dv)
        fast = _CTX.multiply(moved, MINUTE_MS) > _CTX.multiply(self.max_per_min, dt)
        if fast and not last.active:
            rate = _CTX.divide(_CTX.multiply(dv, MINUTE_MS), dt).quantize(
                _RATE_QUANTUM, context=_CTX
            )
            out.append(
                self.firing(
                    "rate_exceeded",
                    r.t,
                    (obs.dev,),
                    (last.ref, obs.env_hash),
                    detail(
                        quantity=self.quantity,
                        unit=m.unit,
                        rate_per_min=rate,
                        max_per_min=self.max_per_min,
                        previous=last.value,
                        value=m.value,
                        dt_ms=dt,
                    ),
                )
            )
        self._last[obs.dev] = _Last(r.t, m.value, obs.env_hash, fast)

"""``threshold``: a quantity above ``max`` or below ``min``, optionally for ``for_ms``.

An excursion starts with the first reading out of range (``value > max`` or ``value < min``;
a value equal to a limit is in range). It fires ``out_of_range`` once, when it has lasted
``for_ms`` by the device clock (at once when ``for_ms`` is 0), and ``out_of_range_cleared``
(info) when a later reading is back inside ``[min + hysteresis, max - hysteresis]``. An
excursion that ends before ``for_ms`` fires nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec


@dataclass
class _Excursion:
    start: int
    first_ref: bytes
    worst: Decimal
    fired: bool = False


class Threshold(Rule):
    TYPE = "threshold"
    KEYS = SELECTOR_KEYS | {"quantity", "min", "max", "for_ms", "hysteresis"}

    def __init__(
        self,
        rule_id: str,
        sev: str,
        selector: Selector,
        quantity: str,
        lo: Decimal | None,
        hi: Decimal | None,
        for_ms: int = 0,
        hysteresis: Decimal = Decimal(0),
    ) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.quantity = quantity
        self.lo = lo
        self.hi = hi
        self.for_ms = for_ms
        self.hysteresis = hysteresis
        self._state: dict[str, _Excursion] = {}

    @classmethod
    def from_spec(cls, spec: Spec) -> Threshold:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        quantity = spec.string("quantity")
        lo = spec.decimal("min", None)
        hi = spec.decimal("max", None)
        if lo is None and hi is None:
            raise spec.error("max", "is missing (give 'min', 'max' or both)")
        if lo is not None and hi is not None and lo > hi:
            raise spec.error("min", f"{lo} is above max {hi}")
        for_ms = spec.integer("for_ms", 0, minimum=0)
        hyst = spec.decimal("hysteresis", Decimal(0), minimum=Decimal(0))
        if lo is not None and hi is not None and 2 * hyst > hi - lo:
            raise spec.error("hysteresis", f"{hyst} leaves no band to clear in ({lo}..{hi})")
        return cls(spec.rule_id, sev, selector, quantity, lo, hi, for_ms, hyst)

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def _distance_out(self, v: Decimal) -> Decimal:
        """How far ``v`` is outside the range (<= 0 inside)."""
        above = v - self.hi if self.hi is not None else None
        below = self.lo - v if self.lo is not None else None
        return max(x for x in (above, below) if x is not None)

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        m = next((x for x in r.m if x.quantity == self.quantity), None)
        if m is None:
            return
        v = m.value
        st = self._state.get(obs.dev)
        if self._distance_out(v) > 0:
            if st is None:
                st = self._state[obs.dev] = _Excursion(r.t, obs.env_hash, v)
            elif self._distance_out(v) > self._distance_out(st.worst):
                st.worst = v
            if not st.fired and r.t - st.start >= self.for_ms:
                st.fired = True
                refs = (
                    (st.first_ref,)
                    if st.first_ref == obs.env_hash
                    else (st.first_ref, obs.env_hash)
                )
                side = "above" if self.hi is not None and v > self.hi else "below"
                out.append(
                    self.firing(
                        "out_of_range",
                        r.t,
                        (obs.dev,),
                        refs,
                        detail(
                            quantity=self.quantity,
                            value=v,
                            unit=m.unit,
                            side=side,
                            min=self.lo,
                            max=self.hi,
                            since_ms=st.start,
                            duration_ms=r.t - st.start,
                        ),
                    )
                )
            return
        if st is None:
            return
        if not st.fired:
            del self._state[obs.dev]
            return
        if self._distance_out(v) <= -self.hysteresis:
            del self._state[obs.dev]
            out.append(
                self.firing(
                    "out_of_range_cleared",
                    r.t,
                    (obs.dev,),
                    (obs.env_hash,),
                    detail(
                        quantity=self.quantity,
                        value=v,
                        unit=m.unit,
                        worst=st.worst,
                        min=self.lo,
                        max=self.hi,
                        since_ms=st.start,
                        duration_ms=r.t - st.start,
                    ),
                    sev="info",
                )
            )

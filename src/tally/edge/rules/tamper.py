"""``tamper``: a tamper switch (or a door contact) tripped; fires ``tamper`` at once.

With ``label`` set, a reading whose label ``label`` equals ``label_value`` fires, every
time (labels name discrete events, e.g. ``event = "tamper"``). Otherwise a non-zero value
of ``quantity`` fires once per latch: the device must report 0 again before it can fire
again (tamper switches latch and are reported on every later reading until reset).
"""

from __future__ import annotations

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec


class Tamper(Rule):
    TYPE = "tamper"
    KEYS = SELECTOR_KEYS | {"quantity", "label", "label_value"}
    DEFAULT_SEVERITY = "critical"

    def __init__(
        self,
        rule_id: str,
        sev: str,
        selector: Selector,
        quantity: str = "tamper",
        label: str | None = None,
        label_value: str = "tamper",
    ) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.quantity = quantity
        self.label = label
        self.label_value = label_value
        self._latched: set[str] = set()

    @classmethod
    def from_spec(cls, spec: Spec) -> Tamper:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        label = spec.string("label", None)
        if label is None and spec.has("label_value"):
            raise spec.error("label_value", "is given without 'label'")
        if label is not None and spec.has("quantity"):
            raise spec.error("quantity", "cannot be combined with 'label'")
        return cls(
            spec.rule_id,
            sev,
            selector,
            spec.string("quantity", "tamper"),
            label,
            spec.string("label_value", "tamper"),
        )

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        if self.label is not None:
            if r.label(self.label) == self.label_value:
                out.append(
                    self.firing(
                        "tamper",
                        r.t,
                        (obs.dev,),
                        (obs.env_hash,),
                        detail(label=self.label, value=self.label_value),
                    )
                )
            return
        v = r.value(self.quantity)
        if v is None:
            return
        if v == 0:
            self._latched.discard(obs.dev)
        elif obs.dev not in self._latched:
            self._latched.add(obs.dev)
            out.append(
                self.firing(
                    "tamper",
                    r.t,
                    (obs.dev,),
                    (obs.env_hash,),
                    detail(quantity=self.quantity, value=v),
                )
            )

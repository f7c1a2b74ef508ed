"""``time_of_day``: any movement inside a forbidden local time window (e.g. at night).

Movement is any of, in one reading:

* ``weight``: the value of ``quantity`` moved more than ``min_delta`` away from the
  device's last level (the level follows every reading, day and night, but only moves
  when a change exceeds ``min_delta``, so noise and slow drift never count);
* ``door``: ``door_quantity`` is non-zero (a door or gate opened);
* ``scan``: the reading carries the label ``scan_label`` (an RFID tag was read).

The window is ``[from, to)`` in local time at ``utc_offset_minutes`` (fixed, no daylight
saving) by the device clock; ``from`` after ``to`` spans midnight. The rule fires
``forbidden_hours_movement`` once per device per window occurrence (one night).
"""

from __future__ import annotations

from decimal import Decimal

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec

MINUTE_MS = 60_000
DAY_MIN = 1440


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class TimeOfDay(Rule):
    TYPE = "time_of_day"
    KEYS = SELECTOR_KEYS | {
        "from",
        "to",
        "utc_offset_minutes",
        "quantity",
        "min_delta",
        "door_quantity",
        "scan_label",
    }

    def __init__(
        self,
        rule_id: str,
        sev: str,
        selector: Selector,
        start_min: int,
        end_min: int,
        utc_offset_min: int = 0,
        quantity: str = "weight",
        min_delta: Decimal = Decimal("0.05"),
        door_quantity: str = "door_open",
        scan_label: str = "tag",
    ) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.start_min = start_min
        self.end_min = end_min
        self.offset_ms = utc_offset_min * MINUTE_MS
        self.quantity = quantity
        self.min_delta = min_delta
        self.door_quantity = door_quantity
        self.scan_label = scan_label
        self._level: dict[str, Decimal] = {}
        self._fired: dict[str, int] = {}

    @classmethod
    def from_spec(cls, spec: Spec) -> TimeOfDay:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        start = spec.minute_of_day("from")
        end = spec.minute_of_day("to")
        if start == end:
            raise spec.error("to", f"equals 'from' ({_hhmm(start)}): the window would be empty")
        offset = spec.integer("utc_offset_minutes", 0)
        if not -14 * 60 <= offset <= 14 * 60:
            raise spec.error("utc_offset_minutes", f"must be within ±840, got {offset}")
        return cls(
            spec.rule_id,
            sev,
            selector,
            start,
            end,
            offset,
            spec.string("quantity", "weight"),
            spec.decimal("min_delta", Decimal("0.05"), minimum=Decimal(0)),
            spec.string("door_quantity", "door_open"),
            spec.string("scan_label", "tag"),
        )

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def occurrence(self, t_ms: int) -> int | None:
        """The local day on which the window containing ``t_ms`` began, or None if outside."""
        local = (t_ms + self.offset_ms) // MINUTE_MS
        day, minute = divmod(local, DAY_MIN)
        if self.start_min < self.end_min:
            return day if self.start_min <= minute < self.end_min else None
        if minute >= self.start_min:
            return day
        return day - 1 if minute < self.end_min else None

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        if r.heartbeat:
            return
        signals: list[str] = []
        delta: Decimal | None = None
        value = r.value(self.quantity)
        if value is not None:
            level = self._level.get(obs.dev)
            if level is None:
                self._level[obs.dev] = value
            elif abs(value - level) > self.min_delta:
                self._level[obs.dev] = value
                delta = value - level
                signals.append("weight")
        door = r.value(self.door_quantity)
        if door is not None and door != 0:
            signals.append("door")
        tag = r.label(self.scan_label)
        if tag is not None:
            signals.append("scan")
        if not signals:
            return
        occ = self.occurrence(r.t)
        if occ is None or self._fired.get(obs.dev) == occ:
            return
        self._fired[obs.dev] = occ
        local_min = ((r.t + self.offset_ms) // MINUTE_MS) % DAY_MIN
        out.append(
            self.firing(
                "forbidden_hours_movement",
                r.t,
                (obs.dev,),
                (obs.env_hash,),
                detail(
                    signals=",".join(signals),
                    local_time=_hhmm(local_min),
                    window=f"{_hhmm(self.start_min)}-{_hhmm(self.end_min)}",
                    utc_offset_minutes=self.offset_ms // MINUTE_MS,
                    delta=delta,
                    tag=tag,
                ),
            )
        )

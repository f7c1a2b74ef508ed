"""``offline``: a device with no sign of life for more than ``timeout_ms``.

Every reading and heartbeat of a selected device is a sign of life, timed by the edge clock
(``received_ms``). At ``tick(now_ms)`` a device silent for more than ``timeout_ms`` (i.e.
``now_ms - last_seen > timeout_ms``) fires ``device_offline`` once; its next sign of life
fires ``device_online`` (info). Devices named in ``devices`` are watched from the engine's
first tick or observation even if they never report; devices selected by profile (or all
devices) are watched from their first sign of life.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec


@dataclass
class _Seen:
    at: int
    ref: bytes | None
    offline: bool = False


class Offline(Rule):
    TYPE = "offline"
    KEYS = SELECTOR_KEYS | {"timeout_ms"}
    TICKS = True

    def __init__(self, rule_id: str, sev: str, selector: Selector, timeout_ms: int) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.timeout_ms = timeout_ms
        self._seen: dict[str, _Seen] = {}
        self._started = False

    @classmethod
    def from_spec(cls, spec: Spec) -> Offline:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        return cls(spec.rule_id, sev, selector, spec.integer("timeout_ms", minimum=1))

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def _start(self, at: int) -> None:
        self._started = True
        for dev in sorted(self.selector.devices):
            self._seen.setdefault(dev, _Seen(at, None))

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        at = obs.received_ms
        if not self._started:
            self._start(at)
        seen = self._seen.get(obs.dev)
        if seen is None:
            self._seen[obs.dev] = _Seen(at, obs.env_hash)
            return
        if seen.offline:
            out.append(
                self.firing(
                    "device_online",
                    at,
                    (obs.dev,),
                    (obs.env_hash,),
                    detail(last_seen_ms=seen.at, silent_ms=at - seen.at),
                    sev="info",
                )
            )
            seen.offline = False
        if at >= seen.at:
            seen.at, seen.ref = at, obs.env_hash

    def tick(self, now_ms: int, out: list[Firing]) -> None:
        if not self._started:
            self._start(now_ms)
        for dev in sorted(self._seen):
            seen = self._seen[dev]
            if seen.offline or now_ms - seen.at <= self.timeout_ms:
                continue
            seen.offline = True
            out.append(
                self.firing(
                    "device_offline",
                    now_ms,
                    (dev,),
                    () if seen.ref is None else (seen.ref,),
                    detail(
                        last_seen_ms=seen.at,
                        silent_ms=now_ms - seen.at,
                        timeout_ms=self.timeout_ms,
                        never_seen=seen.ref is None,
                    ),
                )
            )

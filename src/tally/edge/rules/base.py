"""The shape every rule type shares: selectors, severity, ``observe`` and ``tick``.

A rule is built from its configuration table by ``from_spec`` and is then a small state
machine: the engine hands it only the observations its selectors match and appends what it
fires to a list. Per-device state is a few values per device, never a growing history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tally.edge.rules.model import Firing, Observation
from tally.edge.rules.spec import Spec

COMMON_KEYS = frozenset({"id", "type", "severity"})
SELECTOR_KEYS = frozenset({"devices", "profile"})


@dataclass(frozen=True)
class Selector:
    """Devices by id and/or by profile; neither means every device of the site."""

    devices: frozenset[str] = frozenset()
    profiles: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not self.devices and not self.profiles

    def matches(self, dev: str, profile: str) -> bool:
        return self.everything or dev in self.devices or profile in self.profiles

    @classmethod
    def from_spec(
        cls,
        spec: Spec,
        devices_key: str = "devices",
        profile_key: str = "profile",
        required: bool = False,
    ) -> Selector:
        devices = spec.strings(devices_key, ())
        profile = spec.string(profile_key, None)
        if required and not devices and profile is None:
            raise spec.error(devices_key, f"is missing (give {devices_key!r} or {profile_key!r})")
        return cls(frozenset(devices), frozenset({profile} if profile else ()))


class Rule:
    """Base class of the rule types; subclasses set ``TYPE``, ``KEYS`` and override hooks."""

    TYPE: ClassVar[str] = ""
    KEYS: ClassVar[frozenset[str]] = frozenset()
    """The type-specific keys (besides ``id``, ``type``, ``severity``)."""
    DEFAULT_SEVERITY: ClassVar[str] = "warning"
    TICKS: ClassVar[bool] = False
    """Whether ``tick`` does anything (the engine only ticks rules that say so)."""

    def __init__(self, rule_id: str, sev: str) -> None:
        self.id = rule_id
        self.sev = sev

    @classmethod
    def from_spec(cls, spec: Spec) -> Rule:
        raise NotImplementedError

    def selectors(self) -> tuple[Selector, ...]:
        """Which observations reach :meth:`observe` (any selector matching is enough)."""
        raise NotImplementedError

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        """Take one observation; append any firing to ``out``."""
        raise NotImplementedError

    def tick(self, now_ms: int, out: list[Firing]) -> None:
        """Advance time-driven state to the edge time ``now_ms``."""

    def firing(
        self,
        kind: str,
        t: int,
        devs: tuple[str, ...],
        refs: tuple[bytes, ...],
        detail: tuple[tuple[str, object], ...],
        sev: str | None = None,
    ) -> Firing:
        return Firing(self.id, kind, sev or self.sev, t, devs, refs, detail)

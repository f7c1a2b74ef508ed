"""The rules engine of one site: builds rules from configuration and routes observations.

Routing is by index: each rule registers under the device ids and profiles its selectors
name (or as a rule for every device). The first observation of a ``(device, profile)`` pair
computes the tuple of its rules, in configuration order, and caches it; a reading of a
device no rule cares about costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tally.config import ConfigError
from tally.edge.rules.base import Rule
from tally.edge.rules.errors import RuleConfigError
from tally.edge.rules.geofence import Geofence
from tally.edge.rules.model import Firing, Observation
from tally.edge.rules.offline import Offline
from tally.edge.rules.plausibility import Plausibility, Release
from tally.edge.rules.rate_of_change import RateOfChange
from tally.edge.rules.spec import Spec
from tally.edge.rules.tamper import Tamper
from tally.edge.rules.threshold import Threshold
from tally.edge.rules.time_of_day import TimeOfDay

RULE_TYPES: dict[str, type[Rule]] = {
    cls.TYPE: cls
    for cls in (Threshold, RateOfChange, TimeOfDay, Geofence, Plausibility, Offline, Tamper)
}
"""Rule type name (the ``type`` key) -> rule class."""


def build_rule(raw: Any, index: int, site: str) -> Rule:
    """Build rule number ``index`` from its table; raise RuleConfigError naming the key."""
    spec = Spec(raw, index, site)
    kind = spec.value("type") if spec.has("type") else None
    if kind is None:
        raise spec.error("type", f"is missing (one of {', '.join(RULE_TYPES)})")
    cls = RULE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise spec.error("type", f"unknown rule type {kind!r} (one of {', '.join(RULE_TYPES)})")
    rule = cls.from_spec(spec)
    spec.done()
    return rule


class RuleEngine:
    """All rules of one site. Pure: no I/O and no wall clock; times come from the caller."""

    def __init__(self, rules: Sequence[Rule], site: str) -> None:
        self.site = site
        self.rules = tuple(rules)
        self._by_device: dict[str, list[int]] = {}
        self._by_profile: dict[str, list[int]] = {}
        self._everything: list[int] = []
        for i, rule in enumerate(self.rules):
            for sel in rule.selectors():
                if sel.everything:
                    self._everything.append(i)
                for dev in sel.devices:
                    self._by_device.setdefault(dev, []).append(i)
                for prof in sel.profiles:
                    self._by_profile.setdefault(prof, []).append(i)
        self._ticking = tuple(r for r in self.rules if r.TICKS)
        self._plausibility = tuple(r for r in self.rules if isinstance(r, Plausibility))
        self._routes: dict[tuple[str, str], tuple[Rule, ...]] = {}

    @classmethod
    def from_config(cls, rules: list[dict[str, Any]], site: str) -> RuleEngine:
        """Validate ``rules`` (the site's list of rule tables) and build the engine.

        Raises :class:`~tally.edge.rules.errors.RuleConfigError` (a ``ConfigError``) naming
        the rule's index and id, the key and the problem.
        """
        if not isinstance(rules, list | tuple):
            raise ConfigError(
                f"rules of site {site!r}", [f"must be a list of tables, got {rules!r}"]
            )
        built: list[Rule] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(rules):
            rule = build_rule(raw, i, site)
            if rule.id in seen:
                raise RuleConfigError(
                    site, i, rule.id, "id", f"duplicates the id of rules[{seen[rule.id]}]"
                )
            seen[rule.id] = i
            built.append(rule)
        return cls(built, site)

    def rule_ids(self) -> list[str]:
        return [r.id for r in self.rules]

    def _route(self, dev: str, profile: str) -> tuple[Rule, ...]:
        idx = set(self._everything)
        idx.update(self._by_device.get(dev, ()))
        idx.update(self._by_profile.get(profile, ()))
        route = tuple(self.rules[i] for i in sorted(idx))
        self._routes[(dev, profile)] = route
        return route

    def observe(self, obs: Observation) -> list[Firing]:
        """Run the rules that select this device on one observation; return what fired.

        Observations of another site than the engine's are not for these rules: nothing
        fires for them.
        """
        if obs.site != self.site:
            return []
        route = self._routes.get((obs.dev, obs.profile))
        if route is None:
            route = self._route(obs.dev, obs.profile)
        out: list[Firing] = []
        for rule in route:
            rule.observe(obs, out)
        return out

    def tick(self, now_ms: int) -> list[Firing]:
        """Advance the time-driven rules to the edge time ``now_ms``; return what fired."""
        out: list[Firing] = []
        for rule in self._ticking:
            rule.tick(now_ms, out)
        return out

    def authorise_release(
        self,
        location: str,
        quantity: Decimal,
        lots: tuple[str, ...],
        valid_from_ms: int,
        valid_to_ms: int,
        ref: str,
    ) -> None:
        """Record an authorised release of ``quantity`` (t) of ``lots`` from ``location``.

        It explains weight drops at ``location`` between ``valid_from_ms`` and
        ``valid_to_ms`` (device time, inclusive) for the plausibility rules of that location.
        Raises ValueError for a non-positive quantity, an empty ``ref``, an inverted validity,
        a ``ref`` already used for a different release or a revoked one.
        """
        if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity <= 0:
            raise ValueError(f"release {ref!r}: quantity must be a positive Decimal")
        if not ref:
            raise ValueError("a release needs a non-empty ref")
        if valid_to_ms < valid_from_ms:
            raise ValueError(f"release {ref!r}: valid_to_ms is before valid_from_ms")
        rules = [rule for rule in self._plausibility if rule.location == location]
        if any(rule.is_revoked(ref) for rule in rules):
            raise ValueError(f"release {ref!r} was revoked: it cannot be authorised again")
        for rule in rules:
            rule.authorise(
                Release(ref, location, quantity, tuple(lots), valid_from_ms, valid_to_ms)
            )

    def revoke_release(self, ref: str) -> bool:
        """Revoke the authorised release ``ref`` (e.g. its receipt was frozen, outbound at the
        location stopped): it explains no weight drop after the latest time each plausibility
        rule of its location has seen, and cannot be authorised again.

        Returns True when a rule held the release unrevoked; False for an unknown ref, one
        already revoked, or a release of a location no rule watches. Raises ValueError for an
        empty ``ref``.
        """
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"a release to revoke needs a non-empty ref, got {ref!r}")
        revoked = False
        for rule in self._plausibility:
            revoked = rule.revoke(ref) or revoked
        return revoked

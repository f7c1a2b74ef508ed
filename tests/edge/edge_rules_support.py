"""Builders shared by the rules engine tests: observations without signing or I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tally.device.envelope import Measurement, Reading
from tally.edge.rules import Firing, Observation, RuleEngine

SITE = "S1"
UNITS = {"weight": "t", "temperature": "Cel", "latitude": "deg", "longitude": "deg"}
MIN = 60_000


class Feed:
    """Makes observations with per-device counters and distinct envelope hashes."""

    def __init__(self, site: str = SITE) -> None:
        self.site = site
        self.ctr: dict[str, int] = {}

    def obs(
        self,
        dev: str,
        profile: str,
        t: int,
        m: Mapping[str, str | int] | None = None,
        labels: Mapping[str, str] | None = None,
        received: int | None = None,
        heartbeat: bool = False,
    ) -> Observation:
        ctr = self.ctr.get(dev, 0)
        self.ctr[dev] = ctr + 1
        ms = tuple(Measurement(q, Decimal(str(v)), UNITS.get(q, "1")) for q, v in (m or {}).items())
        reading = Reading(
            dev,
            0,
            ctr,
            b"" if ctr == 0 else b"p",
            t,
            b"fw",
            ms,
            tuple(sorted((labels or {}).items())),
            heartbeat,
        )
        h = hashlib.sha256(f"{dev}/{ctr}".encode()).digest()
        return Observation(dev, profile, self.site, reading, h, t if received is None else received)


def engine(*rules: dict[str, Any], site: str = SITE) -> RuleEngine:
    return RuleEngine.from_config(list(rules), site)


def kinds(firings: list[Firing]) -> list[str]:
    return [f.kind for f in firings]


def det(f: Firing) -> dict[str, Any]:
    return dict(f.detail)

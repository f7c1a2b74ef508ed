"""What the rules engine consumes (:class:`Observation`) and produces (:class:`Firing`).

A firing becomes an edge event (``tally.edge.formats.Event``) once the pipeline numbers and
signs it, so every field is deterministic-CBOR encodable: ``detail`` values are only text,
integers, :class:`~decimal.Decimal` and booleans (never floats), sorted by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.device.envelope import Reading

SEVERITIES = ("info", "warning", "critical")

DetailValue = str | int | Decimal | bool


@dataclass(frozen=True)
class Observation:
    """One verified reading or heartbeat, as the edge pipeline hands it to the rules.

    ``reading.t`` (the device clock) times value series; ``received_ms`` (the edge clock)
    times liveness; ``env_hash`` is the suite hash of the envelope's COSE bytes.
    """

    dev: str
    profile: str
    site: str
    reading: Reading
    env_hash: bytes
    received_ms: int


@dataclass(frozen=True)
class Firing:
    """A rule fired: what, how bad, when (ms), which devices and which envelopes caused it."""

    rule: str
    kind: str
    sev: str
    t: int
    devs: tuple[str, ...]
    refs: tuple[bytes, ...]
    detail: tuple[tuple[str, Any], ...] = ()


def detail(**values: DetailValue | None) -> tuple[tuple[str, DetailValue], ...]:
    """The ``detail`` of a firing: the given values sorted by key, ``None`` values left out."""
    return tuple(sorted((k, v) for k, v in values.items() if v is not None))

"""The JSON shapes of the knowledge-graph endpoints (``/v1/graph/…``, :mod:`.graph`).

Money is fen, times ms since the epoch (``*_ms``) or ISO 8601 text where the brief gives
it; ``simulated`` says the graph holds a synthetic economy (every answer says so). Evidence
names records by their file stem and id (``{"kind": "loans", "id": "L1"}``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tally.cloud.api.schemas import Fen, Out


class Tier(Out):
    tier: int
    firms: list[str]


class SupplyEdge(Out):
    supplier: str
    buyer: str


class Tiers(Out):
    """A core enterprise's supplier tiers (tier 1 sells to it) and the supply edges among
    the firms shown."""

    core: str
    name: str
    simulated: bool
    tiers: list[Tier]
    edges: list[SupplyEdge]


class LinkOut(Out):
    """One shared fact: ``kind`` person, address or account, its id, the roles."""

    kind: str
    value: str
    role: str
    other_role: str


class RelativeOut(Out):
    firm: str
    name: str
    links: list[LinkOut]


class Neighbourhood(Out):
    """The firms sharing a person, an address or an account with ``firm``."""

    firm: str
    name: str
    kind: str
    simulated: bool
    relatives: list[RelativeOut]


class CircleOut(Out):
    """A guarantee circle: ``firms[i]`` guarantees ``firms[i + 1]`` (the last the first)."""

    firms: list[str]
    text: str
    hops: list[list[str]]
    amount_fen: Fen
    closed_ms: int
    banks: list[str]


class Circles(Out):
    simulated: bool
    items: list[CircleOut]


class ExposureItem(Out):
    path: str = Field(description="loan, note_issued, note_endorsed or guarantee")
    ref: str
    amount: Fen


class ExposureOut(Out):
    bank: str
    firm: str
    total: Fen
    loans: Fen
    notes_issued: Fen
    notes_endorsed: Fen
    guarantees: Fen
    items: list[ExposureItem]


class Exposures(Out):
    """Each bank's exposure to ``firm`` the caller may read."""

    firm: str
    simulated: bool
    items: list[ExposureOut]


class RoundOut(Out):
    round: int
    defaults: list[str]
    firm_loss: Fen
    bank_loss: Fen


class LossOut(Out):
    who: str
    bank: bool
    amount: Fen
    round: int
    path: str
    ref: str
    debtor: str


class ContagionOut(Out):
    """Who loses what if ``origin`` defaults (losses of firms and banks the caller may not
    read are left out of ``losses``, ``firm_losses`` and ``bank_losses``; the totals by
    round and tier are the whole cascade's)."""

    origin: str
    simulated: bool
    defaults: dict[str, int]
    firm_losses: dict[str, Fen]
    bank_losses: dict[str, Fen]
    by_tier: dict[str, Fen]
    by_round: list[RoundOut]
    losses: list[LossOut]


class ReasonOut(Out):
    code: str
    feature: str
    points_lost: int
    text: str


class ScoreOut(Out):
    """A firm's score: base points plus one part per feature; reason codes for the (at most
    three) features that cost the most."""

    firm: str
    simulated: bool
    score: int
    pd: float
    base_points: int
    points: dict[str, int]
    features: dict[str, float]
    reasons: list[ReasonOut]


class NeedOut(Out):
    firm: str
    rank: float
    receivables: Fen
    cores: list[str]
    notes: list[str]
    electricity_trend: float
    inventory_cv: float
    reasons: list[str]


class Needs(Out):
    """The ranked financing needs the caller may read."""

    simulated: bool
    items: list[NeedOut]


class BriefPart(Out):
    """One bank portfolio's or core chain's sections (items cite ``evidence``)."""

    firms: int
    counts: dict[str, int]
    tiers: dict[str, int] | None = None
    coverage_below_lines: list[dict[str, Any]]
    devices_dark: list[dict[str, Any]]
    fourflow_mismatches: list[dict[str, Any]]
    notes_near_maturity: list[dict[str, Any]]
    new_guarantee_circles: list[dict[str, Any]]
    scores_moved: list[dict[str, Any]]


class Brief(Out):
    """The digital risk manager's daily brief (``docs/graph.md``)."""

    as_of: str
    simulated: bool
    window: dict[str, Any]
    banks: dict[str, BriefPart]
    chains: dict[str, BriefPart]

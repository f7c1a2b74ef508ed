"""The JSON shapes of the dashboards (:mod:`tally.cloud.views.dashboards`): money in fen,
quantities and rates as decimal strings, durations in hours. Maps keyed by a status hold
only the statuses that occur."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CountOutstanding(BaseModel):
    count: int
    outstanding_fen: int


class CountAmount(BaseModel):
    count: int
    amount_fen: int


class CountValue(BaseModel):
    count: int
    value_fen: int


class Live(BaseModel):
    count: int
    principal_fen: int
    outstanding_fen: int


class Exposure(BaseModel):
    borrower: str
    name: str | None
    loans: int
    outstanding_fen: int


class Portfolio(BaseModel):
    """A bank's loan book."""

    bank: str
    loans: dict[str, CountOutstanding] = Field(description="every loan of the bank by status")
    live: Live
    coverage: dict[str, CountOutstanding] = Field(
        description="live loans by coverage: <1.2, 1.2-1.3, 1.3-1.5, >=1.5, unknown"
    )
    alerts_open: dict[str, int] = Field(description="unacknowledged alerts by severity")
    margin_calls_open: int
    applications_waiting: int
    top_exposures: list[Exposure] = Field(description="up to 10, largest first")


class NotesHeld(BaseModel):
    count: int
    amount_fen: int
    by_status: dict[str, CountAmount]


class LimitLine(BaseModel):
    bank: str
    kind: str = Field(description="credit (a core's line) or limit (a party's)")
    limit_fen: int
    used_fen: int
    available_fen: int
    currency: str
    rate: str | None
    expires_ms: int | None


class SupplierDashboard(BaseModel):
    """A supplier's (or core enterprise's) financing position."""

    party: str
    receipts: dict[str, CountValue] = Field(description="free, pledged, other")
    notes_held: NotesHeld
    loans: dict[str, CountOutstanding]
    limits: list[LimitLine]
    applications: dict[str, int] = Field(description="its applications by status")


class Tier(BaseModel):
    tier: int
    suppliers: int
    notes: int
    notes_amount_fen: int


class Edge(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    tier: int


class CoreDashboard(BaseModel):
    """A core enterprise's supply chain and the notes it issued."""

    core: str
    tiers: list[Tier]
    notes: dict[str, CountAmount]
    outstanding_fen: int
    edges: list[Edge] = Field(description="core → tier 1 → tier 2 …, for a graph")


class Pledged(BaseModel):
    count: int
    quantity: dict[str, str] = Field(description="by unit, decimal strings")


class Site(BaseModel):
    site: str
    receipts: int
    by_status: dict[str, int]
    value_fen: int
    pledged: Pledged
    alerts_open: int


class SiteTotals(BaseModel):
    receipts: int
    pledged: int
    alerts_open: int


class WarehouseDashboard(BaseModel):
    """A warehouse's sites."""

    tenant: str
    sites: list[Site]
    totals: SiteTotals


class ByIndustry(BaseModel):
    industry: str | None
    loans: int
    amount_fen: int


class ByRegion(BaseModel):
    region: str | None
    loans: int
    amount_fen: int


class TimeToLoan(BaseModel):
    count: int
    median: float | None
    p90: float | None


class Aggregates(BaseModel):
    """Platform-wide figures, without any firm's name or id."""

    loans: CountAmount = Field(description="financed (disbursed) loans")
    by_industry: list[ByIndustry]
    by_region: list[ByRegion]
    smes_reached: int
    notes_financed: CountAmount
    mean_rate: str | None = Field(description="principal-weighted mean annual rate")
    time_to_loan_hours: TimeToLoan

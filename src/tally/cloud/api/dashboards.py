"""Dashboards: ``GET /v1/dashboards/portfolio|supplier|core|warehouse`` and
``GET /v1/aggregates``.

Each dashboard is of one organisation, the caller's own unless a query parameter names
another (the regulator reads any): ``portfolio?bank=`` (a bank's loans, coverage, alerts,
applications), ``supplier?party=`` (a supplier's or core enterprise's receipts, notes, loans,
limits, applications), ``core?core=`` (a core enterprise's supply-chain tiers and notes),
``warehouse?tenant=`` (a warehouse's sites). The organisation must be of the dashboard's
kind (else 404), and the caller must be allowed to read its records of every kind the
dashboard sums (else 404 for another tenant's, 403 for its own). ``/v1/aggregates`` is the
platform-wide figures without any firm's name or id: the government portal and the
regulator read them. The figures are those of :mod:`tally.cloud.views.dashboards`
(shapes: :mod:`tally.cloud.api.schemas_dash`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import PLATFORM, Reader, require, see
from tally.cloud.api.financing import kind_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Text
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas_dash import (
    Aggregates,
    CoreDashboard,
    Portfolio,
    SupplierDashboard,
    WarehouseDashboard,
)
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import NotFound
from tally.cloud.identity import Principal

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

RESPONSES = problems(400, 401, 403, 404)


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["dashboards"])

    def target(p: Principal, asked: str | None, kinds: tuple[str, ...], what: str,
               resources: tuple[str, ...]) -> str:  # fmt: skip
        org = asked or p.tenant
        missing = f"no {what} dashboard of {org!r}"
        if kind_of(ctx, org) not in kinds:
            raise NotFound(missing)
        for kind in resources:
            see(p, ResourceRef(kind, org), missing)
        return org

    @r.get("/v1/dashboards/portfolio", response_model=Portfolio, responses=RESPONSES)
    def portfolio(who: Reader, bank: Text = None) -> Any:
        """A bank's portfolio: loans by status, coverage, open alerts, margin calls,
        applications waiting, the largest exposures."""
        org = target(who.principal, bank, ("bank",), "portfolio", ("loan", "alert"))
        return ctx.views.portfolio(org)

    @r.get("/v1/dashboards/supplier", response_model=SupplierDashboard, responses=RESPONSES)
    def supplier(who: Reader, party: Text = None) -> Any:
        """A supplier's (or core enterprise's) workspace: receipts, notes, loans, limits,
        applications."""
        org = target(who.principal, party, ("supplier", "core_enterprise"), "supplier",
                     ("receipt", "note", "loan"))  # fmt: skip
        return ctx.views.supplier(org)

    @r.get("/v1/dashboards/core", response_model=CoreDashboard, responses=RESPONSES)
    def core(who: Reader, core: Text = None) -> Any:
        """A core enterprise's supply chain: suppliers per tier, notes issued."""
        org = target(who.principal, core, ("core_enterprise",), "core", ("note", "trade"))
        return ctx.views.core_tiers(org)

    @r.get("/v1/dashboards/warehouse", response_model=WarehouseDashboard, responses=RESPONSES)
    def warehouse(who: Reader, tenant: Text = None) -> Any:
        """A warehouse's sites: receipts, pledged weight, open alerts."""
        p = who.principal
        org = target(p, tenant, ("warehouse",), "warehouse", ("receipt", "alert"))
        if org == p.tenant:
            sites = frozenset(p.sites)
        else:
            try:
                sites = frozenset(ctx.identities.tenant(org).sites)
            except NotFound:
                sites = frozenset()
        return ctx.views.warehouse(org, sites)

    @r.get("/v1/aggregates", response_model=Aggregates, responses=problems(401, 403))
    def aggregates(who: Reader) -> Any:
        """Platform-wide figures without firms' names: financing by industry and region,
        SMEs reached, cost of finance, time to loan."""
        require(who.principal, "read", ResourceRef("aggregate", PLATFORM))
        return ctx.views.aggregates()

    return r

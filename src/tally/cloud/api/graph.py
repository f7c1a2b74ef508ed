"""``GET /v1/graph/…``: the enterprise knowledge graph (:mod:`tally.cloud.graphsvc`).

=========================================  ==================================================
``/v1/graph/tiers/{core}``                 a core enterprise's supplier tiers (``max_tier``)
``/v1/graph/neighbourhood/{firm}``         firms sharing persons, addresses, accounts
``/v1/graph/circles``                      guarantee circles
``/v1/graph/exposure/{firm}``              each bank's exposure to the firm (``?bank=``)
``/v1/graph/contagion/{firm}``             the cascade if the firm defaults (``?absorb=``)
``/v1/graph/scores/{firm}``                score, points, reason codes
``/v1/graph/needs``                        ranked financing needs with reasons (``?limit=``)
``/v1/graph/brief``, ``/v1/graph/brief.pdf``  the daily brief, JSON or PDF (``?bank=|core=``)
=========================================  ==================================================

Authorisation (:mod:`tally.cloud.authz`, no rule of its own): a firm's graph data is the
firm's ``party`` resource — owner the firm, parties its banks
(:meth:`GraphService.banks_of <tally.cloud.graphsvc.GraphService.banks_of>`) — so the firm,
its banks and the regulator read it; another tenant gets 404, as for a missing firm. A
bank's exposure to a firm is the firm's party resource with that bank as its bank. Lists
(circles, needs) show only what concerns the caller, item by item: a circle when it may
read a firm in it (the circle is shown whole: the chain of guarantees is that firm's risk),
a need when it may read the firm. A brief is of a bank's portfolio (the
bank's own party resource: the bank and the regulator) or a core enterprise's chain (the
core's own: the core and the regulator); without ``bank`` or ``core`` it is the caller's
(a bank's portfolio, a core's chain; the regulator's: every bank). The government portal
reads none of it (aggregates only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tally.cloud import authz
from tally.cloud.api.deps import Reader, require, see
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Id, Text
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas_graph import (
    Brief,
    Circles,
    ContagionOut,
    Exposures,
    Needs,
    Neighbourhood,
    ScoreOut,
    Tiers,
)
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import NotFound
from tally.cloud.graphsvc import GraphService
from tally.cloud.identity import Principal
from tally.cloud.session_api import ELSEWHERE

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

RESPONSES = problems(400, 401, 403, 404)
MaxTier = Annotated[int, Query(ge=1, le=10, description="deepest tier shown, 1..10")]
Absorb = Annotated[
    float, Query(gt=0, le=100, description="losses >= absorb x capital default a firm")
]
Top = Annotated[int, Query(ge=1, le=500, description="at most this many, 1..500")]
PDF = "application/pdf"


def firm_ref(svc: GraphService, firm: str) -> ResourceRef:
    """A firm's graph data as its ``party`` resource (owner the firm, parties its banks)."""
    return ResourceRef("party", firm, svc.banks_of(firm))


def bank_ref(firm: str, bank: str) -> ResourceRef:
    """One bank's exposure to a firm: the firm's party resource with that bank as its bank
    (the firm, that bank and the regulator read it)."""
    return ResourceRef("party", firm, bank=bank)


def may_read(p: Principal, ref: ResourceRef) -> bool:
    return authz.decide(p, "read", ref).allowed


def brief_scope(svc: GraphService, p: Principal, bank: str | None, core: str | None
                ) -> tuple[list[str] | None, list[str] | None]:  # fmt: skip
    """The banks and cores of the brief ``p`` asked for (NotFound, Forbidden)."""
    require(p, "read", ResourceRef("party", p.tenant))  # the government portal: 403
    if bank is None and core is None:
        if p.tenant_kind == "bank":
            bank = p.tenant
        elif p.tenant_kind == "core_enterprise":
            core = p.tenant
        elif authz.decide(p, "read", ResourceRef("party", ELSEWHERE)).allowed:
            return sorted(b for b in svc.read(lambda g: list(g.banks))), []
        else:
            raise NotFound(f"no daily brief of {p.tenant!r}: a brief is of a bank or a core")
    banks: list[str] = []
    cores: list[str] = []
    if bank is not None:
        see(p, ResourceRef("party", bank), f"no portfolio of {bank!r} in the graph")
        if not svc.is_bank(bank):
            raise NotFound(f"no portfolio of {bank!r} in the graph")
        banks.append(bank)
    if core is not None:
        see(p, ResourceRef("party", core), f"no chain of {core!r} in the graph")
        if not svc.is_core(core):
            raise NotFound(f"no chain of {core!r} in the graph")
        cores.append(core)
    return banks, cores


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["graph"])
    svc = ctx.graph
    assert svc is not None

    def firm_of(p: Principal, firm: str) -> None:
        missing = f"no firm {firm!r} in the graph"
        see(p, firm_ref(svc, firm), missing)
        if not svc.has_firm(firm):
            raise NotFound(missing)

    @r.get("/v1/graph/tiers/{core}", response_model=Tiers, responses=RESPONSES)
    def tiers(who: Reader, core: Id, max_tier: MaxTier = 4) -> Any:
        """A core enterprise's supplier tiers: tier 1 sells to it, tier k + 1 to tier k."""
        firm_of(who.principal, core)
        got = svc.tiers(core, max_tier)
        members = [core, *(f for fs in got.values() for f in fs)]
        rec = svc.firm(core)
        return {
            "core": core, "name": rec.name if rec else core, "simulated": svc.simulated,
            "tiers": [{"tier": t, "firms": fs} for t, fs in sorted(got.items())],
            "edges": [{"supplier": a, "buyer": b} for a, b in svc.supply_edges(members)],
        }  # fmt: skip

    @r.get("/v1/graph/neighbourhood/{firm}", response_model=Neighbourhood, responses=RESPONSES)
    def neighbourhood(who: Reader, firm: Id) -> Any:
        """The firm's relatives: the firms sharing a person, an address or an account with
        it, each with the shared facts as evidence."""
        firm_of(who.principal, firm)
        rec = svc.firm(firm)
        assert rec is not None

        def name(f: str) -> str:
            other = svc.firm(f)
            return other.name if other else f

        return {
            "firm": firm, "name": rec.name, "kind": rec.kind, "simulated": svc.simulated,
            "relatives": [
                {"firm": x.firm, "name": name(x.firm),
                 "links": [{"kind": k.kind, "value": k.value, "role": k.role,
                            "other_role": k.other_role} for k in x.links]}
                for x in svc.relatives(firm)
            ],
        }  # fmt: skip

    @r.get("/v1/graph/circles", response_model=Circles, responses=problems(401, 403))
    def circles(who: Reader) -> Any:
        """The guarantee circles with a firm the caller may read (shown whole: the chain of
        guarantees is that firm's risk)."""
        p = who.principal
        require(p, "read", ResourceRef("party", p.tenant))
        items = [
            {"firms": list(c.firms), "text": c.text(), "hops": [list(h) for h in c.hops],
             "amount_fen": c.amount, "closed_ms": c.closed, "banks": svc.circle_banks(c)}
            for c in svc.circles()
            if any(may_read(p, firm_ref(svc, f)) for f in c.firms)
        ]  # fmt: skip
        return {"simulated": svc.simulated, "items": items}

    @r.get("/v1/graph/exposure/{firm}", response_model=Exposures, responses=RESPONSES)
    def exposure(who: Reader, firm: Id, bank: Text = None) -> Any:
        """Each bank's exposure to the firm through loans, notes and guarantees, item by
        item (``bank``: that bank's only)."""
        p = who.principal
        firm_of(p, firm)
        if bank is not None:
            see(p, bank_ref(firm, bank), f"no exposure of {bank!r} to {firm!r}")
            found = [svc.exposure(bank, firm)]
        else:
            found = [x for x in svc.exposures_of(firm) if may_read(p, bank_ref(firm, x.bank))]
        return {"firm": firm, "simulated": svc.simulated, "items": [x.as_json() for x in found]}

    @r.get("/v1/graph/contagion/{firm}", response_model=ContagionOut, responses=RESPONSES)
    def contagion(who: Reader, firm: Id, absorb: Absorb = 1.0) -> Any:
        """Who loses what, round by round, if the firm defaults."""
        p = who.principal
        firm_of(p, firm)
        out: dict[str, Any] = svc.contagion(firm, absorb).as_json()

        def shown(name: str, bank: bool) -> bool:
            if bank:
                return name == p.tenant or may_read(p, ResourceRef("party", name))
            return may_read(p, firm_ref(svc, name))

        out["losses"] = [x for x in out["losses"] if shown(x["who"], x["bank"])]
        out["firm_losses"] = {k: v for k, v in out["firm_losses"].items() if shown(k, False)}
        out["bank_losses"] = {k: v for k, v in out["bank_losses"].items() if shown(k, True)}
        out["defaults"] = {k: v for k, v in out["defaults"].items() if shown(k, False)}
        return {**out, "simulated": svc.simulated}

    @r.get("/v1/graph/scores/{firm}", response_model=ScoreOut, responses=RESPONSES)
    def score(who: Reader, firm: Id) -> Any:
        """The firm's score: points per feature and reason codes."""
        firm_of(who.principal, firm)
        return {**svc.score(firm).as_json(), "simulated": svc.simulated}

    @r.get("/v1/graph/needs", response_model=Needs, responses=problems(400, 401, 403))
    def needs(who: Reader, limit: Top = 50) -> Any:
        """The ranked financing needs (suppliers with strong receivables and no financing)
        of the firms the caller may read."""
        p = who.principal
        require(p, "read", ResourceRef("party", p.tenant))
        items = [n.as_json() for n in svc.needs() if may_read(p, firm_ref(svc, n.firm))]
        return {"simulated": svc.simulated, "items": items[:limit]}

    @r.get("/v1/graph/brief", response_model=Brief, responses=RESPONSES)
    def brief(who: Reader, bank: Text = None, core: Text = None) -> Any:
        """The daily brief of a bank's portfolio or a core enterprise's chain."""
        banks, cores = brief_scope(svc, who.principal, bank, core)
        got = svc.brief(banks, cores)
        return {k: v for k, v in got.items() if k != "state"} | {"simulated": svc.simulated}

    pdf_doc: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "the brief as a PDF",
            "content": {PDF: {"schema": {"type": "string", "format": "binary"}}},
        }
    }

    @r.get("/v1/graph/brief.pdf", response_class=Response, responses={**pdf_doc, **RESPONSES})
    def brief_pdf(who: Reader, bank: Text = None, core: Text = None) -> Response:
        """The daily brief as a PDF report with charts (the same selection as the JSON)."""
        from tally.cloud.graph_pdf import render_brief

        banks, cores = brief_scope(svc, who.principal, bank, core)
        got = svc.brief(banks, cores)
        body = render_brief(got, simulated=svc.simulated)
        name = "tally-brief-" + got["as_of"][:10] + ".pdf"
        disposition = f'attachment; filename="{name}"'
        return Response(body, media_type=PDF, headers={"content-disposition": disposition})

    return r

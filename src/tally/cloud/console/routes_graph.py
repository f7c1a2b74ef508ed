"""The knowledge graph's pages (with a graph service, :mod:`tally.cloud.graphsvc`).

Every page reads the API (``GET /v1/graph/…``, in process, as its reader), so it shows
nothing the reader could not read there; its charts (``static/graph.js``, ECharts) fetch the
same endpoints.

====================================  =============================================================
``GET /console/graph/tiers``          a core enterprise's supplier tiers as a tree-like graph
                                      (``?core=``: banks and the regulator choose among the
                                      cores they may read; a core sees its own)
``GET /console/graph/firm/{firm}``    a firm: its neighbourhood (force graph), score card with
                                      reason codes, exposures and the contagion of its default
``GET /console/graph/circles``        guarantee circles, one drawn as a circle (``?i=``)
``GET /console/graph/needs``          the ranked financing-need list with the reasons
``GET /console/graph/brief``          the daily brief (``?bank=|core=``) and its PDF's link
====================================  =============================================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tally.cloud.api.graph import firm_ref, may_read
from tally.cloud.console.data import api_call
from tally.cloud.console.pages import open_page
from tally.cloud.console.web import ConsoleRoute, PageRefused, console_of, respond
from tally.cloud.graphsvc import GraphService
from tally.cloud.identity import Principal

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
MAX_CORES = 200
"""Cores offered in the tiers page's chooser."""


def _svc(request: Request) -> GraphService:
    svc = console_of(request).ctx.graph
    assert svc is not None  # open_page refuses graph pages without one
    return svc


async def _get(request: Request, path: str) -> Any:
    got = await api_call(request, "GET", path)
    if not got.ok:
        raise PageRefused(got.detail, got.status)
    return got.body


def _cores(svc: GraphService, p: Principal) -> list[str]:
    """The core enterprises whose tiers ``p`` may read (at most :data:`MAX_CORES`)."""
    if p.tenant_kind == "core_enterprise":
        return [p.tenant]
    cores = svc.read(lambda g: sorted(f.id for f in g.firms.values() if f.kind == "core"))
    return [c for c in cores if may_read(p, firm_ref(svc, c))][:MAX_CORES]


@router.get("/console/graph/tiers")
async def tiers(request: Request, core: str | None = None) -> Response:
    p, nav = await open_page(request, "graph_tiers")
    svc = _svc(request)
    cores = _cores(svc, p)
    chosen = core or (cores[0] if cores else None)
    data = None
    if chosen is not None:
        data = await _get(request, f"/v1/graph/tiers/{quote(chosen, safe='')}?max_tier=4")
    return await respond(request, "graph_tiers.html", who=p, nav=nav, cores=cores,
                         core=chosen, data=data, q=quote)  # fmt: skip


@router.get("/console/graph/firm/{firm}")
async def firm(request: Request, firm: str) -> Response:
    p, nav = await open_page(request, "graph_firm")
    f = quote(firm, safe="")
    hood = await _get(request, f"/v1/graph/neighbourhood/{f}")
    score = await _get(request, f"/v1/graph/scores/{f}")
    exposure = await _get(request, f"/v1/graph/exposure/{f}")
    spread = await _get(request, f"/v1/graph/contagion/{f}")
    return await respond(request, "graph_firm.html", who=p, nav=nav, hood=hood, data=hood,
                         score=score, exposure=exposure, spread=spread, f=f, q=quote)  # fmt: skip


@router.get("/console/graph/circles")
async def circles(request: Request, i: int = 0) -> Response:
    p, nav = await open_page(request, "graph_circles")
    data = await _get(request, "/v1/graph/circles")
    chosen = i if 0 <= i < len(data["items"]) else 0
    return await respond(request, "graph_circles.html", who=p, nav=nav, data=data,
                         chosen=chosen, q=quote)  # fmt: skip


@router.get("/console/graph/needs")
async def needs(request: Request) -> Response:
    p, nav = await open_page(request, "graph_needs")
    data = await _get(request, "/v1/graph/needs?limit=100")
    return await respond(request, "graph_needs.html", who=p, nav=nav, data=data, q=quote)


@router.get("/console/graph/brief")
async def brief(request: Request, bank: str | None = None, core: str | None = None) -> Response:
    p, nav = await open_page(request, "graph_brief")
    params = {k: v for k, v in (("bank", bank), ("core", core)) if v}
    query = ("?" + urlencode(params)) if params else ""
    data = await _get(request, f"/v1/graph/brief{query}")
    return await respond(request, "graph_brief.html", who=p, nav=nav, data=data,
                         pdf=f"/v1/graph/brief.pdf{query}", q=quote)  # fmt: skip

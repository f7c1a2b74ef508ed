"""The government portal: financing by industry and region, SMEs reached, the cost of
finance and the time to a loan — platform-wide figures with no firm's name or id
(``GET /v1/aggregates``).

=======================  ====================================================================
``GET /console/portal``  the figures as cards, tables and charts (the charts fetch the same
                         ``GET /v1/aggregates``)
=======================  ====================================================================
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tally.cloud.console.data import dashboard
from tally.cloud.console.pages import open_page
from tally.cloud.console.web import ConsoleRoute, respond

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/console/portal")
async def portal(request: Request) -> Response:
    p, nav = await open_page(request, "portal")
    agg = await dashboard(request, "/v1/aggregates")
    total = agg.get("loans", {}).get("amount_fen", 0) or 0
    return await respond(request, "portal.html", who=p, nav=nav, agg=agg, total=total)

"""A warehouse's (or logistics firm's) sites, devices and live telemetry.

===============================  ==============================================================
``GET /console/sites``           the sites' receipts, pledged goods and open alerts (warehouses:
                                 ``GET /v1/dashboards/warehouse``), the devices
                                 (``GET /v1/devices``, fetched by the page), a telemetry chart
                                 of the chosen device (``GET /v1/devices/{id}/readings``,
                                 refreshed while the page is open) and the live events of
                                 ``GET /v1/stream``; the receipts at its sites (``?cursor=``)
``GET /console/sites/receipts``  the receipts table alone (htmx pagination)
===============================  ==============================================================
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tally.cloud.console.data import dashboard, rows
from tally.cloud.console.pages import open_page
from tally.cloud.console.web import ConsoleRoute, console_of, respond
from tally.cloud.identity import Principal

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


async def _receipts(request: Request, p: Principal, cursor: str | None) -> dict[str, Any]:
    views = console_of(request).ctx.views
    receipts = await rows(request, p, "receipt", views.list_receipts, cursor=cursor)
    return {"receipts": receipts, "cursor": cursor}


@router.get("/console/sites")
async def sites(request: Request, cursor: str | None = None) -> Response:
    p, nav = await open_page(request, "sites")
    views = console_of(request).ctx.views
    dash = None
    if p.tenant_kind == "warehouse":
        dash = await dashboard(request, "/v1/dashboards/warehouse")
    alerts = await rows(request, p, "alert", views.list_alerts, open_only=True)
    return await respond(
        request, "sites.html", who=p, nav=nav, dash=dash, alerts=alerts,
        **await _receipts(request, p, cursor),
    )  # fmt: skip


@router.get("/console/sites/receipts")
async def receipts_fragment(request: Request, cursor: str | None = None) -> Response:
    p, _nav = await open_page(request, "sites")
    return await respond(request, "_receipts.html", who=p, **await _receipts(request, p, cursor))

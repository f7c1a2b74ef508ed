"""A core enterprise's supplier tiers and the receivable notes it issued.

================================  ============================================================
``GET /console/tiers``            suppliers and outstanding notes per tier, notes by status,
                                  the supply-chain graph (ECharts, from
                                  ``GET /v1/dashboards/core``), the notes it issued
                                  (``?cursor=`` pages them)
``GET /console/tiers/notes``      the notes table alone (htmx pagination)
================================  ============================================================
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


async def _notes(request: Request, p: Principal, cursor: str | None) -> dict[str, Any]:
    views = console_of(request).ctx.views
    notes = await rows(request, p, "note", views.list_notes, cursor=cursor, issuer=p.tenant)
    return {"notes": notes, "cursor": cursor}


@router.get("/console/tiers")
async def tiers(request: Request, cursor: str | None = None) -> Response:
    p, nav = await open_page(request, "tiers")
    dash = await dashboard(request, "/v1/dashboards/core")
    return await respond(
        request, "tiers.html", who=p, nav=nav, dash=dash, **await _notes(request, p, cursor)
    )


@router.get("/console/tiers/notes")
async def notes_fragment(request: Request, cursor: str | None = None) -> Response:
    p, _nav = await open_page(request, "tiers")
    return await respond(request, "_notes.html", who=p, **await _notes(request, p, cursor))

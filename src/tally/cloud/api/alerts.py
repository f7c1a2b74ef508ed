"""``GET /v1/alerts`` and ``POST /v1/alerts/{id}/ack``: the monitor's alerts.

An alert is its owner's; its bank and the warehouse of its site read it too. ``open=true``
lists only alerts nobody acknowledged; ``since`` (ms) those raised at or after it. An
acknowledgement records who and when (the first one stays) and is published on the live
stream as an ``alert`` event.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from tally.cloud.api.deps import Reader, allow, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Ms, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Alert, AlertPage
from tally.cloud.api.writes import Done, Write, run
from tally.cloud.errors import NotFound

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

Severity = Literal["info", "warning", "critical"]


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["alerts"])

    @r.get("/v1/alerts", response_model=AlertPage, responses=problems(400, 401, 403))
    def list_alerts(
        who: Reader,
        severity: Annotated[Severity | None, Query()] = None,
        kind: Text = None,
        open: Annotated[bool, Query(description="only alerts not acknowledged")] = False,
        since: Ms = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """The alerts the caller may read, newest first."""
        p = who.principal
        got = ctx.views.list_alerts(
            scope_of(p, "alert"), severity=severity, kind=kind, open_only=open,
            since_ms=since, limit=limit, cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "alert", got)

    @r.post(
        "/v1/alerts/{id}/ack", response_model=Alert,
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )  # fmt: skip
    def ack_alert(request: Request, w: Write, id: Id) -> Response:
        """Acknowledge an alert (operators and admins of its owner; the first
        acknowledgement stays)."""
        p = w.caller.principal

        def work() -> Done:
            row = ctx.views.alert(id)
            missing = f"no alert {id!r}"
            if row is None:
                raise NotFound(missing)
            ref = ctx.views.resource("alert", row)
            allow(p, "write", ref, missing)
            acked = ctx.views.ack_alert(id, w.caller.actor, ctx.clock())
            if ctx.hub is not None:
                data = {"event": "acked", **dataclasses.asdict(acked)}
                ctx.hub.publish("alert", data, ref)
            return Done(Alert.model_validate(dataclasses.asdict(acked)))

        return run(request, w, "alert.ack", "alert", id, work)

    return r

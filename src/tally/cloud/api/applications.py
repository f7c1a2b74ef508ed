"""Financing applications: ``GET /v1/applications``, ``GET /v1/applications/{id}``,
``POST /v1/applications`` and ``POST /v1/applications/{id}/decision``.

A supplier or a core enterprise (its operators, credit officers and admins: the policy's
``supplier-apply``) applies to a bank against a receipt or note it holds
(:mod:`tally.cloud.api.financing` gives the rules and their 422 problems); the bank's credit
officers and admins approve or refuse it (a refusal with a reason), the applicant may
withdraw it while it is submitted. An application is the applicant's resource of kind
``loan`` with the bank as its bank. Each step is audited (``application.create``,
``application.decide``) and published on the live stream as an ``application`` event.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from tally.cloud.api import financing
from tally.cloud.api.deps import Reader, allow, one, require, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Application, ApplicationIn, ApplicationPage, DecisionIn
from tally.cloud.api.writes import Done, Write, run
from tally.cloud.errors import NotFound
from tally.cloud.views.access import resource_of
from tally.cloud.views.model import ApplicationRow

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

WRITE_PROBLEMS = problems(400, 401, 403, 404, 409, 413, 415, 422)


def _out(row: ApplicationRow) -> Application:
    return Application.model_validate(dataclasses.asdict(row))


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["applications"])

    def publish(event: str, row: ApplicationRow) -> None:
        if ctx.hub is not None:
            data = {"event": event, **dataclasses.asdict(row)}
            ctx.hub.publish("application", data, resource_of("application", row))

    @r.get("/v1/applications", response_model=ApplicationPage,
           responses=problems(400, 401, 403))  # fmt: skip
    def list_applications(
        who: Reader, status: Text = None, applicant: Text = None, bank: Text = None,
        limit: Limit = 50, cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The applications the caller may read (its own, or those made to it), newest
        first."""
        p = who.principal
        got = ctx.views.list_applications(
            scope_of(p, "loan"), status=status, applicant=applicant, bank=bank, limit=limit,
            cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "application", got)

    @r.get("/v1/applications/{id}", response_model=Application,
           responses=problems(400, 401, 403, 404))  # fmt: skip
    def get_application(who: Reader, id: Id) -> Any:
        """One application by its id."""
        row = ctx.views.application(id)
        return one(ctx, who.principal, "application", row, f"no application {id!r}")

    @r.post("/v1/applications", status_code=201, response_model=Application,
            responses=WRITE_PROBLEMS)  # fmt: skip
    def create_application(request: Request, w: Write, body: ApplicationIn) -> Response:
        """Apply to a bank for financing against a receipt or note the caller holds."""
        p = w.caller.principal

        def work() -> Done:
            row = financing.application(ctx, p.tenant, w.caller.actor, body)
            require(p, "write", resource_of("application", row))
            financing.check_subject(ctx, p.tenant, body)
            ctx.views.add_application(row)
            publish("submitted", row)
            detail = {"bank": row.bank, "subject_kind": row.subject_kind,
                      "subject": row.subject, "amount_fen": row.amount_fen}  # fmt: skip
            return Done(_out(row), 201, row.id, detail)

        return run(request, w, "application.create", "application", "", work)

    @r.post("/v1/applications/{id}/decision", response_model=Application,
            responses=WRITE_PROBLEMS)  # fmt: skip
    def decide_application(request: Request, w: Write, id: Id, body: DecisionIn) -> Response:
        """Approve or refuse (the bank) or withdraw (the applicant) a submitted
        application."""
        p = w.caller.principal

        def work() -> Done:
            row = ctx.views.application(id)
            missing = f"no application {id!r}"
            if row is None:
                raise NotFound(missing)
            allow(p, "write", resource_of("application", row), missing)
            status = financing.check_decision(p.tenant, row, body.decision, body.reason)
            done = ctx.views.decide_application(
                id, status, w.caller.actor, ctx.clock(), body.reason
            )
            publish(status, done)
            return Done(_out(done), 200, id, {"decision": status, "reason": body.reason})

        return run(request, w, "application.decide", "application", id, work)

    return r

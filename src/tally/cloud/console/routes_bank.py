"""The bank's portfolio, and the decisions on financing applications.

=============================================  =================================================
``GET /console/portfolio``                     the loan book: live exposure, coverage (gauge
                                               and buckets), open alerts, margin calls,
                                               applications to decide, loans (``?cursor=``)
``GET /console/portfolio/loans``               the loans table alone (htmx pagination)
``GET /console/portfolio/applications``        the applications to decide alone (htmx refresh)
``POST /console/applications/{id}/decision``   form ``decision`` (approve | refuse |
                                               withdraw), ``reason``, ``csrf``, ``key``: sent to
                                               ``POST /v1/applications/{id}/decision``
``POST /console/alerts/{id}/ack``              form ``csrf``, ``key``: sent to
                                               ``POST /v1/alerts/{id}/ack``
=============================================  =================================================

The decision and acknowledgement buttons are shown where the policy lets the reader do them
(:func:`tally.cloud.authz.decide` on the row's resource); the API decides again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tally.cloud.console.data import api_call, dashboard, may, rows
from tally.cloud.console.pages import open_page
from tally.cloud.console.web import (
    ConsoleRoute,
    PageRefused,
    checked_principal,
    console_of,
    lang_of,
    respond,
    safe_next,
    set_flash,
)
from tally.cloud.identity import Principal

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
DECISIONS = ("approve", "refuse", "withdraw")


async def _applications(request: Request, p: Principal) -> dict[str, Any]:
    views = console_of(request).ctx.views
    apps = await rows(request, p, "application", views.list_applications, status="submitted",
                      bank=p.tenant)  # fmt: skip
    return {"apps": apps, "may_decide": {a.id: may(p, "write", "application", a)
                                         for a in apps.items}}  # fmt: skip


async def _loans(request: Request, p: Principal, cursor: str | None) -> dict[str, Any]:
    views = console_of(request).ctx.views
    loans = await rows(request, p, "loan", views.list_loans, cursor=cursor, bank=p.tenant)
    return {"loans": loans, "cursor": cursor}


@router.get("/console/portfolio")
async def portfolio(request: Request, cursor: str | None = None) -> Response:
    p, nav = await open_page(request, "portfolio")
    views = console_of(request).ctx.views
    dash = await dashboard(request, "/v1/dashboards/portfolio")
    alerts = await rows(request, p, "alert", views.list_alerts, open_only=True)
    calls = await rows(request, p, "loan", views.list_loans, status="margin_call", bank=p.tenant)
    live = dash.get("live", {})
    cov = dash.get("coverage", {})
    healthy = sum(v.get("outstanding_fen", 0) for k, v in cov.items() if k in ("1.3-1.5", ">=1.5"))
    share = healthy / live["outstanding_fen"] if live.get("outstanding_fen") else None
    return await respond(
        request, "portfolio.html", who=p, nav=nav, dash=dash, alerts=alerts, calls=calls,
        healthy_share=share, may_ack={a.id: may(p, "write", "alert", a) for a in alerts.items},
        **await _applications(request, p), **await _loans(request, p, cursor),
    )  # fmt: skip


@router.get("/console/portfolio/loans")
async def loans_fragment(request: Request, cursor: str | None = None) -> Response:
    p, _nav = await open_page(request, "portfolio")
    return await respond(request, "_loans.html", who=p, **await _loans(request, p, cursor))


@router.get("/console/portfolio/applications")
async def applications_fragment(request: Request) -> Response:
    p, _nav = await open_page(request, "portfolio")
    values = await _applications(request, p)
    return await respond(request, "_applications.html", who=p, **values)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@router.post("/console/applications/{app_id}/decision")
async def decide(request: Request, app_id: str) -> Response:
    form = await request.form()
    p = await checked_principal(request, form)
    lang = lang_of(request)
    decision = _text(form, "decision")
    if decision not in DECISIONS:
        raise PageRefused(lang.t("apply.bad_decision", decision=decision), 400)
    body: dict[str, Any] = {"decision": decision}
    reason = _text(form, "reason")
    if reason:
        body["reason"] = reason
    got = await api_call(request, "POST", f"/v1/applications/{app_id}/decision", body,
                         csrf=_text(form, "csrf"), key=_text(form, "key") or None)  # fmt: skip
    back = safe_next(_text(form, "next"), "/console/portfolio" if p.tenant_kind == "bank"
                     else "/console/workspace")  # fmt: skip
    out = RedirectResponse(back, status_code=303)
    if got.ok:
        set_flash(out, "ok", f"decision.done.{decision}", id=app_id)
    else:
        set_flash(out, "error", "decision.failed", id=app_id, detail=got.detail)
    return out


@router.post("/console/alerts/{alert_id}/ack")
async def ack(request: Request, alert_id: str) -> Response:
    form = await request.form()
    await checked_principal(request, form)
    got = await api_call(request, "POST", f"/v1/alerts/{alert_id}/ack",
                         csrf=_text(form, "csrf"), key=_text(form, "key") or None)  # fmt: skip
    out = RedirectResponse(safe_next(_text(form, "next"), "/console/"), status_code=303)
    if got.ok:
        set_flash(out, "ok", "alert.acked", id=alert_id)
    else:
        set_flash(out, "error", "alert.ack_failed", id=alert_id, detail=got.detail)
    return out

"""A supplier's workspace: its limits, receipts, notes, loans, and financing applications.

======================================  =======================================================
``GET /console/workspace``              limits (used / available), receipts and notes held,
                                        loans, applications (``?cursor=`` pages them), and
                                        the form to apply for financing
``GET /console/workspace/applications`` the applications table alone (htmx pagination)
``POST /console/workspace/apply``       form ``subject`` (``receipt:<no>`` or
                                        ``note:<id>``), ``bank``, ``amount`` (yuan, at most 2
                                        decimals), ``csrf``, ``key``: sent to
                                        ``POST /v1/applications``; the API's refusal (a
                                        pledged receipt, an amount above the value …) is shown
======================================  =======================================================

The form is shown when the policy lets the reader apply (``supplier-apply``: operators,
credit officers and admins of suppliers and core enterprises); the API decides again.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tally.cloud import authz
from tally.cloud.console.data import api_call, dashboard, rows
from tally.cloud.console.pages import open_page
from tally.cloud.console.web import (
    ConsoleRoute,
    checked_principal,
    console_of,
    respond,
    set_flash,
)
from tally.cloud.identity import Principal

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
MAX_FEN = 2**63 - 1
CHOICES = 100
OPEN = ("submitted", "approved")
"""Applications whose receipt or note cannot back another one."""


def may_apply(p: Principal) -> bool:
    """Whether the policy lets ``p`` apply for financing (a loan resource it owns)."""
    return authz.decide(p, "write", authz.ResourceRef("loan", p.tenant)).allowed


Problem = tuple[str, dict[str, str]]
"""A catalogue key and its values: what is wrong with a form, shown in the reader's language."""


def parse_amount(text: str) -> tuple[int | None, Problem | None]:
    """``(fen, None)`` for an amount in yuan (``250,000.50``), else ``(None, problem)``."""
    raw = text.strip().replace(",", "").replace("，", "").replace("¥", "")
    try:
        yuan = Decimal(raw)
    except InvalidOperation:
        return None, ("apply.amount_not_number", {"amount": text[:40]})
    if not yuan.is_finite() or yuan <= 0:
        return None, ("apply.amount_positive", {})
    if yuan != yuan.quantize(Decimal("0.01")):
        return None, ("apply.amount_cents", {})
    fen = int(yuan * 100)
    if fen > MAX_FEN:
        return None, ("apply.amount_too_large", {})
    return fen, None


async def _applications(request: Request, p: Principal, cursor: str | None) -> dict[str, Any]:
    views = console_of(request).ctx.views
    apps = await rows(request, p, "application", views.list_applications, cursor=cursor,
                      applicant=p.tenant)  # fmt: skip
    withdraw = {a.id: a.status == "submitted" and may_apply(p) for a in apps.items}
    return {"apps": apps, "cursor": cursor, "may_withdraw": withdraw}


@router.get("/console/workspace")
async def workspace(request: Request, cursor: str | None = None) -> Response:
    p, nav = await open_page(request, "workspace")
    views = console_of(request).ctx.views
    dash = await dashboard(request, "/v1/dashboards/supplier")
    receipts = await rows(request, p, "receipt", views.list_receipts, holder=p.tenant)
    notes = await rows(request, p, "note", views.list_notes, holder=p.tenant)
    loans = await rows(request, p, "loan", views.list_loans, borrower=p.tenant)
    free = await rows(request, p, "receipt", views.list_receipts, holder=p.tenant,
                      status="live", limit=CHOICES)  # fmt: skip
    live_notes = await rows(request, p, "note", views.list_notes, holder=p.tenant,
                            status="live", limit=CHOICES)  # fmt: skip
    subjects = [
        ("receipt", r.no, r.commodity, r.value_fen)
        for r in free.items
        if r.bank is None and r.loan is None and r.value_fen is not None
    ]
    subjects += [("note", n.id, n.issuer, n.amount_fen) for n in live_notes.items]
    mine = await _applications(request, p, cursor)
    taken = {(a.subject_kind, a.subject) for a in mine["apps"].items if a.status in OPEN}
    subjects = [s for s in subjects if (s[0], s[1]) not in taken]
    own = await run_in_threadpool(views.org, p.tenant)
    banks = sorted(
        {lim["bank"] for lim in dash.get("limits", [])}
        | {ln.bank for ln in loans.items}
        | ({own.bank} if own and own.bank else set())
    )
    return await respond(
        request, "workspace.html", who=p, nav=nav, dash=dash, receipts=receipts, notes=notes,
        loans=loans, subjects=subjects, banks=banks, can_apply=may_apply(p), **mine,
    )  # fmt: skip


@router.get("/console/workspace/applications")
async def applications_fragment(request: Request, cursor: str | None = None) -> Response:
    p, _nav = await open_page(request, "workspace")
    values = await _applications(request, p, cursor)
    return await respond(request, "_my_applications.html", who=p, **values)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@router.post("/console/workspace/apply")
async def apply(request: Request) -> Response:
    form = await request.form()
    await checked_principal(request, form)
    out = RedirectResponse("/console/workspace", status_code=303)
    kind, _, subject = _text(form, "subject").partition(":")
    bank = _text(form, "bank")
    fen, problem = parse_amount(_text(form, "amount"))
    if kind not in ("receipt", "note") or not subject:
        problem = ("apply.subject_missing", {})
    elif not bank:
        problem = ("apply.bank_missing", {})
    if problem is not None:
        set_flash(out, "error", problem[0], **problem[1])
        return out
    body = {"bank": bank, "subject_kind": kind, "subject": subject, "amount_fen": fen}
    got = await api_call(request, "POST", "/v1/applications", body,
                         csrf=_text(form, "csrf"), key=_text(form, "key") or None)  # fmt: skip
    if got.ok:
        app_id = got.body.get("id", "") if isinstance(got.body, dict) else ""
        name = await run_in_threadpool(console_of(request).tenant_name, bank)
        set_flash(out, "ok", "apply.submitted", id=app_id, bank=name)
    else:
        set_flash(out, "error", "apply.refused", detail=got.detail)
    return out

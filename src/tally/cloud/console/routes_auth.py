"""Login, logout, the language switch and the way in (``/`` and ``/console/``).

=================================  ===========================================================
``GET /``                          303 to ``/console/``
``GET /console/``                  303 to the user's home page, or to the login
``GET /console/login``             the login form (sets a pre-login ``tally_csrf`` cookie)
``POST /console/login``            form ``tenant`` (optional), ``username``, ``password``,
                                   ``csrf`` (= the ``tally_csrf`` cookie), ``next``; 303 to
                                   ``next`` or home with the session cookie and the
                                   session's ``tally_csrf``; the form again with a clear
                                   message on refusal: 401 wrong credentials or disabled, 423
                                   locked (until when), 400 malformed, 403 without CSRF token
``POST /console/logout``           form ``csrf``; ends the session, clears both cookies
``POST /console/lang``             form ``lang`` (zh|en), ``csrf``, ``next``: sets
                                   ``tally_lang`` and goes back
=================================  ===========================================================

Logins go through :class:`tally.cloud.session_api.SessionApi` — the same checks, the same
cookie (name and attributes) and the same audit entries (``session.login`` /
``session.logout``) as ``POST``/``DELETE /v1/session``.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tally.cloud import identity as I
from tally.cloud.console.i18n import LANG_COOKIE, LANGS, Lang
from tally.cloud.console.pages import home_of
from tally.cloud.console.web import (
    CSRF_COOKIE,
    LANG_COOKIE_ATTRIBUTES,
    ConsoleRoute,
    LoginNeeded,
    PageRefused,
    checked_principal,
    console_of,
    csrf_cookie,
    double_submit_ok,
    lang_of,
    principal_of,
    render,
    safe_next,
)
from tally.cloud.errors import BadRequest
from tally.cloud.session_api import COOKIE, COOKIE_ATTRIBUTES, AccountLockedProblem

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?Z)")


def _form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _locked_message(lang: Lang, detail: str) -> str:
    m = _ISO.search(detail)
    if m is None:
        return lang.t("login.locked_plain")
    when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    return lang.t("login.locked", until=lang.datetime(int(when.timestamp() * 1000)))


def _login_page(
    request: Request, status: int = 200, error: str | None = None, **form: str
) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    headers = {"Set-Cookie": csrf_cookie(token)}
    return render(
        request, "login.html", status=status, headers=headers, csrf=token, error=error,
        next=safe_next(request.query_params.get("next") or form.get("next")),
        tenant=form.get("tenant", ""), username=form.get("username", ""),
        expired=request.query_params.get("expired") == "1",
    )  # fmt: skip


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/")
@router.get("/console")
async def entry(request: Request) -> RedirectResponse:
    p = await principal_of(request)
    return RedirectResponse(home_of(p), status_code=303)


@router.get("/console/login")
async def login_form(request: Request) -> Response:
    try:
        p = await principal_of(request)
    except LoginNeeded:
        return _login_page(request)
    return RedirectResponse(home_of(p), status_code=303)


@router.post("/console/login")
async def login(request: Request) -> Response:
    form = await request.form()
    lang = lang_of(request)
    tenant, username = _form_text(form, "tenant"), _form_text(form, "username")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    keep = {"tenant": tenant, "username": username, "next": _form_text(form, "next")}
    if not double_submit_ok(request, form):
        return _login_page(request, 403, lang.t("login.csrf"), **keep)
    if not username or not password:
        return _login_page(request, 400, lang.t("login.missing"), **keep)
    body: dict[str, Any] = {"username": username, "password": password}
    if tenant:
        body["tenant"] = tenant
    sessions = console_of(request).sessions
    try:
        new = await run_in_threadpool(sessions._login, request, json.dumps(body).encode())
    except AccountLockedProblem as exc:
        return _login_page(request, 423, _locked_message(lang, exc.detail), **keep)
    except I.LoginRefused as exc:
        key = "login.disabled" if exc.detail == I.ACCOUNT_DISABLED else "login.invalid"
        return _login_page(request, 401, lang.t(key), **keep)
    except BadRequest as exc:
        return _login_page(request, 400, lang.t("login.malformed", detail=exc.detail), **keep)
    max_age = max(0, (new.expires - console_of(request).identities.clock()) // 1000)
    target = safe_next(keep["next"], home_of(new.principal))
    out = RedirectResponse(target, status_code=303)
    out.headers.append(
        "Set-Cookie", f"{COOKIE}={new.secret}; Max-Age={max_age}; {COOKIE_ATTRIBUTES}"
    )
    out.headers.append("Set-Cookie", csrf_cookie(new.csrf, max_age))
    out.headers["Cache-Control"] = "no-store"
    return out


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    await checked_principal(request, form)  # the session and its CSRF token
    secret = request.cookies.get(COOKIE, "")
    token = request.headers.get("x-csrf-token") or _form_text(form, "csrf")
    await run_in_threadpool(console_of(request).sessions._logout, request, secret, token)
    out = RedirectResponse("/console/login", status_code=303)
    out.headers.append("Set-Cookie", f"{COOKIE}=; Max-Age=0; {COOKIE_ATTRIBUTES}")
    out.headers.append("Set-Cookie", csrf_cookie("", 0))
    return out


@router.post("/console/lang")
async def switch_language(request: Request) -> Response:
    form = await request.form()
    if not double_submit_ok(request, form):
        raise PageRefused(lang_of(request).t("error.csrf"))
    code = _form_text(form, "lang")
    if code not in LANGS:
        raise PageRefused(f"lang must be one of {', '.join(LANGS)}, got {code!r}", 400)
    out = RedirectResponse(safe_next(_form_text(form, "next")), status_code=303)
    out.headers.append("Set-Cookie", f"{LANG_COOKIE}={code}; {LANG_COOKIE_ATTRIBUTES}")
    return out

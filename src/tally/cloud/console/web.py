"""The console's request plumbing: who is logged in, CSRF, rendering, and the error pages.

Every console route is a :class:`ConsoleRoute`, which turns the console's refusals into
pages rather than JSON problems: not logged in (or the session has ended) → ``303`` to
``/console/login?next=<path>`` (an htmx request: ``401`` with ``HX-Redirect``); a page for
another tenant kind, or a refused action → ``403`` page with the reason; a missing or wrong
CSRF token → ``403`` page; any other :class:`~tally.cloud.errors.CloudError` → its status
with its detail; a malformed query → ``400`` page. Error pages keep the top bar and the
navigation when someone is logged in.

After a form's POST the console redirects (303) and the next page shows a one-time message
(the ``tally_flash`` cookie: a catalogue key and its values, rendered in that page's
language).

CSRF: the login page sets the ``tally_csrf`` cookie (not HttpOnly, ``SameSite=Strict;
Secure``) to a random token before login and the login form must send it back (double
submit); the login replaces it with the session's own CSRF token, which every later form
carries in the hidden field ``csrf`` (htmx sends it as ``X-CSRF-Token``) and which the
identity store checks against the session (:func:`checked_principal`).

Pages carry a Content-Security-Policy that allows scripts from this origin only (no inline
script: the page's data for scripts travels in ``data-`` attributes and JSON blocks).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from tally.cloud import identity as I
from tally.cloud.api import ApiContext
from tally.cloud.auditlog import AuditLog
from tally.cloud.auth import TokenAuth
from tally.cloud.console.i18n import LANG_COOKIE, Lang, negotiate
from tally.cloud.errors import CloudError, NotFound
from tally.cloud.identity_store import IdentityStore
from tally.cloud.session_api import COOKIE, CSRF_HEADER, SessionApi

CSRF_COOKIE = "tally_csrf"
FLASH_COOKIE = "tally_flash"
FLASH_ATTRIBUTES = "Path=/console; Max-Age=120; HttpOnly; Secure; SameSite=Strict"
CSRF_FIELD = "csrf"
CSRF_COOKIE_ATTRIBUTES = "Path=/; Secure; SameSite=Strict"
LANG_COOKIE_ATTRIBUTES = "Path=/; Max-Age=31536000; Secure; SameSite=Lax"
LOGIN = "/console/login"
NAME_CACHE = 10_000
TEMPLATES = Path(__file__).with_name("templates")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Cookie, Accept-Language",
}


class LoginNeeded(Exception):
    """Raised by a page when nobody is logged in, or the session has ended (``why``)."""

    def __init__(self, why: str | None = None) -> None:
        self.why = why
        super().__init__(why or "login needed")


class PageRefused(Exception):
    """Raised when the logged-in user may not see a page or do an action (403 page)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


@dataclass
class Console:
    """What the console's routes share (``app.state.console``)."""

    ctx: ApiContext
    env: jinja2.Environment
    sessions: SessionApi
    nav: Callable[[I.Principal, str], list[Any]] = lambda p, current: []
    """The navigation of a user (set by :func:`tally.cloud.console.install_console`)."""
    tenant_names: dict[str, str] = field(default_factory=dict)

    @property
    def identities(self) -> IdentityStore:
        return self.ctx.identities

    @property
    def audit(self) -> AuditLog:
        return self.ctx.audit

    def tenant_name(self, tenant: str) -> str:
        """The display name of a tenant or organisation (cached; the id when it has none)."""
        name = self.tenant_names.get(tenant)
        if name is None:
            if len(self.tenant_names) >= NAME_CACHE:
                self.tenant_names.clear()
            try:
                name = self.identities.tenant(tenant).name
            except NotFound:
                org = self.ctx.views.org(tenant)
                name = org.name if org is not None else tenant
            self.tenant_names[tenant] = name
        return name


def form_key() -> str:
    """A fresh idempotency key for one rendered form (32 URL-safe characters): the form's
    write is done once however often it is sent."""
    return secrets.token_urlsafe(24)


def make_console(ctx: ApiContext) -> Console:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["fresh_key"] = form_key
    return Console(ctx, env, SessionApi(ctx.identities, ctx.audit, TokenAuth([])))


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def lang_of(request: Request) -> Lang:
    code, locale = negotiate(
        request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )
    return Lang(code, locale)


def safe_next(target: str | None, default: str = "/console/") -> str:
    """Only a path of the console is a place to go back to (no open redirect)."""
    if not target or not target.startswith("/console/") or "//" in target or "\\" in target:
        return default
    return target


async def principal_of(request: Request) -> I.Principal:
    """The logged-in user; LoginNeeded when there is none or the session has ended."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise LoginNeeded()
    try:
        return await run_in_threadpool(console_of(request).identities.authenticate_session, secret)
    except I.SessionRefused as exc:
        raise LoginNeeded(exc.detail) from None


def csrf_sent(request: Request, form: Mapping[str, Any] | None) -> str | None:
    """The CSRF token a request carries: the ``X-CSRF-Token`` header or the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    value = (form or {}).get(CSRF_FIELD)
    return value if isinstance(value, str) and value else None


async def checked_principal(request: Request, form: Mapping[str, Any] | None) -> I.Principal:
    """The logged-in user of a state-changing request, whose CSRF token must be the
    session's; LoginNeeded, or PageRefused when the token is missing or wrong."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise LoginNeeded()
    store = console_of(request).identities
    try:
        return await run_in_threadpool(
            store.authenticate_session, secret, csrf_sent(request, form), unsafe=True
        )
    except I.SessionRefused as exc:
        raise LoginNeeded(exc.detail) from None
    except I.CsrfRefused as exc:
        raise PageRefused(exc.detail) from None


def double_submit_ok(request: Request, form: Mapping[str, Any]) -> bool:
    """Before login: the form's CSRF token equals the ``tally_csrf`` cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = csrf_sent(request, form)
    return bool(cookie and sent and secrets.compare_digest(cookie, sent))


def csrf_cookie(token: str, max_age: int | None = None) -> str:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{CSRF_COOKIE}={token}{age}; {CSRF_COOKIE_ATTRIBUTES}"


def set_flash(response: Response, kind: str, key: str, **values: str) -> None:
    """A one-time message (``kind`` ok | error; catalogue ``key`` with ``values``) that the
    next page rendered shows, in that page's language."""
    data = {"kind": kind, "key": key, "values": {k: str(v)[:300] for k, v in values.items()}}
    value = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    response.headers.append("Set-Cookie", f"{FLASH_COOKIE}={value}; {FLASH_ATTRIBUTES}")


def _flash_of(request: Request, lang: Lang) -> dict[str, str] | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value or len(value) > 4000:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        kind, key, values = data["kind"], data["key"], data["values"]
        if kind not in ("ok", "error") or not isinstance(values, dict):
            return None
        text = lang.t(str(key), **{str(k): str(v) for k, v in values.items()})
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return {"kind": kind, "text": text}


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page of ``template`` with the language, the CSRF token and ``values``."""
    console = console_of(request)
    lang = lang_of(request)
    values.setdefault("csrf", request.cookies.get(CSRF_COOKIE, ""))
    values.setdefault("who", None)
    values.setdefault("nav", [])
    values.setdefault("path", request.url.path)
    flash = _flash_of(request, lang)
    body = console.env.get_template(template).render(
        lang=lang, t=lang.t, fmt=lang, tenant_name=console.tenant_name, flash=flash, **values
    )
    out = HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
    if request.cookies.get(FLASH_COOKIE):
        out.headers.append("Set-Cookie", f"{FLASH_COOKIE}=; Max-Age=0; {FLASH_ATTRIBUTES}")
    return out


async def respond(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """:func:`render` in a worker thread (templates look names up in the database)."""
    return await run_in_threadpool(render, request, template, status, headers, **values)


def login_redirect(request: Request, why: str | None = None) -> Response:
    """To the login page, and back here afterwards: 303 for a page; for an htmx request
    (which would follow a redirect and swap the login page into a table) 401 with
    ``HX-Redirect``, which htmx turns into a full navigation."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    htmx = bool(request.headers.get("hx-request"))
    if request.method != "GET" or htmx:
        target = "/console/"
    url = f"{LOGIN}?next={quote(safe_next(target), safe='/')}"
    if why:
        url += "&expired=1"
    if htmx:
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


ERROR_TITLES = frozenset({400, 401, 403, 404, 409, 413, 415, 422, 423, 500})


async def error_page(request: Request, status: int, reason: str) -> HTMLResponse:
    """The error page: the status, its title in the reader's language, and the reason; with
    the top bar and the navigation when someone is logged in."""
    lang = lang_of(request)
    title = lang.t(f"error.{status}" if status in ERROR_TITLES else "error.other")
    try:
        who: I.Principal | None = await principal_of(request)
    except LoginNeeded:
        who = None
    nav = console_of(request).nav(who, "") if who is not None else []
    return await respond(request, "error.html", status, None, code=status, title=title,
                         reason=reason, who=who, nav=nav)  # fmt: skip


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """A console route: refusals and errors become pages (see the module's docstring)."""

    def get_route_handler(self) -> Handler:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except LoginNeeded as exc:
                return login_redirect(request, exc.why)
            except PageRefused as exc:
                return await error_page(request, exc.status, exc.reason)
            except RequestValidationError as exc:
                detail = "; ".join(
                    ".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", ""))
                    for e in exc.errors()
                )
                return await error_page(request, 400, detail)
            except CloudError as exc:
                return await error_page(request, exc.status, exc.detail)

        return handler

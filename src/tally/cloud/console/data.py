"""Where the console's pages get their data, through the API's own rules.

Reads come from the read model (:class:`~tally.cloud.views.store.Views`) exactly as the API
reads it: a list is queried with the API's :func:`~tally.cloud.api.deps.scope_of` and every
row is decided again with :func:`~tally.cloud.api.deps.visible`; one row goes through
:func:`~tally.cloud.api.deps.one` (404 when hidden). The policy is never restated here.

Writes (a financing application, a bank's decision, acknowledging an alert) and dashboards are
asked of the API itself, in process (:func:`api_call`): the same request a page's script would
send — the user's session cookie, its CSRF token in ``X-CSRF-Token`` and an
``Idempotency-Key`` that the form carries, so a form sent twice does its work once — and so
the same checks, audit entries and live events as any API client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tally.cloud import authz
from tally.cloud.api.deps import one, scope_of, visible
from tally.cloud.console.web import CSRF_COOKIE, PageRefused, console_of
from tally.cloud.identity import Principal
from tally.cloud.session_api import COOKIE, CSRF_HEADER
from tally.cloud.views.access import resource_of
from tally.cloud.views.model import Page

IDEMPOTENCY_HEADER = "Idempotency-Key"
INTERNAL_BASE = "https://console.internal"
PAGE_SIZE = 20
SCOPE_KINDS = {"application": "loan", "org": "party", "block": "chain", "tx": "chain"}
"""The authz resource kind of a row kind whose name differs (as :mod:`~tally.cloud.views.access`
maps it): the kind a list's scope is asked for."""


async def rows(
    request: Request,
    p: Principal,
    kind: str,
    lister: Callable[..., Page[Any]],
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    **filters: Any,
) -> Page[Any]:
    """One page of ``kind`` rows ``p`` may read (``lister`` is a ``Views.list_*`` method)."""
    ctx = console_of(request).ctx

    def work() -> Page[Any]:
        got = lister(
            scope_of(p, SCOPE_KINDS.get(kind, kind)), limit=limit, cursor=cursor, **filters
        )
        return Page(tuple(visible(ctx, p, kind, got.items)), got.next_cursor)

    return await run_in_threadpool(work)


async def row(request: Request, p: Principal, kind: str, found: Any, missing: str) -> Any:
    """``found`` if ``p`` may read it; NotFound(``missing``) when it is None or hidden."""
    ctx = console_of(request).ctx
    return await run_in_threadpool(one, ctx, p, kind, found, missing)


@dataclass(frozen=True)
class ApiAnswer:
    """The API's answer to an in-process call: ``status`` and the JSON ``body`` (a problem
    when ``status`` ≥ 400)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def detail(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("title") or self.status)
        return str(self.status)


async def api_call(
    request: Request,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: tuple[bytes, str] | None = None,
    csrf: str | None = None,
    key: str | None = None,
) -> ApiAnswer:
    """Ask the API of this app, in process, as the user of ``request`` (session cookie,
    ``csrf`` as ``X-CSRF-Token``, ``key`` as ``Idempotency-Key``) with a JSON ``body`` or
    ``raw`` (bytes, media type)."""
    headers = {"accept": "application/json"}
    if csrf:
        headers[CSRF_HEADER] = csrf
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    jar = [(n, request.cookies.get(n)) for n in (COOKIE, CSRF_COOKIE)]
    headers["cookie"] = "; ".join(f"{n}={v}" for n, v in jar if v)
    client_host = request.client.host if request.client is not None else "127.0.0.1"
    transport = httpx.ASGITransport(app=request.app, client=(client_host, 0))
    async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE) as client:
        content: bytes | None = None
        if raw is not None:
            content, headers["content-type"] = raw
        elif body is not None:
            content, headers["content-type"] = json.dumps(body).encode(), "application/json"
        r = await client.request(method, path, headers=headers, content=content)
    try:
        parsed = r.json() if r.content else None
    except ValueError:
        parsed = {"detail": r.text[:300]}
    return ApiAnswer(r.status_code, parsed)


async def dashboard(request: Request, path: str) -> dict[str, Any]:
    """A dashboard of the API (``/v1/dashboards/…`` or ``/v1/aggregates``) for the reader;
    the API's refusal becomes the page's (its status and detail)."""
    got = await api_call(request, "GET", path)
    if not got.ok:
        raise PageRefused(got.detail, got.status)
    body: dict[str, Any] = got.body
    return body


def may(p: Principal, action: str, kind: str, found: Any) -> bool:
    """Whether the policy lets ``p`` do ``action`` to the row ``found`` (a button is shown;
    the API decides again when it is pressed)."""
    return authz.decide(p, action, resource_of(kind, found)).allowed

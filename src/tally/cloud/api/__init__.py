"""The platform API v1: the read model, financing applications, live events, verification,
the audit log and administration over HTTP (``docs/api.md``).

:func:`install_api` adds these routes to an app (:func:`tally.cloud.app.create_app` does it
when it has a read model, an identity store and an audit log):

===============================================  ==============================================
``GET /v1/ping``                                 no authentication (a baseline)
``GET /v1/openapi.json``                         the OpenAPI document of the routes below
``GET /v1/receipts`` ``/v1/receipts/{no}``       warehouse receipts (:mod:`.receipts`)
``GET /v1/loans`` ``/v1/loans/{id}``             loans (:mod:`.loans`)
``GET /v1/notes`` ``/v1/notes/{id}``             receivable notes (:mod:`.notes`)
``GET /v1/trades`` ``/v1/trades/{id}``           trades (:mod:`.trades`)
``GET /v1/documents`` ``/v1/documents/{hash}``   trade documents, audited (:mod:`.documents`)
``GET /v1/alerts``, ``POST …/{id}/ack``          alerts (:mod:`.alerts`)
``… /v1/applications``                           financing applications (:mod:`.applications`)
``GET /v1/orgs`` ``/v1/orgs/{id}``               organisation profiles (:mod:`.orgs`)
``GET /v1/chain/…``                              blocks and transactions (:mod:`.chain`)
``GET /v1/dashboards/…``, ``/v1/aggregates``     dashboards (:mod:`.dashboards`)
``GET /v1/stream``                               live events, SSE (:mod:`.stream`)
``POST /v1/verify``                              bundle verification (:mod:`.verify`)
``GET /v1/audit``                                the audit log (:mod:`.audit`)
``/v1/admin/users``, ``/v1/admin/tokens``        administration (:mod:`.admin`)
``GET /v1/graph/…``                              the knowledge graph, with ``graph`` (:mod:`.graph`)
===============================================  ==============================================

Callers, decisions and audit: :mod:`.deps`; bodies: :mod:`.routing`; writes and
idempotency: :mod:`.writes`, :mod:`.idempotency`; lists: :mod:`.pages`; shapes:
:mod:`.schemas`; the OpenAPI document: :mod:`.openapi`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute

from tally.cloud import problems
from tally.cloud.auditlog import AuditLog
from tally.cloud.errors import CloudError
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.graphsvc import GraphService
from tally.cloud.identity import wall_clock_ms
from tally.cloud.identity_store import IdentityStore
from tally.cloud.live import EventHub
from tally.cloud.views.store import Views
from tally.device.trust import Trust
from tally.ledger.genesis import Genesis

VERSION = "1"


@dataclass
class ApiContext:
    """What the API's handlers share.

    ``views`` the read model; ``identities`` who may log in; ``audit`` where every write and
    sensitive read is recorded; ``hub`` the live events (``GET /v1/stream`` answers 503
    without one); ``cipher`` the field cipher of sensitive data (the read model opens
    organisations' sensitive fields with its own); ``clock`` ms since the epoch;
    ``verify_bundle`` checks a bundle for ``POST /v1/verify`` and returns ``tally verify
    --json``'s object — by default one is made from ``genesis`` (the consortium's) and
    ``trust`` (the cloud's trust anchors), and without any of the three verification
    answers 503. ``graph`` the knowledge graph (:mod:`tally.cloud.graphsvc`): with one the
    ``/v1/graph/…`` routes are served.
    """

    views: Views
    identities: IdentityStore
    audit: AuditLog
    hub: EventHub | None = None
    cipher: FieldCipher | None = None
    clock: Callable[[], int] = wall_clock_ms
    verify_bundle: Callable[[bytes], dict[str, Any]] | None = None
    genesis: Genesis | None = None
    trust: Trust | None = None
    graph: GraphService | None = None


def routers(ctx: ApiContext) -> list[APIRouter]:
    from tally.cloud.api import (
        admin,
        alerts,
        applications,
        audit,
        chain,
        dashboards,
        documents,
        loans,
        notes,
        orgs,
        receipts,
        stream,
        trades,
        verify,
    )
    from tally.cloud.api.openapi import problems as declared
    from tally.cloud.api.routing import JsonRoute
    from tally.cloud.api.schemas import Pong

    meta = APIRouter(route_class=JsonRoute, tags=["meta"])

    @meta.get("/v1/ping", response_model=Pong, responses=declared())
    async def ping() -> Any:
        """Trivial, without authentication: the baseline of the benchmark."""
        return {"ok": True, "version": VERSION}

    modules = (receipts, loans, notes, trades, documents, alerts, applications, orgs, chain,
               dashboards, stream, verify, audit, admin)  # fmt: skip
    out = [meta, *(m.build(ctx) for m in modules)]
    if ctx.graph is not None:
        from tally.cloud.api import graph

        out.append(graph.build(ctx))
    return out


def install_api(app: FastAPI, ctx: ApiContext) -> None:
    """Add the API's routes to ``app`` (its errors become RFC 9457 problems);
    ``app.state.api_routes`` lists them (FastAPI routes), in the order they were added."""
    from tally.cloud.api import openapi
    from tally.cloud.api.idempotency import Idempotency

    if CloudError not in app.exception_handlers:
        problems.install(app)
    app.state.api = ctx
    app.state.api_idempotency = Idempotency(ctx.views.engine, ctx.clock)
    added: list[BaseRoute] = []
    for router in routers(ctx):
        app.include_router(router)
        added += router.routes
    app.state.api_routes = added
    cached: dict[str, Any] = {}
    app.state.api_spec = cached

    @app.get(openapi.PATH, include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        if "spec" not in cached:
            cached["spec"] = openapi.build(app, added)
        return JSONResponse(cached["spec"])


def install_graph(app: FastAPI, graph: GraphService) -> None:
    """Serve the knowledge graph on an app :func:`install_api` already set up without one:
    ``/v1/graph/…`` (listed in the OpenAPI document; the console's graph pages follow)."""
    from tally.cloud.api import graph as graph_api

    ctx: ApiContext = app.state.api
    if ctx.graph is not None:
        raise ValueError("the app already serves a knowledge graph")
    ctx.graph = graph
    router = graph_api.build(ctx)
    app.include_router(router)
    app.state.api_routes.extend(router.routes)
    app.state.api_spec.clear()

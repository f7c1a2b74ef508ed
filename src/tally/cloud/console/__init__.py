"""The web console of the tally cloud: one page per role, in Chinese and English.

Server-rendered with Jinja2 (autoescaped), htmx for table pages and refreshes, ECharts for
charts; no build step (the vendored scripts are in ``static/vendor``, checked against
``static/vendor/SHA256SUMS`` by a test). :func:`install_console` mounts it on the cloud's
FastAPI app beside the API v1 (:mod:`tally.cloud.api`), whose session cookie it shares.

===========================  ================================================================
``/``                        303 to ``/console/``
``/console/login``           the login (:mod:`.routes_auth`), logout, language switch
``/console/portfolio``       a bank's portfolio and its decisions (:mod:`.routes_bank`)
``/console/workspace``       a supplier's financing workspace (:mod:`.routes_supplier`)
``/console/tiers``           a core enterprise's supplier tiers and notes (:mod:`.routes_core`)
``/console/sites``           a warehouse's sites, devices, telemetry (:mod:`.routes_sites`)
``/console/chain``           the chain explorer; ``/console/verify`` the verification page
                             (:mod:`.routes_chain`)
``/console/portal``          the government portal (:mod:`.routes_portal`)
``/console/graph/…``         the knowledge graph's pages, with a graph (:mod:`.routes_graph`)
``/static/…``                ``console.css``, ``console.js`` and the vendored scripts
===========================  ================================================================

Who sees which page: :mod:`.pages`; languages and formats: :mod:`.i18n`; sessions, CSRF and
error pages: :mod:`.web`; where the data comes from: :mod:`.data`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tally.cloud.api import ApiContext
from tally.cloud.console import (
    routes_auth,
    routes_bank,
    routes_chain,
    routes_core,
    routes_graph,
    routes_portal,
    routes_sites,
    routes_supplier,
)
from tally.cloud.console.pages import nav_for
from tally.cloud.console.web import make_console

STATIC = Path(__file__).with_name("static")
ROUTERS = (routes_auth, routes_bank, routes_supplier, routes_core, routes_sites, routes_chain,
           routes_portal, routes_graph)  # fmt: skip

__all__ = ["STATIC", "install_console"]


def install_console(app: FastAPI, ctx: ApiContext) -> None:
    """Mount the console on ``app`` (once; a second call does nothing): its pages under
    ``/console/``, its static files under ``/static/``, and ``/`` → ``/console/``."""
    if getattr(app.state, "console", None) is not None:
        return
    app.state.console = make_console(ctx)
    app.state.console.nav = lambda p, current: nav_for(p, current, ctx.graph is not None)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

"""The console's pages, who may open each, and the navigation built from them.

==============  =====================  ===================================================
page            path                   who opens it
==============  =====================  ===================================================
portfolio       /console/portfolio     banks
workspace       /console/workspace     suppliers and core enterprises (financing)
tiers           /console/tiers         core enterprises
sites           /console/sites         warehouses and logistics firms
chain           /console/chain         whoever the policy lets read every member's chain
                                       records (the regulator and the consortium members)
portal          /console/portal        whoever the policy lets read every tenant's
                                       aggregates (the government portal, the regulator)
verify          /console/verify        everyone logged in
graph_tiers     /console/graph/tiers   banks, core enterprises, the regulator (with a
                                       knowledge graph, as the four below)
graph_circles   /console/graph/circles banks, the regulator
graph_needs     /console/graph/needs   banks, the regulator
graph_brief     /console/graph/brief   banks, core enterprises, the regulator
graph_firm      /console/graph/firm/…  banks, suppliers, core enterprises, the regulator
                                       (not in the navigation: linked from the others)
==============  =====================  ===================================================

The tenant kinds are the console's choice of what to show; what each page then shows is
decided by :func:`tally.cloud.authz.decide` (the same policy as the API), so a page lists
nothing its reader could not read through the API. A user's home is the first page of this
table that is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from tally.cloud import authz
from tally.cloud import identity as I
from tally.cloud.console.web import PageRefused, lang_of, principal_of
from tally.cloud.session_api import ELSEWHERE


def reads_everyones(p: I.Principal, kind: str) -> bool:
    """Whether the policy lets ``p`` read ``kind`` resources of any tenant."""
    return authz.decide(p, "read", authz.ResourceRef(kind, ELSEWHERE)).allowed


def _kinds(*kinds: str) -> Callable[[I.Principal], bool]:
    return lambda p: p.tenant_kind in kinds


@dataclass(frozen=True)
class PageSpec:
    key: str
    path: str
    allowed: Callable[[I.Principal], bool]
    icon: str
    graph: bool = False
    """Shown only when the app serves a knowledge graph."""
    in_nav: bool = True


PAGES: tuple[PageSpec, ...] = (
    PageSpec("portfolio", "/console/portfolio", _kinds("bank"), "▤"),
    PageSpec("workspace", "/console/workspace", _kinds("supplier", "core_enterprise"), "◧"),
    PageSpec("tiers", "/console/tiers", _kinds("core_enterprise"), "⋔"),
    PageSpec("sites", "/console/sites", _kinds("warehouse", "logistics"), "▦"),
    PageSpec("chain", "/console/chain", lambda p: reads_everyones(p, "chain"), "⬡"),
    PageSpec("portal", "/console/portal", lambda p: reads_everyones(p, "aggregate"), "◔"),
    PageSpec("verify", "/console/verify", lambda p: True, "✓"),
    PageSpec("graph_tiers", "/console/graph/tiers", _kinds("bank", "core_enterprise", "regulator"),
             "⋈", graph=True),
    PageSpec("graph_circles", "/console/graph/circles", _kinds("bank", "regulator"), "◎",
             graph=True),
    PageSpec("graph_needs", "/console/graph/needs", _kinds("bank", "regulator"), "☰", graph=True),
    PageSpec("graph_brief", "/console/graph/brief", _kinds("bank", "core_enterprise", "regulator"),
             "▣", graph=True),
    PageSpec("graph_firm", "/console/graph/firm", _kinds("bank", "supplier", "core_enterprise",
             "regulator"), "◉", graph=True, in_nav=False),
)  # fmt: skip
BY_KEY = {p.key: p for p in PAGES}
HOME_ORDER = {"core_enterprise": ("tiers",), "regulator": ("chain",)}


@dataclass(frozen=True)
class NavItem:
    key: str
    path: str
    icon: str
    active: bool


def nav_for(p: I.Principal, current: str, graph: bool = False) -> list[NavItem]:
    """The pages of ``p``'s navigation (the graph's only when the app has a ``graph``)."""
    return [NavItem(s.key, s.path, s.icon, s.key == current) for s in PAGES
            if s.allowed(p) and s.in_nav and (graph or not s.graph)]  # fmt: skip


def home_of(p: I.Principal) -> str:
    """The path of a user's first page."""
    for key in HOME_ORDER.get(p.tenant_kind, ()):
        if BY_KEY[key].allowed(p):
            return BY_KEY[key].path
    for spec in PAGES:
        if spec.allowed(p):
            return spec.path
    return BY_KEY["verify"].path


async def open_page(request: Request, key: str) -> tuple[I.Principal, list[NavItem]]:
    """The logged-in reader of page ``key`` and the navigation; LoginNeeded or PageRefused
    (403) when the page is not for the reader's tenant kind."""
    p = await principal_of(request)
    spec = BY_KEY[key]
    graph = getattr(request.app.state.api, "graph", None) is not None
    if spec.graph and not graph:
        raise PageRefused(lang_of(request).t("graph.none"), 404)
    if not spec.allowed(p):
        lang = lang_of(request)
        page = lang.t(f"nav.{key}")
        raise PageRefused(
            lang.t("error.page_forbidden", page=page, kind=lang.t(f"kind.{p.tenant_kind}"))
        )
    return p, nav_for(p, key, graph)

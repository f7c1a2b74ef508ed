"""The access matrix's checks of the knowledge-graph endpoints (``/v1/graph/…``), held to
the oracle of :mod:`graphworld` (a firm's graph data: the firm, its banks, the regulator;
a brief: the bank's or the core's own, the regulator's; the government portal: nothing),
a circle: shown whole to whoever reads one of its firms; and to answers that are not
vacuous (a bank sees its own circle and need)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from apiworld import TENANTS
from graphworld import BANKS, CORES, CUSTOMERS, FIRMS, readers

GONE = {403, 404}
Check = Callable[[httpx.AsyncClient, Any, Any, list[str]], Awaitable[None]]
GRAPH_CHECKS: dict[tuple[str, str], Check] = {}
OUTSIDERS = ["bank-a", "log-a", "no-such-firm"]
"""Ids that are no firm of the graph (a tenant or nothing): always 404 or 403."""


def reads(tenant: str, firm: str) -> bool:
    kind = TENANTS[tenant]
    if kind == "regulator":
        return firm in CUSTOMERS
    return kind != "government" and firm in CUSTOMERS and tenant in readers(firm)


def reads_bank(tenant: str, bank: str) -> bool:
    return TENANTS[tenant] == "regulator" or tenant == bank


def check(path: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        GRAPH_CHECKS[("GET", path)] = fn
        return fn

    return register


async def gated(c: httpx.AsyncClient, who: Any, url: str, firm: str, bad: list[str],
                **params: Any) -> httpx.Response | None:  # fmt: skip
    """GET ``url``: 200 only when the caller reads ``firm``; else 404 (403 if involved)."""
    r = await c.get(url, params=params, headers=who.read)
    if r.status_code == 200:
        if not reads(who.tenant, firm):
            bad.append(f"{who.name} reads {url} {params}")
        return r
    if r.status_code not in GONE:
        bad.append(f"{who.name} GET {url}: {r.status_code} {r.text[:200]}")
    elif reads(who.tenant, firm) and "bank" not in params:
        bad.append(f"{who.name} is refused {url}: {r.status_code}")
    elif r.status_code == 403 and firm in CUSTOMERS and who.tenant not in readers(firm) \
            and TENANTS[who.tenant] not in ("regulator", "government"):  # fmt: skip
        bad.append(f"{who.name} GET {url}: 403 tells that {firm} exists")
    return None


def firm_check(prefix: str) -> Check:
    async def run(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
        for firm in [*FIRMS, *OUTSIDERS]:
            await gated(c, who, f"{prefix}/{firm}", firm, bad)

    return run


for _p in ("/v1/graph/neighbourhood", "/v1/graph/scores"):
    check(_p + "/{firm}")(firm_check(_p))


@check("/v1/graph/tiers/{core}")
async def _tiers(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
    for core in [*CORES, "sup-a", *OUTSIDERS]:
        r = await gated(c, who, f"/v1/graph/tiers/{core}", core, bad)
        if r is not None and core in CORES and r.json()["tiers"][0]["firms"] == []:
            bad.append(f"{who.name}: the tiers of {core} are empty")


@check("/v1/graph/exposure/{firm}")
async def _exposure(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
    for firm in [*FIRMS, *OUTSIDERS]:
        for bank in (None, *BANKS):
            params = {} if bank is None else {"bank": bank}
            r = await gated(c, who, f"/v1/graph/exposure/{firm}", firm, bad, **params)
            if r is None:
                continue
            for item in r.json()["items"]:
                if who.tenant != firm and not reads_bank(who.tenant, item["bank"]):
                    bad.append(f"{who.name} reads {item['bank']}'s exposure to {firm}")


@check("/v1/graph/contagion/{firm}")
async def _contagion(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
    for firm in [*FIRMS, *OUTSIDERS]:
        r = await gated(c, who, f"/v1/graph/contagion/{firm}", firm, bad)
        if r is None:
            continue
        body = r.json()
        for loss in body["losses"]:
            ok = (
                reads_bank(who.tenant, loss["who"])
                if loss["bank"]
                else reads(who.tenant, loss["who"])
            )
            if not ok:
                bad.append(f"{who.name} reads the loss of {loss['who']} from {firm}'s default")
        for name in [*body["firm_losses"], *body["defaults"]]:
            if not reads(who.tenant, name):
                bad.append(f"{who.name} reads {name} in the contagion of {firm}")


async def listed(c: httpx.AsyncClient, who: Any, path: str, bad: list[str]) -> Any:
    r = await c.get(path, headers=who.read)
    if r.status_code != 200:
        if r.status_code not in GONE or TENANTS[who.tenant] != "government":
            bad.append(f"{who.name} GET {path}: {r.status_code}")
        return None
    if TENANTS[who.tenant] == "government":
        bad.append(f"{who.name} (government) reads {path}")
    return r.json()["items"]


@check("/v1/graph/circles")
async def _circles(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
    items = await listed(c, who, "/v1/graph/circles", bad)
    if items is None:
        return
    for circle in items:
        if not any(reads(who.tenant, f) for f in circle["firms"]):
            bad.append(f"{who.name} sees the circle {circle['text']} of none of its firms")
    want = {"bank": 1, "supplier": 1, "regulator": 2}.get(TENANTS[who.tenant], 0)
    if len(items) != want:
        bad.append(f"{who.name} sees {len(items)} circles, not {want}")


@check("/v1/graph/needs")
async def _needs(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
    items = await listed(c, who, "/v1/graph/needs", bad)
    if items is None:
        return
    firms = [n["firm"] for n in items]
    if any(not reads(who.tenant, f) for f in firms):
        bad.append(f"{who.name} sees needs of {firms}")
    kind = TENANTS[who.tenant]
    want = {"bank": [f"g{who.tenant[-1]}2"], "regulator": ["ga2", "gb2"]}.get(kind, [])
    if sorted(firms) != want:
        bad.append(f"{who.name} sees the needs {firms}, not {want}")


def brief_check(path: str) -> Check:
    async def run(c: httpx.AsyncClient, who: Any, w: Any, bad: list[str]) -> None:
        kind = TENANTS[who.tenant]
        asks: list[dict[str, str]] = [{}, *({"bank": b} for b in BANKS),
                                      *({"core": x} for x in CORES)]  # fmt: skip
        for params in asks:
            r = await c.get(path, params=params, headers=who.read)
            target = next(iter(params.values()), who.tenant)
            mine = kind == "regulator" or (
                target == who.tenant and kind in ("bank", "core_enterprise")
            )
            if r.status_code == 200:
                if not mine:
                    bad.append(f"{who.name} reads {path} {params}")
                if path.endswith(".pdf"):
                    if not r.content.startswith(b"%PDF") or "pdf" not in r.headers["content-type"]:
                        bad.append(f"{who.name} {path}: not a PDF")
                    continue
                body = r.json()
                seen = {*body["banks"], *body["chains"]}
                if kind != "regulator" and not seen <= {who.tenant}:
                    bad.append(f"{who.name} reads the brief of {seen}")
            elif r.status_code not in GONE:
                bad.append(f"{who.name} GET {path} {params}: {r.status_code} {r.text[:200]}")
            elif mine and kind != "government":
                bad.append(f"{who.name} is refused {path} {params}: {r.status_code}")

    return run


for _p in ("/v1/graph/brief", "/v1/graph/brief.pdf"):
    check(_p)(brief_check(_p))

"""The access matrix of the platform API: every endpoint, called by every tenant kind × user
role, never shows or changes a row of a tenant that takes no part in it.

The world (:mod:`apiworld`, SIMULATED) has two tenants of every kind and a user of every
role in each; every role of one tenant of each kind calls (and the admin and viewer of the
other); reads go with the user's API token (every scope: scopes never widen roles),
writes with its session and CSRF token. For each endpoint a check in :data:`CHECKS` calls
it on every row of the world (and on rows of the other tenants) and holds each answer to
:func:`apiworld.may_see`, an oracle written independently of the policy: a tenant sees the
rows it is owner, bank, party of, or whose site it keeps; the regulator reads everything and
writes nothing; the government portal reads aggregates only. A hidden row must answer 404 —
a 403 would tell that it exists. The endpoints are enumerated from ``/v1/openapi.json`` and
the app's routes: an endpoint without a check fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from apiworld import (
    APPLICATIONS,
    BLOCKS,
    DOCUMENTS,
    LOANS,
    NOTES,
    PW,
    RECEIPTS,
    TENANTS,
    TRADES,
    ApiWorld,
    build,
    involved,
    may_see,
    twin,
    username,
)
from fastapi.routing import APIRoute
from matrix_graph import GRAPH_CHECKS
from matrix_stream import ReplayHub

from tally.cloud import identity as I
from tally.cloud.api.openapi import build as build_spec
from tally.cloud.session_api import COOKIE, CSRF_HEADER

GONE = {403, 404}


@dataclass
class Caller:
    tenant: str
    role: str
    read: dict[str, str]
    write: dict[str, str]

    @property
    def kind(self) -> str:
        return TENANTS[self.tenant]

    @property
    def name(self) -> str:
        return username(self.role, self.tenant)


Check = Callable[[httpx.AsyncClient, Caller, ApiWorld, list[str]], Awaitable[None]]
CHECKS: dict[tuple[str, str], Check] = {}


def check(method: str, path: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[(method, path)] = fn
        return fn

    return register


ROWS: dict[tuple[str, str], Any] = {}
"""Rows read while nothing writes (cleared before and after the writes)."""


def row_of(w: ApiWorld, kind: str, rid: str) -> Any:
    if (kind, rid) in ROWS:
        return ROWS[(kind, rid)]
    got = {
        "receipt": w.views.receipt, "loan": w.views.loan, "note": w.views.note,
        "trade": w.views.trade, "document": w.views.document, "alert": w.views.alert,
        "application": w.views.application, "org": w.views.org,
        "tx": w.views.tx, "block": lambda h: w.views.block(int(h)),
    }[kind](rid)  # fmt: skip
    assert got is not None, (kind, rid)
    ROWS[(kind, rid)] = got
    return got


def seen(bad: list[str], who: Caller, kind: str, rid: str, w: ApiWorld, what: str) -> None:
    if not may_see(who.tenant, kind, row_of(w, kind, rid)):
        bad.append(f"{who.name} sees {kind} {rid} via {what}")


async def get(c: httpx.AsyncClient, who: Caller, path: str, **params: Any) -> httpx.Response:
    return await c.get(path, params=params, headers=who.read)


# -- lists ------------------------------------------------------------------------------------
LISTS = {
    "/v1/receipts": ("receipt", "no", "holder"), "/v1/loans": ("loan", "id", "borrower"),
    "/v1/notes": ("note", "id", "holder"), "/v1/trades": ("trade", "id", "seller"),
    "/v1/documents": ("document", "hash", None), "/v1/alerts": ("alert", "id", None),
    "/v1/applications": ("application", "id", "applicant"), "/v1/orgs": ("org", "id", None),
}  # fmt: skip


def list_check(path: str) -> Check:
    kind, key, owner = LISTS[path]

    async def run(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
        asks = [{"limit": 200}]
        if owner is not None:  # a filter naming another tenant shows nothing more
            asks.append({"limit": 200, owner: twin(who.tenant)})
        for params in asks:
            r = await get(c, who, path, **params)
            if r.status_code in GONE:
                continue
            if r.status_code != 200 or who.kind == "government":
                bad.append(f"{who.name} GET {path} {params}: {r.status_code}")
                continue
            for item in r.json()["items"]:
                seen(bad, who, kind, item[key], w, f"GET {path}")

    return run


for _path in LISTS:
    check("GET", _path)(list_check(_path))


# -- single rows -------------------------------------------------------------------------------
ONES = {
    "/v1/receipts/{no}": ("receipt", [r.no for r in RECEIPTS]),
    "/v1/loans/{id}": ("loan", [x.id for x in LOANS]),
    "/v1/notes/{id}": ("note", [n.id for n in NOTES]),
    "/v1/trades/{id}": ("trade", [t.id for t in TRADES]),
    "/v1/documents/{hash}": ("document", [d.hash for d in DOCUMENTS]),
    "/v1/applications/{id}": ("application", [p.id for p in APPLICATIONS]),
    "/v1/orgs/{id}": ("org", list(TENANTS)),
    "/v1/chain/txs/{id}": ("tx", [t.id for _, txs in BLOCKS for t in txs]),
    "/v1/chain/blocks/{height}": ("block", [str(b.height) for b, _ in BLOCKS]),
}


def one_check(path: str) -> Check:
    kind, ids = ONES[path]

    async def run(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
        for rid in ids:
            url = path.split("{")[0] + rid
            row = row_of(w, kind, rid)
            sensitive = kind == "org" and rid in ("sup-a", "bank-b", who.tenant)
            for params in ({}, {"include": "sensitive"}) if sensitive else ({},):
                r = await get(c, who, url, **params)
                if r.status_code == 200:
                    seen(bad, who, kind, rid, w, f"GET {url} {params}")
                    if params and who.role == "viewer":
                        bad.append(f"{who.name} (a viewer) reads sensitive fields of {rid}")
                elif r.status_code not in GONE:
                    bad.append(f"{who.name} GET {url}: {r.status_code} {r.text}")
                elif (
                    r.status_code == 403
                    and kind != "block"
                    and who.tenant not in involved(kind, row)
                    and who.kind != "regulator"
                ):
                    bad.append(f"{who.name} GET {url}: 403 tells that {rid} exists")

    return run


for _path in ONES:
    check("GET", _path)(one_check(_path))


@check("GET", "/v1/chain/status")
async def _chain_status(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    r = await get(c, who, "/v1/chain/status")
    if r.status_code == 200 and who.tenant not in involved("block", None) | {"reg-a", "reg-b"}:
        bad.append(f"{who.name} reads the chain status")


@check("GET", "/v1/chain/blocks")
async def _blocks(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    r = await get(c, who, "/v1/chain/blocks")
    if r.status_code == 200:
        for b in r.json()["items"]:
            seen(bad, who, "block", str(b["height"]), w, "GET /v1/chain/blocks")
    elif r.status_code != 403:
        bad.append(f"{who.name} GET /v1/chain/blocks: {r.status_code}")


# -- dashboards --------------------------------------------------------------------------------
DASHBOARDS = {
    "/v1/dashboards/portfolio": ("bank", ("bank",)),
    "/v1/dashboards/supplier": ("party", ("supplier", "core_enterprise")),
    "/v1/dashboards/core": ("core", ("core_enterprise",)),
    "/v1/dashboards/warehouse": ("tenant", ("warehouse",)),
}


def dashboard_check(path: str) -> Check:
    param, kinds = DASHBOARDS[path]

    async def run(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
        for org in [None, *(t for t, k in TENANTS.items() if k in kinds)]:
            r = await get(c, who, path, **({} if org is None else {param: org}))
            target = org or who.tenant
            if r.status_code == 200:
                if who.kind != "regulator" and target != who.tenant:
                    bad.append(f"{who.name} reads the {path} of {target}")
                if TENANTS[target] not in kinds or who.kind == "government":
                    bad.append(f"{who.name} reads a {path} of {target} ({TENANTS[target]})")
            elif r.status_code not in GONE:
                bad.append(f"{who.name} GET {path} {org}: {r.status_code} {r.text}")

    return run


for _path in DASHBOARDS:
    check("GET", _path)(dashboard_check(_path))


@check("GET", "/v1/aggregates")
async def _aggregates(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    r = await get(c, who, "/v1/aggregates")
    if r.status_code == 200:
        if who.kind not in ("government", "regulator"):
            bad.append(f"{who.name} reads the aggregates")
        named = [t for t in TENANTS if t in r.text] + (["Simulated"] if "Simulated" in r.text
                                                        else [])  # fmt: skip
        if named:
            bad.append(f"the aggregates name firms: {named}")
    elif r.status_code != 403:
        bad.append(f"{who.name} GET /v1/aggregates: {r.status_code}")


# -- the stream, the audit log, who am I -------------------------------------------------------
@check("GET", "/v1/stream")
async def _stream(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    r = await get(c, who, "/v1/stream")
    if r.status_code != 200:
        bad.append(f"{who.name} GET /v1/stream: {r.status_code}")
        return
    for block in r.text.split("\n\n"):
        lines = dict(x.split(": ", 1) for x in block.splitlines() if ": " in x and x[0] != ":")
        if "event" not in lines:
            continue
        data = json.loads(lines["data"])
        kind = lines["event"]
        if kind in ("gap", "overflow"):  # the stream's own: no row in them
            continue
        if kind == "block":
            seen(bad, who, "block", str(data["height"]), w, "the stream")
        else:
            key = {"receipt": "no"}.get(kind, "id")
            seen(bad, who, kind, data[key], w, "the stream")


@check("GET", "/v1/audit")
async def _audit(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    for tenant in (None, twin(who.tenant), "bank-a"):
        r = await get(c, who, "/v1/audit", **({} if tenant is None else {"tenant": tenant}))
        target = tenant or who.tenant
        if r.status_code == 200:
            if target != who.tenant and (who.kind, who.role) != ("regulator", "auditor"):
                bad.append(f"{who.name} reads the audit log of {target}")
            if who.role not in ("auditor", "admin"):
                bad.append(f"{who.name} reads an audit log")
            if any(e["tenant"] != target for e in r.json()["items"]):
                bad.append(f"{who.name} reads entries of another tenant than {target}")
        elif r.status_code not in GONE:
            bad.append(f"{who.name} GET /v1/audit {tenant}: {r.status_code}")


@check("GET", "/v1/me")
async def _me(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    r = await get(c, who, "/v1/me")
    if r.status_code != 200 or r.json()["tenant"] != who.tenant:
        bad.append(f"{who.name} GET /v1/me: {r.status_code} {r.text}")


@check("GET", "/v1/ping")
async def _ping(c: httpx.AsyncClient, who: Caller, w: ApiWorld, bad: list[str]) -> None:
    if (await c.get("/v1/ping")).status_code != 200:
        bad.append("GET /v1/ping failed")


CHECKS.update(GRAPH_CHECKS)


# -- the world and its callers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    w = build(tmp_path_factory.mktemp("matrix"), hub=ReplayHub())
    w.app.state.api.hub.fill(w)
    yield w
    w.close()


def callers(w: ApiWorld) -> list[Caller]:
    """Every role of the first tenant of each kind; the second tenant of each kind as its
    admin and its viewer (the world is symmetric: they check that nothing depends on which
    of the two a tenant is)."""
    out = []
    for tenant in TENANTS:
        roles = I.USER_ROLES if tenant.endswith("-a") else ("admin", "viewer")
        for role in roles:
            s = w.store.login(username(role, tenant), PW)
            write = {"cookie": f"{COOKIE}={s.secret}", CSRF_HEADER: s.csrf}
            read = {"authorization": f"Bearer {w.tokens[username(role, tenant)]}"}
            out.append(Caller(tenant, role, read, write))
    return out


def operations(w: ApiWorld) -> set[tuple[str, str]]:
    doc = build_spec(w.app, w.app.state.api_routes)
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = {(m, r.path) for r in w.app.state.api_routes if isinstance(r, APIRoute)
              for m in r.methods}  # fmt: skip
    assert routed <= listed, routed - listed
    return listed


def test_every_endpoint_has_a_check(world: ApiWorld) -> None:
    from test_api_matrix_writes import WRITE_CHECKS

    covered = set(CHECKS) | set(WRITE_CHECKS)
    missing = operations(world) - covered
    assert not missing, f"endpoints without a check in the access matrix: {sorted(missing)}"
    assert not covered - operations(world), "checks of endpoints that do not exist"


async def test_no_tenant_sees_or_changes_what_it_takes_no_part_in(world: ApiWorld) -> None:
    from test_api_matrix_writes import WRITE_CHECKS, after_writes

    bad: list[str] = []
    transport = httpx.ASGITransport(app=world.app)
    everyone = callers(world)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        for who in everyone:
            for run in CHECKS.values():
                await run(c, who, world, bad)
        ROWS.clear()
        for who in everyone:
            for run in WRITE_CHECKS.values():
                await run(c, who, world, bad)
        ROWS.clear()
        for who in everyone:  # what the writes made is still seen only by its parties
            for path in ("/v1/applications", "/v1/alerts"):
                await CHECKS[("GET", path)](c, who, world, bad)
    bad += after_writes(world)
    assert bad == [], "\n".join(bad[:40])

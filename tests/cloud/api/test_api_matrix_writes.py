"""The write half of the access matrix (:mod:`test_api_matrix` runs it): acknowledgements,
applications and their decisions, verification, administration and logins, each tried by
every caller on its own rows and on other tenants' — and, afterwards, every change in the
store made only by a tenant that takes part in the row it changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from apiworld import ALERTS, APPLICATIONS, NOTES, PW, RECEIPTS, TENANTS, ApiWorld, involved, twin
from apiworld import username as user_of

from tally.cloud.session_api import COOKIE, CSRF_HEADER

Check = Callable[[httpx.AsyncClient, Any, ApiWorld, list[str]], Awaitable[None]]
WRITE_CHECKS: dict[tuple[str, str], Check] = {}
OK = range(200, 300)


def check(method: str, path: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        WRITE_CHECKS[(method, path)] = fn
        return fn

    return register


def tenant_of(username: str) -> str:
    return username.rsplit("@", 1)[1]


def writes_ok(tenant: str, kind: str, row: Any) -> bool:
    """A tenant may change only what it takes part in, and never as regulator or government."""
    return TENANTS[tenant] not in ("regulator", "government") and tenant in involved(kind, row)


@check("POST", "/v1/alerts/{id}/ack")
async def _ack(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    for a in ALERTS:
        r = await c.post(f"/v1/alerts/{a.id}/ack", headers=who.write)
        row = w.views.alert(a.id)
        if r.status_code in OK and not writes_ok(who.tenant, "alert", row):
            bad.append(f"{who.name} acknowledges alert {a.id}")
        elif r.status_code not in OK and r.status_code not in (403, 404):
            bad.append(f"{who.name} POST ack {a.id}: {r.status_code} {r.text}")
        elif r.status_code == 403 and who.tenant not in involved("alert", row) | {"reg-a", "reg-b"}:
            bad.append(f"{who.name} ack {a.id}: 403 tells that it exists")


@check("POST", "/v1/applications")
async def _apply(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    bank = "bank-b" if who.tenant == "bank-a" else "bank-a"
    subjects = [("receipt", r.no) for r in RECEIPTS] + [("note", n.id) for n in NOTES]
    for kind, sid in subjects:
        body = {"bank": bank, "subject_kind": kind, "subject": sid, "amount_fen": 1}
        r = await c.post("/v1/applications", json=body, headers=who.write)
        holder = (w.views.receipt(sid) if kind == "receipt" else w.views.note(sid)).holder
        if r.status_code == 201 and holder != who.tenant:
            bad.append(f"{who.name} applies against {kind} {sid} of {holder}")
        elif r.status_code == 422 and holder != who.tenant:
            code = r.json()["type"].rsplit(":", 1)[1]
            if code != "subject_not_held":  # anything else would tell about another's row
                bad.append(f"{who.name} learns {code} of {kind} {sid} of {holder}")
        elif r.status_code not in (201, 403, 422):
            bad.append(f"{who.name} POST /v1/applications {sid}: {r.status_code} {r.text}")


@check("POST", "/v1/applications/{id}/decision")
async def _decide(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    for p in APPLICATIONS:
        for body in ({"decision": "refuse", "reason": "simulated"}, {"decision": "withdraw"}):
            r = await c.post(f"/v1/applications/{p.id}/decision", json=body, headers=who.write)
            row = w.views.application(p.id)
            may = row.bank if body["decision"] == "refuse" else row.applicant
            if r.status_code in OK and who.tenant != may:
                bad.append(f"{who.name} decides {body['decision']} on {p.id}")
            elif r.status_code not in OK and r.status_code not in (403, 404, 409, 422):
                bad.append(f"{who.name} decision {p.id}: {r.status_code} {r.text}")
            elif r.status_code in (403, 409) and who.tenant not in involved("application", row) | {
                "reg-a",
                "reg-b",
            }:
                bad.append(f"{who.name} decision {p.id}: {r.status_code} tells that it exists")


@check("POST", "/v1/verify")
async def _verify(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    headers = {**who.write, "content-type": "application/cbor"}
    r = await c.post("/v1/verify", content=b"\xa0", headers=headers)
    if r.status_code == 200:
        if who.kind == "government" or r.json()["valid"]:
            bad.append(f"{who.name} POST /v1/verify: {r.text}")
    elif r.status_code != 403:
        bad.append(f"{who.name} POST /v1/verify: {r.status_code} {r.text}")


# -- administration --------------------------------------------------------------------------------
@check("GET", "/v1/admin/users")
async def _users(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    r = await c.get("/v1/admin/users", headers=who.read)
    if r.status_code == 200:
        others = [u["username"] for u in r.json()["items"] if u["tenant"] != who.tenant]
        if others or who.role not in ("auditor", "admin"):
            bad.append(f"{who.name} lists users {others}")
    elif r.status_code != 403:
        bad.append(f"{who.name} GET /v1/admin/users: {r.status_code}")


@check("POST", "/v1/admin/users")
async def _new_user(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    body = {"username": f"made-by-{who.role}@{who.tenant}", "password": PW, "roles": ["viewer"]}
    r = await c.post("/v1/admin/users", json=body, headers=who.write)
    if r.status_code == 201:
        if r.json()["tenant"] != who.tenant or who.role != "admin":
            bad.append(f"{who.name} creates {r.json()}")
    elif r.status_code != 403:
        bad.append(f"{who.name} POST /v1/admin/users: {r.status_code} {r.text}")


@check("PATCH", "/v1/admin/users/{username}")
async def _patch_user(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    for target in {user_of("viewer", t) for t in (twin(who.tenant), "bank-a", who.tenant)}:
        r = await c.patch(f"/v1/admin/users/{target}", json={"roles": ["viewer"]},
                          headers=who.write)  # fmt: skip
        if r.status_code in OK and tenant_of(target) != who.tenant:
            bad.append(f"{who.name} changes the user {target}")
        elif r.status_code not in OK and r.status_code not in (403, 404):
            bad.append(f"{who.name} PATCH {target}: {r.status_code} {r.text}")


@check("GET", "/v1/admin/tokens")
async def _tokens(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    r = await c.get("/v1/admin/tokens", headers=who.read)
    if r.status_code == 200:
        if any(t["tenant"] != who.tenant for t in r.json()["items"]):
            bad.append(f"{who.name} lists another tenant's tokens")
    elif r.status_code != 403:
        bad.append(f"{who.name} GET /v1/admin/tokens: {r.status_code}")


@check("POST", "/v1/admin/tokens")
async def _new_token(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    for extra in ({"user": user_of("viewer", twin(who.tenant))}, {}):
        body = {"scopes": ["read:receipts"], **extra}
        r = await c.post("/v1/admin/tokens", json=body, headers=who.write)
        if r.status_code == 201:
            got = r.json()
            if got["tenant"] != who.tenant or extra:
                bad.append(f"{who.name} issues a token {got['tenant']} {got['user']}")
        elif r.status_code not in (403, 404):
            bad.append(f"{who.name} POST /v1/admin/tokens: {r.status_code} {r.text}")


@check("DELETE", "/v1/admin/tokens/{id}")
async def _revoke(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    for tenant in (twin(who.tenant), "sup-a", who.tenant):
        r = await c.delete(f"/v1/admin/tokens/{w.victims[tenant]}", headers=who.write)
        if r.status_code in OK and tenant != who.tenant:
            bad.append(f"{who.name} revokes a token of {tenant}")
        elif r.status_code not in OK and r.status_code not in (403, 404):
            bad.append(f"{who.name} DELETE token of {tenant}: {r.status_code} {r.text}")


# -- logins ---------------------------------------------------------------------------------------
@check("POST", "/v1/session")
async def _login(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    r = await c.post("/v1/session", json={"username": who.name, "password": PW})
    if r.status_code != 200 or r.json()["tenant"] != who.tenant:
        bad.append(f"{who.name} POST /v1/session: {r.status_code} {r.text}")
    c.cookies.clear()
    other = {"tenant": twin(who.tenant), "username": who.name, "password": PW}
    if (await c.post("/v1/session", json=other)).status_code == 200:
        bad.append(f"{who.name} logs in to {twin(who.tenant)}")
    c.cookies.clear()


@check("DELETE", "/v1/session")
async def _logout(c: httpx.AsyncClient, who: Any, w: ApiWorld, bad: list[str]) -> None:
    s = w.store.login(who.name, PW)
    r = await c.delete("/v1/session", headers={"cookie": f"{COOKIE}={s.secret}",
                                               CSRF_HEADER: s.csrf})  # fmt: skip
    if r.status_code != 204:
        bad.append(f"{who.name} DELETE /v1/session: {r.status_code} {r.text}")


def after_writes(w: ApiWorld) -> list[str]:
    """What the store holds after every caller tried every write."""
    from tally.cloud.views.model import Scope

    bad = []
    everything = Scope("any", everything=True)
    for p in w.views.list_applications(everything, limit=200).items:
        if tenant_of(p.created_by) != p.applicant:
            bad.append(f"application {p.id} of {p.applicant} made by {p.created_by}")
        if p.decided_by is not None and tenant_of(p.decided_by) not in (p.applicant, p.bank):
            bad.append(f"application {p.id} decided by {p.decided_by}")
    for a in w.views.list_alerts(everything, limit=200).items:
        if a.acked_by is not None and not writes_ok(tenant_of(a.acked_by), "alert", a):
            bad.append(f"alert {a.id} acknowledged by {a.acked_by}")
    for tenant in TENANTS:
        for u in w.store.list_users(tenant):
            if tenant_of(u.username) != tenant:
                bad.append(f"user {u.username} in {tenant}")
        for t in w.store.list_tokens(tenant):
            if t.user is not None and tenant_of(t.user) != tenant:
                bad.append(f"token of {t.user} in {tenant}")
    return bad

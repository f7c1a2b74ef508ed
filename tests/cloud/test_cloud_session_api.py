"""Logins, sessions and identity API tokens on the HTTP API, through ASGI on SQLite: the
cookie, CSRF, lockout, scopes, expiry, the audit log of every login, and an app without an
identity store that behaves as before. Refusals are checked by their exact text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cloud_factory import T0, TOKENS, World

from tally.cloud import identity as I
from tally.cloud import identity_store as S
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog, Entry
from tally.cloud.session_api import COOKIE, CSRF_HEADER, NO_CREDENTIALS, NO_SESSION_COOKIE
from tally.cloud.storage.api import Storage
from tally.cloud.storage.sql import SqlStorage

COSE = {"content-type": "application/cose"}
PW = "correct horse battery"
MIN = 60_000
FAST = I.IdentityPolicy(scrypt_log_n=10)
ACME_DEVICES = ["d1", "d2", "d3"]
ALL_DEVICES = ["d1", "d2", "d3", "d9"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Env:
    client: httpx.AsyncClient
    store: S.IdentityStore
    audit: AuditLog
    clock: Clock
    engine: sa.Engine


def problem(r: httpx.Response, status: int, code: str, detail: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"urn:tally:problem:{code}", body
    assert body["status"] == status and body["detail"] == detail, body
    assert "set-cookie" not in r.headers


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def users_row(engine: sa.Engine, username: str) -> tuple[Any, ...]:
    with engine.connect() as conn:
        q = sa.select(S.users.c.failed, S.users.c.locked_until, S.users.c.password)
        return tuple(conn.execute(q.where(S.users.c.username == username)).one())


async def register_all(c: httpx.AsyncClient, world: World) -> None:
    for data in world.registrations:
        r = await c.post("/v1/registrations", content=data, headers=COSE)
        assert r.status_code == 201, r.text


@pytest.fixture
async def env(world: World, sqlite_storage: Storage, tmp_path: Path) -> AsyncIterator[Env]:
    assert isinstance(sqlite_storage, SqlStorage)
    engine = sqlite_storage.engine
    clock = Clock()
    store = S.IdentityStore(engine, FAST, clock)
    store.create_tenant("acme", "supplier", "Acme Supplies")
    store.create_tenant("reg", "regulator", "The Regulator")
    store.create_tenant("portal", "government", "Government Portal")
    store.create_user("acme", "alice", PW, ["operator"])
    store.create_user("portal", "gina", PW, ["viewer"])
    audit = AuditLog(engine, clock=clock)
    app = create_app(
        world.settings(str(tmp_path)),
        sqlite_storage,
        world.trust,
        world.identity,
        clock=lambda: T0 + 30_000,
        identities=store,
        audit_log=audit,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        await register_all(c, world)
        yield Env(c, store, audit, clock, engine)


async def login(
    env: Env, username: str = "alice", password: str = PW, **more: Any
) -> httpx.Response:
    return await env.client.post(
        "/v1/session", json={"username": username, "password": password, **more}
    )


async def device_ids(c: httpx.AsyncClient, **kw: Any) -> list[str]:
    r = await c.get("/v1/devices", **kw)
    assert r.status_code == 200, r.text
    return sorted(d["id"] for d in r.json()["devices"])


def logins(audit: AuditLog) -> list[Entry]:
    return [e for e in audit.entries(limit=1000) if e.action.startswith("session.")]


# -- login --------------------------------------------------------------------------------
async def test_login_sets_a_strict_cookie_and_me_answers(env: Env) -> None:
    r = await login(env, "Alice", tenant="acme")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "alice" and body["tenant"] == "acme" and body["roles"] == ["operator"]
    assert body["expires"] == T0 + FAST.session_absolute_ms and len(body["csrf"]) >= 43
    cookie = r.headers["set-cookie"]
    secret = env.client.cookies[COOKIE]
    assert cookie == (
        f"{COOKIE}={secret}; Max-Age=43200; Path=/; HttpOnly; Secure; SameSite=Strict"
    )
    assert secret not in r.text and len(secret) >= 43
    r = await env.client.get("/v1/me")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tenant": "acme", "tenant_kind": "supplier", "user": "alice", "roles": ["operator"],
        "scopes": [], "sites": [], "via": "session",
    }  # fmt: skip
    # the session reads the read API, restricted to its own tenant's data
    assert await device_ids(env.client) == ACME_DEVICES


async def test_no_credentials_and_a_foreign_cookie_are_refused(env: Env) -> None:
    problem(await env.client.get("/v1/me"), 401, "unauthorized", NO_CREDENTIALS)
    problem(await env.client.get("/v1/devices"), 401, "unauthorized", NO_CREDENTIALS)
    forged = {"cookie": f"{COOKIE}={I.new_session_secret()}"}
    r = await env.client.get("/v1/me", headers=forged)
    problem(r, 401, "session_refused", I.SESSION_UNKNOWN)


async def test_wrong_password_unknown_user_and_other_tenant_say_the_same(env: Env) -> None:
    before = users_row(env.engine, "alice")
    problem(await login(env, password="wrong password!"), 401, "login_refused", I.INVALID_LOGIN)
    problem(await login(env, "mallory"), 401, "login_refused", I.INVALID_LOGIN)
    assert users_row(env.engine, "alice") == (1, None, before[2])
    # the right password for another tenant is refused alike (it counts as no failure)
    problem(await login(env, tenant="reg"), 401, "login_refused", I.INVALID_LOGIN)
    assert COOKIE not in env.client.cookies
    assert users_row(env.engine, "alice") == (0, None, before[2])
    with env.engine.connect() as conn:  # the session of the other-tenant login is gone
        assert conn.execute(sa.select(sa.func.count()).select_from(S.sessions)).scalar() == 0
    got = [(e.actor, e.tenant, e.outcome, e.detail["reason"]) for e in logins(env.audit)]
    assert got == [
        ("alice", "acme", "denied", "invalid_login"),
        ("mallory", None, "denied", "invalid_login"),
        ("alice", "acme", "denied", "other_tenant"),
    ]


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code", "detail"),
    [
        (b'{"username": "alice"}', "text/plain", 415, "unsupported_media_type",
         "send application/json, not text/plain"),
        (b"{", "application/json", 400, "bad_request",
         'the login body must be JSON: {"tenant"?, "username", "password"}'),
        (b"[1]", "application/json", 400, "bad_request",
         "the login body must be a JSON object, got list"),
        (b'{"username": "alice"}', "application/json", 400, "bad_request",
         "password is missing"),
        (b'{"username": "alice", "password": 12}', "application/json", 400, "bad_request",
         "password must be text, got int"),
        (b'{"username": "alice", "password": ""}', "application/json", 400, "bad_request",
         "password must not be empty"),
        (b'{"username": "alice", "password": "x", "remember": true}', "application/json", 400,
         "bad_request",
         "unknown field 'remember': a login takes tenant (optional), username and password"),
        (b'{"username": "a b", "password": "x"}', "application/json", 400, "bad_request",
         "username 'a b' must be 3 to 100 characters of a-z, 0-9, '.', '_', '@', '-', "
         "starting with a letter or digit"),
        (b'{"tenant": "*", "username": "alice", "password": "x"}', "application/json", 400,
         "bad_request", "tenant id '*' must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', "
         "'-', starting with a letter or digit"),
    ],
)  # fmt: skip
async def test_malformed_logins_are_refused_and_change_nothing(
    env: Env, content: bytes, ctype: str, status: int, code: str, detail: str
) -> None:
    before = users_row(env.engine, "alice")
    r = await env.client.post("/v1/session", content=content, headers={"content-type": ctype})
    problem(r, status, code, detail)
    assert users_row(env.engine, "alice") == before
    assert logins(env.audit) == [] and env.audit.head().entries == 0


async def test_five_failures_lock_the_account_even_for_the_right_password(env: Env) -> None:
    for _ in range(FAST.lockout_failures):
        problem(await login(env, password="wrong password!"), 401, "login_refused", I.INVALID_LOGIN)
    until = T0 + FAST.lockout_ms
    locked = f"account locked until {I.iso_ms(until)}"
    problem(await login(env), 423, "account_locked", locked)
    assert users_row(env.engine, "alice")[:2] == (0, until)
    assert COOKIE not in env.client.cookies
    env.clock.now = until
    r = await login(env)
    assert r.status_code == 200, r.text
    entries = logins(env.audit)
    assert [e.outcome for e in entries] == ["denied"] * 6 + ["ok"]
    assert entries[5].detail == {
        "reason": "account_locked", "until": I.iso_ms(until), "client": "127.0.0.1",
    }  # fmt: skip


async def test_a_disabled_user_is_refused(env: Env) -> None:
    env.store.disable_user("alice")
    problem(await login(env), 401, "login_refused", I.ACCOUNT_DISABLED)
    assert [e.detail["reason"] for e in logins(env.audit)] == ["account_disabled"]


# -- logout and CSRF ----------------------------------------------------------------------
async def test_logout_needs_the_csrf_token_and_ends_the_session(env: Env) -> None:
    r = await login(env)
    csrf = r.json()["csrf"]
    secret = env.client.cookies[COOKIE]
    problem(await env.client.delete("/v1/session"), 403, "csrf_refused", I.CSRF_MISSING)
    r = await env.client.delete("/v1/session", headers={CSRF_HEADER: csrf[::-1]})
    problem(r, 403, "csrf_refused", I.CSRF_MISMATCH)
    assert (await env.client.get("/v1/me")).status_code == 200  # still logged in
    assert [e.action for e in logins(env.audit)] == ["session.login"]
    r = await env.client.delete("/v1/session", headers={CSRF_HEADER: csrf})
    assert r.status_code == 204 and r.content == b""
    cleared = f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"
    assert r.headers["set-cookie"] == cleared
    assert COOKIE not in env.client.cookies
    old = {"cookie": f"{COOKIE}={secret}"}
    problem(await env.client.get("/v1/me", headers=old), 401, "session_refused", I.SESSION_UNKNOWN)
    r = await env.client.delete("/v1/session", headers={CSRF_HEADER: csrf, **old})
    problem(r, 401, "session_refused", I.SESSION_UNKNOWN)
    problem(await env.client.delete("/v1/session"), 401, "session_refused", NO_SESSION_COOKIE)
    out = logins(env.audit)[-1]
    assert (out.action, out.actor, out.tenant, out.outcome) == (
        "session.logout", "alice", "acme", "ok",
    )  # fmt: skip
    assert out.resource_id == I.secret_id(secret)[:16] == logins(env.audit)[0].resource_id


async def test_an_idle_session_expires(env: Env) -> None:
    assert (await login(env)).status_code == 200
    env.clock.now += FAST.session_idle_ms
    detail = f"session expired at {I.iso_ms(env.clock.now)} after 30 min without activity"
    problem(await env.client.get("/v1/devices"), 401, "session_refused", detail)


# -- identity API tokens ------------------------------------------------------------------
async def test_a_token_reads_what_its_scopes_name(env: Env) -> None:
    token = env.store.issue_token("acme", ["read:devices"]).token
    assert await device_ids(env.client, headers=bearer(token)) == ACME_DEVICES
    r = await env.client.get("/v1/devices/d1/readings", headers=bearer(token))
    reason = "token-scope: the API token of supplier 'acme' lacks the scope 'read:telemetry'"
    problem(r, 403, "forbidden", reason)
    r = await env.client.get("/v1/me", headers=bearer(token))
    assert r.json() == {
        "tenant": "acme", "tenant_kind": "supplier", "user": None, "roles": [],
        "scopes": ["read:devices"], "sites": [], "via": "token",
    }  # fmt: skip
    wider = env.store.issue_token("acme", ["read:telemetry"], user="alice").token
    r = await env.client.get("/v1/devices/d1/readings", headers=bearer(wider))
    assert r.status_code == 200 and r.json()["items"] == []
    r = await env.client.get("/v1/devices/d9/readings", headers=bearer(wider))
    problem(r, 404, "not_found", "no device 'd9'")  # another tenant's device


async def test_the_regulator_reads_every_tenant_and_the_portal_no_devices(env: Env) -> None:
    token = env.store.issue_token("reg", ["read:devices"]).token
    assert await device_ids(env.client, headers=bearer(token)) == ALL_DEVICES
    assert (await login(env, "gina")).status_code == 200
    reason = "government-aggregates-only: the government portal may not read a device"
    problem(await env.client.get("/v1/devices"), 403, "forbidden", reason)


async def test_expired_revoked_and_unknown_tokens_are_refused(env: Env) -> None:
    issued = env.store.issue_token("acme", ["read:devices"], ttl_ms=MIN)
    assert await device_ids(env.client, headers=bearer(issued.token)) == ACME_DEVICES
    env.clock.now = issued.info.expires
    detail = f"API token expired at {I.iso_ms(issued.info.expires)}"
    problem(await env.client.get("/v1/devices", headers=bearer(issued.token)), 401,
            "token_refused", detail)  # fmt: skip
    other = env.store.issue_token("acme", ["read:devices"])
    env.store.revoke_token(other.info.id)
    detail = f"API token revoked at {I.iso_ms(env.clock.now)}"
    problem(await env.client.get("/v1/me", headers=bearer(other.token)), 401, "token_refused",
            detail)  # fmt: skip
    forged = I.new_api_token()
    r = await env.client.get("/v1/devices", headers=bearer(forged))
    problem(r, 401, "token_refused", I.TOKEN_UNKNOWN)


async def test_configured_tokens_work_as_before_beside_identities(env: Env) -> None:
    assert await device_ids(env.client, headers=bearer(TOKENS["acme"])) == ACME_DEVICES
    assert await device_ids(env.client, headers=bearer(TOKENS["regulator"])) == ALL_DEVICES
    r = await env.client.get("/v1/me", headers=bearer(TOKENS["acme"]))
    assert r.json()["via"] == "configured" and r.json()["tenant"] == "acme"
    problem(await env.client.get("/v1/devices", headers=bearer("nope")), 401, "unauthorized",
            "unknown token")  # fmt: skip
    r = await env.client.get("/v1/devices", headers={"authorization": "Basic x"})
    problem(r, 401, "unauthorized", "the Authorization header must be 'Bearer <token>'")


# -- the audit log ------------------------------------------------------------------------
async def test_every_login_and_logout_is_in_a_verifying_audit_log(env: Env) -> None:
    problem(await login(env, password="wrong password!"), 401, "login_refused", I.INVALID_LOGIN)
    r = await login(env)
    csrf = r.json()["csrf"]
    secret = env.client.cookies[COOKIE]
    assert (await env.client.delete("/v1/session", headers={CSRF_HEADER: csrf})).status_code == 204
    report = env.audit.verify()
    assert report.ok and report.entries == 3, report.problems
    got = [(e.action, e.actor, e.tenant, e.resource_kind, e.outcome) for e in logins(env.audit)]
    assert got == [
        ("session.login", "alice", "acme", "session", "denied"),
        ("session.login", "alice", "acme", "session", "ok"),
        ("session.logout", "alice", "acme", "session", "ok"),
    ]
    text = repr(env.audit.entries(limit=1000))
    for s in (PW, "wrong password!", secret, csrf, I.secret_id(secret)):
        assert s not in text
    assert logins(env.audit)[1].detail == {"client": "127.0.0.1"}


# -- without an identity store ------------------------------------------------------------
@pytest.fixture
async def plain(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        world.settings(str(tmp_path)), sqlite_storage, world.trust, world.identity,
        clock=lambda: T0 + 30_000,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        await register_all(c, world)
        yield c


async def test_without_identities_the_app_is_as_before(plain: httpx.AsyncClient) -> None:
    r = await plain.post("/v1/session", json={"username": "alice", "password": PW})
    assert r.status_code == 404
    assert (await plain.get("/v1/me")).status_code == 404
    assert await device_ids(plain, headers=bearer(TOKENS["acme"])) == ACME_DEVICES
    problem(await plain.get("/v1/devices", headers=bearer(I.new_api_token())), 401,
            "unauthorized", "unknown token")  # fmt: skip
    problem(await plain.get("/v1/devices"), 401, "unauthorized",
            "this endpoint needs an Authorization: Bearer token")  # fmt: skip


def test_identities_without_an_audit_log_are_refused(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> None:
    assert isinstance(sqlite_storage, SqlStorage)
    store = S.IdentityStore(sqlite_storage.engine, FAST)
    with pytest.raises(ValueError) as exc:
        create_app(world.settings(str(tmp_path)), sqlite_storage, world.trust, world.identity,
                   identities=store)  # fmt: skip
    assert str(exc.value) == (
        "create_app: identities need an audit_log, where every login is recorded"
    )

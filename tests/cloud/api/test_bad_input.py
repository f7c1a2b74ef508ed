"""Bad input against the platform API and its logins, each answered with its precise
problem: brute-forced logins, expired, revoked, forged and wrong-scheme tokens, a tampered
session cookie, missing or wrong CSRF tokens, oversized bodies, wrong media types and
malformed JSON (in-process, ASGI, on SQLite with a small simulated read model). Slow clients
are in ``test_bad_input_slow``."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloud_factory import T0, World
from fastapi import FastAPI

from tally.cloud import identity as I
from tally.cloud.api.deps import BAD_SCHEME, NOT_IDENTITY
from tally.cloud.api.routing import JSON_MAX
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog
from tally.cloud.identity_store import IdentityStore
from tally.cloud.session_api import COOKIE, CSRF_HEADER
from tally.cloud.storage.api import Storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views.model import AlertRow, Scope
from tally.cloud.views.seed import seed_views
from tally.cloud.views.store import Views

PW = "correct horse battery"
FAST = I.IdentityPolicy(scrypt_log_n=10)
BANK, SME = "bank-01", "sme-00001"
OFFICER, OPERATOR = "officer@bank-01", "op@sme-00001"
ALERT = "AL-BAD-INPUT"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Cloud:
    """The app under test and what the tests reach behind it."""

    app: FastAPI
    store: IdentityStore
    views: Views
    clock: Clock


@dataclass
class Env(Cloud):
    client: httpx.AsyncClient


def problem(r: httpx.Response, status: int, code: str, detail: str | None = None) -> None:
    """``r`` is the RFC 9457 problem ``code`` with ``status`` (and ``detail`` when given)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert body["type"] == f"urn:tally:problem:{code}" and body["status"] == status, body
    if detail is not None:
        assert body["detail"] == detail, body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def make_app(world: World, storage: Storage, tmp: Path, **settings: Any) -> Cloud:
    assert isinstance(storage, SqlStorage)
    engine = storage.engine
    clock = Clock()
    store = IdentityStore(engine, FAST, clock)
    store.create_tenant(BANK, "bank", "Simulated Bank 01")
    store.create_tenant(SME, "supplier", "Simulated SME 00001")
    store.create_user(BANK, OFFICER, PW, ["credit_officer"])
    store.create_user(SME, OPERATOR, PW, ["operator"])
    views = Views(engine)
    seed_views(views, scale=0.002)
    views.add_alert(AlertRow(
        ALERT, "sensor_offline", "warning", SME, BANK, None, None, None, "simulated alert",
        T0, (), None, None,
    ))  # fmt: skip
    app = create_app(
        world.settings(str(tmp), **settings), storage, world.trust, world.identity,
        identities=store, audit_log=AuditLog(engine, clock=clock), views=views,
    )  # fmt: skip
    return Cloud(app, store, views, clock)


@pytest.fixture
async def env(world: World, sqlite_storage: Storage, tmp_path: Path) -> AsyncIterator[Env]:
    cloud = make_app(world, sqlite_storage, tmp_path)
    transport = httpx.ASGITransport(app=cloud.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        yield Env(cloud.app, cloud.store, cloud.views, cloud.clock, c)


async def login(env: Env, username: str, password: str = PW) -> httpx.Response:
    return await env.client.post("/v1/session", json={"username": username, "password": password})


async def session(env: Env, username: str) -> tuple[dict[str, str], str]:
    """(cookie header, CSRF token) of a fresh login."""
    r = await login(env, username)
    assert r.status_code == 200, r.text
    secret = r.cookies[COOKIE]
    env.client.cookies.clear()
    return {"cookie": f"{COOKIE}={secret}"}, r.json()["csrf"]


# -- logins ----------------------------------------------------------------------------------------
async def test_brute_force_locks_the_account_after_five_failures(env: Env) -> None:
    for _ in range(FAST.lockout_failures):  # the fifth failure locks (and says no more)
        problem(await login(env, OPERATOR, "wrong guess!"), 401, "login_refused", I.INVALID_LOGIN)
    until = T0 + FAST.lockout_ms
    locked = f"account locked until {I.iso_ms(until)}"
    problem(await login(env, OPERATOR), 423, "account_locked", locked)  # even the right one
    for k in range(20):  # more guesses while locked neither succeed nor move the lock
        env.clock.now = T0 + k * 1000
        problem(await login(env, OPERATOR, f"guess {k:04d}!"), 423, "account_locked", locked)
    env.clock.now = until
    r = await login(env, OPERATOR)
    assert r.status_code == 200, r.text


async def test_unknown_users_get_the_same_refusal_and_never_a_lock(env: Env) -> None:
    known = await login(env, OPERATOR, "wrong guess!")
    for _ in range(FAST.lockout_failures + 3):
        r = await login(env, "nobody@nowhere")
        problem(r, 401, "login_refused", I.INVALID_LOGIN)
        assert r.json() == known.json() and "set-cookie" not in r.headers


# -- tokens ----------------------------------------------------------------------------------------
async def test_expired_token(env: Env) -> None:
    issued = env.store.issue_token(BANK, ["read:loans"], user=OFFICER, ttl_ms=60_000)
    assert (await env.client.get("/v1/loans", headers=bearer(issued.token))).status_code == 200
    env.clock.now = issued.info.expires
    r = await env.client.get("/v1/loans", headers=bearer(issued.token))
    problem(r, 401, "token_refused", f"API token expired at {I.iso_ms(issued.info.expires)}")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_revoked_token(env: Env) -> None:
    issued = env.store.issue_token(BANK, ["read:loans"], user=OFFICER)
    assert (await env.client.get("/v1/loans", headers=bearer(issued.token))).status_code == 200
    env.clock.now += 5000
    env.store.revoke_token(issued.info.id)
    r = await env.client.get("/v1/loans", headers=bearer(issued.token))
    problem(r, 401, "token_refused", f"API token revoked at {I.iso_ms(env.clock.now)}")


@pytest.mark.parametrize(
    ("authorization", "code", "detail"),
    [
        ("Bearer tly_" + secrets.token_urlsafe(32), "token_refused", I.TOKEN_UNKNOWN),
        ("Bearer tly_", "token_refused", I.TOKEN_UNKNOWN),
        ("Bearer " + secrets.token_urlsafe(32), "unauthorized", NOT_IDENTITY),
        ("Basic b2ZmaWNlcjpwdw==", "unauthorized", BAD_SCHEME),
        ("Bearer", "unauthorized", BAD_SCHEME),
    ],
)
async def test_forged_and_malformed_tokens(
    env: Env, authorization: str, code: str, detail: str
) -> None:
    r = await env.client.get("/v1/loans", headers={"authorization": authorization})
    problem(r, 401, code, detail)


async def test_a_token_with_one_character_changed_is_unknown(env: Env) -> None:
    token = env.store.issue_token(BANK, ["read:loans"], user=OFFICER).token
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    problem(await env.client.get("/v1/loans", headers=bearer(forged)), 401, "token_refused",
            I.TOKEN_UNKNOWN)  # fmt: skip
    assert (await env.client.get("/v1/loans", headers=bearer(token))).status_code == 200


# -- sessions and CSRF -----------------------------------------------------------------------------
async def test_a_tampered_session_cookie_is_refused(env: Env) -> None:
    cookie, _ = await session(env, OFFICER)
    value = cookie["cookie"]
    flipped = value[:-1] + ("A" if value[-1] != "A" else "B")
    for bad in (flipped, f"{COOKIE}=", f"{COOKIE}={'x' * 4000}", value + "A"):
        r = await env.client.get("/v1/loans", headers={"cookie": bad})
        if bad == f"{COOKIE}=":
            problem(r, 401, "unauthorized")  # an empty cookie is no credential at all
        else:
            problem(r, 401, "session_refused", I.SESSION_UNKNOWN)
    assert (await env.client.get("/v1/loans", headers=cookie)).status_code == 200


async def test_a_state_changing_request_needs_the_sessions_csrf_token(env: Env) -> None:
    cookie, csrf = await session(env, OPERATOR)
    path = f"/v1/alerts/{ALERT}/ack"
    problem(await env.client.post(path, headers=cookie), 403, "csrf_refused", I.CSRF_MISSING)
    wrong = {**cookie, CSRF_HEADER: secrets.token_urlsafe(32)}
    problem(await env.client.post(path, headers=wrong), 403, "csrf_refused", I.CSRF_MISMATCH)
    _, other_csrf = await session(env, OFFICER)  # another session's token does not do
    crossed = {**cookie, CSRF_HEADER: other_csrf}
    problem(await env.client.post(path, headers=crossed), 403, "csrf_refused", I.CSRF_MISMATCH)
    alert = env.views.alert(ALERT)
    assert alert is not None and alert.acked_by is None  # nothing happened
    r = await env.client.post(path, headers={**cookie, CSRF_HEADER: csrf})
    assert r.status_code == 200, r.text
    assert r.json()["acked_by"] == OPERATOR


async def test_logout_without_csrf_is_refused_and_the_session_lives_on(env: Env) -> None:
    cookie, csrf = await session(env, OFFICER)
    r = await env.client.delete("/v1/session", headers=cookie)
    problem(r, 403, "csrf_refused", I.CSRF_MISSING)
    assert (await env.client.get("/v1/loans", headers=cookie)).status_code == 200
    r = await env.client.delete("/v1/session", headers={**cookie, CSRF_HEADER: csrf})
    assert r.status_code == 204
    r = await env.client.get("/v1/loans", headers=cookie)
    problem(r, 401, "session_refused", I.SESSION_UNKNOWN)


# -- bodies ----------------------------------------------------------------------------------------
def _writer(env: Env) -> dict[str, str]:
    return bearer(env.store.issue_token(SME, ["write:loans", "read:loans"], user=OPERATOR).token)


def _application() -> dict[str, Any]:
    return {"bank": BANK, "subject_kind": "receipt", "subject": "WR0000001", "amount_fen": 100}


async def test_an_oversized_json_body_is_413(env: Env) -> None:
    headers = {**_writer(env), "content-type": "application/json"}
    body = json.dumps({**_application(), "pad": "x" * JSON_MAX}).encode()
    r = await env.client.post("/v1/applications", content=body, headers=headers)
    problem(r, 413, "payload_too_large", f"{len(body)} bytes, at most {JSON_MAX}")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(JSON_MAX // 1024 + 2):
            yield b" " * 1024

    r = await env.client.post("/v1/applications", content=chunks(), headers=headers)
    problem(r, 413, "payload_too_large", f"more than {JSON_MAX} bytes, at most {JSON_MAX}")
    r = await env.client.post(f"/v1/alerts/{ALERT}/ack", content=b"x" * (JSON_MAX + 1),
                              headers=_writer(env))  # fmt: skip
    problem(r, 413, "payload_too_large", f"{JSON_MAX + 1} bytes, at most {JSON_MAX}")


async def test_an_oversized_upload_is_413(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> None:
    app = make_app(world, sqlite_storage, tmp_path, max_upload_bytes=1024).app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        r = await c.post("/v1/batches", content=b"\xa0" * 1025,
                         headers={"content-type": "application/cbor"})  # fmt: skip
    problem(r, 413, "payload_too_large", "1025 bytes, at most 1024")


@pytest.mark.parametrize(
    ("path", "ctype", "detail"),
    [
        ("/v1/applications", "text/plain", "send application/json, not text/plain"),
        ("/v1/applications", "application/x-www-form-urlencoded",
         "send application/json, not application/x-www-form-urlencoded"),
        ("/v1/applications", None, "send application/json, not no content type"),
        ("/v1/session", "text/plain", "send application/json, not text/plain"),
        ("/v1/verify", "application/json", "send application/cbor, not application/json"),
        ("/v1/batches", "application/json", "send application/cbor, not application/json"),
    ],
)  # fmt: skip
async def test_a_wrong_media_type_is_415(
    env: Env, path: str, ctype: str | None, detail: str
) -> None:
    headers = {**_writer(env)} if path != "/v1/session" else {}
    if ctype is not None:
        headers["content-type"] = ctype
    content = json.dumps(_application()).encode()
    r = await env.client.post(path, content=content, headers=headers)
    problem(r, 415, "unsupported_media_type", detail)


NOT_OBJECT = "body: Input should be a valid dictionary or object to extract fields from"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{", "body.1: JSON decode error"),
        (b'{"bank": "bank-01",', "body.19: JSON decode error"),
        (b"\xff\xfe{}", "body.0: JSON decode error"),
        (b"[1, 2]", NOT_OBJECT),
        (b'"text"', NOT_OBJECT),
        (b"null", NOT_OBJECT),
        (b"", "body: Field required"),
    ],
)
async def test_malformed_json_is_a_400_problem(env: Env, content: bytes, detail: str) -> None:
    headers = {**_writer(env), "content-type": "application/json"}
    before = env.views.list_applications(_scope(), limit=200).items
    r = await env.client.post("/v1/applications", content=content, headers=headers)
    problem(r, 400, "bad_request", detail)
    assert env.views.list_applications(_scope(), limit=200).items == before


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"amount_fen": -5}, "body.amount_fen: Input should be greater than 0"),
        ({"amount_fen": "100"}, "body.amount_fen: Input should be a valid integer"),
        ({"amount_fen": 2**63}, f"body.amount_fen: Input should be less than {2**63}"),
        ({"subject_kind": "house"}, "body.subject_kind: Input should be 'receipt' or 'note'"),
        ({"bank": ""}, "body.bank: String should have at least 1 character"),
        ({"owner": "someone"}, "body.owner: Extra inputs are not permitted"),
    ],
)
async def test_a_wrong_field_is_a_400_naming_it(
    env: Env, change: dict[str, Any], detail: str
) -> None:
    r = await env.client.post("/v1/applications", json={**_application(), **change},
                              headers=_writer(env))  # fmt: skip
    problem(r, 400, "bad_request", detail)


def _scope() -> Scope:
    return Scope(SME)

"""Console logins and identity API tokens on the cloud's HTTP API.

Present only when the app is built with an :class:`~tally.cloud.identity_store.IdentityStore`
and an :class:`~tally.cloud.auditlog.AuditLog`; without them the read API knows only the
configured bearer tokens of :mod:`tally.cloud.auth`.

=======================================  ==========================================================
``POST /v1/session``                     a login: JSON ``{"tenant"?, "username", "password"}``;
                                         200 with ``{"csrf", "user", "tenant", "roles",
                                         "expires"}`` and the session cookie; 401 ``invalid
                                         username or password`` / ``account disabled``, 423
                                         ``account locked until <time>``
``DELETE /v1/session``                   a logout: the session cookie and its CSRF token in
                                         ``X-CSRF-Token``; 204, the cookie is cleared
``GET /v1/me``                           who the caller is (session, identity token or
                                         configured token)
=======================================  ==========================================================

The cookie ``__Host-tally_session`` holds the session secret and is ``HttpOnly; Secure;
SameSite=Strict`` with ``Path=/``; the CSRF token is only in the login's answer, for the page to
send back on state-changing requests. A login must be sent as ``application/json``, which a
form on another site cannot do without the browser asking first.

On the read endpoints a bearer token starting with ``tly_`` is an identity API token (its
scopes, expiry and revocation apply); any other bearer token is looked up among the
configured ones (:mod:`tally.cloud.auth`: a tenant-wide, read-only token whose tenant kind
comes from the identity store when it knows the tenant); without an ``Authorization`` header
the session cookie is used. Every principal — session, identity token, configured token —
reads an endpoint's resource kind when :func:`tally.cloud.authz.decide` lets it read its own
tenant's resources of that kind (a refusal is 403 with the policy's reason), and reads every
organisation's data when the policy lets it read another tenant's (the regulator); otherwise
only its own tenant's.

Every login attempt — accepted, refused, refused while locked — and every logout is appended
to the audit log: action ``session.login`` / ``session.logout``, actor the username, the
user's tenant, outcome ``ok`` or ``denied``, and a detail naming the reason, the client
address and the first 16 hex digits of the session id — never a password, secret or token.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tally.cloud import identity as I
from tally.cloud.auditlog import AuditLog
from tally.cloud.auth import ELSEWHERE as ELSEWHERE  # re-exported: callers ask authz with it
from tally.cloud.auth import (
    ConfiguredPrincipal,
    Principal,
    TokenAuth,
    read_principal,
    store_tenants,
)
from tally.cloud.errors import BadRequest, CloudError, NotFound, Unauthorized
from tally.cloud.identity_store import IdentityStore

COOKIE = "__Host-tally_session"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FIELDS = ("tenant", "username", "password")
MAX_LOGIN_BYTES = 8192

NO_CREDENTIALS = "this endpoint needs a session cookie or an Authorization: Bearer token"
NO_SESSION_COOKIE = f"this request needs the session cookie {COOKIE!r}"
COOKIE_ATTRIBUTES = "Path=/; HttpOnly; Secure; SameSite=Strict"


class AccountLockedProblem(CloudError):
    """Raised by ``POST /v1/session`` while the account is locked (423, the lock's end)."""

    code = "account_locked"
    title = "Account locked"
    status = 423


class JsonRequired(CloudError):
    """Raised when a login is not sent as ``application/json``."""

    code = "unsupported_media_type"
    title = "Unsupported media type"
    status = 415


def parse_login(body: bytes) -> tuple[str | None, str, str]:
    """``(tenant, username, password)`` of a login body; BadRequest naming the field."""
    if len(body) > MAX_LOGIN_BYTES:
        raise BadRequest(f"a login body is at most {MAX_LOGIN_BYTES} bytes, got {len(body)}")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest(
            'the login body must be JSON: {"tenant"?, "username", "password"}'
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(f"the login body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(LOGIN_FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}: a login takes tenant (optional), username and password"
        )
    for name in ("username", "password"):
        if name not in data:
            raise BadRequest(f"{name} is missing")
        if not isinstance(data[name], str):
            raise BadRequest(f"{name} must be text, got {type(data[name]).__name__}")
    tenant = data.get("tenant")
    if tenant is not None:
        if not isinstance(tenant, str):
            raise BadRequest(f"tenant must be text, got {type(tenant).__name__}")
        I.check_tenant_id(tenant)
    username = I.check_username(data["username"].lower())
    password: str = data["password"]
    if not password:
        raise BadRequest("password must not be empty")
    if len(password) > I.MAX_PASSWORD_CHARS:
        raise BadRequest(
            f"password must be at most {I.MAX_PASSWORD_CHARS} characters (got {len(password)})"
        )
    return tenant, username, password


Caller = I.Principal | ConfiguredPrincipal
"""Whoever authenticated: a session or identity token, or a configured token."""


def principal_json(who: Caller) -> dict[str, Any]:
    out = {
        "tenant": who.tenant, "tenant_kind": who.tenant_kind, "user": who.user,
        "roles": sorted(who.roles), "scopes": sorted(who.scopes), "sites": sorted(who.sites),
        "via": who.via,
    }  # fmt: skip
    if isinstance(who, ConfiguredPrincipal):
        out.update(via="configured", role=who.label)
    return out


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


class SessionApi:
    """Authentication of the read API by session, identity token or configured token, and the
    session routes (:meth:`install`)."""

    def __init__(self, store: IdentityStore, audit: AuditLog, tokens: TokenAuth) -> None:
        self.store = store
        self.audit = audit
        self.tokens = tokens
        tokens.use_tenants(store_tenants(store))

    # -- authentication (synchronous: FastAPI runs these dependencies in a worker thread) --
    def authenticate(self, request: Request, authorization: str | None) -> Caller:
        """The caller: a ``tly_`` bearer token, a configured bearer token, or the session
        cookie; Unauthorized (TokenRefused, SessionRefused) otherwise."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip().startswith(I.TOKEN_PREFIX):
                return self.store.authenticate_token(token.strip())
            return self.tokens.identify(authorization)
        secret = request.cookies.get(COOKIE)
        if secret:
            return self.store.authenticate_session(secret)
        raise Unauthorized(NO_CREDENTIALS)

    def reader(self, request: Request, authorization: str | None, kind: str) -> Principal:
        """The caller of a read endpoint on resources of ``kind``, as the read API's
        organisation filter; Forbidden with the policy's reason when it may not read them."""
        return read_principal(self.authenticate(request, authorization), kind)

    # -- audit -----------------------------------------------------------------------------
    def _tenant_of(self, username: str) -> str | None:
        try:
            return self.store.user(username).tenant
        except NotFound:
            return None

    def _record(
        self, action: str, actor: str, tenant: str | None, outcome: str, **detail: Any
    ) -> None:
        sid = detail.pop("session_id", None)
        self.audit.append(
            tenant=tenant, actor=actor, action=action, resource_kind="session",
            resource_id="" if sid is None else sid[:16], outcome=outcome, detail=detail,
        )  # fmt: skip

    def _login(self, request: Request, body: bytes) -> I.NewSession:
        tenant, username, password = parse_login(body)
        client = _client(request)
        try:
            new = self.store.login(username, password)
        except I.AccountLocked as exc:
            until = I.iso_ms(exc.until)
            self._record(
                "session.login", username, self._tenant_of(username), "denied",
                reason="account_locked", until=until, client=client,
            )  # fmt: skip
            raise AccountLockedProblem(exc.detail) from None
        except I.LoginRefused as exc:
            why = "account_disabled" if exc.detail == I.ACCOUNT_DISABLED else "invalid_login"
            self._record(
                "session.login", username, self._tenant_of(username), "denied", reason=why,
                client=client,
            )  # fmt: skip
            raise
        sid = I.secret_id(new.secret)
        try:
            if tenant is not None and new.principal.tenant != tenant:
                self.store.logout(new.secret)
                self._record(
                    "session.login", username, new.principal.tenant, "denied",
                    reason="other_tenant", tenant_asked=tenant, client=client,
                )  # fmt: skip
                raise I.LoginRefused(I.INVALID_LOGIN)
            self._record(
                "session.login", username, new.principal.tenant, "ok", session_id=sid,
                client=client,
            )  # fmt: skip
        except Exception:
            self.store.logout(new.secret)  # a login that is not recorded does not stand
            raise
        return new

    def _logout(self, request: Request, secret: str, csrf: str | None) -> None:
        who = self.store.authenticate_session(secret, csrf, unsafe=True)
        self.store.logout(secret)
        self._record(
            "session.logout", who.user or who.tenant, who.tenant, "ok",
            session_id=I.secret_id(secret), client=_client(request),
        )  # fmt: skip

    # -- routes ----------------------------------------------------------------------------
    def install(self, app: FastAPI) -> None:
        """Add ``POST``/``DELETE /v1/session`` and ``GET /v1/me`` to ``app``."""

        @app.post("/v1/session")
        async def login(request: Request) -> JSONResponse:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise JsonRequired(f"send application/json, not {ctype or 'no content type'}")
            body = await request.body()
            new = await run_in_threadpool(self._login, request, body)
            p = new.principal
            out = {
                "csrf": new.csrf, "user": p.user, "tenant": p.tenant, "roles": sorted(p.roles),
                "expires": new.expires,
            }  # fmt: skip
            max_age = max(0, (new.expires - self.store.clock()) // 1000)
            cookie = f"{COOKIE}={new.secret}; Max-Age={max_age}; {COOKIE_ATTRIBUTES}"
            headers = {"Set-Cookie": cookie, "Cache-Control": "no-store"}
            return JSONResponse(out, headers=headers)

        @app.delete("/v1/session")
        async def logout(
            request: Request,
            x_csrf_token: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
        ) -> Response:
            secret = request.cookies.get(COOKIE)
            if not secret:
                raise I.SessionRefused(NO_SESSION_COOKIE)
            await run_in_threadpool(self._logout, request, secret, x_csrf_token)
            cleared = f"{COOKIE}=; Max-Age=0; {COOKIE_ATTRIBUTES}"
            return Response(status_code=204, headers={"Set-Cookie": cleared})

        @app.get("/v1/me")
        def me(
            request: Request, authorization: Annotated[str | None, Header()] = None
        ) -> dict[str, Any]:
            return principal_json(self.authenticate(request, authorization))

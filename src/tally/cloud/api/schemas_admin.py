"""The JSON shapes of the API's governance side: users, API tokens, the audit log, logins and
verification verdicts (see :mod:`tally.cloud.api.schemas` for conventions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tally.cloud.api.schemas import In, Out

# -- users and tokens -------------------------------------------------------------------------
Role = Literal["admin", "operator", "credit_officer", "auditor", "viewer"]


class User(Out):
    """A user as administrators see it (never the password hash)."""

    tenant: str
    username: str
    roles: list[str]
    failed: int = Field(description="consecutive failed logins")
    locked_until: int | None
    created: int
    disabled: bool


class UserList(Out):
    items: list[User]


class UserIn(In):
    username: str = Field(min_length=3, max_length=100)
    password: str = Field(min_length=1, max_length=1024)
    roles: list[Role] = Field(min_length=1, max_length=5)


class UserPatch(In):
    """What to change: each field given is applied (roles, then disabled, then password,
    then unlock); at least one is needed."""

    roles: list[Role] | None = Field(default=None, min_length=1, max_length=5)
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    unlock: bool | None = Field(default=None, description="true lifts a lockout")


class Token(Out):
    id: str = Field(description="the token's id: hex SHA-256 of the token")
    tenant: str
    user: str | None
    scopes: list[str]
    created: int
    expires: int
    revoked: int | None


class TokenList(Out):
    items: list[Token]


class TokenIn(In):
    scopes: list[str] = Field(min_length=1, max_length=64, description="e.g. read:receipts")
    user: str | None = Field(
        default=None, min_length=3, max_length=100,
        description="the user the token acts as (its roles); none: a tenant-wide token",
    )  # fmt: skip
    ttl_ms: int | None = Field(default=None, ge=1, le=2**53)


class IssuedToken(Token):
    token: str | None = Field(
        description="the secret (tly_…), shown once; null when an idempotent request is "
        "replayed, since the secret is never stored"
    )


# -- audit log --------------------------------------------------------------------------------
class AuditEntry(Out):
    seq: int
    t: int
    tenant: str | None
    actor: str
    action: str
    resource_kind: str
    resource_id: str
    outcome: Literal["ok", "denied", "failed"]
    detail: dict[str, Any]
    hash: str = Field(description="hex of the entry's hash in the audit chain")


class AuditPage(Out):
    items: list[AuditEntry]
    next_cursor: str | None


# -- sessions (served by tally.cloud.session_api, documented here) ----------------------------
class LoginIn(In):
    tenant: str | None = Field(default=None, min_length=1, max_length=64)
    username: str = Field(min_length=3, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(Out):
    csrf: str = Field(description="send it back as X-CSRF-Token on POST, PATCH, DELETE")
    user: str
    tenant: str
    roles: list[str]
    expires: int


class Me(BaseModel):
    model_config = ConfigDict(extra="allow")

    tenant: str
    tenant_kind: str | None
    user: str | None
    roles: list[str]
    scopes: list[str]
    sites: list[str]
    via: str


# -- verification -----------------------------------------------------------------------------
class Step(Out):
    name: str
    ok: bool
    detail: str


class Verdict(Out):
    """What ``tally verify --json`` says about the bundle: ``valid``, the one-line answer,
    the first failed step's ``reason`` and every step run; ``facts`` holds the rest of the
    verdict (suite, item, batch, anchoring … as ``tally verify --json`` prints them)."""

    valid: bool
    kind: Literal["proof", "transaction"]
    line: str
    reason: str
    steps: list[Step]
    facts: dict[str, Any]

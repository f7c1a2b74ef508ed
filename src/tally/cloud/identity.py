"""Identity: who a request speaks for, and the rules of passwords, sessions and API tokens.

A tenant is an organisation of the consortium; its ``kind`` is one of
:data:`tally.ledger.formats.ROLES`. A user belongs to one tenant and has one or more of
:data:`USER_ROLES`. A request is authenticated either by a console session or by an API
token, and becomes a :class:`Principal` — what the authorisation policy decides on.

Passwords are hashed with scrypt (memory-hard; by default N=2**15, r=8, p=1 — 32 MiB and a
16-byte random salt) and stored as ``scrypt$<log2 N>$<r>$<p>$<b64 salt>$<b64 hash>``.
Verification recomputes the hash with the stored parameters and compares in constant time;
a stored hash whose parameters differ from the policy's is replaced at the next successful
login (:func:`needs_rehash`).

Secrets are never stored: a session cookie carries 256 random bits and an API token is
``tly_`` + 32 random bytes (URL-safe base64); the database keeps only their SHA-256 (hex).

The refusals a client sees are fixed texts, so that they can be relied on and tested:
``invalid username or password`` (also for an unknown user, after the same scrypt work on a
dummy hash), ``account locked until <time>``, ``account disabled``, ``session unknown or
ended``, ``session expired at <time> …``, ``unknown API token``, ``API token expired at
<time>``, ``API token revoked at <time>``. Times are UTC, ISO 8601 (``2025-01-01T00:15:00Z``,
with milliseconds when they are not zero). The persistent side is
:mod:`tally.cloud.identity_store`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tally.cloud.errors import BadRequest, Forbidden, Unauthorized
from tally.ledger.formats import ROLES

Clock = Callable[[], int]
"""Milliseconds since the Unix epoch."""

TENANT_KINDS: tuple[str, ...] = ROLES
USER_ROLES = ("admin", "operator", "credit_officer", "auditor", "viewer")
SCOPE_ACTIONS = ("read", "write", "admin")
TOKEN_PREFIX = "tly_"
MAX_PASSWORD_CHARS = 1024

INVALID_LOGIN = "invalid username or password"
ACCOUNT_DISABLED = "account disabled"
SESSION_UNKNOWN = "session unknown or ended"
CSRF_MISSING = "this request needs the session's CSRF token"
CSRF_MISMATCH = "CSRF token does not match the session"
TOKEN_UNKNOWN = "unknown API token"
TOKEN_MALFORMED = f"an API token starts with {TOKEN_PREFIX!r}"

_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{2,99}")
_SCOPE = re.compile(r"(read|write|admin):[a-z][a-z_]{0,39}")
_MIB = 1 << 20


def wall_clock_ms() -> int:
    """The default clock: milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


# -- errors -----------------------------------------------------------------------------
class LoginRefused(Unauthorized):
    """Raised by login when the credentials are wrong, the account is disabled or locked."""

    code = "login_refused"
    title = "Login refused"


class AccountLocked(LoginRefused):
    """Raised by login while an account is locked; ``until`` is when the lock ends (ms)."""

    code = "account_locked"

    def __init__(self, until: int) -> None:
        self.until = until
        super().__init__(f"account locked until {iso_ms(until)}")


class SessionRefused(Unauthorized):
    """Raised when a session cookie names no live session (unknown, ended or expired)."""

    code = "session_refused"
    title = "Session refused"


class CsrfRefused(Forbidden):
    """Raised when a state-changing request lacks its session's CSRF token."""

    code = "csrf_refused"
    title = "CSRF token refused"


class TokenRefused(Unauthorized):
    """Raised when an API token is malformed, unknown, expired or revoked."""

    code = "token_refused"
    title = "API token refused"


# -- policy -----------------------------------------------------------------------------
class IdentityPolicy(BaseModel):
    """The tunable numbers of identity (times in milliseconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scrypt_log_n: int = Field(default=15, ge=10, le=22)
    scrypt_r: int = Field(default=8, ge=1, le=32)
    scrypt_p: int = Field(default=1, ge=1, le=16)
    lockout_failures: int = Field(default=5, ge=1, le=100)
    lockout_ms: int = Field(default=15 * 60_000, ge=1000)
    session_idle_ms: int = Field(default=30 * 60_000, ge=1000)
    session_absolute_ms: int = Field(default=12 * 3_600_000, ge=1000)
    token_ttl_ms: int = Field(default=90 * 86_400_000, ge=1000)
    token_max_ttl_ms: int = Field(default=366 * 86_400_000, ge=1000)
    min_password_length: int = Field(default=12, ge=8, le=128)

    @model_validator(mode="after")
    def _consistent(self) -> IdentityPolicy:
        mib = 128 * self.scrypt_r * (1 << self.scrypt_log_n) // _MIB
        if mib > 1024:
            raise ValueError(
                f"scrypt_log_n={self.scrypt_log_n} with scrypt_r={self.scrypt_r} needs "
                f"{mib} MiB per hash; the limit is 1024 MiB"
            )
        if self.session_idle_ms > self.session_absolute_ms:
            raise ValueError(
                f"session_idle_ms ({self.session_idle_ms}) must not exceed "
                f"session_absolute_ms ({self.session_absolute_ms})"
            )
        if self.token_ttl_ms > self.token_max_ttl_ms:
            raise ValueError(
                f"token_ttl_ms ({self.token_ttl_ms}) must not exceed "
                f"token_max_ttl_ms ({self.token_max_ttl_ms})"
            )
        return self

    @property
    def scrypt(self) -> ScryptParams:
        return ScryptParams(self.scrypt_log_n, self.scrypt_r, self.scrypt_p)


# -- principal --------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who a request speaks for.

    ``user`` is the username (None for a tenant-wide API token, which then has no roles);
    ``scopes`` limit an API token and are empty for a session, which is limited by roles
    only; ``sites`` are the tenant's sites (a warehouse's premises).
    """

    tenant: str
    tenant_kind: str
    user: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    via: Literal["session", "token"]
    sites: frozenset[str] = frozenset()


# -- records ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Tenant:
    id: str
    kind: str
    name: str
    sites: tuple[str, ...]
    created: int


@dataclass(frozen=True)
class User:
    """A user as administrators see it (never the password hash)."""

    id: int
    tenant: str
    username: str
    roles: tuple[str, ...]
    failed: int
    locked_until: int | None
    created: int
    disabled: bool


@dataclass(frozen=True)
class NewSession:
    """A login's result: ``secret`` goes into the cookie, ``csrf`` to the page."""

    secret: str
    csrf: str
    principal: Principal
    expires: int


@dataclass(frozen=True)
class TokenInfo:
    id: str
    tenant: str
    user: str | None
    scopes: tuple[str, ...]
    created: int
    expires: int
    revoked: int | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A new API token: ``token`` is shown once and never stored."""

    token: str
    info: TokenInfo


# -- passwords --------------------------------------------------------------------------
class ScryptParams(NamedTuple):
    """scrypt cost: N = 2**log_n, block size r, parallelism p."""

    log_n: int
    r: int
    p: int


SALT_BYTES = 16
HASH_BYTES = 32
_FORMAT = "'scrypt$<log2 N>$<r>$<p>$<b64 salt>$<b64 hash>'"


def _scrypt(password: str, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
    n = 1 << params.log_n
    data = unicodedata.normalize("NFC", password).encode()
    maxmem = 128 * params.r * (n + params.p + 2) + _MIB
    return hashlib.scrypt(data, salt=salt, n=n, r=params.r, p=params.p, dklen=dklen, maxmem=maxmem)


def hash_password(password: str, params: ScryptParams, salt: bytes | None = None) -> str:
    """The stored form of ``password`` (a fresh random salt unless one is given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = _scrypt(password, salt, params, HASH_BYTES)
    b64 = base64.b64encode
    return (
        f"scrypt${params.log_n}${params.r}${params.p}${b64(salt).decode()}${b64(digest).decode()}"
    )


def _parse(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError(f"password hash: expected {_FORMAT}, got {len(parts)} '$'-fields")
    try:
        params = ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"password hash: expected {_FORMAT}: {exc}") from None
    if not (1 <= params.log_n <= 30 and params.r >= 1 and params.p >= 1 and salt and digest):
        raise ValueError(f"password hash: parameters out of range: {params}")
    return params, salt, digest


def params_of(encoded: str) -> ScryptParams:
    """The parameters a stored hash was made with (ValueError when it is malformed)."""
    return _parse(encoded)[0]


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the stored hash; compared in constant time."""
    params, salt, digest = _parse(encoded)
    return hmac.compare_digest(_scrypt(password, salt, params, len(digest)), digest)


def needs_rehash(encoded: str, params: ScryptParams) -> bool:
    """Whether a stored hash was made with other parameters than ``params``."""
    old, salt, digest = _parse(encoded)
    return old != params or len(salt) != SALT_BYTES or len(digest) != HASH_BYTES


# -- secrets ----------------------------------------------------------------------------
def secret_id(secret: str) -> str:
    """The stored id of a session secret or API token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_session_secret() -> str:
    """256 random bits, URL-safe: the session cookie's value."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """``tly_`` + 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# -- validation (each raises BadRequest naming the field, the value and the rule) --------
def check_tenant_id(tenant: str) -> str:
    if not _TENANT_ID.fullmatch(tenant):
        raise BadRequest(
            f"tenant id {tenant!r} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return tenant


def check_tenant_kind(kind: str) -> str:
    if kind not in TENANT_KINDS:
        raise BadRequest(f"tenant kind {kind!r} is not one of {', '.join(TENANT_KINDS)}")
    return kind


def check_name(name: str) -> str:
    if not name.strip() or len(name) > 200 or name != name.strip():
        raise BadRequest(
            f"tenant name {name!r} must be 1 to 200 characters without surrounding spaces"
        )
    return name


def check_sites(sites: Iterable[str]) -> list[str]:
    out = sorted(set(sites))
    for site in out:
        if not site.strip() or len(site) > 200 or site != site.strip():
            raise BadRequest(
                f"site {site!r} must be 1 to 200 characters without surrounding spaces"
            )
    return out


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise BadRequest(
            f"username {username!r} must be 3 to 100 characters of a-z, 0-9, '.', '_', '@', "
            "'-', starting with a letter or digit"
        )
    return username


def check_password(password: str, username: str, policy: IdentityPolicy) -> str:
    n = len(password)
    if n < policy.min_password_length:
        raise BadRequest(
            f"password must be at least {policy.min_password_length} characters (got {n})"
        )
    if n > MAX_PASSWORD_CHARS:
        raise BadRequest(f"password must be at most {MAX_PASSWORD_CHARS} characters (got {n})")
    if password.lower() == username.lower():
        raise BadRequest("password must not be the username")
    return password


def check_roles(roles: Iterable[str]) -> list[str]:
    out = sorted(set(roles))
    if not out:
        raise BadRequest(f"a user needs at least one role ({', '.join(USER_ROLES)})")
    for role in out:
        if role not in USER_ROLES:
            raise BadRequest(f"role {role!r} is not one of {', '.join(USER_ROLES)}")
    return out


def check_scopes(scopes: Iterable[str]) -> list[str]:
    out = sorted(set(scopes))
    if not out:
        raise BadRequest("an API token needs at least one scope, e.g. 'read:telemetry'")
    for scope in out:
        if not _SCOPE.fullmatch(scope):
            raise BadRequest(
                f"scope {scope!r} must be '<read|write|admin>:<resource>' with a lower-case "
                "resource of at most 40 characters, e.g. 'read:telemetry'"
            )
    return out


def check_ttl(ttl_ms: int, policy: IdentityPolicy) -> int:
    if not 1 <= ttl_ms <= policy.token_max_ttl_ms:
        raise BadRequest(
            f"token lifetime {ttl_ms} ms must be between 1 and {policy.token_max_ttl_ms} ms"
        )
    return ttl_ms


# -- times in messages ------------------------------------------------------------------
def iso_ms(ms: int) -> str:
    """UTC ISO 8601 of a time in ms: ``2025-01-01T00:15:00Z`` (``.250Z`` when not whole)."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def span(ms: int) -> str:
    """A duration for people: ``12 h``, ``30 min``, ``90 s`` or ``1500 ms``."""
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"

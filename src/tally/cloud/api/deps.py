"""Who calls the API, and what the policy lets them see and do.

Callers: an identity API token (``Authorization: Bearer tly_…``) or a console session (the
cookie ``__Host-tally_session``; on POST, PATCH and DELETE also its CSRF token in
``X-CSRF-Token``). Configured read tokens of :mod:`tally.cloud.auth` serve the device API
only: here they are refused (401).

Every decision goes through :func:`tally.cloud.authz.decide` on the row's resource
(:meth:`Views.resource <tally.cloud.views.store.Views.resource>`):

- a single row the caller may not read answers 404, exactly like a missing one, unless the
  caller's tenant is involved in it (owner, bank, party, or the row is at one of its sites):
  then 403 with the policy's reason (a viewer asking for sensitive fields, a token without
  the scope);
- an action the caller may not do to a row it may read answers 403 with the policy's reason;
- a list is queried with a :class:`~tally.cloud.views.model.Scope` (every tenant's rows when
  the policy lets the caller read another tenant's, its sites as the principal's) and every
  row is decided again before it is shown (defence in depth); a caller that may not read
  even its own rows of the kind gets 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Request

from tally.cloud import authz
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import Forbidden, NotFound, Unauthorized
from tally.cloud.identity import TOKEN_PREFIX, Principal, secret_id
from tally.cloud.session_api import COOKIE, CSRF_HEADER, ELSEWHERE, NO_CREDENTIALS
from tally.cloud.views.access import CONSORTIUM, resource_of
from tally.cloud.views.model import Scope

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

UNSAFE = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PLATFORM = "platform"
"""The owner of platform-wide aggregates (no tenant is it)."""
BAD_SCHEME = f"the Authorization header must be 'Bearer {TOKEN_PREFIX}…'"
NOT_IDENTITY = (
    f"the platform API takes a session or an identity API token ({TOKEN_PREFIX}…); "
    "configured read tokens serve the device API only"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its principal, the actor named in the audit log (the
    username, or ``token:<first 16 hex digits of the token id>`` for a tenant-wide token)
    and the scope its idempotency keys live in (the session's user or the token)."""

    principal: Principal
    actor: str
    key_scope: str

    @property
    def tenant(self) -> str:
        return self.principal.tenant


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


def authenticate(request: Request, csrf: str | None) -> Caller:
    """The caller of ``request``; Unauthorized, or CsrfRefused for a session's unsafe request
    without its CSRF token."""
    store = context(request).identities
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(BAD_SCHEME)
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized(NOT_IDENTITY)
        p = store.authenticate_token(token)
        tid = secret_id(token)
        return Caller(p, p.user or f"token:{tid[:16]}", f"{p.tenant}/token:{tid}")
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise Unauthorized(NO_CREDENTIALS)
    p = store.authenticate_session(secret, csrf, unsafe=request.method in UNSAFE)
    return Caller(p, p.user or p.tenant, f"{p.tenant}/user:{p.user}")


def read_caller(request: Request) -> Caller:
    return authenticate(request, None)


def write_caller(
    request: Request,
    x_csrf_token: Annotated[
        str | None,
        Header(alias=CSRF_HEADER, max_length=200,
               description="the session's CSRF token (sessions only; tokens need none)"),
    ] = None,
) -> Caller:  # fmt: skip
    return authenticate(request, x_csrf_token)


Reader = Annotated[Caller, Depends(read_caller)]
Writer = Annotated[Caller, Depends(write_caller)]


# -- decisions ----------------------------------------------------------------------------------
def involved(p: Principal, ref: ResourceRef) -> bool:
    """Whether the caller's tenant has a part in the resource (it may learn it exists)."""
    return (
        ref.owner == p.tenant
        or ref.bank == p.tenant
        or p.tenant in ref.parties
        or (ref.site is not None and ref.site in p.sites)
    )


def see(p: Principal, ref: ResourceRef, missing: str) -> None:
    """Raise NotFound(``missing``) or Forbidden unless ``p`` may read ``ref``."""
    d = authz.decide(p, "read", ref)
    if d.allowed:
        return
    if involved(p, ref):
        raise Forbidden(d.reason)
    raise NotFound(missing)


def allow(p: Principal, action: str, ref: ResourceRef, missing: str) -> None:
    """:func:`see`, then Forbidden with the policy's reason unless ``p`` may ``action`` it."""
    see(p, ref, missing)
    if action != "read":
        d = authz.decide(p, action, ref)
        if not d.allowed:
            raise Forbidden(d.reason)


def require(p: Principal, action: str, ref: ResourceRef) -> None:
    """Forbidden with the policy's reason unless ``p`` may ``action`` ``ref``."""
    d = authz.decide(p, action, ref)
    if not d.allowed:
        raise Forbidden(d.reason)


def chain_gate(p: Principal) -> None:
    """The consortium's common record (blocks): members and the regulator read it."""
    require(p, "read", ResourceRef("chain", CONSORTIUM))


def scope_of(p: Principal, kind: str) -> Scope:
    """The Scope of a list of ``kind`` (an authz resource kind); Forbidden when the caller
    may read neither its own nor anyone else's."""
    everything = authz.decide(p, "read", ResourceRef(kind, ELSEWHERE)).allowed
    if not everything:
        require(p, "read", ResourceRef(kind, p.tenant))
    return Scope(p.tenant, everything, frozenset(p.sites))


def visible(ctx: ApiContext, p: Principal, kind: str, rows: Iterable[Any]) -> list[Any]:
    """The rows of a list that ``p`` may read, each decided on its own resource (facts the
    row does not carry — a note's earlier holders, a document's bank — are looked up only
    for rows the row alone does not let through)."""
    out = []
    for row in rows:
        if authz.decide(p, "read", resource_of(kind, row)).allowed or (
            kind in ("note", "document")
            and authz.decide(p, "read", ctx.views.resource(kind, row)).allowed
        ):
            out.append(row)
    return out


# -- audit --------------------------------------------------------------------------------------
def clean(text: str, most: int = 200) -> str:
    """Text safe for an audit field: no control characters, at most ``most`` characters."""
    out = _CONTROL.sub("?", text)[:most]
    return out if not out.startswith(("tly_", "scrypt$")) else "(redacted)"


def record(
    ctx: ApiContext, caller: Caller, action: str, kind: str, rid: str, outcome: str, /,
    **detail: Any,
) -> None:  # fmt: skip
    """Append an entry for ``caller`` (never a secret: text is cleaned)."""
    safe = {k: clean(v, 300) if isinstance(v, str) else v for k, v in detail.items()}
    if caller.principal.via == "token":
        safe.setdefault("via", "token")
    ctx.audit.append(
        tenant=caller.tenant, actor=clean(caller.actor), action=action, resource_kind=kind,
        resource_id=clean(rid), outcome=outcome, detail=safe,
    )  # fmt: skip


def outcome_of(status: int) -> str:
    """``denied`` for 401/403/404 (the caller may not), ``failed`` for other errors."""
    return "denied" if status in (401, 403, 404) else ("ok" if status < 400 else "failed")


def one(ctx: ApiContext, p: Principal, kind: str, row: Any, missing: str) -> Any:
    """``row`` if ``p`` may read it; NotFound(``missing``) when it is None or hidden."""
    if row is None:
        raise NotFound(missing)
    see(p, ctx.views.resource(kind, row), missing)
    return row

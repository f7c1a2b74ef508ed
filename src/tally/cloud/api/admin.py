"""Administration of the caller's own tenant: users and API tokens.

=====================================  =======================================================
``GET /v1/admin/users``                its users (auditors and admins)
``POST /v1/admin/users``               a new user ``{"username", "password", "roles"}`` (201)
``PATCH /v1/admin/users/{username}``   ``{"roles"?, "disabled"?, "password"?, "unlock"?}``
``GET /v1/admin/tokens``               its API tokens, revoked and expired ones included
``POST /v1/admin/tokens``              a new token ``{"scopes", "user"?, "ttl_ms"?}`` (201);
                                       the secret is in the answer once
``DELETE /v1/admin/tokens/{id}``       revoke a token
=====================================  =======================================================

Writes are for the tenant's admins (the policy's ``admin`` on ``user``; a token needs
``admin:users``). Users and tokens of another tenant answer 404. An admin cannot take its own
admin role away or disable itself (409): another admin does. Scopes must name a resource the
policy knows (``read:receipts``, ``write:loans``, ``admin:users`` …). Every write is audited
(``user.create``, ``user.update``, ``token.issue``, ``token.revoke``) — never a password or
a token, only the token's id.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from tally.cloud import authz
from tally.cloud.api.deps import Reader, require
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Id
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas_admin import (
    IssuedToken,
    Token,
    TokenIn,
    TokenList,
    User,
    UserIn,
    UserList,
    UserPatch,
)
from tally.cloud.api.writes import Done, Write, run
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import BadRequest, Conflict, NotFound
from tally.cloud.identity import TokenInfo
from tally.cloud.identity import User as UserRecord

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

WRITES = problems(400, 401, 403, 404, 409, 413, 415, 422)
NOUNS = frozenset(authz.SCOPE_NOUNS.values())


def _user(u: UserRecord) -> User:
    d = dataclasses.asdict(u)
    d.pop("id")
    return User.model_validate(d)


def _token(t: TokenInfo) -> dict[str, Any]:
    return dataclasses.asdict(t)


def check_scopes(scopes: list[str]) -> None:
    for s in scopes:
        action, _, noun = s.partition(":")
        if action not in authz.ACTIONS or noun not in NOUNS:
            raise BadRequest(
                f"scope {s!r} must be '<read|write|admin>:<noun>' with a noun of "
                f"{', '.join(sorted(NOUNS))}"
            )


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["admin"])
    store = ctx.identities

    def mine_user(tenant: str, username: str) -> UserRecord:
        try:
            u = store.user(username)
        except NotFound:
            u = None
        if u is None or u.tenant != tenant:
            raise NotFound(f"no user {username!r}")
        return u

    @r.get("/v1/admin/users", response_model=UserList, responses=problems(401, 403))
    def list_users(who: Reader) -> Any:
        """The users of the caller's tenant."""
        require(who.principal, "read", ResourceRef("user", who.tenant))
        return {"items": [_user(u) for u in store.list_users(who.tenant)]}

    @r.post("/v1/admin/users", status_code=201, response_model=User, responses=WRITES)
    def create_user(request: Request, w: Write, body: UserIn) -> Response:
        """Add a user to the caller's tenant."""

        def work() -> Done:
            require(w.caller.principal, "admin", ResourceRef("user", w.caller.tenant))
            u = store.create_user(w.caller.tenant, body.username, body.password, body.roles)
            return Done(_user(u), 201, u.username, {"roles": list(u.roles)})

        return run(request, w, "user.create", "user", body.username, work)

    @r.patch("/v1/admin/users/{username}", response_model=User, responses=WRITES)
    def update_user(request: Request, w: Write, username: Id, body: UserPatch) -> Response:
        """Change a user's roles, disable or enable it, set its password, lift a lockout."""

        def work() -> Done:
            p = w.caller.principal
            require(p, "admin", ResourceRef("user", p.tenant))
            u = mine_user(p.tenant, username)
            changes = body.model_dump(exclude_none=True)
            if not changes:
                raise BadRequest("give at least one of roles, disabled, password, unlock")
            itself = u.username == p.user
            if itself and (body.disabled or (body.roles is not None and "admin" not in body.roles)):
                raise Conflict("an admin cannot disable itself or drop its own admin role")
            if body.roles is not None:
                u = store.set_roles(username, body.roles)
            if body.disabled is not None:
                u = store.disable_user(username) if body.disabled else store.enable_user(username)
            if body.password is not None:
                u = store.reset_password(username, body.password)
            if body.unlock:
                u = store.unlock(username)
            detail = {k: v for k, v in changes.items() if k != "password"}
            detail["changed"] = sorted(changes)
            return Done(_user(u), 200, username, detail)

        return run(request, w, "user.update", "user", username, work)

    @r.get("/v1/admin/tokens", response_model=TokenList, responses=problems(401, 403))
    def list_tokens(who: Reader) -> Any:
        """The API tokens of the caller's tenant, oldest first."""
        require(who.principal, "read", ResourceRef("user", who.tenant))
        return {"items": [_token(t) for t in store.list_tokens(who.tenant)]}

    @r.post("/v1/admin/tokens", status_code=201, response_model=IssuedToken, responses=WRITES)
    def issue_token(request: Request, w: Write, body: TokenIn) -> Response:
        """Issue an API token of the caller's tenant (for one of its users, or tenant-wide);
        the secret is shown once."""

        def work() -> Done:
            p = w.caller.principal
            require(p, "admin", ResourceRef("user", p.tenant))
            check_scopes(body.scopes)
            if body.user is not None:
                mine_user(p.tenant, body.user)
            new = store.issue_token(p.tenant, body.scopes, user=body.user, ttl_ms=body.ttl_ms)
            info = _token(new.info)
            detail = {"token_id": new.info.id[:16], "scopes": list(new.info.scopes),
                      "user": new.info.user}  # fmt: skip
            shown = IssuedToken.model_validate({**info, "token": new.token})
            kept = IssuedToken.model_validate({**info, "token": None})
            return Done(shown, 201, new.info.id[:16], detail, replay=kept)

        return run(request, w, "token.issue", "token", "", work)

    @r.delete("/v1/admin/tokens/{id}", response_model=Token, responses=WRITES)
    def revoke_token(request: Request, w: Write, id: Id) -> Response:
        """Revoke one of the tenant's API tokens (revoking twice keeps the first time)."""

        def work() -> Done:
            p = w.caller.principal
            require(p, "admin", ResourceRef("user", p.tenant))
            try:
                t = store.token(id)
            except NotFound:
                t = None
            if t is None or t.tenant != p.tenant:
                raise NotFound(f"no API token with id {id!r}")
            done = store.revoke_token(id)
            return Done(Token.model_validate(_token(done)), 200, id[:16])

        return run(request, w, "token.revoke", "token", id[:16], work)

    return r

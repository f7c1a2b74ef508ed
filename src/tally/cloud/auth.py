"""Bearer tokens configured in ``[cloud] api_tokens``, decided by the authorisation policy.

Tokens are configured as SHA-256 digests (:class:`~tally.cloud.config.ApiToken`); a presented
token is hashed and compared in constant time with each digest. A configured token is a
*tenant-wide API token* of its organisation (:class:`ConfiguredPrincipal`): no user, so the
policy gives it the roles of a tenant-wide token, and only its read scopes (by default those of
the telemetry read API). :mod:`tally.cloud.authz` decides what it reads, exactly as for an
identity token: its own organisation's data, and every organisation's only when the policy lets
it read another tenant's (the regulator). No role or flag of the configuration widens that.

The tenant's kind comes from the identity store when it knows the tenant (given by
:meth:`TokenAuth.use_tenants`), else from the token's ``kind`` (``role = "regulator"`` counts as
``kind = "regulator"``), else it is ``supplier``, the kind that reads its own data only.
:func:`check_tokens` refuses, at start, a ``kind`` that contradicts the identity store.

:func:`read_principal` turns any principal (session, identity token, configured token) into the
read API's :class:`Principal`: the organisation filter of the telemetry endpoints.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tally.cloud import authz
from tally.cloud.config import ApiToken, token_digest
from tally.cloud.errors import Forbidden, NotFound, Unauthorized
from tally.cloud.identity_store import IdentityStore

FALLBACK_KIND = "supplier"
"""The kind of a configured token's tenant that neither the identity store nor the token names."""
ELSEWHERE = "(another tenant)"
"""An owner no tenant id can be: asking about it tells whether a principal reads everyone's."""

TenantLookup = Callable[[str], tuple[str, frozenset[str]] | None]
"""A tenant's (kind, sites) in the identity store, or None when it has no such tenant."""


@dataclass(frozen=True)
class ConfiguredPrincipal:
    """A configured token as the authorisation policy sees it (fits ``authz.PrincipalLike``):
    a tenant-wide API token (``via`` token, no user, no roles of its own) with read scopes.
    ``label`` is the configured ``role``, shown by ``GET /v1/me`` and nothing else."""

    tenant: str
    tenant_kind: str
    scopes: frozenset[str]
    sites: frozenset[str] = frozenset()
    label: str = "member"
    user: str | None = None
    roles: frozenset[str] = frozenset()
    via: str = "token"


@dataclass(frozen=True)
class Principal:
    """Who reads the telemetry API: an organisation, a role label and whether the policy
    lets it read every organisation's data."""

    org: str
    role: str
    reads_all: bool

    @property
    def org_filter(self) -> str | None:
        """The organisation to restrict queries to, or None for every organisation."""
        return None if self.reads_all else self.org

    def may_read(self, owner_org: str) -> bool:
        return self.reads_all or owner_org == self.org


def read_principal(who: authz.PrincipalLike, kind: str) -> Principal:
    """The read API's principal for ``who`` reading resources of ``kind``; Forbidden with the
    policy's reason when it may not read even its own tenant's."""
    own = authz.decide(who, "read", authz.ResourceRef(kind, who.tenant))
    if not own.allowed:
        raise Forbidden(own.reason)
    everyone = authz.decide(who, "read", authz.ResourceRef(kind, ELSEWHERE)).allowed
    label = who.label if isinstance(who, ConfiguredPrincipal) else None
    return Principal(who.tenant, label or ",".join(sorted(who.roles)) or "token", everyone)


def store_tenants(store: IdentityStore) -> TenantLookup:
    """The identity store's tenants as a :data:`TenantLookup`."""

    def lookup(tenant: str) -> tuple[str, frozenset[str]] | None:
        try:
            t = store.tenant(tenant)
        except NotFound:
            return None
        return t.kind, frozenset(t.sites)

    return lookup


def check_tokens(tokens: Sequence[ApiToken], tenants: TenantLookup) -> None:
    """Raise ValueError naming the token when its configured kind contradicts the kind the
    identity store holds for its tenant."""
    for i, t in enumerate(tokens):
        hint, known = t.kind_hint, tenants(t.org)
        if hint is not None and known is not None and known[0] != hint:
            raise ValueError(
                f"cloud.api_tokens[{i}]: kind {hint!r}, but tenant {t.org!r} of the identity "
                f"store is a {known[0]!r}; correct the kind or remove it"
            )


class TokenAuth:
    """Resolves an ``Authorization`` header to a configured token's principal."""

    def __init__(self, tokens: Sequence[ApiToken], tenants: TenantLookup | None = None) -> None:
        self.tokens = list(tokens)
        self.tenants = tenants

    def use_tenants(self, tenants: TenantLookup) -> None:
        """Take tenants' kinds and sites from the identity store from now on."""
        self.tenants = tenants

    def match(self, authorization: str | None) -> ApiToken:
        """The configured token of the header; Unauthorized when the header is missing,
        malformed or names no token."""
        if not authorization:
            raise Unauthorized("this endpoint needs an Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        digest = token_digest(token.strip()).encode()
        found: ApiToken | None = None
        for t in self.tokens:  # no early exit: the time taken does not tell which token matched
            if hmac.compare_digest(digest, t.sha256.encode()):
                found = t
        if found is None:
            raise Unauthorized("unknown token")
        return found

    def identify(self, authorization: str | None) -> ConfiguredPrincipal:
        """The header's token as a principal of the authorisation policy."""
        t = self.match(authorization)
        known = None if self.tenants is None else self.tenants(t.org)
        kind, sites = known if known is not None else (t.kind_hint or FALLBACK_KIND, frozenset())
        return ConfiguredPrincipal(t.org, kind, frozenset(t.scopes), sites, t.role)

    def principal(self, authorization: str | None, kind: str = "telemetry") -> Principal:
        """The caller reading resources of ``kind``: Unauthorized, or Forbidden with the
        policy's reason."""
        return read_principal(self.identify(authorization), kind)

"""Bearer tokens of the read API: a token maps to (organisation, role).

Tokens are configured as SHA-256 digests (:class:`~tally.cloud.config.ApiToken`); a presented
token is hashed and compared in constant time with each digest. An organisation reads the data
of its own devices and edges; the roles ``regulator`` and ``auditor`` read everything.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from tally.cloud.config import ApiToken, token_digest
from tally.cloud.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    """Who is asking: an organisation and a role."""

    org: str
    role: str
    reads_all: bool

    @property
    def org_filter(self) -> str | None:
        """The organisation to restrict queries to, or None for every organisation."""
        return None if self.reads_all else self.org

    def may_read(self, owner_org: str) -> bool:
        return self.reads_all or owner_org == self.org


class TokenAuth:
    """Resolves an ``Authorization`` header to a :class:`Principal`."""

    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self.tokens = list(tokens)

    def principal(self, authorization: str | None) -> Principal:
        """Raises Unauthorized when the header is missing, malformed or names no token."""
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
        return Principal(found.org, found.role, found.reads_all)

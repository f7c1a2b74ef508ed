"""``GET /v1/orgs`` and ``GET /v1/orgs/{id}``: organisation profiles (resource kind
``party``).

An organisation reads its own profile, its bank reads its customers', the regulator every
one. ``?include=sensitive`` adds the decrypted sensitive fields (identity numbers, accounts,
statements): a sensitive read that viewers never make, recorded in the audit log
(``org.read_sensitive``, also when refused).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query

from tally.cloud.api.deps import Reader, record, scope_of, see
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Org, OrgPage
from tally.cloud.errors import CloudError, NotFound
from tally.cloud.fieldcrypt import FieldCryptError

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


class SensitiveUnavailable(CloudError):
    """Raised when sensitive fields are asked for and this cloud cannot open them."""

    code = "sensitive_unavailable"
    title = "Sensitive fields unavailable"
    status = 503


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["orgs"])

    @r.get("/v1/orgs", response_model=OrgPage, responses=problems(400, 401, 403))
    def list_orgs(
        who: Reader, kind: Text = None, core: Text = None, limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The organisations whose profile the caller may read, by id."""
        p = who.principal
        got = ctx.views.list_orgs(scope_of(p, "party"), kind=kind, core=core, limit=limit,
                                  cursor=cursor)  # fmt: skip
        return page(ctx, p, "org", got)

    @r.get("/v1/orgs/{id}", response_model=Org, responses=problems(400, 401, 403, 404, 503))
    def get_org(
        who: Reader, id: Id,
        include: Annotated[Literal["sensitive"] | None, Query(
            description="'sensitive': add the decrypted sensitive fields (audited)")] = None,
    ) -> Any:  # fmt: skip
        """One organisation's profile."""
        p = who.principal
        row = ctx.views.org(id)
        missing = f"no organisation {id!r}"
        sensitive = include == "sensitive"
        try:
            if row is None:
                raise NotFound(missing)
            see(p, ctx.views.resource("org", row, sensitive=sensitive), missing)
        except CloudError as exc:
            if sensitive:
                record(ctx, who, "org.read_sensitive", "party", id, "denied", reason=exc.detail)
            raise
        out = dataclasses.asdict(row)
        if sensitive:
            try:
                fields = ctx.views.org_sensitive(id)
            except FieldCryptError as exc:
                record(ctx, who, "org.read_sensitive", "party", id, "failed", code=exc.code)
                raise SensitiveUnavailable(
                    f"the sensitive fields of {id!r} cannot be opened here: {exc.detail}"
                ) from None
            record(ctx, who, "org.read_sensitive", "party", id, "ok",
                   fields=[f[:64] for f in sorted(fields or {})][:16])  # fmt: skip
            out["sensitive"] = fields or {}
        return out

    return r

"""``GET /v1/audit``: the audit log of the caller's tenant, newest first.

Auditors and admins read their own tenant's entries; the regulator's auditors read any
tenant's with ``?tenant=``. Reading the log is itself recorded (``audit.read``, also when
refused). Each entry is as :mod:`tally.cloud.auditlog` keeps it, its hash in hex; pages
follow ``seq`` downwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter

from tally.cloud.api.deps import Reader, record, see
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Limit, Text
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas_admin import AuditPage
from tally.cloud.auditlog import entries_table
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import CloudError
from tally.cloud.views import cursor as C
from tally.crypto import cbor

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

LIST = "audit"


def entry_json(row: Any) -> dict[str, Any]:
    return {
        "seq": int(row["seq"]), "t": int(row["t"]), "tenant": row["tenant"],
        "actor": row["actor"], "action": row["action"], "resource_kind": row["resource_kind"],
        "resource_id": row["resource_id"], "outcome": row["outcome"],
        "detail": cbor.decode(bytes(row["detail"]), "audit entry detail"),
        "hash": bytes(row["hash"]).hex(),
    }  # fmt: skip


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["audit"])

    @r.get("/v1/audit", response_model=AuditPage, responses=problems(400, 401, 403, 404))
    def read_audit(
        who: Reader, tenant: Text = None, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        """Audit entries of the caller's tenant (or ``tenant``), newest first."""
        org = tenant or who.tenant
        try:
            see(who.principal, ResourceRef("audit", org), f"no audit log of {org!r}")
            before = None if cursor is None else C.decode(LIST, cursor)[0]
        except CloudError as exc:
            record(ctx, who, "audit.read", "audit", org, "denied", reason=exc.detail)
            raise
        e = entries_table
        q = sa.select(e).where(e.c.tenant == org).order_by(e.c.seq.desc()).limit(limit + 1)
        if before is not None:
            q = q.where(e.c.seq < before)
        with ctx.audit.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        items = [entry_json(x) for x in rows[:limit]]
        nxt = C.encode(LIST, items[-1]["seq"], "") if len(rows) > limit else None
        record(ctx, who, "audit.read", "audit", org, "ok", count=len(items))
        return {"items": items, "next_cursor": nxt}

    return r

"""``GET /v1/documents`` and ``GET /v1/documents/{hash}``: trade documents (contracts,
invoices, waybills …) known by their salted hash.

A document is its issuer's; the counterparty and the bank of its trade read it too. Reading
documents is a sensitive read: every answer, and every refusal of a single document, is
recorded in the audit log (``document.read``, ``document.list``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import Reader, one, record, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Document, DocumentPage
from tally.cloud.errors import CloudError

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["documents"])

    @r.get("/v1/documents", response_model=DocumentPage, responses=problems(400, 401, 403))
    def list_documents(
        who: Reader, kind: Text = None, trade: Text = None, limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The documents the caller may read, newest first (audited)."""
        p = who.principal
        try:
            scope = scope_of(p, "document")
        except CloudError as exc:
            record(ctx, who, "document.list", "document", "", "denied", reason=exc.detail)
            raise
        got = ctx.views.list_documents(scope, kind=kind, trade=trade, limit=limit, cursor=cursor)
        out = page(ctx, p, "document", got)
        shown = [d.hash[:64] for d in out["items"]][:16]
        record(ctx, who, "document.list", "document", "", "ok", count=len(out["items"]),
               shown=shown)  # fmt: skip
        return out

    @r.get("/v1/documents/{hash}", response_model=Document, responses=problems(400, 401, 403, 404))
    def get_document(who: Reader, hash: Id) -> Any:
        """One document by its salted hash (hex; audited)."""
        try:
            row = one(ctx, who.principal, "document", ctx.views.document(hash),
                      f"no document {hash!r}")  # fmt: skip
        except CloudError as exc:
            record(ctx, who, "document.read", "document", hash, "denied", reason=exc.detail)
            raise
        record(ctx, who, "document.read", "document", hash, "ok")
        return row

    return r

"""``GET /v1/receipts`` and ``GET /v1/receipts/{no}``: warehouse receipts.

A receipt is its holder's; its custodian (the warehouse), its bank (the pledgee) and the
warehouse whose site holds it read it too (:mod:`tally.cloud.authz`). Newest issued first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import Reader, one, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Receipt, ReceiptPage

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["receipts"])

    @r.get("/v1/receipts", response_model=ReceiptPage, responses=problems(400, 401, 403))
    def list_receipts(
        who: Reader, status: Text = None, holder: Text = None, bank: Text = None,
        site: Text = None, commodity: Text = None, limit: Limit = 50, cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The receipts the caller may read, newest issued first."""
        p = who.principal
        got = ctx.views.list_receipts(
            scope_of(p, "receipt"), status=status, holder=holder, bank=bank, site=site,
            commodity=commodity, limit=limit, cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "receipt", got)

    @r.get("/v1/receipts/{no}", response_model=Receipt, responses=problems(400, 401, 403, 404))
    def get_receipt(who: Reader, no: Id) -> Any:
        """One receipt by its number."""
        return one(ctx, who.principal, "receipt", ctx.views.receipt(no), f"no receipt {no!r}")

    return r

"""``GET /v1/trades`` and ``GET /v1/trades/{id}``: trades checked on the four flows.

A trade is its seller's; the buyer and the bank read it too. ``reasons`` say why a trade is
``mismatch`` or ``flagged``. The most recently seen first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import Reader, one, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Trade, TradePage

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["trades"])

    @r.get("/v1/trades", response_model=TradePage, responses=problems(400, 401, 403))
    def list_trades(
        who: Reader, status: Text = None, seller: Text = None, buyer: Text = None,
        limit: Limit = 50, cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The trades the caller may read, the most recently seen first."""
        p = who.principal
        got = ctx.views.list_trades(
            scope_of(p, "trade"), status=status, seller=seller, buyer=buyer, limit=limit,
            cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "trade", got)

    @r.get("/v1/trades/{id}", response_model=Trade, responses=problems(400, 401, 403, 404))
    def get_trade(who: Reader, id: Id) -> Any:
        """One trade by its id."""
        return one(ctx, who.principal, "trade", ctx.views.trade(id), f"no trade {id!r}")

    return r

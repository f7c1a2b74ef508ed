"""``GET /v1/loans`` and ``GET /v1/loans/{id}``: loans, read by the borrower and its bank.

``coverage`` is the collateral's value over the outstanding amount, when known. Newest
application first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import Reader, one, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Loan, LoanPage

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["loans"])

    @r.get("/v1/loans", response_model=LoanPage, responses=problems(400, 401, 403))
    def list_loans(
        who: Reader, status: Text = None, borrower: Text = None, bank: Text = None,
        limit: Limit = 50, cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The loans the caller may read, newest application first."""
        p = who.principal
        got = ctx.views.list_loans(
            scope_of(p, "loan"), status=status, borrower=borrower, bank=bank, limit=limit,
            cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "loan", got)

    @r.get("/v1/loans/{id}", response_model=Loan, responses=problems(400, 401, 403, 404))
    def get_loan(who: Reader, id: Id) -> Any:
        """One loan by its id."""
        return one(ctx, who.principal, "loan", ctx.views.loan(id), f"no loan {id!r}")

    return r

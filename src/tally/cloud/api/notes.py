"""``GET /v1/notes`` and ``GET /v1/notes/{id}``: receivable notes.

A note is its holder's; its issuer (the core enterprise), its bank and its earlier holders
read it too. ``root`` filters one family (a note and every part split from it). Newest
issued first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from tally.cloud.api.deps import Reader, one, scope_of
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import Cursor, Id, Limit, Text, page
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import Note, NotePage

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["notes"])

    @r.get("/v1/notes", response_model=NotePage, responses=problems(400, 401, 403))
    def list_notes(
        who: Reader, status: Text = None, issuer: Text = None, holder: Text = None,
        root: Text = None, limit: Limit = 50, cursor: Cursor = None,
    ) -> Any:  # fmt: skip
        """The notes the caller may read, newest issued first."""
        p = who.principal
        got = ctx.views.list_notes(
            scope_of(p, "note"), status=status, issuer=issuer, holder=holder, root=root,
            limit=limit, cursor=cursor,
        )  # fmt: skip
        return page(ctx, p, "note", got)

    @r.get("/v1/notes/{id}", response_model=Note, responses=problems(400, 401, 403, 404))
    def get_note(who: Reader, id: Id) -> Any:
        """One note by its id."""
        return one(ctx, who.principal, "note", ctx.views.note(id), f"no note {id!r}")

    return r

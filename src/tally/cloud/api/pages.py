"""Query parameters shared by the API's lists, and how a page is answered.

``limit`` is 1..200 (default 50); ``cursor`` is the ``next_cursor`` of the previous page,
passed back unchanged (opaque; one of another list, or a malformed one, is 400). Filters are
exact matches of 1 to 200 characters. Query parameters an endpoint does not know are
ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from tally.cloud.api.deps import visible
from tally.cloud.identity import Principal
from tally.cloud.views.model import Page

MAX_INT = 2**62
"""The largest integer a query or path parameter takes (ms, heights)."""

Limit = Annotated[int, Query(ge=1, le=200, description="rows per page, 1..200")]
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=600, description="next_cursor of the previous page"),
]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Id = Annotated[str, Path(min_length=1, max_length=200)]
Ms = Annotated[int | None, Query(ge=0, le=MAX_INT, description="ms since the Unix epoch")]


def page(ctx: Any, p: Principal, kind: str, got: Page[Any]) -> dict[str, Any]:
    """``{"items", "next_cursor"}`` of a page, each row decided again for ``p``."""
    return {"items": visible(ctx, p, kind, got.items), "next_cursor": got.next_cursor}

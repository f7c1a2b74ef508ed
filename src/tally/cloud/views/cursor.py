"""Opaque page cursors of the read model's lists (keyset pagination).

A cursor is the sort key of the last row of a page: URL-safe base64 (no padding) of the
compact JSON ``[kind, k, id]`` — the list's kind (``"receipt"``, ``"block"`` …), the row's
sort key (an integer: a time in ms, a height) and its id. The next page holds the rows
strictly after that key in the list's order, so rows inserted meanwhile never shift a page:
nothing is returned twice and nothing that existed when the first page was read is skipped.

Cursors are opaque to clients and not secret; a malformed one, or one of another list, is a
:class:`~tally.cloud.errors.BadRequest` that says what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import json

from tally.cloud.errors import BadRequest

MAX_CURSOR = 600
MIN_LIMIT = 1
MAX_LIMIT = 200


def check_limit(limit: object) -> int:
    """``limit`` as an int in 1..200, else BadRequest."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise BadRequest(f"limit must be an integer from {MIN_LIMIT} to {MAX_LIMIT}, got {limit!r}")
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be from {MIN_LIMIT} to {MAX_LIMIT}, got {limit}")
    return limit


def encode(kind: str, k: int, rid: str) -> str:
    """The cursor after the row with sort key ``k`` and id ``rid`` in the ``kind`` list."""
    raw = json.dumps([kind, k, rid], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(kind: str, cursor: object) -> tuple[int, str]:
    """The (sort key, id) of a cursor of the ``kind`` list; BadRequest when malformed."""
    if not isinstance(cursor, str) or not cursor:
        raise BadRequest(f"cursor must be a non-empty string, got {cursor!r}")
    if len(cursor) > MAX_CURSOR:
        raise BadRequest(f"cursor has {len(cursor)} characters, more than {MAX_CURSOR}")
    text = cursor.strip()
    if text != cursor or any(c in cursor for c in "+/="):
        raise BadRequest("cursor is not unpadded URL-safe base64 (it has '+', '/', '=' or spaces)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest("cursor is not valid URL-safe base64") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(
            "cursor does not decode to a page position; pass next_cursor back unchanged"
        ) from None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], str)
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
        or not isinstance(value[2], str)
    ):
        raise BadRequest(
            "cursor does not decode to a page position; pass next_cursor back unchanged"
        )
    if value[0] != kind:
        raise BadRequest(f"cursor belongs to the {value[0]!r} list, not to the {kind!r} list")
    return int(value[1]), value[2]

"""Idempotent writes: the ``Idempotency-Key`` header of POST, PATCH and DELETE.

A key is 1 to 64 characters of ``A-Z a-z 0-9 _ -``. It is kept per caller — the tenant and
the session's user, or the API token — in the table ``v_idempotency`` (migration 0006) with
the request's fingerprint (SHA-256 of the method, the path with its query and the body) and,
once the first request is done, its status and body, for :data:`TTL_MS` (24 h):

- the same key with the same request again → the stored response, with the header
  ``Idempotent-Replayed: true`` (nothing is done again);
- the same key with another request → 422 ``idempotency_key_reused``;
- the same key while the first request is still running → 409 ``idempotency_in_progress``.

Every outcome is stored, errors included, except a server error (5xx), after which the key
may be used again. A request that was left running (the process died) frees its key after
:data:`STALE_MS`. Expired keys are deleted now and then by a later write.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tally.cloud.errors import CloudError, Conflict
from tally.cloud.views.tables import idempotency as table

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TTL_MS = 24 * 3_600_000
STALE_MS = 5 * 60_000
PURGE_EVERY_MS = 10 * 60_000
RUNNING, DONE = "running", "done"


class KeyReused(CloudError):
    """Raised when an idempotency key comes back with another request than its first."""

    code = "idempotency_key_reused"
    title = "Idempotency key reused"
    status = 422


class InProgress(Conflict):
    """Raised when an idempotency key comes back while its first request is running."""

    code = "idempotency_in_progress"
    title = "Idempotent request in progress"


@dataclass(frozen=True)
class Stored:
    """A finished request's response."""

    status: int
    body: bytes


def fingerprint(method: str, target: str, body: bytes) -> str:
    """SHA-256 (hex) of ``method``, the request target (path and query) and the body."""
    h = hashlib.sha256()
    for part in (method.upper().encode(), target.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


class Idempotency:
    """The keys in ``v_idempotency`` of ``engine``; times from ``clock`` (ms)."""

    def __init__(self, engine: Engine, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.clock = clock
        self._purged = 0

    def begin(self, scope: str, key: str, fp: str) -> Stored | None:
        """Claim ``key`` for a request (None: go ahead), or the stored response to replay;
        raises KeyReused or InProgress."""
        now = self.clock()
        self._purge(now)
        row = {"scope": scope, "key": key, "fingerprint": fp, "status": None, "body": None,
               "created_ms": now, "state": RUNNING}  # fmt: skip
        mine = sa.and_(table.c.scope == scope, table.c.key == key)
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(table).values(**row))
                return None
            except sa.exc.IntegrityError:
                pass
            with self.engine.begin() as conn:
                got = conn.execute(sa.select(table).where(mine)).mappings().first()
                if got is None:
                    continue  # expired and deleted meanwhile: try again
                old = int(got["created_ms"])
                expired = old <= now - TTL_MS
                stale = got["state"] == RUNNING and old <= now - STALE_MS
                if expired or stale:
                    done = conn.execute(
                        sa.update(table).where(mine, table.c.created_ms == old).values(**row)
                    )
                    if done.rowcount == 1:
                        return None
                    continue
            if got["fingerprint"] != fp:
                raise KeyReused(
                    f"the idempotency key {key!r} was used for another request in the last "
                    "24 h; use a new key for a new request"
                )
            if got["state"] == RUNNING or got["status"] is None:
                raise InProgress(
                    f"the request with idempotency key {key!r} is still running; retry later"
                )
            return Stored(int(got["status"]), bytes(got["body"] or b""))
        raise InProgress(f"the idempotency key {key!r} is contended; retry later")

    def finish(self, scope: str, key: str, status: int, body: bytes) -> None:
        """Store the response of a claimed key."""
        mine = sa.and_(table.c.scope == scope, table.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(sa.update(table).where(mine).values(status=status, body=body, state=DONE))

    def abandon(self, scope: str, key: str) -> None:
        """Free a claimed key whose request failed on the server's side."""
        mine = sa.and_(table.c.scope == scope, table.c.key == key, table.c.state == RUNNING)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(mine))

    def _purge(self, now: int) -> None:
        if now - self._purged < PURGE_EVERY_MS:
            return
        self._purged = now
        with contextlib.suppress(sa.exc.SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.created_ms <= now - TTL_MS))

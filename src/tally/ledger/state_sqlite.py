"""World state in one SQLite file (the embedded backend of :mod:`tally.ledger.state`).

Tables::

    kv   (key TEXT PRIMARY KEY, value BLOB, height INTEGER, idx INTEGER)   WITHOUT ROWID
    meta (id INTEGER PRIMARY KEY CHECK (id = 0), height INTEGER, commitment BLOB)

``value`` is the deterministic CBOR of the value; ``(height, idx)`` its version. SQLite's
default BINARY collation compares keys by their UTF-8 bytes. The database runs in WAL mode
with ``synchronous=FULL``, so a committed :meth:`SqliteState.apply` survives a power loss.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tally.ledger.formats import Version
from tally.ledger.state import (
    HeightNotIncreasing,
    Write,
    check_key,
    check_prefix,
    check_version,
    decode_value,
    encode_value,
    prefix_end,
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL,"
    " height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " height INTEGER NOT NULL, commitment BLOB NOT NULL)",
    "INSERT OR IGNORE INTO meta (id, height, commitment) VALUES (0, 0, x'')",
)


class SqliteState:
    """A :class:`~tally.ledger.state.StateStore` in the SQLite file at ``path`` (created if
    missing). Safe to share between threads (calls are serialised)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.close()
            raise

    def get(self, key: str) -> tuple[Any, Version] | None:
        check_key(key)
        with self._lock:
            row = self._conn.execute(
                "SELECT value, height, idx FROM kv WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return decode_value(key, row[0]), (row[1], row[2])

    def range(self, prefix: str) -> list[tuple[str, Any, Version]]:
        check_prefix(prefix)
        end = prefix_end(prefix)
        with self._lock:
            if end is None:
                rows = self._conn.execute(
                    "SELECT key, value, height, idx FROM kv WHERE key >= ? ORDER BY key",
                    (prefix,),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT key, value, height, idx FROM kv WHERE key >= ? AND key < ?"
                    " ORDER BY key",
                    (prefix, end),
                ).fetchall()
        return [(k, decode_value(k, v), (h, i)) for k, v, h, i in rows]

    def height(self) -> int:
        with self._lock:
            h: int = self._conn.execute("SELECT height FROM meta WHERE id = 0").fetchone()[0]
        return h

    def commitment(self) -> bytes:
        with self._lock:
            c = self._conn.execute("SELECT commitment FROM meta WHERE id = 0").fetchone()[0]
        return bytes(c)

    def apply(self, height: int, writes: Sequence[Write], commitment: bytes) -> None:
        if not isinstance(height, int) or isinstance(height, bool):
            raise TypeError(f"height must be int, got {type(height).__name__}")
        if not isinstance(commitment, bytes):
            raise TypeError(f"commitment must be bytes, got {type(commitment).__name__}")
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                current: int = conn.execute("SELECT height FROM meta WHERE id = 0").fetchone()[0]
                if height <= current:
                    raise HeightNotIncreasing(height, current)
                # Checked and encoded one by one inside the transaction: a bad write anywhere
                # rolls back the ones before it.
                for key, value, version in writes:
                    check_key(key)
                    h, i = check_version(key, version)
                    if value is None:
                        conn.execute("DELETE FROM kv WHERE key = ?", (key,))
                    else:
                        conn.execute(
                            "INSERT INTO kv (key, value, height, idx) VALUES (?, ?, ?, ?)"
                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                            " height = excluded.height, idx = excluded.idx",
                            (key, encode_value(key, value), h, i),
                        )
                conn.execute(
                    "UPDATE meta SET height = ?, commitment = ? WHERE id = 0",
                    (height, commitment),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

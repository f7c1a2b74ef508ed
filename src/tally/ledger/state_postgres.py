"""World state in PostgreSQL (the server backend of :mod:`tally.ledger.state`), via psycopg 3.

Each peer keeps its tables in its own schema (default ``tally_ledger``), so the peers of
several members can share one database::

    <schema>.kv   (key text COLLATE "C" PRIMARY KEY, value bytea, height bigint, idx bigint)
    <schema>.meta (id smallint PRIMARY KEY CHECK (id = 0), height bigint, commitment bytea)

``COLLATE "C"`` makes PostgreSQL compare keys by their bytes, which in a UTF-8 database is
the order SQLite and Python use. The database must use the UTF8 encoding.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

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

DEFAULT_SCHEMA = "tally_ledger"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def conninfo(url: str) -> str:
    """A libpq connection string from ``url``; SQLAlchemy's ``postgresql+psycopg://`` URLs
    are accepted too."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


class PostgresState:
    """A :class:`~tally.ledger.state.StateStore` in schema ``schema`` of the PostgreSQL
    database at ``url`` (the database must exist; the schema and tables are created).
    Safe to share between threads (calls are serialised on one connection)."""

    def __init__(self, url: str, schema: str = DEFAULT_SCHEMA) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r} must match {_SCHEMA_NAME.pattern}")
        self.schema = schema
        self._lock = threading.Lock()
        self._conn = psycopg.connect(conninfo(url), autocommit=True)
        s = sql.Identifier(schema)
        self._kv = sql.SQL("{}.kv").format(s)
        self._meta = sql.SQL("{}.meta").format(s)
        try:
            enc = self._conn.execute("SHOW server_encoding").fetchone()
            if enc is None or enc[0] != "UTF8":
                raise ValueError(f"database encoding must be UTF8, got {enc}")
            with self._conn.transaction():
                self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
                self._conn.execute(
                    sql.SQL(
                        'CREATE TABLE IF NOT EXISTS {} (key text COLLATE "C" PRIMARY KEY,'
                        " value bytea NOT NULL, height bigint NOT NULL, idx bigint NOT NULL)"
                    ).format(self._kv)
                )
                self._conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (id smallint PRIMARY KEY CHECK (id = 0),"
                        " height bigint NOT NULL, commitment bytea NOT NULL)"
                    ).format(self._meta)
                )
                self._conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (id, height, commitment) VALUES (0, 0, '')"
                        " ON CONFLICT (id) DO NOTHING"
                    ).format(self._meta)
                )
        except BaseException:
            self._conn.close()
            raise

    def get(self, key: str) -> tuple[Any, Version] | None:
        check_key(key)
        with self._lock:
            row = self._conn.execute(
                sql.SQL("SELECT value, height, idx FROM {} WHERE key = %s").format(self._kv),
                (key,),
            ).fetchone()
        if row is None:
            return None
        return decode_value(key, row[0]), (row[1], row[2])

    def range(self, prefix: str) -> list[tuple[str, Any, Version]]:
        check_prefix(prefix)
        end = prefix_end(prefix)
        if end is None:
            q = sql.SQL(
                "SELECT key, value, height, idx FROM {} WHERE key >= %s ORDER BY key"
            ).format(self._kv)
            params: tuple[str, ...] = (prefix,)
        else:
            q = sql.SQL(
                "SELECT key, value, height, idx FROM {} WHERE key >= %s AND key < %s ORDER BY key"
            ).format(self._kv)
            params = (prefix, end)
        with self._lock:
            rows = self._conn.execute(q, params).fetchall()
        return [(k, decode_value(k, v), (h, i)) for k, v, h, i in rows]

    def _meta_row(self, for_update: bool = False) -> tuple[int, bytes]:
        q = sql.SQL("SELECT height, commitment FROM {} WHERE id = 0").format(self._meta)
        if for_update:
            q = q + sql.SQL(" FOR UPDATE")
        row = self._conn.execute(q).fetchone()
        if row is None:
            raise RuntimeError(f"schema {self.schema}: the meta row is missing")
        return int(row[0]), bytes(row[1])

    def height(self) -> int:
        with self._lock:
            return self._meta_row()[0]

    def commitment(self) -> bytes:
        with self._lock:
            return self._meta_row()[1]

    def apply(self, height: int, writes: Sequence[Write], commitment: bytes) -> None:
        if not isinstance(height, int) or isinstance(height, bool):
            raise TypeError(f"height must be int, got {type(height).__name__}")
        if not isinstance(commitment, bytes):
            raise TypeError(f"commitment must be bytes, got {type(commitment).__name__}")
        delete = sql.SQL("DELETE FROM {} WHERE key = %s").format(self._kv)
        upsert = sql.SQL(
            "INSERT INTO {} (key, value, height, idx) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " height = excluded.height, idx = excluded.idx"
        ).format(self._kv)
        with self._lock, self._conn.transaction():
            # FOR UPDATE: two stores on one schema (a misconfiguration) cannot interleave.
            current = self._meta_row(for_update=True)[0]
            if height <= current:
                raise HeightNotIncreasing(height, current)
            with self._conn.cursor() as cur:
                # Checked and encoded one by one inside the transaction: a bad write anywhere
                # rolls back the ones before it.
                for key, value, version in writes:
                    check_key(key)
                    h, i = check_version(key, version)
                    if value is None:
                        cur.execute(delete, (key,))
                    else:
                        cur.execute(upsert, (key, encode_value(key, value), h, i))
            self._conn.execute(
                sql.SQL("UPDATE {} SET height = %s, commitment = %s WHERE id = 0").format(
                    self._meta
                ),
                (height, commitment),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

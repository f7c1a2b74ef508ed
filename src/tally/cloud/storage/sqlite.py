"""The SQLite backend: one database file in WAL mode (the embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tally.cloud.storage.sql import SqlStorage


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class SqliteStorage(SqlStorage):
    """Storage in a SQLite file (``sqlite:///path/to/cloud.db``), created when missing."""

    def __init__(self, url: str) -> None:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise ValueError(f"not a SQLite URL: {parsed.render_as_string(hide_password=True)}")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _on_connect)
        super().__init__(engine, sqlite_insert)

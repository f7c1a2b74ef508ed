"""SQLAlchemy engines for the bank's off-chain stores (the book, the document store): a SQLite
file in WAL mode with full sync, or PostgreSQL through psycopg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, needs: str, stored: str) -> Engine:
    """An engine for a ``sqlite:///file`` or ``postgresql[+psycopg]://…`` URL. ``needs`` and
    ``stored`` name the store in the refusals: "<needs> needs a SQLite file…", "<stored>
    stored in SQLite or PostgreSQL, not …"."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError(f"{needs} needs a SQLite file, not an in-memory database")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ValueError(
        f"{stored} stored in SQLite or PostgreSQL, not {backend!r} "
        f"({parsed.render_as_string(hide_password=True)})"
    )

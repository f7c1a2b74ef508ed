"""The PostgreSQL backend, through psycopg 3 (``postgresql+psycopg://user@host:port/db``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tally.cloud.storage.sql import SqlStorage


class PostgresStorage(SqlStorage):
    """Storage in a PostgreSQL database (which must exist; :meth:`migrate` creates tables)."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed, pool_size=pool_size, pool_pre_ping=True)
        super().__init__(engine, pg_insert)

"""Cloud storage: one interface (:mod:`.api`), SQLite and PostgreSQL backends over SQLAlchemy."""

from __future__ import annotations

import sqlalchemy as sa

from tally.cloud.storage.api import Storage


def open_storage(url: str) -> Storage:
    """Open the backend that ``url`` names (``sqlite:///…`` or ``postgresql+psycopg://…``).

    The schema is not touched: call ``migrate()`` to bring it to the newest version.
    """
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        from tally.cloud.storage.sqlite import SqliteStorage

        return SqliteStorage(url)
    if backend == "postgresql":
        from tally.cloud.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    raise ValueError(f"unsupported database backend {backend!r} (sqlite or postgresql)")


__all__ = ["Storage", "open_storage"]

"""Run the cloud's Alembic migrations programmatically (no ``alembic.ini`` needed).

The scripts live in :mod:`tally.cloud.migrations`; :func:`upgrade` brings a database to
``head``. From a shell, the same is ``tally cloud migrate`` or, for developers::

    python -m tally.cloud.storage.migrate sqlite:///data/cloud.db
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on ``engine``'s database, in one transaction."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` (``"base"`` drops every table)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current(engine: sa.Engine) -> str | None:
    """The database's current revision, or None when it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """The newest revision of the packaged scripts."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if rev is None:
        raise RuntimeError("no migration scripts found")
    return rev


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tally.cloud.storage.migrate DATABASE_URL", file=sys.stderr)
        return 2
    from tally.cloud.storage import open_storage

    storage = open_storage(args[0])
    try:
        storage.migrate()
    finally:
        storage.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fixtures of the cloud tests: a test world, and storage on SQLite and PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, trust auth): each test session
creates a database ``tally_test_<random>`` and drops it at the end. When the server is not
reachable the PostgreSQL cases are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from cloud_factory import World, make_world

from tally.cloud.storage import open_storage
from tally.cloud.storage.api import Storage
from tally.cloud.storage.schema import metadata
from tally.cloud.storage.sql import SqlStorage

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {why}")
    pytest.skip(f"PostgreSQL not reachable: {why}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"tally_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable(str(exc).strip())
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    storage = open_storage(url)
    storage.migrate()
    storage.close()
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)
    with storage.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.delete(table))


@pytest.fixture(params=["sqlite", "postgres"])
def any_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storage]:
    """Storage on each backend, migrated and empty."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'cloud.db'}"
        storage = open_storage(url)
        storage.migrate()
    else:
        storage = open_storage(request.getfixturevalue("pg_url"))
        _empty(storage)
    yield storage
    storage.close()


@pytest.fixture
def sqlite_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('db') / 'cloud.db'}")
    storage.migrate()
    yield storage
    storage.close()


@pytest.fixture
def world() -> World:
    return make_world()

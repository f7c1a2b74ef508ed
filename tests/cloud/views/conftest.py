"""Fixtures of the read-model tests: Views on SQLite and on PostgreSQL, each on a database
migrated by the cloud's migrations (``open_storage(url).migrate()``), with a field cipher.

PostgreSQL is a fresh database per test (``postgres_url`` of tests/conftest.py); when the
server is not reachable those cases are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.keyring import LocalKeyring
from tally.cloud.storage import open_storage
from tally.cloud.storage.api import Storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import Views

PASS = "operator passphrase for tests"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each backend (the SQLite file is ``tmp_path/cloud.db``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    """Cloud storage on ``db_url``, migrated to the newest revision."""
    st = open_storage(db_url)
    st.migrate()
    yield st
    st.close()


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "kek.ring", PASS, scrypt_n=1024)


@pytest.fixture
def cipher(storage: Storage, ring: LocalKeyring) -> FieldCipher:
    assert isinstance(storage, SqlStorage)
    return FieldCipher(storage.engine, ring)


@pytest.fixture
def views(storage: Storage, cipher: FieldCipher) -> Views:
    """An empty read model with a field cipher."""
    assert isinstance(storage, SqlStorage)
    return Views(storage.engine, cipher)

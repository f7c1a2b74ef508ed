"""Migration 0006 on SQLite and PostgreSQL: ``open_storage(url).migrate()`` creates exactly the
tables of :mod:`tally.cloud.views.tables` (no autogenerate difference), downgrades and
upgrades again, ``v_idempotency`` has the columns the API relies on, and the queries a tenant's
list and a bank's dashboard make are index ranges, not table scans (SQLite's query plan)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tally.cloud import auditlog, fieldcrypt, identity_store
from tally.cloud.storage import migrate as M
from tally.cloud.storage.api import Storage
from tally.cloud.storage.schema import metadata as storage_metadata
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import Scope, Views
from tally.cloud.views import tables as T

ALL = [storage_metadata, identity_store.metadata, auditlog.metadata, fieldcrypt.metadata,
       T.metadata]  # fmt: skip


def engine_of(storage: Storage) -> sa.Engine:
    assert isinstance(storage, SqlStorage)
    return storage.engine


def test_migration_0006_creates_the_read_model(storage: Storage) -> None:
    engine = engine_of(storage)
    script = ScriptDirectory.from_config(M.alembic_config())
    rev = script.get_revision("0006")
    assert rev is not None and rev.down_revision == "0005"
    assert M.current(engine) == M.head()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), ALL) == []  # type: ignore[arg-type]
        names = set(sa.inspect(conn).get_table_names())
    assert set(T.metadata.tables) <= names
    assert {"v_orgs", "v_parties", "v_meta", "v_idempotency", "v_limits"} <= names


def test_v_idempotency_is_as_the_api_expects(storage: Storage) -> None:
    engine = engine_of(storage)
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        cols = {c["name"]: c for c in insp.get_columns("v_idempotency")}
        pk = insp.get_pk_constraint("v_idempotency")["constrained_columns"]
    assert list(cols) == ["scope", "key", "fingerprint", "status", "body", "created_ms", "state"]
    assert pk == ["scope", "key"]
    assert isinstance(cols["body"]["type"], sa.LargeBinary)
    assert isinstance(cols["created_ms"]["type"], sa.BigInteger)
    row = {"scope": "t/u", "key": "k-1", "fingerprint": "f", "status": None, "body": None,
           "created_ms": 1, "state": "running"}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(T.idempotency).values(**row))
    with engine.begin() as conn:
        conn.execute(sa.update(T.idempotency).values(status=201, body=b"\x00{}", state="done"))
        got = conn.execute(sa.select(T.idempotency)).mappings().one()
    assert (got["status"], bytes(got["body"]), got["state"]) == (201, b"\x00{}", "done")


def test_downgrade_drops_the_read_model_and_upgrade_restores_it(storage: Storage) -> None:
    engine = engine_of(storage)
    Views(engine).meta_put("k", "v")
    M.downgrade(engine, "0005")
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert not any(n.startswith("v_") for n in names) and "data_keys" in names
    M.upgrade(engine)
    assert Views(engine).meta_get("k") is None
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), ALL) == []  # type: ignore[arg-type]


def test_tenant_lists_and_dashboards_are_index_ranges(storage: Storage) -> None:
    engine = engine_of(storage)
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL plans depend on statistics; SQLite's show the index use
    views = Views(engine)
    captured: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def grab(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        captured.append(statement)

    views.list_receipts(Scope("s1"), status="live", limit=10)
    views.list_loans(Scope("bank1"), limit=10)
    views.portfolio("bank1")
    sa.event.remove(engine, "before_cursor_execute", grab)
    with engine.connect() as conn:
        plans = []
        for statement in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            n = statement.count("?")
            args = tuple(["x"] * n)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, args).all()
            plans.append("\n".join(str(r[-1]) for r in rows))
    text = "\n".join(plans)
    assert "ix_v_parties_tenant_k" in text
    assert "ix_v_loans_bank" in text and "ix_v_alerts_bank_open" in text
    assert "SCAN v_receipts" not in text and "SCAN v_loans" not in text
    assert "SCAN v_parties" not in text

"""``tally audit``: someone with write access to the cloud database edits and deletes rows;
the audit, reading only the chain (a member peer's state) and the genesis, names each change.

Story: a consortium of bank, acme and other anchors three batches of d1's readings that the
cloud stored. Then, one at a time in separate batches: a reading's served value is edited,
a reading's signed bytes are edited, a reading is deleted, a batch header is replaced, a
whole batch is deleted, and a batch is slipped in that was never anchored.

Simulated data: every reading carries the label ``sim = "1"``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cloud_factory import T0, World, make_consortium

from tally.cloud.anchoring import Anchorer, ConsortiumLink
from tally.cloud.audit import audit
from tally.cloud.ingest import Ingestor
from tally.cloud.storage.api import Storage
from tally.cloud.storage.schema import anchors, batches, items
from tally.cloud.storage.sql import SqlStorage
from tally.ledger.consortium import Consortium


@pytest.fixture
async def anchored(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> AsyncIterator[tuple[SqlStorage, Consortium, list[int]]]:
    c = await make_consortium(world, tmp_path / "ledger")
    try:
        world.register_all(sqlite_storage)
        link = ConsortiumLink(c, "bank", timeout=2.0, attempts=1)
        for reg in world.registrations:
            await link.register(reg)
        ingest = Ingestor(sqlite_storage, world.trust, world.identity, lambda: T0 + 30_000)
        ids = []
        for b in range(3):
            readings = [world.reading("d1", T0 + 10_000 * b + i) for i in range(4)]
            ids.append(ingest.ingest(world.header("e1", readings), readings).batch_id)
        assert await Anchorer(sqlite_storage, link, clock=lambda: T0 + 30_000).step() == 3
        assert isinstance(sqlite_storage, SqlStorage)
        yield sqlite_storage, c, ids
    finally:
        await c.close()


def _run(storage: SqlStorage, c: Consortium):  # type: ignore[no-untyped-def]
    return audit(storage, c.peers["bank"].state, c.genesis)


def _sql(storage: SqlStorage, stmt: sa.Executable) -> None:
    with storage.engine.begin() as conn:
        conn.execute(stmt)


async def test_an_untouched_database_audits_clean(
    anchored: tuple[SqlStorage, Consortium, list[int]],
) -> None:
    storage, c, _ids = anchored
    report = _run(storage, c)
    assert report.clean, [f.line() for f in report.findings]
    assert (report.batches, report.items, report.anchored) == (3, 12, 3)


async def test_every_kind_of_tampering_is_named(
    anchored: tuple[SqlStorage, Consortium, list[int]], world: World
) -> None:
    storage, c, ids = anchored
    first, second, third = ids
    with storage.engine.connect() as conn:
        rows = list(conn.execute(sa.select(items).where(items.c.batch_id == first)))
    # 1. the value the API serves is edited, the signed bytes left alone
    ms = json.loads(rows[0].measurements)
    ms[0]["v"] = "99.9"
    _sql(storage, items.update().where(items.c.id == rows[0].id)
         .values(measurements=json.dumps(ms)))  # fmt: skip
    # 2. the signed bytes of another reading are edited
    cose = bytearray(rows[1].cose)
    cose[-70] ^= 0x01
    _sql(storage, items.update().where(items.c.id == rows[1].id).values(cose=bytes(cose)))
    # 3. a reading of the second batch is deleted
    _sql(storage, items.delete().where(
        (items.c.batch_id == second) & (items.c.idx == 2)))  # fmt: skip
    # 4. the third batch is deleted entirely
    _sql(storage, items.delete().where(items.c.batch_id == third))
    _sql(storage, anchors.delete().where(anchors.c.batch_id == third))
    _sql(storage, batches.delete().where(batches.c.id == third))
    # 5. a batch the chain never saw is slipped in
    extra = [world.reading("d1", T0 + 99_000)]
    Ingestor(storage, world.trust, world.identity, lambda: T0 + 30_000).ingest(
        world.header("e1", extra), extra
    )
    report = _run(storage, c)
    got = {(f.kind, f.ctr, f.index) for f in report.findings}
    assert ("copy_altered", 0, 0) in got
    assert ("item_altered", 0, 1) in got
    assert ("item_deleted", 1, 2) in got
    assert ("batch_deleted", 2, None) in got
    assert ("never_anchored", 3, None) in got
    assert report.counts()["root_mismatch"] == 0  # each change is named precisely instead


async def test_a_replaced_header_is_named(
    anchored: tuple[SqlStorage, Consortium, list[int]],
) -> None:
    storage, c, ids = anchored
    with storage.engine.connect() as conn:
        header = conn.execute(sa.select(batches.c.header).where(batches.c.id == ids[0])).scalar()
    assert header is not None
    bad = bytearray(header)
    bad[-1] ^= 0x01
    _sql(storage, batches.update().where(batches.c.id == ids[0]).values(header=bytes(bad)))
    report = _run(storage, c)
    assert [(f.kind, f.ctr) for f in report.findings] == [("header_altered", 0)]

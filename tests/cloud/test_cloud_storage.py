"""The storage contract: every backend (SQLite file, PostgreSQL database) behaves the same."""

from __future__ import annotations

import hashlib
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tally.cloud import auditlog, fieldcrypt, identity_store
from tally.cloud.errors import BatchExists, ItemExists, StorageError
from tally.cloud.storage import migrate as M
from tally.cloud.storage.api import (
    ANCHORED,
    PENDING,
    REFUSED,
    AnchorRecord,
    ItemQuery,
    NewBatch,
    NewGap,
    NewItem,
    RegistrationRecord,
    RevocationRecord,
    Storage,
)
from tally.cloud.storage.schema import metadata
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import tables as views_tables


def h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def reg(subject: str, org: str = "acme", t: int = 1, kind: str = "device") -> RegistrationRecord:
    raw = f"{subject}/{org}/{t}".encode()
    return RegistrationRecord(
        subject, kind, org, "s1", "p", "intl", b"k" * 32, 3, t, raw, h(raw), 5
    )


def batch(edge: str = "e1", ctr: int = 0, n: int = 0) -> NewBatch:
    return NewBatch(
        edge=edge, site="s1", suite="intl", ctr=ctr, prev=h(edge, ctr - 1) if ctr else b"",
        t0=0, t1=1, n=n, root=h("root", edge, ctr), header=b"hdr%d" % ctr,
        header_hash=h("hdr", edge, ctr), received=1000 + ctr, receipt=b"rcpt", org="acme",
    )  # fmt: skip


def item(i: int, edge: str = "e1", ctr: int = 0, **kw: object) -> NewItem:
    fields: dict[str, object] = dict(
        index=i, kind="reading", signer="d1", device="d1", site="s1", org="acme", boot=0,
        ctr=i, t=100 + i, hash=h("item", edge, ctr, i), assurance=3, cose=b"cose%d" % i,
        measurements='[{"q":"temperature","v":"21.50","u":"Cel"}]', meta="{}",
    )  # fmt: skip
    fields.update(kw)
    return NewItem(**fields)  # type: ignore[arg-type]


def test_migrate_is_idempotent_and_matches_schema(any_storage: Storage) -> None:
    any_storage.migrate()
    assert isinstance(any_storage, SqlStorage)
    assert M.current(any_storage.engine) == M.head() == "0006"
    # the migrations create the platform's tables too: identity, audit log, data keys, views
    every = [
        metadata,
        identity_store.metadata,
        auditlog.metadata,
        fieldcrypt.metadata,
        views_tables.metadata,
    ]
    with any_storage.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), every)
    assert diff == []


def test_registrations_newest_wins_and_are_stored_once(any_storage: Storage) -> None:
    assert any_storage.add_registration(reg("d1", t=1))
    assert not any_storage.add_registration(reg("d1", t=1))
    assert any_storage.add_registration(reg("d1", t=7))
    assert any_storage.add_registration(reg("e1", t=2, kind="edge"))
    assert any_storage.add_registration(reg("d9", org="other"))
    got = any_storage.registrations(["d1", "e1", "nope"])
    assert set(got) == {"d1", "e1"}
    assert got["d1"].t == 7 and got["d1"].raw == b"d1/acme/7"
    assert got["d1"].pub == b"k" * 32 and got["d1"].assurance == 3
    assert [r.subject for r in any_storage.subjects("device")] == ["d1", "d9"]
    assert [r.subject for r in any_storage.subjects("device", "other")] == ["d9"]


def test_revocations_earliest_wins(any_storage: Storage) -> None:
    for t in (50, 20, 90):
        rec = RevocationRecord("d1", "acme", t, f"r{t}", b"rev%d" % t, h("rev", t), 1)
        assert any_storage.add_revocation(rec)
    assert not any_storage.add_revocation(rec)
    got = any_storage.revocations(["d1", "d2"])
    assert list(got) == ["d1"] and got["d1"].t == 20 and got["d1"].reason == "r20"


def test_store_batch_round_trip(any_storage: Storage) -> None:
    items = [item(i) for i in range(5)]
    gap = NewGap("e1", "d1", "acme", 0, 7, 9, "lost", 123, items[4].hash)
    bid = any_storage.store_batch(batch(n=5), items, [gap])
    b = any_storage.batch("e1", 0)
    assert b is not None and b.id == bid and b.n == 5 and b.header == b"hdr0"
    assert any_storage.batch_by_id(bid) == b
    assert any_storage.batch("e1", 1) is None
    assert any_storage.batch_items(bid) == [b"cose%d" % i for i in range(5)]
    got = any_storage.item(items[3].hash)
    assert got is not None and (got.edge, got.batch_ctr, got.index) == ("e1", 0, 3)
    assert got.measurements == items[3].measurements and got.received == 1000
    assert any_storage.stored_item_hashes([items[1].hash, h("x")]) == {items[1].hash: ("e1", 0)}
    [g] = any_storage.gaps("d1")
    assert (g.first, g.last, g.reason, g.item_hash) == (7, 9, "lost", items[4].hash)
    assert any_storage.gaps("d1", org="other") == []
    dev = any_storage.device("d1")
    assert dev is not None and (dev.ctr, dev.items, dev.last_reading_t) == (4, 5, 104)


def test_edge_head_follows_highest_ctr_out_of_order(any_storage: Storage) -> None:
    any_storage.store_batch(batch(ctr=2), [], [])
    any_storage.store_batch(batch(ctr=0), [], [])
    st = any_storage.edge_status("e1")
    assert st is not None
    assert (st.last_ctr, st.head_hash, st.batches) == (2, h("hdr", "e1", 2), 2)
    assert any_storage.edge_status("e2") is None


def test_duplicate_batch_or_item_stores_nothing(any_storage: Storage) -> None:
    any_storage.store_batch(batch(ctr=0, n=1), [item(0)], [])
    with pytest.raises(BatchExists) as e:
        any_storage.store_batch(batch(ctr=0, n=1), [item(0, ctr=5)], [])
    assert (e.value.edge, e.value.ctr) == ("e1", 0)
    with pytest.raises(ItemExists):
        any_storage.store_batch(batch(ctr=1, n=2), [item(1, ctr=1), item(0)], [])
    assert any_storage.batch("e1", 1) is None
    assert any_storage.stored_item_hashes([item(1, ctr=1).hash]) == {}
    dev = any_storage.device("d1")
    assert dev is not None and dev.items == 1


def test_item_query_filters_and_pagination(any_storage: Storage) -> None:
    rows = [item(i, t=1000 + i // 2, assurance=3 if i % 3 else 2) for i in range(30)]
    rows += [
        item(30, device="d9", org="other", site="s9", signer="d9"),
        item(31, kind="event", device=None, rule="cold", t=1005),
        item(32, kind="heartbeat", measurements="[]"),
    ]
    any_storage.store_batch(batch(n=len(rows)), rows, [])
    seen: list[int] = []
    after = None
    while True:
        page = any_storage.items(ItemQuery(device="d1", limit=7, after=after))
        seen += [r.index for r in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == list(range(30))
    ts = [r.t for r in any_storage.items(ItemQuery(t_from=1002, t_to=1004, limit=100)).items]
    assert ts == [1002, 1002, 1003, 1003]
    strong = any_storage.items(ItemQuery(device="d1", min_assurance=3, limit=100)).items
    assert len(strong) == 20 and all(r.assurance == 3 for r in strong)
    assert [r.device for r in any_storage.items(ItemQuery(org="other")).items] == ["d9"]
    assert [r.device for r in any_storage.items(ItemQuery(site="s9")).items] == ["d9"]
    ev = any_storage.items(ItemQuery(kinds=("event",), rule="cold")).items
    assert [r.index for r in ev] == [31]
    assert any_storage.items(ItemQuery(kinds=("event",), rule="warm")).items == []
    assert [d.device for d in any_storage.devices()] == ["d1", "d9"]
    assert [d.device for d in any_storage.devices("other")] == ["d9"]


def test_bulk_insert_of_a_large_batch(any_storage: Storage) -> None:
    rows = [item(i, cose=bytes(200) + i.to_bytes(4, "big")) for i in range(5000)]
    start = time.perf_counter()
    bid = any_storage.store_batch(batch(n=len(rows)), rows, [])
    took = time.perf_counter() - start
    assert len(any_storage.batch_items(bid)) == 5000
    assert took < 5.0, f"storing 5000 items took {took:.2f} s"


def test_anchor_states_round_trip_and_select_what_is_left(any_storage: Storage) -> None:
    ids = {
        (e, c): any_storage.store_batch(batch(e, c), [], [])
        for e in ("e2", "e1")
        for c in (1, 0, 2)
    }
    assert [(b.edge, b.ctr) for b in any_storage.batches_to_anchor()] == [
        ("e1", 0),
        ("e1", 1),
        ("e1", 2),
        ("e2", 0),
        ("e2", 1),
        ("e2", 2),
    ]
    assert any_storage.anchor_counts() == {"none": 6}
    done = AnchorRecord(ids["e1", 0], ANCHORED, b"t" * 32, 7, 41, "", 1234)
    any_storage.record_anchor(AnchorRecord(ids["e1", 0], PENDING, t=1000))
    any_storage.record_anchor(done)
    any_storage.record_anchor(AnchorRecord(ids["e1", 1], PENDING, reason="timeout", t=1001))
    refused = AnchorRecord(ids["e2", 0], REFUSED, b"u" * 32, 8, 50, "batch 0 of e2: nope", 99)
    any_storage.record_anchor(refused)
    got = any_storage.anchors([ids["e1", 0], ids["e2", 0], ids["e2", 1], 10**9])
    assert got == {ids["e1", 0]: done, ids["e2", 0]: refused}
    left = [(b.edge, b.ctr) for b in any_storage.batches_to_anchor(limit=3)]
    assert left == [("e1", 1), ("e1", 2), ("e2", 1)]
    assert any_storage.anchor_counts() == {"anchored": 1, "refused": 1, "pending": 1, "none": 3}
    with pytest.raises(ValueError):
        any_storage.record_anchor(AnchorRecord(ids["e1", 2], "lost"))
    with pytest.raises(StorageError):
        any_storage.record_anchor(AnchorRecord(10**9, PENDING))

"""The off-chain document store on SQLite and PostgreSQL: stored as parsed and verified,
idempotent by salted hash (also when two writers race), queried by trade, kind, owner and
identity; bad documents store nothing."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_finance_documents import BUYER, CARRIER, KEYS, SALT, SELLER, WH, document

from tally.crypto import INTL, SigningKey
from tally.finance.docstore import DocStore
from tally.finance.documents import DocumentError, parse_document


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'docs.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_store(db_url: str) -> Iterator[Callable[..., DocStore]]:
    prefix = f"d{secrets.token_hex(4)}_"
    stores: list[DocStore] = []

    def make(p: str = prefix) -> DocStore:
        s = DocStore(db_url, prefix=p)
        stores.append(s)
        return s

    yield make
    for s in stores:
        s.drop()
        s.close()


def test_a_document_is_stored_once_per_salt(make_store: Callable[..., DocStore]) -> None:
    store = make_store()
    data = document("invoice")
    signed = parse_document(data)
    row, new = store.put(data, SALT, KEYS[SELLER].public)
    assert new
    assert row.hash == signed.salted_hash(SALT) == INTL.hash(SALT + data)
    assert (row.cose, row.salt, row.kind, row.trade, row.owner, row.no, row.t) == (
        data,
        SALT,
        "invoice",
        "T-2026-001",
        SELLER,
        "invoice-1",
        signed.doc.t,
    )
    assert row.identity == signed.identity()
    assert store.get(row.hash) == row
    assert row.parsed().doc == signed.doc
    again, new = store.put(data, SALT)
    assert (again, new) == (row, False)
    other, new = store.put(data)  # a fresh random salt: another row, the same identity
    assert new and other.salt != SALT and len(other.salt) == 16
    assert other.hash == INTL.hash(other.salt + data)
    assert [r.hash for r in store.by_identity(row.identity)] == sorted([row.hash, other.hash])  # type: ignore[arg-type]
    assert len(store.query()) == 2


def test_bad_documents_store_nothing(make_store: Callable[..., DocStore]) -> None:
    store = make_store()
    data = document("invoice")
    with pytest.raises(DocumentError) as err:
        store.put(data, SALT, SigningKey(INTL, b"\x07" * 32).public)
    assert str(err.value) == f"invoice: the signature does not verify with the key of {SELLER!r}"
    with pytest.raises(DocumentError) as err:
        store.put(data[:-1], SALT)
    assert str(err.value).startswith("document: COSE_Sign1: ")
    with pytest.raises(DocumentError) as err:
        store.put(data, SALT[:15])
    assert str(err.value) == "document: the salt must be 16 bytes, got bytes " + repr(SALT[:15])
    assert store.query() == []


def test_queries_by_trade_kind_owner(make_store: Callable[..., DocStore]) -> None:
    store = make_store()
    for trade in ("T-1", "T-2"):
        for kind in ("contract", "invoice", "waybill", "warehouse_in", "payment"):
            store.put(document(kind, trade=trade), SALT)
    t1 = store.by_trade("T-1")
    assert sorted(r.kind for r in t1) == ["contract", "invoice", "payment", "warehouse_in",
                                          "waybill"]  # fmt: skip
    assert [(r.t, r.hash) for r in t1] == sorted((r.t, r.hash) for r in t1)
    assert {r.trade for r in t1} == {"T-1"}
    assert sorted(r.trade for r in store.query(kind="invoice")) == ["T-1", "T-2"]
    assert {(r.trade, r.kind) for r in store.query(owner=BUYER)} == {
        (t, k) for t in ("T-1", "T-2") for k in ("contract", "payment")
    }
    assert [r.owner for r in store.query(trade="T-2", kind="waybill")] == [CARRIER]
    assert [r.owner for r in store.query(trade="T-2", owner=WH)] == [WH]
    assert store.query(trade="T-3") == []
    assert store.get(b"\x00" * 32) is None


def test_racing_writers_store_one_row(make_store: Callable[..., DocStore]) -> None:
    first = make_store()
    stores = [first, *(make_store(first.documents.name[: -len("documents")]) for _ in range(3))]
    data = document("waybill")
    barrier = threading.Barrier(len(stores))
    results: list[bool] = []
    lock = threading.Lock()

    def put(s: DocStore) -> None:
        barrier.wait(timeout=10)
        _, new = s.put(data, SALT)
        with lock:
            results.append(new)

    threads = [threading.Thread(target=put, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert sorted(results) == [False, False, False, True]
    assert len(first.query()) == 1


def test_prefixes_keep_stores_apart(make_store: Callable[..., DocStore]) -> None:
    a, b = make_store(), make_store(f"e{secrets.token_hex(4)}_")
    a.put(document("order"), SALT)
    assert len(a.query()) == 1 and b.query() == []


def test_engine_and_prefix_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="table prefix must be letters, digits and '_', got 'x-'"):
        DocStore(f"sqlite:///{tmp_path / 'x.db'}", prefix="x-")
    with pytest.raises(ValueError, match="needs a SQLite file, not an in-memory database"):
        DocStore("sqlite:///:memory:")
    with pytest.raises(
        ValueError, match="documents are stored in SQLite or PostgreSQL, not 'mysql'"
    ):
        DocStore("mysql://u@h/db")

"""The world-state contract suite: every test runs against SQLite and PostgreSQL, which must
behave identically (including the byte order of keys), plus a model-based test against a
plain dict."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.ledger.state import (
    MAX_KEY_BYTES,
    HeightNotIncreasing,
    InvalidKey,
    InvalidValue,
    PostgresState,
    SqliteState,
    StateCorrupt,
    StateStore,
    Write,
)

Opener = Callable[..., StateStore]
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open_store(name="peer")`` opens (or reopens) the store called ``name``."""
    opened: list[StateStore] = []
    if request.param == "sqlite":

        def open_(name: str = "peer") -> StateStore:
            s = SqliteState(tmp_path / f"{name}.db")
            opened.append(s)
            return s
    else:
        url = request.getfixturevalue("postgres_url")

        def open_(name: str = "peer") -> StateStore:
            s = PostgresState(url, schema=f"peer_{name}")
            opened.append(s)
            return s

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Opener) -> StateStore:
    return open_store()


def test_a_new_store_is_empty(store: StateStore) -> None:
    assert store.height() == 0
    assert store.commitment() == b""
    assert store.get("k") is None
    assert store.range("") == []


def test_put_get_delete_with_versions(store: StateStore) -> None:
    store.apply(1, [("a", 1, (1, 0)), ("b", {"x": [b"\x00", "é"]}, (1, 1))], b"c1")
    assert store.get("a") == (1, (1, 0))
    assert store.get("b") == ({"x": [b"\x00", "é"]}, (1, 1))
    assert (store.height(), store.commitment()) == (2 - 1, b"c1")

    store.apply(2, [("a", 2, (2, 3)), ("b", None, (2, 3)), ("gone", None, (2, 3))], b"c2")
    assert store.get("a") == (2, (2, 3))
    assert store.get("b") is None
    assert store.get("gone") is None
    assert (store.height(), store.commitment()) == (2, b"c2")


def test_writes_apply_in_order_last_wins(store: StateStore) -> None:
    store.apply(1, [("k", 1, (1, 0)), ("k", 2, (1, 1)), ("d", 1, (1, 0)), ("d", None, (1, 1))], b"")
    assert store.get("k") == (2, (1, 1))
    assert store.get("d") is None
    store.apply(2, [("d", None, (2, 0)), ("d", 5, (2, 1))], b"")
    assert store.get("d") == (5, (2, 1))


def test_values_round_trip(store: StateStore) -> None:
    values: list[Any] = [
        0, -1, 2**64 - 1, -(2**64), True, False, "", "日本語", b"", b"\xff" * 100,
        Decimal("12.50"), [1, [2, [3]]], {"b": 1, "a": {"c": None}}, {1: "x", b"k": [True]},
    ]  # fmt: skip
    store.apply(1, [(f"v{i:02d}", v, (1, i)) for i, v in enumerate(values)], b"")
    for i, v in enumerate(values):
        got = store.get(f"v{i:02d}")
        assert got == (v, (1, i))
    # tuples are CBOR arrays: they read back as lists
    store.apply(2, [("t", (1, (2, 3)), (2, 0))], b"")
    assert store.get("t") == ([1, [2, 3]], (2, 0))


TRICKY = [
    "a", "a/", "a/b", "a/b/c", "a/c", "a0", "a%", "a_", "a\x7f", "aé", "af", "a\u0100",
    "a\uffff", "a\U0001f600", "a\U0010ffff", "a\U0010ffffz", "ab", "A", "B", "b", "é", "z",
    "\U0010ffff", "/", " ", "~",
]  # fmt: skip


def _model_range(keys: Sequence[str], prefix: str) -> list[str]:
    return sorted((k for k in keys if k.startswith(prefix)), key=lambda k: k.encode("utf-8"))


def test_range_is_sorted_by_utf8_bytes_with_tricky_keys(store: StateStore) -> None:
    check_tricky_range(store)


def check_tricky_range(store: StateStore) -> None:
    store.apply(1, [(k, i, (1, i)) for i, k in enumerate(reversed(TRICKY))], b"")
    everything = [k for k, _, _ in store.range("")]
    assert everything == _model_range(TRICKY, "")
    # byte order, not a locale's: capitals before lower case, "é" after "z"
    assert everything.index("A") < everything.index("a") < everything.index("z")
    assert everything.index("z") < everything.index("é")
    prefixes = [
        "a",
        "a/",
        "a/b",
        "a%",
        "a_",
        "a\U0010ffff",
        "a\uffff",
        "é",
        "\U0010ffff",
        "q",
        "ab",
    ]
    for p in prefixes:
        assert [k for k, _, _ in store.range(p)] == _model_range(TRICKY, p), p
    index = {k: i for i, k in enumerate(reversed(TRICKY))}
    want = [(k, index[k], (1, index[k])) for k in ["a/", "a/b", "a/b/c", "a/c"]]
    assert store.range("a/") == want


def test_a_failure_mid_apply_leaves_nothing(open_store: Opener) -> None:
    store = open_store()
    store.apply(1, [("keep", 1, (1, 0)), ("del", 1, (1, 1))], b"c1")
    before = (store.height(), store.commitment(), store.range(""))

    bad_value: list[Write] = [
        ("keep", 2, (2, 0)), ("del", None, (2, 0)), ("new", 1, (2, 1)),
        ("bad", 1.5, (2, 2)), ("late", 1, (2, 3)),
    ]  # fmt: skip
    with pytest.raises(InvalidValue) as err:
        store.apply(2, bad_value, b"c2")
    assert err.value.key == "bad"
    assert (store.height(), store.commitment(), store.range("")) == before

    with pytest.raises(InvalidKey):
        store.apply(2, [("new", 1, (2, 0)), ("nul\x00", 1, (2, 1))], b"c2")
    with pytest.raises(InvalidValue, match="version"):
        store.apply(2, [("new", 1, (2, 0)), ("v", 1, (2,))], b"c2")  # type: ignore[list-item]

    class Exploding(list[Write]):
        def __iter__(self) -> Iterator[Write]:
            yield ("new", 1, (2, 0))
            yield ("keep", None, (2, 1))
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        store.apply(2, Exploding(), b"c2")
    assert (store.height(), store.commitment(), store.range("")) == before

    store.close()
    again = open_store()
    assert (again.height(), again.commitment(), again.range("")) == before
    again.apply(2, [("new", 1, (2, 0))], b"c2")  # still usable
    assert again.get("new") == (1, (2, 0))


def test_reopen_returns_the_same_state(open_store: Opener) -> None:
    store = open_store()
    store.apply(1, [("a", "x", (1, 0)), ("é", {"n": 1}, (1, 1))], b"\x01" * 32)
    store.apply(3, [("a", None, (3, 0)), ("b", [1], (3, 0))], b"\x03" * 32)
    snapshot = (store.height(), store.commitment(), store.range(""))
    store.close()
    again = open_store()
    assert (again.height(), again.commitment(), again.range("")) == snapshot
    assert snapshot[0] == 3 and snapshot[1] == b"\x03" * 32
    assert again.get("b") == ([1], (3, 0))


def test_height_only_increases(store: StateStore) -> None:
    store.apply(1, [], b"c1")
    for h in (1, 0, -1):
        with pytest.raises(HeightNotIncreasing) as err:
            store.apply(h, [("x", 1, (h, 0))], b"other")
        assert (err.value.height, err.value.current) == (h, 1)
    assert (store.height(), store.commitment(), store.get("x")) == (1, b"c1", None)
    store.apply(2, [], b"c2")
    assert store.height() == 2


def test_invalid_keys_are_refused(store: StateStore) -> None:
    for key in ("", "a\x00b", "\ud800", "k" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1)):
        with pytest.raises(InvalidKey):
            store.get(key)
        with pytest.raises(InvalidKey):
            store.apply(1, [(key, 1, (1, 0))], b"")
    with pytest.raises(InvalidKey):
        store.range("a\x00")
    store.apply(1, [("k" * MAX_KEY_BYTES, 1, (1, 0))], b"")  # the limit itself is fine
    assert store.get("k" * MAX_KEY_BYTES) == (1, (1, 0))


def test_stores_sharing_a_location_are_independent(open_store: Opener) -> None:
    bank, wh = open_store("bank"), open_store("warehouse")
    bank.apply(1, [("k", "bank", (1, 0))], b"b1")
    assert wh.get("k") is None and wh.height() == 0
    wh.apply(1, [("k", "wh", (1, 0))], b"w1")
    wh.apply(2, [("j", "wh", (2, 0))], b"w2")
    assert bank.range("") == [("k", "bank", (1, 0))]
    assert (bank.height(), wh.height()) == (1, 2)


# -- a model: the same random history applied to a store and to a dict ---------------------

_CHARS = ["a", "b", "/", "A", "_", "%", "é", "\uffff", "\U0001f600", "\U0010ffff"]
keys = st.lists(st.sampled_from(_CHARS), min_size=1, max_size=3).map("".join)
blocks = st.lists(
    st.lists(st.tuples(keys, st.one_of(st.none(), st.integers(0, 9), st.text(max_size=2)))),
    min_size=1,
    max_size=4,
)
_counter = itertools.count()


@given(
    history=blocks, prefixes=st.lists(st.lists(st.sampled_from(_CHARS), max_size=2).map("".join))
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_store_matches_a_dict_model(
    open_store: Opener, history: list[list[tuple[str, Any]]], prefixes: list[str]
) -> None:
    store = open_store(f"m{next(_counter)}")
    model: dict[str, tuple[Any, tuple[int, int]]] = {}
    for height, block in enumerate(history, start=1):
        writes = [(k, v, (height, i)) for i, (k, v) in enumerate(block)]
        store.apply(height, writes, height.to_bytes(4, "big"))
        for k, v, ver in writes:
            if v is None:
                model.pop(k, None)
            else:
                model[k] = (v, ver)
    assert store.height() == len(history)
    for p in ["", *prefixes]:
        want = [(k, *model[k]) for k in _model_range(list(model), p)]
        assert store.range(p) == want
    for k in model:
        assert store.get(k) == model[k]


# -- backend specifics ---------------------------------------------------------------------


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    with SqliteState(tmp_path / "s.db") as s:
        s.apply(1, [("k", 1, (1, 0))], b"")
    raw = sqlite3.connect(tmp_path / "s.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in raw.execute("SELECT key FROM kv")] == ["k"]
    finally:
        raw.close()
    s2 = SqliteState(tmp_path / "s.db")
    try:
        assert s2._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s2.close()


def test_sqlite_corrupt_value_is_reported(tmp_path: Path) -> None:
    with SqliteState(tmp_path / "s.db") as s:
        s.apply(1, [("k", 1, (1, 0))], b"")
    raw = sqlite3.connect(tmp_path / "s.db")
    with raw:
        raw.execute("UPDATE kv SET value = x'1801' WHERE key = 'k'")  # 1 in a non-shortest form
    raw.close()
    with SqliteState(tmp_path / "s.db") as s, pytest.raises(StateCorrupt) as err:
        s.get("k")
    assert err.value.key == "k"


@pytest.fixture
def icu_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database whose default collation is ICU en-US, which sorts "é" next to "e" and
    "a" next to "A": keys must still come back in byte order."""
    import psycopg

    name = f"{postgres_url.rsplit('/', 1)[1]}_icu"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        try:
            conn.execute(
                f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING UTF8'
                " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        except psycopg.Error as exc:
            pytest.skip(f"no ICU collations here: {exc}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_byte_order_under_a_locale_collation(icu_postgres_url: str) -> None:
    with PostgresState(icu_postgres_url, schema="peer_icu") as s:
        check_tricky_range(s)


@pytest.mark.postgres
def test_postgres_schema_name_is_checked(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresState(postgres_url, schema='x"; DROP TABLE kv; --')

"""Keyset pagination of the read model on SQLite and PostgreSQL: pages in newest-first order
across ties of the sort key, stable while rows are inserted between pages (nothing twice,
nothing that existed skipped), opaque cursors refused precisely when malformed or of another
list, limits outside 1..200 refused, and a Hypothesis property against a plain sort."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.cloud.errors import BadRequest
from tally.cloud.storage import open_storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import ReceiptRow, Scope, Views
from tally.cloud.views import cursor as C
from tally.cloud.views import tables as T

EVERYTHING = Scope("reg", everything=True)


def rcpt(no: str, issued: int, holder: str = "s1", site: str = "site-a") -> ReceiptRow:
    return ReceiptRow(no, holder, "wh1", "bank1", site, "bay", "copper", "1", "t", 100, "live",
                      None, issued, issued, 1)  # fmt: skip


def pages(views: Views, scope: Scope, limit: int, between: Any = None) -> Iterator[list[str]]:
    cursor = None
    n = 0
    while True:
        page = views.list_receipts(scope, limit=limit, cursor=cursor)
        yield [r.no for r in page.items]
        if page.next_cursor is None:
            return
        if between is not None:
            between(n)
        n += 1
        cursor = page.next_cursor


@pytest.mark.parametrize(
    "scope", [EVERYTHING, Scope("s1"), Scope("wh9", sites=frozenset({"site-a"}))],
    ids=["everything", "tenant", "sites"],
)  # fmt: skip
def test_pages_are_stable_while_rows_are_inserted(views: Views, scope: Scope) -> None:
    # 40 receipts, many sharing a sort key (issued_ms in steps of 10, four per step)
    start = [rcpt(f"r{i:03d}", 1000 + 10 * (i // 4)) for i in range(40)]
    views.bulk_load("receipt", start)
    extra = iter(range(1000))

    def insert(n: int) -> None:
        # newer, older and tying rows, some visible to the scope, some not
        for issued in (5000, 500, 1000 + 10 * (n % 10)):
            i = next(extra)
            views.upsert_receipt(rcpt(f"x{i:03d}", issued))
            views.upsert_receipt(rcpt(f"y{i:03d}", issued, holder="s9", site="site-z"))

    got = [no for page in pages(views, scope, 7, insert) for no in page]
    assert len(got) == len(set(got)), "a row was returned twice"
    assert {r.no for r in start} <= set(got), "a row that existed was skipped"
    want = sorted(start, key=lambda r: (r.issued_ms, r.no), reverse=True)
    assert [no for no in got if no.startswith("r")] == [r.no for r in want]
    if not scope.everything:  # rows of another holder at another site stay invisible
        assert not any(no.startswith("y") for no in got)


def test_pages_split_exactly_at_the_limit(views: Views) -> None:
    views.bulk_load("receipt", [rcpt(f"r{i}", 1000) for i in range(6)])
    got = list(pages(views, EVERYTHING, 3))
    assert got == [["r5", "r4", "r3"], ["r2", "r1", "r0"]]
    assert list(pages(views, EVERYTHING, 200)) == [["r5", "r4", "r3", "r2", "r1", "r0"]]
    assert list(pages(views, EVERYTHING, 1))[-1] == ["r0"]


@pytest.mark.parametrize("limit", [0, -1, 201, 10_000, True, "50", 2.5, None])
def test_limit_outside_1_to_200_is_refused(views: Views, limit: Any) -> None:
    with pytest.raises(BadRequest, match="limit must be"):
        views.list_receipts(EVERYTHING, limit=limit)
    with pytest.raises(BadRequest, match="limit must be"):
        views.list_blocks(limit=limit)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("", "cursor must be a non-empty string"),
        ("a" * 601, "more than 600"),
        ("abc/def", "not unpadded URL-safe base64"),
        ("abc=", "not unpadded URL-safe base64"),
        (" abc", "not unpadded URL-safe base64"),
        ("a", "not valid URL-safe base64"),
        (b64(b"\xff\xfe"), "does not decode to a page position"),
        (b64(b"not json"), "does not decode to a page position"),
        (b64(b'{"k": 1}'), "does not decode to a page position"),
        (b64(b'["receipt", "1", "r1"]'), "does not decode to a page position"),
        (b64(b'["receipt", true, "r1"]'), "does not decode to a page position"),
        (b64(b'["receipt", 1]'), "does not decode to a page position"),
        (b64(b'["loan", 1, "L1"]'), "belongs to the 'loan' list, not to the 'receipt' list"),
    ],
)
def test_malformed_cursors_are_refused_precisely(views: Views, cursor: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        views.list_receipts(EVERYTHING, cursor=cursor)
    assert info.value.status == 400


def test_cursors_are_opaque_urlsafe_and_list_bound(views: Views) -> None:
    views.bulk_load("receipt", [rcpt(f"r/{i}+", 1000 + i) for i in range(3)])
    page = views.list_receipts(EVERYTHING, limit=1)
    assert page.next_cursor is not None
    assert set(page.next_cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    raw = base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4))
    assert json.loads(raw) == ["receipt", 1002, "r/2+"]
    with pytest.raises(BadRequest, match="belongs to the 'receipt' list"):
        views.list_loans(EVERYTHING, cursor=page.next_cursor)
    with pytest.raises(BadRequest, match="belongs to the 'receipt' list"):
        views.list_blocks(cursor=page.next_cursor)
    assert C.decode("receipt", C.encode("receipt", -5, "é")) == (-5, "é")


@pytest.fixture(scope="module")
def sqlite_views(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Views]:
    st_ = open_storage(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'cloud.db'}")
    st_.migrate()
    assert isinstance(st_, SqlStorage)
    yield Views(st_.engine)
    st_.close()


ROWS = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["s1", "s2"]), st.sampled_from(["a", "b"])),
    max_size=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS, limit=st.integers(1, 7), who=st.sampled_from(["s1", "s2", "all", "site-b"]))
def test_property_pages_concatenate_to_the_sorted_visible_rows(
    sqlite_views: Views, rows: list[tuple[int, str, str]], limit: int, who: str
) -> None:
    views = sqlite_views
    with views.engine.begin() as conn:
        conn.execute(sa.delete(T.receipts))
        conn.execute(sa.delete(T.parties))
    made = [rcpt(f"r{i:02d}", issued, holder, f"site-{site}") for i, (issued, holder, site)
            in enumerate(rows)]  # fmt: skip
    views.bulk_load("receipt", made)
    if who == "all":
        scope, visible = EVERYTHING, made
    elif who == "site-b":
        scope = Scope("nobody", sites=frozenset({"site-b"}))
        visible = [r for r in made if r.site == "site-b"]
    else:
        scope, visible = Scope(who), [r for r in made if r.holder == who]
    want = [r.no for r in sorted(visible, key=lambda r: (r.issued_ms, r.no), reverse=True)]
    got = list(pages(views, scope, limit))
    assert [no for page in got for no in page] == want
    assert all(len(page) == limit for page in got[:-1])
    assert len(got[-1]) <= limit


def test_pages_hold_while_another_thread_writes(views: Views) -> None:
    start = [rcpt(f"r{i:03d}", 1000 + (i // 3)) for i in range(30)]
    views.bulk_load("receipt", start)
    written = 0
    changed = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        nonlocal written
        try:
            for i in range(10_000):
                if stop.is_set():
                    return
                views.upsert_receipt(rcpt(f"w{i:04d}", 990 + i % 30))  # older, tying, newer
                with changed:
                    written += 1
                    changed.notify_all()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            with changed:
                changed.notify_all()

    def ahead(target: int) -> Callable[[], bool]:
        return lambda: written >= target or bool(errors)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    got: list[str] = []
    cursor = None
    try:
        while True:
            with changed:  # let the writer insert a few rows before each page
                assert changed.wait_for(ahead(written + 3), timeout=30)
            page = views.list_receipts(Scope("s1"), limit=4, cursor=cursor)
            got += [r.no for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors and not thread.is_alive()
    assert len(got) == len(set(got))
    assert [no for no in got if no.startswith("r")] == [
        r.no for r in sorted(start, key=lambda r: (r.issued_ms, r.no), reverse=True)
    ]
    assert any(no.startswith("w") for no in got)  # the writer's rows did show up meanwhile

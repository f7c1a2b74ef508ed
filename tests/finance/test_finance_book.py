"""The bank's account book: accounts, balanced postings, the hash chain, anchoring (also on a
real in-process consortium), crash recovery, concurrency, reconciliation and tampering, on
SQLite and PostgreSQL; the posting test vector of docs/formats.md ("Finance: book posting")."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.crypto import GM, INTL, cbor
from tally.finance.book import (
    AccountKey,
    AnchorFailed,
    Book,
    BookError,
    Draft,
    check_draft,
    consortium_anchor,
    credit,
    debit,
    disbursement,
    disposal,
    interest,
    margin_deposit,
    margin_return,
    posting_body,
    repayment,
    settlement,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
BANK = "bank-a"
T0 = 1_767_225_600_000


def K(org: str, purpose: str, currency: str = "CNY") -> AccountKey:
    return AccountKey(org, purpose, currency)


class FakeLedger:
    """Anchors hashes like anchoring.anchor_record: a hash anchored before is refused."""

    def __init__(self) -> None:
        self.records: dict[bytes, str] = {}
        self.calls = 0

    async def anchor(self, kind: str, h: bytes) -> None:
        self.calls += 1
        if h in self.records:
            raise RuntimeError(f"record {h.hex()[:16]}… is already anchored")
        self.records[h] = kind

    def is_anchored(self, h: bytes) -> bool:
        return self.records.get(h) == "posting"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'book.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_book(db_url: str) -> Iterator[Callable[..., Book]]:
    prefix = f"b{secrets.token_hex(4)}_"
    books: list[Book] = []

    def make(**kw: Any) -> Book:
        kw.setdefault("prefix", prefix)
        b = Book(db_url, BANK, **kw)
        books.append(b)
        return b

    yield make
    if books:
        books[0].store.drop()
    for b in books:
        b.close()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``cond()`` holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def clock() -> Callable[[], int]:
    t = [T0]

    def now() -> int:
        t[0] += 1000
        return t[0]

    return now


def open_world(book: Book, currency: str = "CNY") -> None:
    for org, purpose in [
        (BANK, "settlement"), (BANK, "interest_income"), ("sme", "loans"), ("sme", "deposit"),
        ("sme", "margin"), ("sme", "disposal"), ("seller", "deposit"),
    ]:  # fmt: skip
        book.open_account(org, purpose, currency)


def snapshot(book: Book) -> tuple[Any, ...]:
    head = book.store.read_head()
    return (head, [(a.key, a.debits, a.credits) for a in book.accounts()],
            [(p.id, p.hash, p.anchored) for p in book.postings()])  # fmt: skip


# -- the test vector ----------------------------------------------------------------------------


def _doc_vector() -> tuple[bytes, dict[str, str]]:
    text = DOC.read_text()
    found = re.search(r"^## \d+ Finance: book posting\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found is not None, "docs/formats.md has no 'Finance: book posting' section"
    section = found.group(1)
    block = re.search(r"```\n([0-9a-f\n]+)```", section)
    assert block is not None
    body = bytes.fromhex("".join(block.group(1).split()))
    intl, gm_part = section.split("`gm` book", 1)
    hashes = dict(re.findall(r"- (chain hash|anchor hash) `[^`]*`: `([0-9a-f]{64})`", intl))
    gm = re.findall(r"`([0-9a-f]{64})`", gm_part)
    hashes["gm chain"], hashes["gm anchor"] = gm[:2]
    return body, hashes


def test_the_documented_vector_is_what_the_code_encodes() -> None:
    body, hashes = _doc_vector()
    draft = disbursement(BANK, "L-2026-001", "sme-hz-01", "steel-sh", 100_000_000)
    lines = check_draft("disb-L-2026-001", draft)
    mine = posting_body(BANK, "intl", 0, bytes(32), "disb-L-2026-001", "disbursement", T0,
                        lines, draft.refs, "")  # fmt: skip
    assert mine == body and len(body) == 321
    salt = bytes(range(16))
    assert INTL.hash(body).hex() == hashes["chain hash"]
    assert INTL.hash(salt + body).hex() == hashes["anchor hash"]
    gm_body = posting_body(BANK, "gm", 0, bytes(32), "disb-L-2026-001", "disbursement", T0,
                           lines, draft.refs, "")  # fmt: skip
    assert gm_body == body[:-5] + cbor.encode("gm") and len(gm_body) == 319
    assert GM.hash(gm_body).hex() == hashes["gm chain"]
    assert GM.hash(salt + gm_body).hex() == hashes["gm anchor"]
    decoded = cbor.decode(body)
    assert decoded["lines"][0] == {"org": "sme-hz-01", "purpose": "loans", "currency": "CNY",
                                   "side": "debit", "amount": 100_000_000}  # fmt: skip


async def test_a_book_books_the_documented_vector(tmp_path: Path) -> None:
    body, hashes = _doc_vector()
    ledger = FakeLedger()
    book = Book(f"sqlite:///{tmp_path / 'b.db'}", BANK, anchor=ledger.anchor,
                clock=lambda: T0, salt=lambda: bytes(range(16)))  # fmt: skip
    try:
        book.open_account("sme-hz-01", "loans")
        book.open_account("steel-sh", "deposit")
        # lines given credit first: the book puts them in canonical order
        d = disbursement(BANK, "L-2026-001", "sme-hz-01", "steel-sh", 100_000_000)
        p = await book.post("disb-L-2026-001", Draft(d.kind, list(reversed(d.lines)), d.refs))
        assert p.body == body and p.hash.hex() == hashes["chain hash"]
        assert p.anchor_hash.hex() == hashes["anchor hash"] and p.anchored
        assert ledger.records == {p.anchor_hash: "posting"}
    finally:
        book.close()


# -- accounts -------------------------------------------------------------------------------


def test_accounts_open_once_with_their_normal_side(make_book: Callable[..., Book]) -> None:
    book = make_book()
    a = book.open_account("sme", "loans")
    assert (a.key.id, a.key.side, a.balance) == ("sme/loans/CNY", "debit", 0)
    assert book.open_account("sme", "loans") == a
    assert book.open_account("sme", "deposit", "USD").key.side == "credit"
    assert [x.key.id for x in book.accounts()] == ["sme/deposit/USD", "sme/loans/CNY"]
    bad = [
        (("sme", "loan", "CNY"), "account purpose 'loan' is not one of loans, deposit, margin, "
         "disposal, interest_income, settlement"),
        (("sme", "loans", "cny"), "account currency must be three capital letters (ISO 4217), "
         "got 'cny'"),
        (("a/b", "loans", "CNY"), "account org must not contain '/', got 'a/b'"),
        (("", "loans", "CNY"), "account org must be non-empty text of at most 200 characters, "
         "got ''"),
        (("sme", "settlement", "CNY"), "account sme/settlement/CNY: settlement accounts are the "
         "bank's own; the org must be 'bank-a'"),
    ]  # fmt: skip
    for args, msg in bad:
        with pytest.raises(BookError) as exc:
            book.open_account(*args)
        assert str(exc.value) == msg
    assert len(book.accounts()) == 2
    with pytest.raises(BookError, match=r"^account sme/margin/CNY is not open$"):
        book.balance("sme/margin/CNY")


def test_a_book_refuses_another_banks_tables(make_book: Callable[..., Book]) -> None:
    book = make_book()
    with pytest.raises(ValueError) as exc:
        Book(book.engine, "bank-b", prefix=book.store.head.name[: -len("head")])
    assert str(exc.value) == ("these tables hold the book of 'bank-a' (suite 'intl'), not of "
                              "'bank-b' (suite 'intl')")  # fmt: skip


# -- the standard postings ------------------------------------------------------------------


async def test_a_loan_lifecycle_balances_and_reconciles(make_book: Callable[..., Book]) -> None:
    ledger = FakeLedger()
    book = make_book(anchor=ledger.anchor, clock=clock())
    open_world(book)
    steps = [
        ("in-1", settlement(BANK, "sme", 50_000_00)),
        ("disb", disbursement(BANK, "L1", "sme", "seller", 1_000_000_00)),
        ("mar-in", margin_deposit(BANK, "L1", "sme", 20_000_00)),
        ("int-1", interest(BANK, "L1", "sme", 4_027_78)),
        ("rep-1", repayment(BANK, "L1", "sme", 10_000_00)),
        ("mar-out", margin_return(BANK, "L1", "sme", 5_000_00)),
        ("rep-2", repayment(BANK, "L1", "sme", 15_000_00, source="margin")),
        ("disp", disposal(BANK, "L1", "sme", "buyer-x", 1_000_000_00, 975_000_00, 1_234_56)),
        ("out-1", settlement(BANK, "sme", 23_765_44, incoming=False, source="disposal")),
    ]
    for n, (pid, draft) in enumerate(steps):
        p = await book.post(pid, draft)
        assert (p.seq, p.anchored, p.kind) == (n, True, draft.kind)
    assert {a.key.id: a.balance for a in book.accounts()} == {
        "bank-a/interest_income/CNY": 4_027_78 + 1_234_56,
        "bank-a/settlement/CNY": 50_000_00 + 1_000_000_00 - 23_765_44,
        "seller/deposit/CNY": 1_000_000_00,
        "sme/deposit/CNY": 50_000_00 - 20_000_00 - 4_027_78 - 10_000_00 + 5_000_00,
        "sme/disposal/CNY": 0,
        "sme/loans/CNY": 0,
        "sme/margin/CNY": 0,
    }
    ps = book.postings()
    assert [p.prev for p in ps] == [bytes(32)] + [p.hash for p in ps[:-1]]
    assert all(p.hash == INTL.hash(p.body) for p in ps)
    assert all(p.anchor_hash == INTL.hash(p.salt + p.body) and len(p.salt) == 16 for p in ps)
    assert len({p.salt for p in ps}) == len(ps)
    assert set(ledger.records) == {p.anchor_hash for p in ps}
    assert [p.id for p in book.postings(K("sme", "margin"))] == ["mar-in", "mar-out", "rep-2"]
    disp = book.posting("disp")
    assert disp is not None and [str(x) for x in disp.lines] == [
        "Dr bank-a/settlement/CNY 100000000", "Cr bank-a/interest_income/CNY 123456",
        "Cr sme/disposal/CNY 2376544", "Cr sme/loans/CNY 97500000",
    ]  # fmt: skip
    rep = book.reconcile(ledger.is_anchored)
    assert rep.clean, rep.discrepancies
    assert (rep.postings, rep.anchored) == (9, 9)
    d, c = rep.totals["CNY"]
    assert d == c and d > 0
    assert rep.balances["seller/deposit/CNY"] == 1_000_000_00


async def test_a_gm_book_chains_with_sm3(tmp_path: Path) -> None:
    ledger = FakeLedger()
    book = Book(f"sqlite:///{tmp_path / 'gm.db'}", BANK, suite="gm", anchor=ledger.anchor)
    try:
        open_world(book)
        p0 = await book.post("in", settlement(BANK, "sme", 100))
        p1 = await book.post("out", settlement(BANK, "sme", 40, incoming=False))
        assert p0.hash == GM.hash(p0.body) and p1.prev == p0.hash
        assert p1.anchor_hash == GM.hash(p1.salt + p1.body)
        assert cbor.decode(p1.body)["suite"] == "gm"
        assert book.reconcile(ledger.is_anchored).clean
    finally:
        book.close()


# -- refusals -------------------------------------------------------------------------------


async def test_an_unbalanced_posting_is_refused_and_changes_nothing(
    make_book: Callable[..., Book],
) -> None:
    ledger = FakeLedger()
    book = make_book(anchor=ledger.anchor)
    open_world(book)
    book.open_account("sme", "deposit", "USD")
    await book.post("in", settlement(BANK, "sme", 500_000))
    before = snapshot(book)
    cases = [
        (Draft("settlement", [debit(K("sme", "deposit"), 100000),
                              credit(K(BANK, "settlement"), 99999)]),
         "posting P does not balance in CNY: debits 100000, credits 99999"),
        (Draft("settlement", [debit(K("sme", "deposit"), 100), credit(K(BANK, "settlement"), 60),
                              credit(K("sme", "deposit", "USD"), 40)]),
         "posting P does not balance in CNY: debits 100, credits 60"),
    ]  # fmt: skip
    for draft, msg in cases:
        with pytest.raises(BookError) as exc:
            await book.post("P", draft)
        assert str(exc.value) == msg
    assert snapshot(book) == before and ledger.calls == 1
    assert book.reconcile(ledger.is_anchored).clean


async def test_posting_rules_are_enforced_precisely(make_book: Callable[..., Book]) -> None:
    ledger = FakeLedger()
    book = make_book(anchor=ledger.anchor)
    open_world(book)
    await book.post("in", settlement(BANK, "sme", 500))
    before = snapshot(book)
    to_self = disbursement(BANK, "L1", "sme", "seller", 100)
    to_self = Draft(to_self.kind, [to_self.lines[0], credit(K("sme", "deposit"), 100)],
                    to_self.refs)  # fmt: skip
    rep = repayment(BANK, "L1", "sme", 100)
    cases = [
        (Draft("gift", rep.lines, rep.refs), "posting P: kind 'gift' is not one of "
         "disbursement, repayment, interest, margin_deposit, margin_return, settlement, disposal"),
        (Draft("disbursement", to_self.lines, {"loan": "L1", "borrower": "sme"}),
         "posting P (disbursement): refs must name 'seller'"),
        (to_self, "posting P line 2: the entrusted payment must go to the seller 'seller', not "
         "to sme/deposit/CNY"),
        (Draft("repayment", [rep.lines[0], credit(K("sme", "deposit"), 100)], rep.refs),
         "posting P line 2: repayment may not credit deposit accounts (allowed: loans)"),
        (Draft("repayment", [rep.lines[0], credit(K("other", "loans"), 100)], rep.refs),
         "posting P line 2: account other/loans/CNY is not the borrower's ('sme')"),
        (Draft("settlement", [debit(K("sme", "deposit"), 0), credit(K(BANK, "settlement"), 0)]),
         "posting P line 1: amount must be a positive integer of minor units at most "
         "1000000000000000, got 0"),
        (Draft("settlement", [debit(K("sme", "deposit"), True),
                              credit(K(BANK, "settlement"), 1)]),
         "posting P line 1: amount must be a positive integer of minor units at most "
         "1000000000000000, got True"),
        (Draft("settlement", []), "posting P: no lines"),
        (settlement(BANK, "nobody", 100), "posting P: account nobody/deposit/CNY is not open"),
        (settlement(BANK, "sme", 501, incoming=False),
         "posting P would take sme/deposit/CNY below zero: balance 500, change -501"),
        (repayment(BANK, "L1", "sme", 100),
         "posting P would take sme/loans/CNY below zero: balance 0, change -100"),
        (Draft("settlement", settlement(BANK, "sme", 1).lines, {"x": ""}),
         "posting P: ref 'x' must be non-empty text of at most 200 characters, got ''"),
    ]  # fmt: skip
    for draft, msg in cases:
        with pytest.raises(BookError) as exc:
            await book.post("P", draft)
        assert str(exc.value) == msg
    with pytest.raises(BookError) as exc:
        await book.post("", settlement(BANK, "sme", 1))
    assert str(exc.value) == "posting id must be non-empty text of at most 200 characters, got ''"
    assert snapshot(book) == before and ledger.calls == 1


async def test_the_same_id_is_idempotent_and_other_content_refused(
    make_book: Callable[..., Book],
) -> None:
    ledger = FakeLedger()
    book = make_book(anchor=ledger.anchor)
    open_world(book)
    first = await book.post("in", settlement(BANK, "sme", 700))
    again = await book.post("in", settlement(BANK, "sme", 700))
    assert again == first and ledger.calls == 1 and len(book.postings()) == 1
    before = snapshot(book)
    with pytest.raises(BookError) as exc:
        await book.post("in", settlement(BANK, "sme", 701))
    assert str(exc.value) == (
        "posting in already exists (seq 0) with different content: lines [Dr "
        "bank-a/settlement/CNY 700, Cr sme/deposit/CNY 700], not [Dr bank-a/settlement/CNY "
        "701, Cr sme/deposit/CNY 701]"
    )
    other = Draft("settlement", settlement(BANK, "sme", 700).lines, {"customer": "x"}, "hi")
    with pytest.raises(BookError) as exc:
        await book.post("in", other)
    assert str(exc.value) == (
        "posting in already exists (seq 0) with different content: refs {'customer': 'sme'}, "
        "not {'customer': 'x'}; memo '', not 'hi'"
    )
    assert snapshot(book) == before and book.balance("sme/deposit/CNY") == 700


# -- anchoring and crashes ------------------------------------------------------------------


async def test_a_failed_anchor_leaves_the_posting_pending(make_book: Callable[..., Book]) -> None:
    ledger = FakeLedger()
    down = True

    async def flaky(kind: str, h: bytes) -> None:
        if down:
            raise ConnectionError("ledger unreachable")
        await ledger.anchor(kind, h)

    book = make_book(anchor=flaky)
    open_world(book)
    with pytest.raises(AnchorFailed) as exc:
        await book.post("in", settlement(BANK, "sme", 900))
    assert str(exc.value) == ("posting in (seq 0) is booked but not anchored: ConnectionError: "
                              "ledger unreachable; anchor_pending() retries it")  # fmt: skip
    assert exc.value.posting.anchored is False
    assert book.balance("sme/deposit/CNY") == 900  # booked
    assert [p.id for p in book.pending()] == ["in"]
    rep = book.reconcile()
    assert rep.discrepancies == ["posting in (seq 0) is pending: not anchored yet"]
    rep = book.reconcile(ledger.is_anchored)
    assert rep.discrepancies == [
        f"posting in (seq 0) is not anchored: the ledger has no record/"
        f"{exc.value.posting.anchor_hash.hex()} (pending)"
    ]
    with pytest.raises(BookError, match=r"^1 posting\(s\) still pending: posting in \(seq 0\)"):
        await book.anchor_pending()
    down = False
    done = await book.anchor_pending()
    assert [p.id for p in done] == ["in"] and done[0].anchored
    assert book.pending() == [] and book.reconcile(ledger.is_anchored).clean
    # a retry of the same id now returns the anchored posting without anchoring again
    calls = ledger.calls
    assert (await book.post("in", settlement(BANK, "sme", 900))).anchored
    assert ledger.calls == calls


async def test_an_interrupted_post_is_anchored_by_a_later_process(
    make_book: Callable[..., Book],
) -> None:
    started = asyncio.Event()

    async def hang(kind: str, h: bytes) -> None:
        started.set()
        await asyncio.Event().wait()

    book = make_book(anchor=hang)
    open_world(book)
    task = asyncio.create_task(book.post("in", settlement(BANK, "sme", 900)))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ledger = FakeLedger()
    later = make_book(anchor=ledger.anchor)  # a fresh process on the same tables
    assert [p.id for p in later.pending()] == ["in"]
    assert later.balance("sme/deposit/CNY") == 900
    assert [p.id for p in await later.anchor_pending()] == ["in"]
    assert later.reconcile(ledger.is_anchored).clean and later.pending() == []


async def test_a_posting_the_ledger_took_before_a_crash_is_only_marked(
    make_book: Callable[..., Book],
) -> None:
    ledger = FakeLedger()

    async def took_then_crashed(kind: str, h: bytes) -> None:
        await ledger.anchor(kind, h)
        raise TimeoutError("no answer")

    book = make_book(anchor=took_then_crashed)
    open_world(book)
    with pytest.raises(AnchorFailed):
        await book.post("in", settlement(BANK, "sme", 10))
    assert book.reconcile(ledger.is_anchored).discrepancies == [
        "posting in (seq 0) is anchored on the ledger but marked pending"
    ]
    book.anchor = ledger.anchor
    assert [p.id for p in await book.anchor_pending(ledger.is_anchored)] == ["in"]
    assert ledger.calls == 1  # not submitted again
    assert book.reconcile(ledger.is_anchored).clean


async def test_a_retry_during_anchoring_waits_for_it(make_book: Callable[..., Book]) -> None:
    ledger = FakeLedger()
    release, started = asyncio.Event(), asyncio.Event()

    async def slow(kind: str, h: bytes) -> None:
        started.set()
        await release.wait()
        await ledger.anchor(kind, h)

    class Seen(dict[int, asyncio.Event]):
        hits = 0

        def get(self, key: int, default: Any = None) -> Any:
            got = super().get(key, default)
            Seen.hits += got is not None
            return got

    book = make_book(anchor=slow)
    book._inflight = Seen()
    open_world(book)
    first = asyncio.create_task(book.post("in", settlement(BANK, "sme", 5)))
    await asyncio.wait_for(started.wait(), 10)
    retry = asyncio.create_task(book.post("in", settlement(BANK, "sme", 5)))
    await until(lambda: Seen.hits == 1)  # the retry found the anchoring in flight
    release.set()
    a, b = await asyncio.wait_for(asyncio.gather(first, retry), 10)
    assert a.anchored and b.anchored and a.hash == b.hash and ledger.calls == 1
    assert book.reconcile(ledger.is_anchored).clean


CRASH = textwrap.dedent(
    """
    import asyncio, os, sys
    from tally.finance.book import Book, settlement

    async def crash(kind, h):
        os._exit(17)  # the process dies after the commit, before marking the anchor

    async def main():
        b = Book(sys.argv[1], "bank-a", anchor=crash)
        b.open_account("bank-a", "settlement")
        b.open_account("sme", "deposit")
        await b.post("in", settlement("bank-a", "sme", 1234))

    asyncio.run(main())
    """
)


async def test_a_process_killed_between_booking_and_anchoring(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    r = subprocess.run([sys.executable, "-c", CRASH, url], capture_output=True, timeout=120)
    assert r.returncode == 17, r.stderr.decode()
    ledger = FakeLedger()
    book = Book(url, BANK, anchor=ledger.anchor)
    try:
        assert book.balance("sme/deposit/CNY") == 1234
        assert [(p.id, p.anchored) for p in book.pending()] == [("in", False)]
        assert book.reconcile().discrepancies == ["posting in (seq 0) is pending: not anchored yet"]
        await book.anchor_pending()
        assert book.reconcile(ledger.is_anchored).clean
    finally:
        book.close()


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_posts_on_one_account_keep_balances_exact(
    make_book: Callable[..., Book],
) -> None:
    ledger = FakeLedger()
    a = make_book(anchor=ledger.anchor)
    b = make_book(anchor=ledger.anchor)  # a second process on the same tables
    open_world(a)
    await a.post("fund", settlement(BANK, "sme", 1000))
    ins = [(a, b)[i % 2].post(f"in-{i}", settlement(BANK, "sme", 7)) for i in range(20)]
    outs = [(b, a)[i % 2].post(f"out-{i}", settlement(BANK, "sme", 100, incoming=False))
            for i in range(20)]  # fmt: skip
    got = await asyncio.gather(*ins, *outs, return_exceptions=True)
    done = [g for g in got if not isinstance(g, BaseException)]
    refused = [g for g in got if isinstance(g, BaseException)]
    assert all(isinstance(e, BookError) and "below zero" in str(e) for e in refused)
    outs_done = sum(1 for p in done if p.id.startswith("out-"))
    assert len(done) == 20 + outs_done and 10 <= outs_done <= 11
    assert a.balance("sme/deposit/CNY") == 1000 + 20 * 7 - 100 * outs_done >= 0
    assert sorted(p.seq for p in a.postings()) == list(range(1 + len(done)))
    rep = b.reconcile(ledger.is_anchored)
    assert rep.clean, rep.discrepancies
    assert rep.balances["sme/deposit/CNY"] == a.balance("sme/deposit/CNY")


# -- reconciliation and tampering -----------------------------------------------------------


def _tamper(book: Book, table: str, where: Any, **values: Any) -> None:
    t = getattr(book.store, table)
    with book.engine.begin() as conn:
        conn.execute(sa.update(t).where(where(t)).values(**values))


async def test_tampering_is_reported_precisely(make_book: Callable[..., Book]) -> None:
    ledger = FakeLedger()
    book = make_book(anchor=ledger.anchor, clock=clock())
    open_world(book)
    await book.post("in", settlement(BANK, "sme", 1000))
    p1 = await book.post("out", settlement(BANK, "sme", 300, incoming=False))
    await book.post("in-2", settlement(BANK, "sme", 50))
    assert book.reconcile(ledger.is_anchored).clean
    # a balance rewritten
    _tamper(book, "accounts", lambda t: t.c.id == "sme/deposit/CNY", credits=1051)
    assert book.reconcile(ledger.is_anchored).discrepancies == [
        "account sme/deposit/CNY: stored debits 300, credits 1051 (balance 751); its postings "
        "give debits 300, credits 1050 (balance 750)",
        "the stored accounts in CNY do not balance: debits 1350, credits 1351",
    ]
    _tamper(book, "accounts", lambda t: t.c.id == "sme/deposit/CNY", credits=1050)
    # a body rewritten with its stored hashes: the chain and the ledger catch it
    m = cbor.decode(p1.body)
    for line in m["lines"]:
        line["amount"] = 30
    forged = cbor.encode(m)
    _tamper(book, "postings", lambda t: t.c.id == "out", body=forged, hash=INTL.hash(forged),
            anchor=INTL.hash(p1.salt + forged))  # fmt: skip
    got = book.reconcile(ledger.is_anchored).discrepancies
    assert got[0] == (f"posting out (seq 1) is not anchored: the ledger has no record/"
                      f"{INTL.hash(p1.salt + forged).hex()} (anchored)")  # fmt: skip
    assert got[1].startswith("posting in-2 (seq 2) does not chain: its prev is ")
    assert got[2:] == [
        "account bank-a/settlement/CNY: stored debits 1050, credits 300 (balance 750); its "
        "postings give debits 1050, credits 30 (balance 1020)",
        "account sme/deposit/CNY: stored debits 300, credits 1050 (balance 750); its postings "
        "give debits 30, credits 1050 (balance 1020)",
    ]
    _tamper(book, "postings", lambda t: t.c.id == "out", body=p1.body, hash=p1.hash,
            anchor=p1.anchor_hash)  # fmt: skip
    assert book.reconcile(ledger.is_anchored).clean
    # a column rewritten, a body byte flipped, a row deleted
    _tamper(book, "postings", lambda t: t.c.id == "out", kind="interest")
    assert book.reconcile(ledger.is_anchored).discrepancies == [
        "posting out (seq 1): the stored kind 'interest' differs from the body's 'settlement'"
    ]
    _tamper(book, "postings", lambda t: t.c.id == "out", kind="settlement")
    _tamper(book, "postings", lambda t: t.c.id == "out", salt=bytes(16))
    assert book.reconcile(ledger.is_anchored).discrepancies == [
        "posting out (seq 1): the stored anchor hash is not H(salt || body)"
    ]
    _tamper(book, "postings", lambda t: t.c.id == "out", salt=p1.salt)
    postings = book.store.postings
    with book.engine.begin() as conn:
        conn.execute(sa.delete(postings).where(postings.c.id == "out"))
    got = book.reconcile(ledger.is_anchored).discrepancies
    assert got[0] == "posting in-2 (seq 2): the postings of seq 1 to 1 are missing"
    assert got[1].startswith("posting in-2 (seq 2) does not chain")
    assert got[2].startswith("account bank-a/settlement/CNY: stored debits 1050, credits 300")
    with book.engine.begin() as conn:
        conn.execute(sa.delete(postings).where(postings.c.id == "in-2"))
    first = book.postings()[0]
    got = book.reconcile(ledger.is_anchored).discrepancies
    head = book.store.read_head().hash.hex()[:16]
    assert got[0] == (f"the head says 3 postings ending in {head}…, the chain has 1 ending in "
                      f"{first.hash.hex()[:16]}…")  # fmt: skip


# -- property: random postings ------------------------------------------------------------------

CUSTOMERS = ["c1", "c2", "c3"]
CURRENCIES = ["CNY", "USD"]


@dataclass
class Op:
    kind: str  # "in", "out" or "move"
    a: str
    b: str
    currency: str
    amount: int


ops = st.builds(
    Op,
    st.sampled_from(["in", "out", "move"]),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(CURRENCIES),
    st.integers(1, 5000),
)
incoming = st.builds(
    Op,
    st.just("in"),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(CURRENCIES),
    st.integers(1, 5000),
)
"""Money arriving only (generated directly: filtering ``ops`` would discard two thirds)."""


def _draft(op: Op) -> Draft:
    if op.kind == "in":
        return settlement(BANK, op.a, op.amount, op.currency)
    if op.kind == "out":
        return settlement(BANK, op.a, op.amount, op.currency, incoming=False)
    src, dst = K(op.a, "deposit", op.currency), K(op.b, "deposit", op.currency)
    half = op.amount // 2
    if not half:
        return Draft("settlement", [debit(src, op.amount), credit(dst, op.amount)])
    ours = K(BANK, "settlement", op.currency)
    lines = [debit(src, op.amount), credit(dst, half), credit(ours, op.amount - half)]
    return Draft("settlement", lines)


async def _run(url: str, seq: list[Op]) -> tuple[Book, FakeLedger, dict[str, int]]:
    ledger = FakeLedger()
    book = Book(url, BANK, anchor=ledger.anchor)
    for cur in CURRENCIES:
        book.open_account(BANK, "settlement", cur)
        for c in CUSTOMERS:
            book.open_account(c, "deposit", cur)
    model: dict[str, int] = {}
    for i, op in enumerate(seq):
        draft = _draft(op)
        after = dict(model)
        for ln in draft.lines:
            sign = 1 if ln.side == ln.account.side else -1
            after[ln.account.id] = after.get(ln.account.id, 0) + sign * ln.amount
        overdrawn = any(v < 0 for k, v in after.items() if "/deposit/" in k)
        try:
            await book.post(f"p{i}", draft)
            assert not overdrawn
            model = after
        except BookError as exc:
            assert overdrawn, str(exc)
            assert "below zero" in str(exc)
    return book, ledger, model


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=25))
def test_random_postings_keep_the_book_balanced(seq: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as d:
        book, ledger, model = asyncio.run(_run(f"sqlite:///{d}/p.db", seq))
        try:
            rep = book.reconcile(ledger.is_anchored)
            assert rep.clean, rep.discrepancies
            for cur, (dr, cr) in rep.totals.items():
                assert dr == cr, cur
            accts = book.accounts()
            for cur in CURRENCIES:
                dr = sum(a.debits for a in accts if a.key.currency == cur)
                assert dr == sum(a.credits for a in accts if a.key.currency == cur)
            assert {a.key.id: a.balance for a in accts if a.balance} == {
                k: v for k, v in model.items() if v
            }
            assert rep.postings == len(book.postings()) == rep.anchored
        finally:
            book.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(incoming, min_size=2, max_size=8),
    st.data(),
)
def test_tampering_with_any_row_or_balance_is_detected(seq: list[Op], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        book, ledger, _ = asyncio.run(_run(f"sqlite:///{d}/p.db", seq))
        try:
            ps = book.postings()
            victim = data.draw(st.sampled_from(ps))
            what = data.draw(st.sampled_from(["amount", "balance", "t", "flip", "salt"]))
            if what == "balance":
                acct = data.draw(st.sampled_from([a for a in book.accounts() if a.debits]))
                delta = data.draw(st.integers(1, 10**6))
                _tamper(book, "accounts", lambda t: t.c.id == acct.key.id,
                        debits=acct.debits + delta)  # fmt: skip
                expect = f"account {acct.key.id}: stored debits {acct.debits + delta}, "
            elif what == "amount":
                m = cbor.decode(victim.body)
                bump = data.draw(st.integers(1, 10**6))
                for line in m["lines"]:
                    line["amount"] += bump
                forged = cbor.encode(m)
                _tamper(book, "postings", lambda t: t.c.seq == victim.seq, body=forged)
                expect = f"posting {victim.id} (seq {victim.seq}): the stored hash "
            elif what == "t":
                _tamper(book, "postings", lambda t: t.c.seq == victim.seq, t=victim.t + 1)
                expect = (f"posting {victim.id} (seq {victim.seq}): the stored t {victim.t + 1} "
                          f"differs from the body's {victim.t}")  # fmt: skip
            elif what == "flip":
                i = data.draw(st.integers(0, len(victim.body) - 1))
                flipped = bytearray(victim.body)
                flipped[i] ^= 1 << data.draw(st.integers(0, 7))
                _tamper(book, "postings", lambda t: t.c.seq == victim.seq, body=bytes(flipped))
                expect = f"posting {victim.id} (seq {victim.seq}): the stored hash "
            else:
                _tamper(book, "postings", lambda t: t.c.seq == victim.seq, salt=bytes(16))
                expect = f"posting {victim.id} (seq {victim.seq}): the stored anchor hash is not"
            rep = book.reconcile(ledger.is_anchored)
            assert any(x.startswith(expect) for x in rep.discrepancies), rep.discrepancies
        finally:
            book.close()


# -- on a real consortium -------------------------------------------------------------------


@pytest.fixture
async def consortium(tmp_path: Path) -> AsyncIterator[Any]:
    from tally.ledger.consortium import Consortium
    from tally.ledger.contract import Registry
    from tally.ledger.contracts import system_contracts
    from tally.ledger.genesis import Ordering

    c = await Consortium.create(
        tmp_path / "chain",
        members=[(BANK, ["bank"]), ("wh", ["warehouse"]), ("reg", ["regulator"])],
        policies={"anchoring.*": f"2-OF(org:{BANK}, org:wh, org:reg)"},
        quorum=2,
        ordering=Ordering("solo", 10, 5),
        contracts=Registry(*system_contracts()),
    )
    try:
        yield c
    finally:
        await c.close()


async def test_postings_are_anchored_on_the_consortium(consortium: Any, tmp_path: Path) -> None:
    from tally.finance.book import anchored_in

    anchor = consortium_anchor(consortium, BANK)
    book = Book(f"sqlite:///{tmp_path / 'b.db'}", BANK, anchor=anchor)
    try:
        open_world(book)
        p0 = await book.post("in", settlement(BANK, "sme", 5000))
        p1 = await book.post("disb", disbursement(BANK, "L1", "sme", "seller", 200_000))
        assert p0.anchored and p1.anchored
        row = book.store.posting("disb")
        assert row is not None and row.anchor_tx is not None and len(row.anchor_tx) == 32
        on_chain = anchored_in(consortium.peers["wh"].state)
        await consortium.wait_for(lambda: on_chain(p0.anchor_hash) and on_chain(p1.anchor_hash))
        assert not on_chain(p1.hash)  # only the salted hash is on chain
        rep = book.reconcile(on_chain)
        assert rep.clean and rep.anchored == 2
        with pytest.raises(BookError) as exc:
            await anchor("posting", p1.anchor_hash)
        assert str(exc.value) == (
            f"anchoring posting {p1.anchor_hash.hex()} was not valid: contract_error: record "
            f"{p1.anchor_hash.hex()[:16]}… is already anchored (kind 'posting')"
        )
        # a posting booked while the ledger was away shows up until anchored
        book.anchor = None
        with pytest.raises(AnchorFailed, match="the book has no anchor"):
            await book.post("int", interest(BANK, "L1", "sme", 300))
        pending = book.posting("int")
        assert pending is not None
        assert book.reconcile(on_chain).discrepancies == [
            f"posting int (seq 2) is not anchored: the ledger has no record/"
            f"{pending.anchor_hash.hex()} (pending)"
        ]
        book.anchor = anchor
        await book.anchor_pending(on_chain)
        await consortium.wait_for(lambda: on_chain(pending.anchor_hash))
        assert book.reconcile(on_chain).clean
    finally:
        book.close()

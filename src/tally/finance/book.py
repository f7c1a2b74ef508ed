"""The bank's double-entry account book, each posting hash-chained and anchored on the chain.

Money stays off chain at the bank; the chain holds, for every posting, only its salted hash
``H(salt || posting bytes)`` (``anchoring.anchor_record("posting", h)``), so a party shown a
posting and its salt can check that it was booked, and nobody else learns anything from the
chain. Formats, chart of accounts and standard postings: ``docs/finance-book.md``,
the posting format ``docs/formats.md`` §32.

This module holds :class:`Book` and its anchoring (:func:`consortium_anchor`,
:func:`anchored_in`). The rules of accounts, kinds, drafts and the posting body are in
:mod:`tally.finance.book_rules`, the standard posting builders in
:mod:`tally.finance.book_postings`, the reconciliation (:meth:`Book.reconcile`,
:class:`ReconcileReport`) in :mod:`tally.finance.book_reconcile`; all are re-exported here.

* A posting is a checked draft (:func:`check_draft`) booked under a caller-named id. Its body
  names the previous posting's hash, so all postings form one chain; the suite's hash (SHA-256
  for ``intl``, SM3 for ``gm``) is used throughout. A random 16-byte salt is kept with the
  posting, off chain.
* Booking is atomic (:mod:`tally.finance.book_store`) and anchoring follows it: a posting whose
  anchoring failed or was interrupted stays ``pending`` until :meth:`Book.anchor_pending`.
* Posting an existing id with the same kind, lines, refs and memo returns the booked posting;
  anything different is refused, saying what differs.
* :meth:`Book.reconcile` recomputes every balance from the posting bodies, checks the chain,
  the stored hashes and (told what the ledger holds) the anchors, and lists each discrepancy.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from tally.crypto import Suite, get_suite
from tally.finance.book_postings import (
    disbursement,
    disposal,
    interest,
    margin_deposit,
    margin_return,
    repayment,
    settlement,
)
from tally.finance.book_reconcile import IsAnchored, ReconcileReport
from tally.finance.book_reconcile import reconcile as reconcile_book
from tally.finance.book_rules import (
    CREDIT,
    DEBIT,
    KINDS,
    MAX_AMOUNT,
    PURPOSES,
    VERSION,
    Account,
    AccountKey,
    BookError,
    Draft,
    Line,
    Purpose,
    Rule,
    check_draft,
    check_text,
    credit,
    debit,
    decode_body,
    describe,
    posting_body,
)
from tally.finance.book_store import (
    ANCHORED,
    PENDING,
    AccountRow,
    BookStore,
    PostingRow,
    make_engine,
)
from tally.ledger.consortium import TxResult
from tally.ledger.contracts.keys import record_key
from tally.ledger.state import StateView

__all__ = [
    "CREDIT",
    "DEBIT",
    "KINDS",
    "MAX_AMOUNT",
    "PURPOSES",
    "SALT_SIZE",
    "VERSION",
    "Account",
    "AccountKey",
    "Anchor",
    "AnchorFailed",
    "Book",
    "BookError",
    "Draft",
    "IsAnchored",
    "Line",
    "Posting",
    "Purpose",
    "ReconcileReport",
    "Rule",
    "Submitter",
    "anchored_in",
    "check_draft",
    "consortium_anchor",
    "credit",
    "debit",
    "decode_body",
    "describe",
    "disbursement",
    "disposal",
    "interest",
    "margin_deposit",
    "margin_return",
    "posting_body",
    "repayment",
    "settlement",
]

SALT_SIZE = 16

Anchor = Callable[[str, bytes], Awaitable[Any]]
"""Anchors a salted hash on the chain: ``await anchor("posting", h)``; raises when refused."""


class AnchorFailed(BookError):
    """The posting is booked, but anchoring it failed; it stays pending."""

    def __init__(self, posting: Posting, reason: str) -> None:
        super().__init__(
            f"posting {posting.id} (seq {posting.seq}) is booked but not anchored: {reason}; "
            "anchor_pending() retries it"
        )
        self.posting = posting


@dataclass(frozen=True)
class Posting:
    seq: int
    id: str
    kind: str
    t: int
    lines: tuple[Line, ...]
    refs: dict[str, str]
    memo: str
    prev: bytes
    hash: bytes
    """The suite hash of :attr:`body` (what the next posting's ``prev`` names)."""
    salt: bytes
    anchor_hash: bytes
    """``H(salt || body)``: what is anchored on the chain."""
    anchored: bool
    body: bytes


def anchored_in(state: StateView) -> IsAnchored:
    """Whether a salted hash is anchored as a posting, read from a peer's world state."""

    def is_anchored(h: bytes) -> bool:
        got = state.get(record_key(h))
        return got is not None and got[0].get("kind") == "posting"

    return is_anchored


class Submitter(Protocol):
    async def submit(
        self, contract: str, fn: str, args: Sequence[Any], creator: str
    ) -> TxResult: ...


def consortium_anchor(consortium: Submitter, creator: str) -> Anchor:
    """An :data:`Anchor` submitting ``anchoring.anchor_record`` as member ``creator``."""

    async def anchor(kind: str, h: bytes) -> TxResult:
        r = await consortium.submit("anchoring", "anchor_record", [kind, h], creator=creator)
        if not r.valid:
            raise BookError(
                f"anchoring {kind} {h.hex()} was not valid: {r.code}: {r.error or r.reason}"
            )
        return r

    return anchor


def _posting(row: PostingRow) -> Posting:
    m = decode_body(row.body)
    return Posting(row.seq, row.id, row.kind, row.t, tuple(m["lines"]), m["refs"], m["memo"],
                   m["prev"], row.hash, row.salt, row.anchor, row.state == ANCHORED,
                   row.body)  # fmt: skip


class Book:
    """One bank's book in SQL tables (``db``: a SQLite/PostgreSQL URL or an engine), created
    when missing. ``anchor`` anchors each posting's salted hash (:func:`consortium_anchor`)."""

    def __init__(
        self,
        db: str | Engine,
        bank: str,
        *,
        suite: str | Suite = "intl",
        prefix: str = "book_",
        anchor: Anchor | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        salt: Callable[[], bytes] = lambda: secrets.token_bytes(SALT_SIZE),
    ) -> None:
        self.bank = check_text(bank, "bank")
        self.suite = get_suite(suite) if isinstance(suite, str) else suite
        self.zero = bytes(len(self.suite.hash(b"")))
        self.engine = make_engine(db) if isinstance(db, str) else db
        self.store = BookStore(self.engine, prefix)
        self.store.create(bank, self.suite.name, self.zero)
        self.anchor = anchor
        self.clock = clock
        self.salt = salt
        self._inflight: dict[int, asyncio.Event] = {}

    def close(self) -> None:
        self.engine.dispose()

    # -- accounts --------------------------------------------------------------------------
    def open_account(self, org: str, purpose: str, currency: str = "CNY") -> Account:
        """Open an account (or return the open one); its side follows its purpose."""
        key = AccountKey(org, purpose, currency)
        if PURPOSES[purpose].bank_own and org != self.bank:
            raise BookError(
                f"account {key}: {purpose} accounts are the bank's own; the org "
                f"must be {self.bank!r}"
            )
        row = self.store.open_account(AccountRow(key.id, org, purpose, currency, key.side, 0, 0))
        return Account(key, row.debits, row.credits)

    def account(self, key: AccountKey | str) -> Account | None:
        k = AccountKey.parse(key) if isinstance(key, str) else key
        row = self.store.account(k.id)
        return None if row is None else Account(k, row.debits, row.credits)

    def balance(self, key: AccountKey | str) -> int:
        """The account's balance on its normal side; BookError if it is not open."""
        acct = self.account(key)
        if acct is None:
            raise BookError(f"account {key} is not open")
        return acct.balance

    def accounts(self) -> list[Account]:
        return [
            Account(AccountKey(r.org, r.purpose, r.currency), r.debits, r.credits)
            for r in self.store.all_accounts()
        ]

    # -- postings --------------------------------------------------------------------------
    def posting(self, posting_id: str) -> Posting | None:
        row = self.store.posting(posting_id)
        return None if row is None else _posting(row)

    def postings(self, account: AccountKey | None = None) -> list[Posting]:
        """Every posting in chain order (only those with a line on ``account`` if given)."""
        out = [_posting(r) for r in self.store.all_postings()]
        return [p for p in out if account is None or any(ln.account == account for ln in p.lines)]

    def pending(self) -> list[Posting]:
        return [_posting(r) for r in self.store.all_postings(PENDING)]

    async def post(self, posting_id: str, draft: Draft) -> Posting:
        """Book ``draft`` as ``posting_id`` (or return the same posting booked before), then
        anchor it. Raises BookError if refused (nothing changed), AnchorFailed if booked but
        not anchored."""
        posting = await asyncio.to_thread(self._write, posting_id, draft)
        return posting if posting.anchored else await self._anchor(posting)

    def _write(self, posting_id: str, draft: Draft) -> Posting:
        lines = check_draft(posting_id, draft)
        refs = dict(sorted(draft.refs.items()))
        name = f"posting {posting_id}"

        def build(
            seq: int, prev: bytes, accounts: Mapping[str, AccountRow]
        ) -> tuple[PostingRow, dict[str, tuple[int, int]]]:
            deltas: dict[str, tuple[int, int]] = {}
            for ln in lines:
                d, c = deltas.get(ln.account.id, (0, 0))
                deltas[ln.account.id] = (
                    (d + ln.amount, c) if ln.side == DEBIT else (d, c + ln.amount)
                )
            for aid, (d, c) in sorted(deltas.items()):
                row = accounts.get(aid)
                if row is None:
                    raise BookError(f"{name}: account {aid} is not open")
                acct = Account(AccountKey.parse(aid), row.debits, row.credits)
                after = Account(acct.key, row.debits + d, row.credits + c)
                if not PURPOSES[acct.key.purpose].bank_own and after.balance < 0:
                    raise BookError(
                        f"{name} would take {aid} below zero: balance {acct.balance}, "
                        f"change {after.balance - acct.balance}"
                    )
            salt = self.salt()
            if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
                raise BookError(f"{name}: the salt must be {SALT_SIZE} bytes")
            t = self.clock()
            body = posting_body(self.bank, self.suite.name, seq, prev, posting_id, draft.kind,
                                t, lines, refs, draft.memo)  # fmt: skip
            h, anchor = self.suite.hash(body), self.suite.hash(salt + body)
            return PostingRow(
                seq, posting_id, draft.kind, t, body, h, salt, anchor, PENDING, None
            ), deltas

        row, new = self.store.write(posting_id, [ln.account.id for ln in lines], build)
        got = _posting(row)
        if not new:
            diffs = [
                f"{what} {old}, not {want}"
                for what, old, want in (
                    ("kind", repr(got.kind), repr(draft.kind)),
                    ("lines", f"[{describe(got.lines)}]", f"[{describe(lines)}]"),
                    ("refs", repr(got.refs), repr(refs)),
                    ("memo", repr(got.memo), repr(draft.memo)),
                )
                if old != want
            ]
            if diffs:
                raise BookError(
                    f"{name} already exists (seq {got.seq}) with different content: "
                    + "; ".join(diffs)
                )
        return got

    # -- anchoring -------------------------------------------------------------------------
    async def _anchor(self, posting: Posting) -> Posting:
        busy = self._inflight.get(posting.seq)
        if busy is not None:  # another caller of this book is anchoring it: wait for it
            await busy.wait()
            again = self.posting(posting.id)
            if again is not None and again.anchored:
                return again
            raise AnchorFailed(posting, "a concurrent attempt to anchor it did not complete")
        if self.anchor is None:
            raise AnchorFailed(posting, "the book has no anchor")
        done = self._inflight[posting.seq] = asyncio.Event()
        try:
            try:
                result = await self.anchor("posting", posting.anchor_hash)
            except Exception as exc:
                raise AnchorFailed(posting, f"{type(exc).__name__}: {exc}") from exc
            tx = getattr(result, "tx_id", None)
            tx = tx if isinstance(tx, bytes) else None
            await asyncio.to_thread(self.store.mark_anchored, posting.seq, tx)
            return replace(posting, anchored=True)
        finally:
            del self._inflight[posting.seq]
            done.set()

    async def anchor_pending(self, is_anchored: IsAnchored | None = None) -> list[Posting]:
        """Anchor every pending posting, in chain order; return those now anchored. One that
        ``is_anchored`` says the ledger holds already is only marked anchored. Raises
        BookError naming those still pending (after trying them all)."""
        done: list[Posting] = []
        failed: list[str] = []
        for posting in await asyncio.to_thread(self.pending):
            if is_anchored is not None and is_anchored(posting.anchor_hash):
                await asyncio.to_thread(self.store.mark_anchored, posting.seq, None)
                done.append(replace(posting, anchored=True))
                continue
            try:
                done.append(await self._anchor(posting))
            except AnchorFailed as exc:
                failed.append(str(exc))
        if failed:
            raise BookError(f"{len(failed)} posting(s) still pending: " + " | ".join(failed))
        return done

    # -- reconciliation --------------------------------------------------------------------
    def reconcile(self, is_anchored: IsAnchored | None = None) -> ReconcileReport:
        """Recompute every balance from the posting bodies and check the book
        (:func:`tally.finance.book_reconcile.reconcile`). Without ``is_anchored`` a posting
        counts as anchored when marked so."""
        return reconcile_book(self.store, self.suite, self.bank, self.zero, is_anchored)

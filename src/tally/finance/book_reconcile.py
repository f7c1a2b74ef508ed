"""Reconciling the bank's account book (:mod:`tally.finance.book`) against its own postings.

:func:`reconcile` (what :meth:`tally.finance.book.Book.reconcile` runs) reads every stored
posting in chain order and recomputes, from the posting bodies alone, each account's debits,
credits and balance; it checks the sequence numbers, the stored hash and anchor hash of each
posting against its body, the chain of ``prev`` hashes up to the stored head, the stored fields
against the body's, each draft against the book's rules (:mod:`tally.finance.book_rules`),
the stored account rows against the recomputed sums and that each currency balances, and —
given :data:`IsAnchored` (what the ledger holds) — that every posting is anchored. The
:class:`ReconcileReport` lists every discrepancy as a sentence; nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tally.crypto import Suite
from tally.finance.book_rules import (
    CREDIT,
    Account,
    AccountKey,
    BookError,
    Draft,
    check_draft,
    decode_body,
)
from tally.finance.book_store import ANCHORED, BookStore, PostingRow
from tally.ledger.contracts.keys import record_key

__all__ = ["IsAnchored", "ReconcileReport", "reconcile"]

IsAnchored = Callable[[bytes], bool]
"""Tells whether a salted hash is anchored on the chain (see
:func:`tally.finance.book.anchored_in`)."""


def _hex(h: bytes) -> str:
    return h.hex()[:16] + "…"


@dataclass
class ReconcileReport:
    """What :meth:`tally.finance.book.Book.reconcile` found: counts, balances recomputed from
    the postings (normal side, by account id), debit and credit totals per currency, and every
    discrepancy."""

    postings: int = 0
    anchored: int = 0
    balances: dict[str, int] = field(default_factory=dict)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    discrepancies: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies


def reconcile(
    store: BookStore, suite: Suite, bank: str, zero: bytes, is_anchored: IsAnchored | None = None
) -> ReconcileReport:
    """Recompute every balance from the posting bodies and check the book (see the module
    docstring). Without ``is_anchored`` a posting counts as anchored when marked so."""
    rep = ReconcileReport()
    out = rep.discrepancies
    sums: dict[str, list[int]] = {}
    prev = zero
    for row in store.all_postings():
        name = f"posting {row.id} (seq {row.seq})"
        if row.seq != rep.postings:
            out.append(f"{name}: the postings of seq {rep.postings} to {row.seq - 1} are missing")
        rep.postings = row.seq + 1
        h = suite.hash(row.body)
        if h != row.hash:
            out.append(
                f"{name}: the stored hash {_hex(row.hash)} is not the hash of its body {_hex(h)}"
            )
        if suite.hash(row.salt + row.body) != row.anchor:
            out.append(f"{name}: the stored anchor hash is not H(salt || body)")
        _check_anchor(rep, name, row, is_anchored)
        try:
            m = decode_body(row.body)
            check_draft(row.id, Draft(m["kind"], m["lines"], m["refs"], m["memo"]))
        except BookError as exc:
            out.append(f"{name}: {exc}")
            prev = h
            continue
        stored = {
            "seq": row.seq,
            "id": row.id,
            "kind": row.kind,
            "t": row.t,
            "book": bank,
            "suite": suite.name,
        }
        for k, v in stored.items():
            if m.get(k) != v:
                out.append(f"{name}: the stored {k} {v!r} differs from the body's {m.get(k)!r}")
        if m["prev"] != prev:
            out.append(
                f"{name} does not chain: its prev is {_hex(m['prev'])}, the posting "
                f"before hashes to {_hex(prev)}"
            )
        prev = h
        for ln in m["lines"]:
            sums.setdefault(ln.account.id, [0, 0])[ln.side == CREDIT] += ln.amount
    head = store.read_head()
    if (head.seq, head.hash) != (rep.postings, prev):
        out.append(
            f"the head says {head.seq} postings ending in {_hex(head.hash)}, the "
            f"chain has {rep.postings} ending in {_hex(prev)}"
        )
    _check_accounts(store, rep, sums)
    return rep


def _check_anchor(
    rep: ReconcileReport, name: str, row: PostingRow, is_anchored: IsAnchored | None
) -> None:
    marked = row.state == ANCHORED
    if is_anchored is None:
        if marked:
            rep.anchored += 1
        else:
            rep.discrepancies.append(f"{name} is pending: not anchored yet")
    elif is_anchored(row.anchor):
        rep.anchored += 1
        if not marked:
            rep.discrepancies.append(f"{name} is anchored on the ledger but marked pending")
    else:
        rep.discrepancies.append(
            f"{name} is not anchored: the ledger has no {record_key(row.anchor)} ({row.state})"
        )


def _check_accounts(store: BookStore, rep: ReconcileReport, sums: dict[str, list[int]]) -> None:
    out = rep.discrepancies
    rows = {r.id: r for r in store.all_accounts()}
    stored_totals: dict[str, list[int]] = {}
    for aid in sorted(set(rows) | set(sums)):
        d, c = sums.get(aid, [0, 0])
        key = AccountKey.parse(aid)
        rep.balances[aid] = Account(key, d, c).balance
        t = rep.totals.get(key.currency, (0, 0))
        rep.totals[key.currency] = (t[0] + d, t[1] + c)
        row = rows.get(aid)
        if row is None:
            out.append(f"account {aid} has postings but is not in the accounts table")
            continue
        st = stored_totals.setdefault(key.currency, [0, 0])
        st[0], st[1] = st[0] + row.debits, st[1] + row.credits
        if (row.org, row.purpose, row.currency, row.side) != (*aid.split("/"), key.side):
            out.append(
                f"account {aid}: stored as {row.org}/{row.purpose}/{row.currency} "
                f"with normal side {row.side}, expected {key.side}"
            )
        if (row.debits, row.credits) != (d, c):
            out.append(
                f"account {aid}: stored debits {row.debits}, credits {row.credits} (balance "
                f"{Account(key, row.debits, row.credits).balance}); its postings give debits "
                f"{d}, credits {c} (balance {rep.balances[aid]})"
            )
    for cur, (d, c) in sorted(stored_totals.items()):
        if d != c:
            out.append(f"the stored accounts in {cur} do not balance: debits {d}, credits {c}")

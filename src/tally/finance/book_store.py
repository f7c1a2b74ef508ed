"""The SQL storage of the bank's account book (:mod:`tally.finance.book`): SQLAlchemy 2 Core on
SQLite or PostgreSQL.

==================  ========================================================================
table               holds
==================  ========================================================================
``<p>head``         one row: the number of postings and the hash of the last one (the chain
                    head), the book's bank and crypto suite
``<p>accounts``     one row per account: ``org/purpose/currency``, its normal side, and the
                    running totals of its debits and credits (minor units)
``<p>postings``     one row per posting, by ``seq``: the caller's id, kind, time, the
                    deterministic CBOR body, its chain hash, the off-chain salt, the anchor
                    hash ``H(salt || body)``, and ``state`` ``pending`` or ``anchored``
==================  ========================================================================

``<p>`` is the book's table prefix (``book_`` unless chosen), so several books can share a
database. Amounts are BIGINT; byte strings are BYTEA (PostgreSQL) / BLOB (SQLite).

Every posting is written in one transaction whose first statement updates the head row. That
takes the book's write lock on both engines (a row lock on PostgreSQL, the database write lock
on SQLite), so postings are booked one at a time in chain order and every balance check sees
the balances of all postings before it. Anchoring happens after the commit; a posting stays
``pending`` until :meth:`BookStore.mark_anchored`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.finance import sqlengine

PENDING = "pending"
ANCHORED = "anchored"

HEAD_ID = 1


def make_engine(url: str) -> Engine:
    """An engine for a ``sqlite:///file`` or ``postgresql[+psycopg]://…`` URL."""
    return sqlengine.make_engine(url, "the book", "the book is")


@dataclass(frozen=True)
class AccountRow:
    id: str
    org: str
    purpose: str
    currency: str
    side: str
    debits: int
    credits: int


@dataclass(frozen=True)
class PostingRow:
    seq: int
    id: str
    kind: str
    t: int
    body: bytes
    hash: bytes
    salt: bytes
    anchor: bytes
    state: str
    anchor_tx: bytes | None


@dataclass(frozen=True)
class Head:
    book: str
    suite: str
    seq: int
    hash: bytes


Build = Callable[
    [int, bytes, Mapping[str, AccountRow]], tuple[PostingRow, dict[str, tuple[int, int]]]
]
"""``(seq, prev hash, the posting's accounts by id) -> (the row, per account id the (debits,
credits) to add)``; raises to refuse (the transaction then changes nothing)."""


def _account(row: Any) -> AccountRow:
    return AccountRow(
        row["id"],
        row["org"],
        row["purpose"],
        row["currency"],
        row["side"],
        int(row["debits"]),
        int(row["credits"]),
    )


def _posting(row: Any) -> PostingRow:
    tx = row["anchor_tx"]
    return PostingRow(
        int(row["seq"]),
        row["id"],
        row["kind"],
        int(row["t"]),
        bytes(row["body"]),
        bytes(row["hash"]),
        bytes(row["salt"]),
        bytes(row["anchor"]),
        row["state"],
        None if tx is None else bytes(tx),
    )


class BookStore:
    """The book's three tables behind one engine (see the module docstring)."""

    def __init__(self, engine: Engine, prefix: str = "book_") -> None:
        if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha():
            raise ValueError(f"table prefix must be letters, digits and '_', got {prefix!r}")
        self.engine = engine
        self.metadata = sa.MetaData()
        m = self.metadata
        self.head = sa.Table(
            f"{prefix}head",
            m,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("book", sa.String(200), nullable=False),
            sa.Column("suite", sa.String(16), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("hash", sa.LargeBinary(), nullable=False),
        )
        self.accounts = sa.Table(
            f"{prefix}accounts",
            m,
            sa.Column("id", sa.String(420), primary_key=True),
            sa.Column("org", sa.String(200), nullable=False),
            sa.Column("purpose", sa.String(32), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("side", sa.String(8), nullable=False),
            sa.Column("debits", sa.BigInteger(), nullable=False),
            sa.Column("credits", sa.BigInteger(), nullable=False),
        )
        self.postings = sa.Table(
            f"{prefix}postings",
            m,
            sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("id", sa.String(200), nullable=False, unique=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("t", sa.BigInteger(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            sa.Column("hash", sa.LargeBinary(), nullable=False),
            sa.Column("salt", sa.LargeBinary(), nullable=False),
            sa.Column("anchor", sa.LargeBinary(), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("anchor_tx", sa.LargeBinary(), nullable=True),
            sa.Index(f"ix_{prefix}postings_state", "state"),
        )

    # -- lifecycle -----------------------------------------------------------------------
    def create(self, book: str, suite: str, zero: bytes) -> Head:
        """Create the tables if missing and the head row of an empty book; return the head,
        refusing a database that holds another bank's book or another suite."""
        self.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(self.head)).mappings().first()
            if row is None:
                values = {"id": HEAD_ID, "book": book, "suite": suite, "seq": 0, "hash": zero}
                # another process may create it first
                with contextlib.suppress(sa.exc.IntegrityError):
                    conn.execute(sa.insert(self.head).values(**values))
        head = self.read_head()
        if (head.book, head.suite) != (book, suite):
            raise ValueError(
                f"these tables hold the book of {head.book!r} (suite {head.suite!r}), "
                f"not of {book!r} (suite {suite!r})"
            )
        return head

    def drop(self) -> None:
        self.metadata.drop_all(self.engine)

    # -- reads ---------------------------------------------------------------------------
    def read_head(self, conn: Connection | None = None) -> Head:
        if conn is None:
            with self.engine.connect() as c:
                return self.read_head(c)
        row = conn.execute(sa.select(self.head).where(self.head.c.id == HEAD_ID)).mappings()
        r = row.one()
        return Head(r["book"], r["suite"], int(r["seq"]), bytes(r["hash"]))

    def account(self, account_id: str) -> AccountRow | None:
        a = self.accounts
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(a).where(a.c.id == account_id)).mappings().first()
        return None if row is None else _account(row)

    def all_accounts(self) -> list[AccountRow]:
        with self.engine.connect() as conn:
            q = sa.select(self.accounts).order_by(self.accounts.c.id)
            return [_account(r) for r in conn.execute(q).mappings()]

    def posting(self, posting_id: str) -> PostingRow | None:
        p = self.postings
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(p).where(p.c.id == posting_id)).mappings().first()
        return None if row is None else _posting(row)

    def all_postings(self, state: str | None = None, batch: int = 1000) -> Iterator[PostingRow]:
        """Every posting (or those in ``state``) in chain order, read ``batch`` at a time."""
        p = self.postings
        after = -1
        while True:
            q = sa.select(p).where(p.c.seq > after).order_by(p.c.seq).limit(batch)
            if state is not None:
                q = q.where(p.c.state == state)
            with self.engine.connect() as conn:
                rows = [_posting(r) for r in conn.execute(q).mappings()]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq

    # -- writes --------------------------------------------------------------------------
    def open_account(self, row: AccountRow) -> AccountRow:
        """Insert the account unless it exists; return the stored one."""
        try:
            with self.engine.begin() as conn:
                if (
                    conn.execute(
                        sa.select(self.accounts.c.id).where(self.accounts.c.id == row.id)
                    ).first()
                    is None
                ):
                    conn.execute(sa.insert(self.accounts).values(**row.__dict__))
        except sa.exc.IntegrityError:  # opened concurrently: the stored one wins
            pass
        stored = self.account(row.id)
        assert stored is not None
        return stored

    def write(
        self, posting_id: str, account_ids: Iterable[str], build: Build
    ) -> tuple[PostingRow, bool]:
        """Book one posting atomically under the book's write lock.

        Returns ``(the stored posting, False)`` when ``posting_id`` exists already (nothing is
        written), else calls ``build`` and returns ``(its row, True)`` once committed.
        """
        h, a, p = self.head, self.accounts, self.postings
        with self.engine.begin() as conn:
            # the write lock: every posting transaction starts by writing the head row
            conn.execute(sa.update(h).where(h.c.id == HEAD_ID).values(seq=h.c.seq))
            head = self.read_head(conn)
            got = conn.execute(sa.select(p).where(p.c.id == posting_id)).mappings().first()
            if got is not None:
                return _posting(got), False
            ids = sorted(set(account_ids))
            rows = conn.execute(sa.select(a).where(a.c.id.in_(ids))).mappings()
            accounts = {r["id"]: _account(r) for r in rows}
            row, deltas = build(head.seq, head.hash, accounts)
            conn.execute(sa.insert(p).values(**row.__dict__))
            for account_id in sorted(deltas):
                d, c = deltas[account_id]
                conn.execute(
                    sa.update(a)
                    .where(a.c.id == account_id)
                    .values(debits=a.c.debits + d, credits=a.c.credits + c)
                )
            conn.execute(
                sa.update(h).where(h.c.id == HEAD_ID).values(seq=head.seq + 1, hash=row.hash)
            )
            return row, True

    def mark_anchored(self, seq: int, anchor_tx: bytes | None) -> None:
        p = self.postings
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(p)
                .where((p.c.seq == seq) & (p.c.state == PENDING))
                .values(state=ANCHORED, anchor_tx=anchor_tx)
            )

"""``index.sqlite``: what a peer service keeps per committed block beside its state and its
transaction log, for its HTTP answers (:mod:`tally.ledger.peerhttp`).

Tables (SQLite, WAL, ``synchronous=FULL``)::

    checkpoints  height PK, cose           this peer's signed checkpoint of each height
    txs          tx_id PK, height, idx,    the first ordering of each transaction id and its
                 code, reason, error       outcome (``GET /v1/tx/{id}``)
    blocks       height PK, hash, t,       each block: its hash, the orderer's time (ms since
                 state, n                  the epoch), the state commitment after it, its
                                           number of transactions
    block_txs    height, idx PK,           every transaction of a block in order: its id,
                 tx_id, contract, fn,      contract, function and creator as its proposal
                 creator, code, reason     says, and its validation code and reason

A block's rows are written in one SQLite transaction right after the peer committed it. After
a crash between the two, or for an index written before ``blocks`` existed, :meth:`fill`
(called on open) adds the missing ``blocks`` and ``block_txs`` rows from the transaction log:
the hash and the transactions are the log's, the codes those of ``txs`` (NULL where it has
none), the state that of the height's checkpoint when the index holds one, and the time NULL
(the log does not keep it). ``contract``, ``fn`` and ``creator`` are NULL for a transaction
whose envelope or proposal does not decode, ``tx_id`` too when its envelope does not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.crypto import CryptoError, Suite, parse_sign1
from tally.ledger.formats import Block, decode_checkpoint, decode_proposal, decode_transaction
from tally.ledger.peer import BlockResult
from tally.ledger.txlog import TxLog

__all__ = ["PeerIndex", "describe_tx"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoints (height INTEGER PRIMARY KEY, cose BLOB)",
    "CREATE TABLE IF NOT EXISTS txs (tx_id BLOB PRIMARY KEY, height INTEGER, idx INTEGER, "
    "code TEXT, reason TEXT, error TEXT)",
    "CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, "
    "t INTEGER, state BLOB, n INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS block_txs (height INTEGER NOT NULL, idx INTEGER NOT NULL, "
    "tx_id BLOB, contract TEXT, fn TEXT, creator TEXT, code TEXT, reason TEXT, "
    "PRIMARY KEY (height, idx))",
)

TxRow = tuple[int, int, bytes | None, str | None, str | None, str | None, str | None, str | None]
"""A ``block_txs`` row: height, idx, tx_id, contract, fn, creator, code, reason."""


def describe_tx(tx: bytes) -> tuple[str | None, str | None, str | None]:
    """The contract, function and creator a transaction's proposal names (not verified:
    the peer validated it), or three Nones when it does not decode."""
    try:
        proposal = decode_proposal(parse_sign1(decode_transaction(tx).proposal).payload)
    except CryptoError:
        return None, None, None
    return proposal.contract, proposal.fn, proposal.creator


class PeerIndex:
    """``index.sqlite`` of a peer (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self.db.execute(statement)

    # -- writing -------------------------------------------------------------------------

    def record(self, res: BlockResult, block: Block) -> None:
        """Everything about committed ``block`` (``res`` is what committing it did)."""
        txs: list[TxRow] = []
        for s in res.statuses:
            contract, fn, creator = describe_tx(block.txs[s.index])
            txs.append((res.height, s.index, s.tx_id, contract, fn, creator, s.code, s.reason))
        outcomes = [
            (s.tx_id, res.height, s.index, s.code, s.reason, s.error)
            for s in res.statuses
            if s.tx_id is not None
        ]
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                (res.height, res.signed_checkpoint),
            )
            self.db.executemany("INSERT OR IGNORE INTO txs VALUES (?, ?, ?, ?, ?, ?)", outcomes)
            self._block(res.height, res.block_hash, block.t, res.checkpoint.state, txs)

    def _block(
        self, height: int, block_hash: bytes, t: int | None, state: bytes | None,
        txs: Sequence[TxRow],
    ) -> None:  # fmt: skip
        self.db.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?)",
            (height, block_hash, t, state, len(txs)),
        )
        self.db.execute("DELETE FROM block_txs WHERE height = ?", (height,))
        self.db.executemany("INSERT INTO block_txs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", txs)

    def fill(self, txlog: TxLog, suite: Suite) -> int:
        """Add the ``blocks`` rows of the heights in ``txlog`` the index lacks (module
        docstring; ``suite`` is the chain's); return how many were added."""
        have = {int(h) for (h,) in self.db.execute("SELECT height FROM blocks")}
        missing = [h for h in range(1, txlog.height + 1) if h not in have]
        for height in missing:
            start, end = txlog.size_at(height - 1), txlog.size_at(height)
            txs: list[TxRow] = []
            for idx, tx in enumerate(txlog.tx(i) for i in range(start, end)):
                tx_id = _tx_id(tx, suite)
                outcome = None if tx_id is None else self.db.execute(
                    "SELECT code, reason FROM txs WHERE tx_id = ? AND height = ? AND idx = ?",
                    (tx_id, height, idx),
                ).fetchone()  # fmt: skip
                code, reason = (None, None) if outcome is None else outcome
                txs.append((height, idx, tx_id, *describe_tx(tx), code, reason))
            with self.db:
                self.db.execute("BEGIN")
                self._block(height, txlog.block_hash_at(height), None, self._state(height), txs)
        return len(missing)

    def _state(self, height: int) -> bytes | None:
        cose = self.checkpoint(height)
        if cose is None:
            return None
        try:
            return decode_checkpoint(parse_sign1(cose).payload).state
        except CryptoError:
            return None

    def put_checkpoint(self, height: int, cose: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (height, cose))

    # -- reading -------------------------------------------------------------------------

    def checkpoint(self, height: int) -> bytes | None:
        row = self.db.execute("SELECT cose FROM checkpoints WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def tx(self, tx_id: bytes) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT height, idx, code, reason, error FROM txs WHERE tx_id = ?", (tx_id,)
        ).fetchone()
        if row is None:
            return None
        height, idx, code, reason, error = row
        return {"tx_id": tx_id.hex(), "height": height, "index": idx, "code": code,
                "reason": reason, "error": error}  # fmt: skip

    def blocks(self, after: int, limit: int, org: str) -> list[dict[str, Any]]:
        """The blocks above height ``after``, ascending, at most ``limit``, as
        ``GET /v1/blocks`` shows them; ``org`` signed the checkpoints this index holds."""
        rows = self.db.execute(
            "SELECT b.height, b.hash, b.t, b.state, c.height IS NOT NULL FROM blocks b "
            "LEFT JOIN checkpoints c ON c.height = b.height WHERE b.height > ? "
            "ORDER BY b.height LIMIT ?",
            (after, limit),
        ).fetchall()
        if not rows:
            return []
        txs: dict[int, list[dict[str, Any]]] = {int(r[0]): [] for r in rows}
        for height, idx, tx_id, contract, fn, creator, code, reason in self.db.execute(
            "SELECT height, idx, tx_id, contract, fn, creator, code, reason FROM block_txs "
            "WHERE height BETWEEN ? AND ? ORDER BY height, idx",
            (rows[0][0], rows[-1][0]),
        ):
            if height in txs:
                txs[height].append({
                    "id": None if tx_id is None else bytes(tx_id).hex(), "index": idx,
                    "contract": contract, "fn": fn, "creator": creator, "code": code,
                    "reason": reason or None,
                })  # fmt: skip
        return [
            {
                "height": h,
                "hash": bytes(hash_).hex(),
                "time": t,
                "state": None if state is None else bytes(state).hex(),
                "signers": [org] if signed else [],
                "txs": txs[h],
            }
            for h, hash_, t, state, signed in rows
        ]

    def close(self) -> None:
        self.db.close()


def _tx_id(tx: bytes, suite: Suite) -> bytes | None:
    """``H(proposal COSE bytes)``, None when the transaction envelope does not decode."""
    try:
        return suite.hash(decode_transaction(tx).proposal)
    except CryptoError:
        return None

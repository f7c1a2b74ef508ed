"""The durable outbox: one SQLite database in WAL mode holding everything not yet receipted.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` by default, so a transaction is
on disk (WAL fsynced) before :meth:`Outbox.transaction` returns: neither ``kill -9`` nor a
power cut loses an acknowledged write. ``synchronous=NORMAL`` (config
``outbox_synchronous = "normal"``) still survives ``kill -9`` (the WAL is written before
commit returns) but may lose the last transactions on power loss. The pipeline writes one
transaction per ``ingest_many`` call, so the fsync is shared by the whole call.

Tables::

    items(id INTEGER PRIMARY KEY, kind TEXT, dev TEXT, boot INT, ctr INT, hash BLOB,
          prev BLOB, assurance INT, t INT, cose BLOB, batch INT NULL)
        kind: reading | event | gap | summary; dev/boot/ctr/prev only for readings
        (heartbeats included); t = edge receive/issue time (ms); batch NULL = pending,
        otherwise the counter of the one batch it is sealed into.
        unique (dev, boot, ctr) for readings.
    batches(ctr INTEGER PRIMARY KEY, header BLOB, hash BLOB, n INT, state TEXT,
            reason TEXT, retry_at INT, attempts INT, sealed INT)
        state: sealed | sent | refused; deleted with its items on a valid receipt
    receipts(ctr INTEGER PRIMARY KEY, header_hash BLOB, receipt BLOB, t INT)
    seen(dev, boot, ctr, hash, prev, t) — hashes of receipted readings, kept for
        ``dedup_retention_ms`` so a late duplicate is still recognised
    continuity(dev TEXT PRIMARY KEY, boot, ctr, hash, t, missing BLOB)
    runs(dev TEXT PRIMARY KEY, state BLOB) — readings being condensed (full outbox)
    quarantine(id INTEGER PRIMARY KEY, t, source, reason, detail, dev, hash, raw BLOB)
    counters(name TEXT PRIMARY KEY, value INT)
    meta(key TEXT PRIMARY KEY, value BLOB) — schema, next batch ctr, previous header
        hash, next event seq

``live_bytes`` is the sum of the COSE sizes of the items not yet receipted: the quantity
``outbox_max_bytes`` bounds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tally.edge.continuity import DeviceState
from tally.edge.errors import OutboxError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, dev TEXT, boot INTEGER, ctr INTEGER,
    hash BLOB NOT NULL, prev BLOB, assurance INTEGER, t INTEGER NOT NULL,
    cose BLOB NOT NULL, batch INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS items_id ON items(dev, boot, ctr) WHERE kind = 'reading';
CREATE INDEX IF NOT EXISTS items_batch ON items(batch);
CREATE TABLE IF NOT EXISTS batches(
    ctr INTEGER PRIMARY KEY, header BLOB NOT NULL, hash BLOB NOT NULL, n INTEGER NOT NULL,
    state TEXT NOT NULL, reason TEXT, retry_at INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, sealed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts(
    ctr INTEGER PRIMARY KEY, header_hash BLOB NOT NULL, receipt BLOB NOT NULL, t INTEGER);
CREATE TABLE IF NOT EXISTS seen(
    dev TEXT NOT NULL, boot INTEGER NOT NULL, ctr INTEGER NOT NULL, hash BLOB NOT NULL,
    prev BLOB NOT NULL, t INTEGER NOT NULL, PRIMARY KEY(dev, boot, ctr)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_t ON seen(t);
CREATE TABLE IF NOT EXISTS continuity(
    dev TEXT PRIMARY KEY, boot INTEGER NOT NULL, ctr INTEGER NOT NULL, hash BLOB NOT NULL,
    t INTEGER NOT NULL, missing BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs(dev TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine(
    id INTEGER PRIMARY KEY, t INTEGER NOT NULL, source TEXT, reason TEXT NOT NULL,
    detail TEXT, dev TEXT, hash BLOB, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
"""

ItemRow = tuple[str, str | None, int | None, int | None, bytes, bytes | None, int, int, bytes]
"""``(kind, dev, boot, ctr, hash, prev, assurance, t, cose)`` of one item to insert."""

QuarantineRow = tuple[int, str, str, str, str | None, bytes | None, bytes]
"""``(t, source, reason, detail, dev, hash, raw)`` of one rejected envelope."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A sealed batch waiting for its receipt."""

    ctr: int
    header: bytes
    hash: bytes
    n: int
    state: str
    reason: str | None
    attempts: int


class Outbox:
    """The outbox database. Use from one thread; writes go inside :meth:`transaction`."""

    def __init__(
        self,
        path: Path,
        synchronous: str = "full",
        dedup_retention_ms: int = 86_400_000,
        quarantine_max_rows: int = 10_000,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise OutboxError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dedup_retention_ms = dedup_retention_ms
        self.quarantine_max_rows = quarantine_max_rows
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)
        version = self.meta_int("schema", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise OutboxError(f"{path}: schema version {version}, this edge uses {SCHEMA_VERSION}")
        self._db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?)", (SCHEMA_VERSION,)
        )
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(cose)), 0) FROM items").fetchone()
        self.live_bytes: int = int(row[0])
        self._in_tx = False

    def close(self) -> None:
        """Close the connection (committed data is already durable)."""
        self._db.close()

    # transactions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); rolled back on error."""
        if self._in_tx:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        start_bytes = self.live_bytes
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self.live_bytes = start_bytes
            raise
        finally:
            self._in_tx = False

    # meta and counters -------------------------------------------------------------------

    def meta_int(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def meta_bytes(self, key: str, default: bytes = b"") -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else bytes(row[0])

    def set_meta(self, key: str, value: int | bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def counters(self) -> dict[str, int]:
        return {n: int(v) for n, v in self._db.execute("SELECT name, value FROM counters")}

    def bump(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (inside the caller's transaction)."""
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def save_counters(self, values: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO counters(name, value) VALUES(?, ?)", values.items()
        )

    # continuity and condensing state ------------------------------------------------------

    def load_states(self) -> dict[str, DeviceState]:
        out: dict[str, DeviceState] = {}
        for dev, boot, ctr, h, t, missing in self._db.execute(
            "SELECT dev, boot, ctr, hash, t, missing FROM continuity"
        ):
            out[dev] = DeviceState(boot, ctr, bytes(h), t, DeviceState.missing_from_cbor(missing))
        return out

    def save_states(self, states: Iterable[tuple[str, DeviceState]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO continuity(dev, boot, ctr, hash, t, missing) "
            "VALUES(?, ?, ?, ?, ?, ?)",
            ((d, s.boot, s.ctr, s.hash, s.t, s.missing_cbor()) for d, s in states),
        )

    def load_runs(self) -> dict[str, bytes]:
        return {d: bytes(s) for d, s in self._db.execute("SELECT dev, state FROM runs")}

    def save_run(self, dev: str, state: bytes | None) -> None:
        if state is None:
            self._db.execute("DELETE FROM runs WHERE dev = ?", (dev,))
        else:
            self._db.execute("INSERT OR REPLACE INTO runs(dev, state) VALUES(?, ?)", (dev, state))

    def lookup(self, dev: str, boot: int, ctr: int) -> tuple[bytes, bytes] | None:
        """``(hash, prev)`` of a stored or recently receipted reading, or None."""
        row = self._db.execute(
            "SELECT hash, prev FROM items WHERE kind = 'reading' AND dev = ? AND boot = ? "
            "AND ctr = ?",
            (dev, boot, ctr),
        ).fetchone()
        if row is None:
            row = self._db.execute(
                "SELECT hash, prev FROM seen WHERE dev = ? AND boot = ? AND ctr = ?",
                (dev, boot, ctr),
            ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    # items and quarantine ----------------------------------------------------------------

    def insert_items(self, rows: list[ItemRow]) -> None:
        self._db.executemany(
            "INSERT INTO items(kind, dev, boot, ctr, hash, prev, assurance, t, cose) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.live_bytes += sum(len(r[8]) for r in rows)

    def insert_quarantine(self, rows: list[QuarantineRow]) -> None:
        self._db.executemany(
            "INSERT INTO quarantine(t, source, reason, detail, dev, hash, raw) "
            "VALUES(?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def prune_quarantine(self) -> int:
        """Keep the newest ``quarantine_max_rows`` rows; return how many were removed."""
        cur = self._db.execute(
            "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?",
            (self.quarantine_max_rows,),
        )
        return cur.rowcount

    def quarantine(self, limit: int = 100) -> list[tuple[str, str, str | None, bytes]]:
        """The newest quarantined envelopes: ``(reason, detail, dev, raw)``."""
        rows = self._db.execute(
            "SELECT reason, detail, dev, raw FROM quarantine ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(r, d, dv, bytes(raw)) for r, d, dv, raw in rows]

    def items(self, kind: str | None = None) -> list[tuple[str, bytes, int | None]]:
        """All live items in insertion order: ``(kind, cose, batch)`` (for inspection)."""
        q = "SELECT kind, cose, batch FROM items"
        args: tuple[str, ...] = ()
        if kind is not None:
            q, args = q + " WHERE kind = ?", (kind,)
        return [(k, bytes(c), b) for k, c, b in self._db.execute(q + " ORDER BY id", args)]

    # batches -----------------------------------------------------------------------------

    def pending(self, limit: int) -> list[tuple[int, int, bytes]]:
        """The first ``limit`` unsealed items: ``(id, t, cose)`` in insertion order."""
        rows = self._db.execute(
            "SELECT id, t, cose FROM items WHERE batch IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [(i, t, bytes(c)) for i, t, c in rows]

    def store_batch(
        self, ctr: int, header: bytes, header_hash: bytes, n: int, last_id: int, now: int
    ) -> None:
        """Record a sealed batch and seal the pending items up to ``last_id`` into it."""
        self._db.execute(
            "INSERT INTO batches(ctr, header, hash, n, state, sealed) VALUES(?, ?, ?, ?, ?, ?)",
            (ctr, header, header_hash, n, "sealed", now),
        )
        cur = self._db.execute(
            "UPDATE items SET batch = ? WHERE batch IS NULL AND id <= ?", (ctr, last_id)
        )
        if cur.rowcount != n:
            raise OutboxError(f"batch {ctr}: sealed {cur.rowcount} items, header says {n}")
        self.set_meta("batch_ctr", ctr + 1)
        self.set_meta("batch_prev", header_hash)
        self.bump("batches_sealed")

    def next_batch(self, now: int) -> Batch | None:
        """The lowest-counter batch due for upload (refused ones only after ``retry_at``)."""
        row = self._db.execute(
            "SELECT ctr, header, hash, n, state, reason, attempts FROM batches "
            "WHERE state != 'refused' OR retry_at <= ? ORDER BY ctr LIMIT 1",
            (now,),
        ).fetchone()
        if row is None:
            return None
        return Batch(row[0], bytes(row[1]), bytes(row[2]), row[3], row[4], row[5], row[6])

    def batches(self) -> list[Batch]:
        rows = self._db.execute(
            "SELECT ctr, header, hash, n, state, reason, attempts FROM batches ORDER BY ctr"
        )
        return [Batch(c, bytes(h), bytes(x), n, s, r, a) for c, h, x, n, s, r, a in rows]

    def batch_items(self, ctr: int) -> list[bytes]:
        rows = self._db.execute("SELECT cose FROM items WHERE batch = ? ORDER BY id", (ctr,))
        return [bytes(r[0]) for r in rows]

    def mark_attempt(self, ctr: int) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET state = CASE state WHEN 'refused' THEN state ELSE 'sent' END,"
                " attempts = attempts + 1 WHERE ctr = ?",
                (ctr,),
            )

    def mark_refused(self, ctr: int, reason: str, retry_at: int) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET state = 'refused', reason = ?, retry_at = ? WHERE ctr = ?",
                (reason, retry_at, ctr),
            )
            self.bump("batches_refused")

    def ack(self, ctr: int, header_hash: bytes, receipt: bytes, now: int) -> int:
        """Delete batch ``ctr`` and its items after a verified receipt; return the item count.

        The receipted readings' hashes move to ``seen`` (for late duplicates); entries older
        than the retention are pruned in the same transaction.
        """
        with self.transaction():
            if self._db.execute("SELECT 1 FROM batches WHERE ctr = ?", (ctr,)).fetchone() is None:
                return 0
            self._db.execute(
                "INSERT OR REPLACE INTO seen(dev, boot, ctr, hash, prev, t) "
                "SELECT dev, boot, ctr, hash, prev, ? FROM items "
                "WHERE batch = ? AND kind = 'reading'",
                (now, ctr),
            )
            self._db.execute("DELETE FROM seen WHERE t < ?", (now - self.dedup_retention_ms,))
            size = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(cose)), 0) FROM items WHERE batch = ?", (ctr,)
            ).fetchone()[0]
            n = self._db.execute("DELETE FROM items WHERE batch = ?", (ctr,)).rowcount
            self._db.execute("DELETE FROM batches WHERE ctr = ?", (ctr,))
            self._db.execute(
                "INSERT OR REPLACE INTO receipts(ctr, header_hash, receipt, t) VALUES(?, ?, ?, ?)",
                (ctr, header_hash, receipt, now),
            )
            self.bump("batches_acked")
            self.live_bytes -= int(size)
        return n

    def receipt(self, ctr: int) -> bytes | None:
        row = self._db.execute("SELECT receipt FROM receipts WHERE ctr = ?", (ctr,)).fetchone()
        return None if row is None else bytes(row[0])

    def depth(self) -> dict[str, int]:
        """Counts of what the outbox holds now."""
        q = self._db.execute
        return {
            "items": q("SELECT COUNT(*) FROM items").fetchone()[0],
            "pending": q("SELECT COUNT(*) FROM items WHERE batch IS NULL").fetchone()[0],
            "batches": q("SELECT COUNT(*) FROM batches").fetchone()[0],
            "refused": q("SELECT COUNT(*) FROM batches WHERE state = 'refused'").fetchone()[0],
            "quarantine": q("SELECT COUNT(*) FROM quarantine").fetchone()[0],
            "bytes": self.live_bytes,
        }

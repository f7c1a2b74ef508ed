"""Sealing pending outbox items into edge-signed batches, and condensing readings a full
outbox cannot keep.

A batch of ``n`` items has the RFC 9162 root (suite hash) over leaves
``hash_leaf(item COSE bytes)`` in insertion order, and a header (see
:mod:`tally.edge.formats`) with ``ctr`` = the edge's batch counter from 0, ``prev`` = suite
hash of the previous header's COSE bytes (h'' for ctr 0), ``t0`` = the earliest edge time
among its items and ``t1`` = the sealing time. Header and item assignment are written in
one transaction. A backlog becomes several batches of at most ``max_items``.

:class:`CondenseRun` accumulates the readings of one device while the outbox is full: the
running RFC 9162 root over their COSE bytes (arrival order) in O(log n) space, and
per-quantity statistics, from which the pipeline issues a signed Summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tally.crypto import cbor
from tally.device.envelope import Reading
from tally.edge.formats import BatchHeader
from tally.edge.outbox import Outbox
from tally.edge.signer import EdgeSigner
from tally.merkle import Hasher, root


@dataclass(frozen=True, slots=True)
class SealedBatch:
    ctr: int
    header: bytes
    hash: bytes
    n: int
    root: bytes


class Batcher:
    """Seals the outbox's pending items; call :meth:`seal` once per window."""

    def __init__(self, outbox: Outbox, signer: EdgeSigner, max_items: int = 5000) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.outbox = outbox
        self.signer = signer
        self.max_items = max_items
        self.hasher = Hasher.for_name(signer.suite.hash_name)

    def seal(self, now: int) -> list[SealedBatch]:
        """Seal everything pending into batches of at most ``max_items``; return them."""
        out: list[SealedBatch] = []
        while True:
            rows = self.outbox.pending(self.max_items)
            if not rows:
                return out
            leaf = self.hasher.hash_leaf
            r = root(self.hasher, [leaf(c) for _, _, c in rows])
            with self.outbox.transaction():
                ctr = self.outbox.meta_int("batch_ctr", 0)
                prev = self.outbox.meta_bytes("batch_prev", b"")
                header = BatchHeader(
                    edge=self.signer.edge,
                    site=self.signer.site,
                    suite=self.signer.suite.name,
                    ctr=ctr,
                    prev=prev,
                    t0=min(t for _, t, _ in rows),
                    t1=now,
                    n=len(rows),
                    root=r,
                )
                cose = self.signer.header(header)
                h = self.signer.suite.hash(cose)
                self.outbox.store_batch(ctr, cose, h, len(rows), rows[-1][0], now)
            out.append(SealedBatch(ctr, cose, h, len(rows), r))


def frontier_push(hasher: Hasher, frontier: list[tuple[int, bytes]], leaf_hash: bytes) -> None:
    """Append a leaf to a compact range: ``frontier`` holds ``(height, hash)`` of the
    complete subtrees of the tree so far, largest (leftmost) first."""
    frontier.append((0, leaf_hash))
    while len(frontier) > 1 and frontier[-1][0] == frontier[-2][0]:
        (hl, left), (_, right) = frontier[-2], frontier[-1]
        frontier[-2:] = [(hl + 1, hasher.hash_children(left, right))]


def frontier_root(hasher: Hasher, frontier: list[tuple[int, bytes]]) -> bytes:
    """The RFC 9162 root of the tree a compact range describes (right-to-left fold)."""
    if not frontier:
        return hasher.empty_root()
    acc = frontier[-1][1]
    for _, h in reversed(frontier[:-1]):
        acc = hasher.hash_children(h, acc)
    return acc


@dataclass
class CondenseRun:
    """Readings of one device (one boot epoch) condensed while the outbox is full.

    Persisted form (deterministic CBOR)::

        [boot, first, last, n, started, [[height, hash], ...],
         [[quantity, unit, min, max, sum], ...]]
    """

    boot: int
    first: int
    last: int
    started: int
    n: int = 0
    frontier: list[tuple[int, bytes]] = field(default_factory=list)
    stats: dict[tuple[str, str], list[Decimal]] = field(default_factory=dict)

    def add(self, hasher: Hasher, reading: Reading, cose: bytes) -> None:
        self.first = min(self.first, reading.ctr)
        self.last = max(self.last, reading.ctr)
        self.n += 1
        frontier_push(hasher, self.frontier, hasher.hash_leaf(cose))
        for m in reading.m:
            s = self.stats.get((m.quantity, m.unit))
            if s is None:
                self.stats[(m.quantity, m.unit)] = [m.value, m.value, m.value]
            else:
                s[0] = min(s[0], m.value)
                s[1] = max(s[1], m.value)
                s[2] += m.value

    def summary_stats(self) -> tuple[tuple[str, Decimal, Decimal, Decimal, str], ...]:
        """``(quantity, min, max, sum, unit)`` per quantity and unit, sorted."""
        return tuple((q, s[0], s[1], s[2], u) for (q, u), s in sorted(self.stats.items()))

    def to_cbor(self) -> bytes:
        return cbor.encode(
            [
                self.boot,
                self.first,
                self.last,
                self.n,
                self.started,
                [[h, x] for h, x in self.frontier],
                [[q, u, *s] for (q, u), s in sorted(self.stats.items())],
            ]
        )

    @staticmethod
    def from_cbor(data: bytes) -> CondenseRun:
        boot, first, last, n, started, fr, st = cbor.decode(data, where="condense run")
        run = CondenseRun(boot, first, last, started, n, [(int(h), bytes(x)) for h, x in fr])
        for q, u, lo, hi, total in st:
            run.stats[(q, u)] = [Decimal(lo), Decimal(hi), Decimal(total)]
        return run

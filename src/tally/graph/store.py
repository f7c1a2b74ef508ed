"""The enterprise knowledge graph: typed nodes and edges kept current as records arrive.

Nodes are firms, persons, addresses, accounts and banks, each by its id (ids are unique
across kinds in practice; each kind has its own table). Edges are typed and directed; each
names the record it comes from (``ref``), so every answer can cite its evidence:

=================  =====================  ============================================
edge kind          direction              from record (amount, t)
=================  =====================  ============================================
``supplies``       supplier → buyer       :class:`Supply` (0, since)
``trades``         seller → buyer         :class:`Trade` (amount, t)
``notes``          issuer → holder        :class:`Note` in a state other than settled
                                          or refused (amount, due)
``guarantees``     guarantor → debtor     :class:`Guarantee` while active (amount, t)
``loans``          bank → borrower        :class:`Loan` not closed (outstanding, t)
``directs``        person → firm          a legal representative's or director's
                                          :class:`Role` (0, founded)
``shares``         person → firm          a shareholder's :class:`Role` (share_bp, founded)
``located_at``     firm → address         :class:`Firm` (0, founded)
``holds_account``  firm → account         :class:`Firm` (0, founded)
=================  =====================  ============================================

:meth:`Graph.add` is incremental: a record whose id is known replaces the old one (its old
edges go, its new ones come), so a note transferred, a loan repaid or a guarantee released is
one call. Everything is plain dicts and lists: ``O(1)`` to add an edge, ``O(degree)`` to
replace one. ``as_of`` is the latest time any record carried (the graph's "now").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tally.graph.records import (
    Account,
    Address,
    Bank,
    Firm,
    Guarantee,
    Loan,
    Note,
    Outcome,
    Person,
    Receipt,
    Supply,
    Telemetry,
    Trade,
)

EDGE_KINDS = (
    "supplies",
    "trades",
    "notes",
    "guarantees",
    "loans",
    "directs",
    "shares",
    "located_at",
    "holds_account",
)
LIVE_NOTE_STATES = frozenset({"offered", "live", "financed", "overdue"})
_EMPTY: tuple[Edge, ...] = ()


@dataclass(frozen=True, slots=True)
class Edge:
    """A typed edge ``src → dst`` from the record ``ref`` (``amount``, ``t`` by kind)."""

    kind: str
    src: str
    dst: str
    ref: str
    amount: int = 0
    t: int = 0


def _edges(rec: Any) -> list[Edge]:
    """The edges a record contributes (see the module table)."""
    if isinstance(rec, Trade):
        return [Edge("trades", rec.seller, rec.buyer, rec.id, rec.amount, rec.t)]
    if isinstance(rec, Supply):
        return [Edge("supplies", rec.supplier, rec.buyer, rec.id, 0, rec.since)]
    if isinstance(rec, Note):
        if rec.state not in LIVE_NOTE_STATES:
            return []
        return [Edge("notes", rec.issuer, rec.holder, rec.id, rec.amount, rec.due)]
    if isinstance(rec, Guarantee):
        if not rec.active:
            return []
        return [Edge("guarantees", rec.guarantor, rec.debtor, rec.id, rec.amount, rec.t)]
    if isinstance(rec, Loan):
        if rec.state == "closed":
            return []
        return [Edge("loans", rec.bank, rec.borrower, rec.id, rec.outstanding, rec.t)]
    if isinstance(rec, Firm):
        out = []
        for r in rec.roles:
            kind = "shares" if r.role == "shareholder" else "directs"
            out.append(Edge(kind, r.person, rec.id, rec.id, r.share_bp, rec.founded))
        out += [Edge("located_at", rec.id, a, rec.id, 0, rec.founded) for a in rec.addresses]
        out += [Edge("holds_account", rec.id, a, rec.id, 0, rec.founded) for a in rec.accounts]
        return out
    return []


def _time(rec: Any) -> int:
    for name in ("t", "issued", "since"):
        v = getattr(rec, name, None)
        if isinstance(v, int):
            return v
    return 0


class Graph:
    """The knowledge graph (see the module docstring). Record tables are public and
    read-only by convention: change them through :meth:`add` only."""

    def __init__(self) -> None:
        self.banks: dict[str, Bank] = {}
        self.firms: dict[str, Firm] = {}
        self.persons: dict[str, Person] = {}
        self.addresses: dict[str, Address] = {}
        self.accounts: dict[str, Account] = {}
        self.supplies: dict[str, Supply] = {}
        self.trades: dict[str, Trade] = {}
        self.notes: dict[str, Note] = {}
        self.guarantees: dict[str, Guarantee] = {}
        self.loans: dict[str, Loan] = {}
        self.receipts: dict[str, Receipt] = {}
        self.telemetry: dict[str, Telemetry] = {}
        self.outcomes: dict[str, Outcome] = {}
        self._tables: dict[type[Any], dict[str, Any]] = {
            Bank: self.banks,
            Firm: self.firms,
            Person: self.persons,
            Address: self.addresses,
            Account: self.accounts,
            Supply: self.supplies,
            Trade: self.trades,
            Note: self.notes,
            Guarantee: self.guarantees,
            Loan: self.loans,
            Receipt: self.receipts,
            Telemetry: self.telemetry,
            Outcome: self.outcomes,
        }
        self._out: dict[str, dict[str, list[Edge]]] = {k: {} for k in EDGE_KINDS}
        self._in: dict[str, dict[str, list[Edge]]] = {k: {} for k in EDGE_KINDS}
        self._note_firms: dict[str, dict[str, None]] = {}  # holder/endorser → note ids
        self.as_of = 0
        self.version = 0
        """Bumped by every change: a cache keyed by it is current."""

    # -- changes ------------------------------------------------------------------------------

    def add(self, rec: Any) -> None:
        """Add a record, replacing the one with its id (and that one's edges)."""
        table = self._tables.get(type(rec))
        if table is None:
            raise TypeError(f"not a graph record: {type(rec).__name__}")
        old = table.get(rec.id)
        if old is not None:
            if old == rec:
                return
            for e in _edges(old):
                self._out[e.kind][e.src].remove(e)
                self._in[e.kind][e.dst].remove(e)
            if isinstance(old, Note):
                for firm in (*old.endorsers, old.holder):
                    self._note_firms.get(firm, {}).pop(old.id, None)
        table[rec.id] = rec
        if isinstance(rec, Note):
            for firm in (*rec.endorsers, rec.holder):
                self._note_firms.setdefault(firm, {})[rec.id] = None
        for e in _edges(rec):
            self._out[e.kind].setdefault(e.src, []).append(e)
            self._in[e.kind].setdefault(e.dst, []).append(e)
        t = _time(rec)
        if t > self.as_of:
            self.as_of = t
        self.version += 1

    def add_all(self, records: Iterable[Any]) -> int:
        """Add many records in order; how many were given."""
        n = 0
        for rec in records:
            self.add(rec)
            n += 1
        return n

    # -- reading ------------------------------------------------------------------------------

    def out_edges(self, kind: str, node: str) -> Sequence[Edge]:
        """The ``kind`` edges leaving ``node``, in the order they arrived."""
        return self._out[kind].get(node, _EMPTY)

    def in_edges(self, kind: str, node: str) -> Sequence[Edge]:
        """The ``kind`` edges entering ``node``, in the order they arrived."""
        return self._in[kind].get(node, _EMPTY)

    def sources(self, kind: str) -> list[str]:
        """Every node with an outgoing ``kind`` edge, sorted."""
        return sorted(n for n, es in self._out[kind].items() if es)

    def edge_count(self, kind: str | None = None) -> int:
        kinds = EDGE_KINDS if kind is None else (kind,)
        return sum(len(es) for k in kinds for es in self._out[k].values())

    def node_count(self) -> int:
        """Firms, persons, addresses, accounts and banks (named in any record)."""
        named: set[str] = set(self.firms) | set(self.banks)
        for kind in ("directs", "shares"):
            named.update(self._out[kind])
        for kind in ("located_at", "holds_account"):
            named.update(self._in[kind])
        return len(named)

    def persons_of(self, firm: str) -> list[tuple[str, str]]:
        """``(person, role)`` of a firm's registration, in its order."""
        f = self.firms.get(firm)
        return [] if f is None else [(r.person, r.role) for r in f.roles]

    def firms_of_person(self, person: str) -> list[Edge]:
        """Every role edge of a person (directs and shares)."""
        return [*self.out_edges("directs", person), *self.out_edges("shares", person)]

    def endorsed_notes(self, firm: str) -> list[Note]:
        """Notes (any state) that ``firm`` holds or endorsed, in the order they arrived."""
        return [self.notes[i] for i in self._note_firms.get(firm, {})]

    def is_core(self, firm: str) -> bool:
        f = self.firms.get(firm)
        return f is not None and f.kind == "core"

    def counts(self) -> dict[str, int]:
        """Records per table and edges per kind (for reports)."""
        out = {cls.__name__.lower(): len(t) for cls, t in self._tables.items()}
        out.update({f"edges_{k}": self.edge_count(k) for k in EDGE_KINDS})
        return out


__all__ = ["EDGE_KINDS", "LIVE_NOTE_STATES", "Edge", "Graph"]

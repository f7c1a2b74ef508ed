"""A bank's exposure to a firm through every path of the graph.

The exposure of bank ``B`` to firm ``F`` is what ``B`` stands to lose if ``F`` fails to pay
everything it owes or has promised, item by item; its total is the sum of four parts:

``loans``
    the ``outstanding`` principal of every loan of ``B`` to ``F`` that is not closed;
``notes_issued``
    the amount of every note ``F`` issued that is not settled or refused and that ``B``
    financed (holds the claim) or confirmed (保兑: pays the holder if ``F`` does not) —
    once per note when ``B`` did both;
``notes_endorsed``
    the amount of every such note ``B`` financed in which ``F`` is an endorser or the holder
    that had it financed (recourse: earlier holders answer for the note);
``guarantees``
    for every active guarantee ``F`` gave for a loan of ``B`` to another firm, the smaller of
    the guaranteed amount and that loan's outstanding principal (0 when the loan is closed, or
    not in the graph yet: its exposure appears with the loan).

Each part is a sum of non-negative items, and an item only grows as records arrive (a
guarantee's cap appears with its loan), so adding a loan, note or guarantee never lowers any
exposure (the property tests check it). One amount may count towards several firms —
a note against its issuer and each endorser — because each is liable for all of it; the
parts of one firm never count the same item twice. :func:`exposure` answers for one bank and
firm with the items as evidence; :func:`exposures` computes every firm's exposure to every
bank in one pass over the loans, notes and guarantees (``O(records)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tally.graph.records import Guarantee, Note
from tally.graph.store import LIVE_NOTE_STATES, Graph

PATHS = ("loan", "note_issued", "note_endorsed", "guarantee")


@dataclass(frozen=True, slots=True)
class Item:
    """One path of exposure: ``path`` (one of :data:`PATHS`), the record id, the amount."""

    path: str
    ref: str
    amount: int


@dataclass(slots=True)
class Exposure:
    """Bank ``bank``'s exposure to ``firm``: the four parts and the items behind them."""

    bank: str
    firm: str
    loans: int = 0
    notes_issued: int = 0
    notes_endorsed: int = 0
    guarantees: int = 0
    items: list[Item] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.loans + self.notes_issued + self.notes_endorsed + self.guarantees

    def add(self, item: Item) -> None:
        self.items.append(item)
        if item.path == "loan":
            self.loans += item.amount
        elif item.path == "note_issued":
            self.notes_issued += item.amount
        elif item.path == "note_endorsed":
            self.notes_endorsed += item.amount
        else:
            self.guarantees += item.amount

    def as_json(self) -> dict[str, object]:
        return {
            "bank": self.bank,
            "firm": self.firm,
            "total": self.total,
            "loans": self.loans,
            "notes_issued": self.notes_issued,
            "notes_endorsed": self.notes_endorsed,
            "guarantees": self.guarantees,
            "items": [{"path": i.path, "ref": i.ref, "amount": i.amount} for i in self.items],
        }


def guarantee_amount(graph: Graph, g: Guarantee) -> int:
    """What an active guarantee can cost its guarantor now (see ``guarantees`` above)."""
    loan = graph.loans.get(g.loan)
    if loan is None or loan.state == "closed":
        return 0
    return min(g.amount, loan.outstanding)


def _items(graph: Graph) -> Iterator[tuple[str, str, Item]]:
    """Every (bank, firm, item) of the graph, loans then notes then guarantees."""
    for loan in graph.loans.values():
        if loan.state != "closed":
            yield loan.bank, loan.borrower, Item("loan", loan.id, loan.outstanding)
    for note in graph.notes.values():
        if note.state not in LIVE_NOTE_STATES:
            continue
        banks = [b for b in (note.financed, note.confirmed) if b]
        for bank in dict.fromkeys(banks):
            yield bank, note.issuer, Item("note_issued", note.id, note.amount)
        if note.financed:
            for firm in dict.fromkeys((*note.endorsers, note.holder)):
                if firm != note.issuer:
                    yield note.financed, firm, Item("note_endorsed", note.id, note.amount)
    for g in graph.guarantees.values():
        if g.active and g.guarantor != g.debtor:
            yield g.bank, g.guarantor, Item("guarantee", g.id, guarantee_amount(graph, g))


def exposures(graph: Graph) -> dict[str, dict[str, Exposure]]:
    """firm → bank → exposure, for every firm and bank with any exposure."""
    out: dict[str, dict[str, Exposure]] = {}
    for bank, firm, item in _items(graph):
        per = out.setdefault(firm, {})
        ex = per.get(bank)
        if ex is None:
            ex = per[bank] = Exposure(bank, firm)
        ex.add(item)
    return out


def exposure(graph: Graph, bank: str, firm: str) -> Exposure:
    """Bank ``bank``'s exposure to ``firm`` (zero when there is none), reading only the
    records around the firm."""
    ex = Exposure(bank, firm)
    for e in graph.in_edges("loans", firm):
        if e.src == bank:
            ex.add(Item("loan", e.ref, e.amount))
    for e in graph.out_edges("notes", firm):
        note = graph.notes[e.ref]
        if bank in (note.financed, note.confirmed):
            ex.add(Item("note_issued", note.id, note.amount))
    for note in _notes_touching(graph, firm):
        if note.financed == bank and note.issuer != firm:
            ex.add(Item("note_endorsed", note.id, note.amount))
    for e in graph.out_edges("guarantees", firm):
        g = graph.guarantees[e.ref]
        if g.bank == bank and g.debtor != firm:
            ex.add(Item("guarantee", g.id, guarantee_amount(graph, g)))
    return ex


def _notes_touching(graph: Graph, firm: str) -> list[Note]:
    """Live notes held by ``firm``, or held by anyone with ``firm`` among the endorsers."""
    return [n for n in graph.endorsed_notes(firm) if n.state in LIVE_NOTE_STATES]


__all__ = ["PATHS", "Exposure", "Item", "exposure", "exposures", "guarantee_amount"]

"""Receivable notes off chain: provenance, a holdings index and the conservation check.

Everything here reads a world state (a peer's :class:`~tally.ledger.state.StateView`) or the
writes of committed transactions; nothing writes to the chain.

* :func:`provenance` — the path from a note back to its issue, with the trade it was issued
  against: the note's ancestors by ``parent`` (issue first, the note last), one state read
  per tier, so its cost depends on the note's depth, not on how many notes exist.
* :class:`NoteIndex` — an in-memory index of every note (id, parent, family, holder, state,
  amount), loaded from a state and kept current from committed writes
  (:meth:`NoteIndex.apply_writes`), for the questions the chain's keys do not answer
  directly: which notes a party holds, the notes of a family, a provenance without reading
  the state. Memory is a few hundred bytes per note.
* :func:`check_conservation` — for every family, Σ amounts of its notes in a live state
  (offered, live, financed, overdue) must equal ``noteroot/<root>.live`` = issued − settled:
  no amount is created or lost by splits, transfers, financing or settlement. It scans every
  note (O(n)); the chain keeps the O(1) form in ``noteroot/<root>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tally.finance.contracts.notes_ops import LIVE_STATES
from tally.finance.keys import NOTE, NOTEROOT, note_key, trade_key
from tally.ledger.state import StateView

MAX_DEPTH = 10_000
"""A provenance walk longer than this means the state is corrupt (a cycle)."""


class ProvenanceError(LookupError):
    """A note, or an ancestor it names, is not in the state."""


@dataclass(frozen=True)
class Provenance:
    """A note's path: ``notes`` from the issue (first) to the note (last); ``trade`` the
    ``trade/<id>`` record it was issued against (None if that is not in the state)."""

    notes: list[dict[str, Any]]
    trade: dict[str, Any] | None

    @property
    def ids(self) -> list[str]:
        return [n["id"] for n in self.notes]

    @property
    def holders(self) -> list[str]:
        """Every holder on the path in order: the endorsers of the note, then its holder."""
        last = self.notes[-1]
        return [*last["endorsers"], last["holder"]]


def _value(state: StateView, key: str) -> Any:
    found = state.get(key)
    return None if found is None else found[0]


def provenance(state: StateView, note_id: str) -> Provenance:
    """The path of ``note_id`` (see the module docstring); raise :class:`ProvenanceError`
    when the note or an ancestor is missing."""
    rec = _value(state, note_key(note_id))
    if rec is None:
        raise ProvenanceError(f"note {note_id} does not exist")
    path = [dict(rec)]
    while path[-1]["parent"] is not None:
        parent = path[-1]["parent"]
        if len(path) > MAX_DEPTH:
            raise ProvenanceError(f"note {note_id}: more than {MAX_DEPTH} ancestors")
        up = _value(state, note_key(parent))
        if up is None:
            raise ProvenanceError(f"note {path[-1]['id']} names parent {parent}, which is missing")
        path.append(dict(up))
    path.reverse()
    trade = _value(state, trade_key(path[0]["trade"]))
    return Provenance(path, None if trade is None else dict(trade))


@dataclass(slots=True)
class Row:
    """What :class:`NoteIndex` keeps of one note."""

    id: str
    parent: str | None
    root: str
    trade: str
    holder: str
    state: str
    amount: int
    currency: str
    due: int
    bank: str | None
    """The financing bank, if financed."""


class NoteIndex:
    """Every note by id, the live notes by holder and the notes by family (see the module
    docstring). Feed it every committed note record, in commit order."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._held: dict[str, set[str]] = {}
        self._family: dict[str, set[str]] = {}

    @classmethod
    def load(cls, state: StateView) -> NoteIndex:
        """An index of every note in ``state``."""
        index = cls()
        for _, value, _ in state.range(NOTE):
            index.apply(value)
        return index

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, note_id: object) -> bool:
        return note_id in self._rows

    def apply(self, rec: dict[str, Any]) -> None:
        """Add or replace a note from its ``note/<id>`` record."""
        old = self._rows.get(rec["id"])
        if old is not None and old.state in LIVE_STATES:
            self._held[old.holder].discard(old.id)
        financed = rec["financed"]
        row = Row(rec["id"], rec["parent"], rec["root"], rec["trade"], rec["holder"],
                  rec["state"], rec["amount"], rec["currency"], rec["due"],
                  None if financed is None else financed["bank"])  # fmt: skip
        self._rows[row.id] = row
        self._family.setdefault(row.root, set()).add(row.id)
        if row.state in LIVE_STATES:
            self._held.setdefault(row.holder, set()).add(row.id)

    def apply_writes(self, writes: Iterable[tuple[str, Any]]) -> int:
        """Apply the ``note/`` writes of committed transactions (``(key, value)`` pairs as an
        endorsement or a block carries them; notes are never deleted). Returns how many."""
        n = 0
        for key, value in writes:
            if key.startswith(NOTE) and value is not None:
                self.apply(value)
                n += 1
        return n

    def get(self, note_id: str) -> Row:
        row = self._rows.get(note_id)
        if row is None:
            raise ProvenanceError(f"note {note_id} is not indexed")
        return row

    def provenance(self, note_id: str) -> list[str]:
        """The ids from the issue to ``note_id`` (the index's form of :func:`provenance`)."""
        path = [self.get(note_id)]
        while path[-1].parent is not None:
            if len(path) > MAX_DEPTH:
                raise ProvenanceError(f"note {note_id}: more than {MAX_DEPTH} ancestors")
            path.append(self.get(path[-1].parent))
        return [r.id for r in reversed(path)]

    def holdings(self, party: str) -> list[Row]:
        """The notes ``party`` holds in a live state (offered, live, financed, overdue),
        by id."""
        return [self._rows[n] for n in sorted(self._held.get(party, ()))]

    def family(self, root: str) -> list[Row]:
        """Every note of family ``root`` (any state), by id."""
        return [self._rows[n] for n in sorted(self._family.get(root, ()))]

    def live_total(self, root: str) -> int:
        """Σ amounts of the family's notes in a live state."""
        return sum(r.amount for r in self.family(root) if r.state in LIVE_STATES)


def check_conservation(state: StateView) -> list[str]:
    """Every family's bookkeeping against its notes; the discrepancies found (empty when
    every ``noteroot/<root>`` has live = issued − settled = Σ its live notes and counts its
    notes)."""
    live: dict[str, int] = {}
    count: dict[str, int] = {}
    for _, rec, _ in state.range(NOTE):
        count[rec["root"]] = count.get(rec["root"], 0) + 1
        if rec["state"] in LIVE_STATES:
            live[rec["root"]] = live.get(rec["root"], 0) + rec["amount"]
    problems: list[str] = []
    roots = {k[len(NOTEROOT) :]: v for k, v, _ in state.range(NOTEROOT)}
    for root in sorted(set(roots) | set(count)):
        book = roots.get(root)
        if book is None:
            problems.append(f"family {root}: {count[root]} notes and no noteroot record")
            continue
        got = live.get(root, 0)
        if book["live"] != book["issued"] - book["settled"]:
            problems.append(
                f"family {root}: live {book['live']} ≠ issued {book['issued']} − settled "
                f"{book['settled']}"
            )
        if got != book["live"]:
            problems.append(
                f"family {root}: its live notes sum to {got}, the book says {book['live']}"
            )
        if count.get(root, 0) != book["notes"]:
            problems.append(
                f"family {root}: {count.get(root, 0)} notes, the book counts {book['notes']}"
            )
    return problems


__all__ = [
    "NoteIndex",
    "Provenance",
    "ProvenanceError",
    "Row",
    "check_conservation",
    "provenance",
]

"""Financing-need mining: suppliers that hold strong receivables and have no financing.

A firm is a financing need when all four hold:

1. **strong receivables** — it holds live notes (state ``live``: accepted, not financed)
   confirmed by a bank and issued by a strong core enterprise
   (:func:`~tally.graph.signals.strong_cores`); their sum is its ``receivables``;
2. **no financing** — no loan to it is outstanding and no note it holds or endorsed is
   financed;
3. **rising production** — the monthly trend of its electricity is at least ``min_trend``
   (default +1 % a month; :func:`~tally.graph.signals.trend`);
4. **stable inventory** — the coefficient of variation of its monthly inventory is at most
   ``max_cv`` (default 0.15).

Needs are ranked by ``rank = receivables × (1 + 10 × trend) × (1 − cv)`` (largest first,
ties by firm id): the most confirmed money owed by strong names, weighted up for growth and
down for unsteady stock. Each need carries its reasons in words and the notes as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tally.graph.signals import cv, strong_cores, trend
from tally.graph.store import Graph


@dataclass(frozen=True, slots=True)
class Need:
    firm: str
    rank: float
    receivables: int
    cores: tuple[str, ...]
    notes: tuple[str, ...]
    trend: float
    cv: float
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "firm": self.firm,
            "rank": round(self.rank, 2),
            "receivables": self.receivables,
            "cores": list(self.cores),
            "notes": list(self.notes),
            "electricity_trend": round(self.trend, 4),
            "inventory_cv": round(self.cv, 4),
            "reasons": list(self.reasons),
        }


def _financed(graph: Graph, firm: str) -> bool:
    if any(e.amount > 0 for e in graph.in_edges("loans", firm)):
        return True
    return any(n.financed for n in graph.endorsed_notes(firm))


def financing_needs(
    graph: Graph,
    *,
    min_trend: float = 0.01,
    max_cv: float = 0.15,
    strong: set[str] | None = None,
) -> list[Need]:
    """The ranked financing needs of the graph (see the module docstring)."""
    cores = strong_cores(graph) if strong is None else strong
    held: dict[str, list[str]] = {}
    for core in sorted(cores):
        for e in graph.out_edges("notes", core):
            note = graph.notes[e.ref]
            if note.state == "live" and note.confirmed and not graph.is_core(note.holder):
                held.setdefault(note.holder, []).append(note.id)
    out = []
    for firm in sorted(held):
        if firm not in graph.firms or _financed(graph, firm):
            continue
        tel = graph.telemetry.get(firm)
        if tel is None:
            continue
        slope, var = trend(tel.electricity), cv(tel.inventory)
        if slope is None or var is None or slope < min_trend or var > max_cv:
            continue
        notes = sorted(held[firm])
        amount = sum(graph.notes[n].amount for n in notes)
        issuers = tuple(sorted({graph.notes[n].issuer for n in notes}))
        reasons = (
            f"holds {len(notes)} confirmed notes of {amount / 100:,.2f} CNY from strong core "
            f"enterprises {', '.join(issuers)}",
            "no loan outstanding and no note financed",
            f"electricity rising {slope:+.1%} a month",
            f"inventory steady (variation {var:.1%})",
        )
        rank = amount * (1 + 10 * slope) * (1 - var)
        out.append(Need(firm, rank, amount, issuers, tuple(notes), slope, var, reasons))
    out.sort(key=lambda n: (-n.rank, n.firm))
    return out


__all__ = ["Need", "financing_needs"]

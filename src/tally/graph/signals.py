"""Signals read off a firm's records: series trends, stability, and which cores are strong.

* :func:`trend` — the monthly growth of a series: the least-squares slope of ``ln(1 + x)``
  against the month index (``0.03`` ≈ +3 % a month); ``None`` for fewer than 3 points.
* :func:`cv` — the coefficient of variation (population standard deviation ÷ mean);
  ``None`` for fewer than 2 points or a zero mean.
* :func:`strong_cores` — the core enterprises whose credit can be passed down their chain:
  rated ``AAA``, ``AA+`` or ``AA``; no note they issued overdue; no loan to them overdue,
  defaulted or more than 30 days past due; electricity not falling faster than 2 % a month
  (when they have meters). :func:`core_weakness` says why a core is not strong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tally.graph.store import Graph

STRONG_RATINGS = ("AAA", "AA+", "AA")
MAX_DPD = 30
MIN_CORE_TREND = -0.02


def trend(series: Sequence[int | float]) -> float | None:
    """Monthly growth: slope of ln(1 + x) over the index (see the module docstring)."""
    n = len(series)
    if n < 3:
        return None
    ys = [math.log1p(max(0.0, float(v))) for v in series]
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sxx


def cv(series: Sequence[int | float]) -> float | None:
    """Coefficient of variation, or ``None`` (see the module docstring)."""
    n = len(series)
    if n < 2:
        return None
    mean = sum(series) / n
    if mean <= 0:
        return None
    var = sum((v - mean) ** 2 for v in series) / n
    return math.sqrt(var) / mean


def core_weakness(graph: Graph, core: str) -> list[str]:
    """Why ``core`` is not a strong core enterprise (empty: it is one)."""
    f = graph.firms.get(core)
    if f is None or f.kind != "core":
        return ["not a core enterprise"]
    why = []
    if f.rating not in STRONG_RATINGS:
        why.append(f"rated {f.rating or 'unrated'}, below AA")
    overdue = sorted(
        e.ref for e in graph.out_edges("notes", core) if graph.notes[e.ref].state == "overdue"
    )
    if overdue:
        why.append(f"{len(overdue)} notes overdue (e.g. {overdue[0]})")
    late = sorted(e.ref for e in graph.in_edges("loans", core) if _late(graph, e.ref))
    if late:
        why.append(f"{len(late)} loans past due (e.g. {late[0]})")
    tel = graph.telemetry.get(core)
    slope = trend(tel.electricity) if tel is not None else None
    if slope is not None and slope < MIN_CORE_TREND:
        why.append(f"electricity falling {slope:+.1%} a month")
    return why


def _late(graph: Graph, loan_id: str) -> bool:
    loan = graph.loans[loan_id]
    return loan.state in ("overdue", "defaulted") or loan.dpd > MAX_DPD


def strong_cores(graph: Graph) -> set[str]:
    """The strong core enterprises of the graph (see the module docstring)."""
    return {
        f.id for f in graph.firms.values() if f.kind == "core" and not core_weakness(graph, f.id)
    }


__all__ = ["STRONG_RATINGS", "core_weakness", "cv", "strong_cores", "trend"]

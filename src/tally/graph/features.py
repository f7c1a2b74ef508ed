"""The scorecard's features: what a bank can see of an SME, each scaled to [0, 1] (1 good).

=====================  ===========================================================  =======
feature                value                                                        none
=====================  ===========================================================  =======
``production``         electricity trend (:func:`~tally.graph.signals.trend`) mapped  0
                       −5 %/month → 0 … +5 %/month → 1, times the share of the
                       firm's devices reporting
``inventory_turnover`` sales in the year before ``as_of`` ÷ mean monthly inventory,   0.5
                       as ln(1 + turns) ÷ ln(25) capped at 1 (24 turns → 1)
``custody``            1 − gap hours in the custody of its pledged goods ÷ 72,      0.5
                       floored at 0
``fourflow``           share of its trades (either side) with all four flows         0.5
                       consistent
``payment``            share (by amount) of its due purchases paid within 5 days of  0.5
                       the due date, times 1 − (worst days past due of its loans ÷ 90)
``tier_distance``      1 ÷ hops (undirected, over supplies and trades) to the        0
                       nearest strong core enterprise; 0 beyond 6 hops
``graph_risk``         1 − (0.5 in a guarantee circle + 0.5 in a circular trade +     —
                       0.5 flagged as a shell + 0.3 trades with a related party +
                       0.2 guarantees given above its capital), floored at 0
=====================  ===========================================================  =======

"none" is the value when the firm has nothing to measure (no meters; no inventory; no
pledged goods; no trades; no payables nor loans; no path to a strong core). Each row also
keeps ``facts``: the measured numbers in words, which reason codes quote.
:func:`feature_table` computes the graph-wide context once (strong cores, circles, circular
trades, shells, related-party trades, distances) and then every row in ``O(degree)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from tally.graph.patterns import DAY, circular_trades, shell_companies, shell_firms
from tally.graph.queries import UPSTREAM_KINDS, guarantee_circles
from tally.graph.signals import strong_cores, trend
from tally.graph.store import Graph

FEATURES = (
    "production",
    "inventory_turnover",
    "custody",
    "fourflow",
    "payment",
    "tier_distance",
    "graph_risk",
)
MAX_HOPS = 6
GRACE_DAYS = 5


@dataclass(frozen=True, slots=True)
class FeatureRow:
    firm: str
    values: dict[str, float]
    facts: dict[str, str]


@dataclass(slots=True)
class Context:
    """What every row needs from the whole graph, computed once."""

    as_of: int
    distance: dict[str, int] = field(default_factory=dict)
    circles: dict[str, str] = field(default_factory=dict)
    circular: dict[str, str] = field(default_factory=dict)
    shells: set[str] = field(default_factory=set)
    related: dict[str, str] = field(default_factory=dict)


def _facts_of(graph: Graph, firm: str) -> set[str]:
    rec = graph.firms.get(firm)
    if rec is None:
        return set()
    return {r.person for r in rec.roles} | set(rec.addresses) | set(rec.accounts)


def _distances(graph: Graph, sources: Iterable[str]) -> dict[str, int]:
    dist = {s: 0 for s in sorted(sources)}
    frontier = list(dist)
    for d in range(1, MAX_HOPS + 1):
        nxt = []
        for v in frontier:
            for kind in UPSTREAM_KINDS:
                for e in (*graph.in_edges(kind, v), *graph.out_edges(kind, v)):
                    w = e.src if e.dst == v else e.dst
                    if w not in dist:
                        dist[w] = d
                        nxt.append(w)
        frontier = nxt
    return dist


def context(graph: Graph, as_of: int | None = None) -> Context:
    """The graph-wide part of the features (see the module docstring)."""
    ctx = Context(graph.as_of if as_of is None else as_of)
    ctx.distance = _distances(graph, strong_cores(graph))
    for c in guarantee_circles(graph):
        for f in c.firms:
            ctx.circles.setdefault(f, c.text())
    for t in circular_trades(graph):
        for f in t.firms:
            ctx.circular.setdefault(f, t.text())
    ctx.shells = set(shell_firms(shell_companies(graph, ctx.as_of)))
    facts: dict[str, set[str]] = {}
    for tr in graph.trades.values():
        a = facts.get(tr.seller)
        if a is None:
            a = facts[tr.seller] = _facts_of(graph, tr.seller)
        b = facts.get(tr.buyer)
        if b is None:
            b = facts[tr.buyer] = _facts_of(graph, tr.buyer)
        if a & b:
            ctx.related.setdefault(tr.seller, tr.id)
            ctx.related.setdefault(tr.buyer, tr.id)
    return ctx


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def row(graph: Graph, firm: str, ctx: Context) -> FeatureRow:
    """One firm's features and facts."""
    v: dict[str, float] = {}
    facts: dict[str, str] = {}
    tel = graph.telemetry.get(firm)
    slope = trend(tel.electricity) if tel is not None else None
    if tel is None or slope is None or tel.devices == 0:
        v["production"], facts["production"] = 0.0, "no meter reports"
    else:
        v["production"] = _clip((slope + 0.05) / 0.10) * tel.online / tel.devices
        facts["production"] = (
            f"electricity {slope:+.1%} a month, {tel.online} of {tel.devices} devices reporting"
        )
    start = ctx.as_of - 365 * DAY
    sold = sum(e.amount for e in graph.out_edges("trades", firm) if e.t >= start)
    inv = tel.inventory if tel is not None else ()
    mean_inv = sum(inv) / len(inv) if inv else 0.0
    if mean_inv <= 0:
        v["inventory_turnover"], facts["inventory_turnover"] = 0.5, "no inventory measured"
    else:
        turns = sold / mean_inv
        v["inventory_turnover"] = _clip(math.log1p(turns) / math.log(25))
        facts["inventory_turnover"] = f"inventory turns {turns:.1f} times a year"
    if _pledges(graph, firm) or (tel is not None and tel.custody_gaps):
        hours = tel.gap_hours if tel is not None else 72
        v["custody"] = _clip(1 - hours / 72)
        facts["custody"] = (
            f"{tel.custody_gaps} custody gaps, {hours} h of pledged goods unobserved"
            if tel is not None
            else "pledged goods without telemetry"
        )
    else:
        v["custody"], facts["custody"] = 0.5, "no pledged goods"
    edges = (*graph.out_edges("trades", firm), *graph.in_edges("trades", firm))
    if edges:
        bad = sum(1 for e in edges if graph.trades[e.ref].mismatches)
        v["fourflow"] = 1 - bad / len(edges)
        facts["fourflow"] = f"{bad} of {len(edges)} trades with four-flow mismatches"
    else:
        v["fourflow"], facts["fourflow"] = 0.5, "no trades"
    v["payment"], facts["payment"] = _payment(graph, firm, ctx.as_of)
    d = ctx.distance.get(firm)
    if d is None:
        v["tier_distance"], facts["tier_distance"] = 0.0, "no strong core within 6 hops"
    elif d == 0:
        v["tier_distance"], facts["tier_distance"] = 1.0, "is a strong core enterprise"
    else:
        v["tier_distance"], facts["tier_distance"] = 1 / d, f"{d} hops from a strong core"
    v["graph_risk"], facts["graph_risk"] = _graph_risk(graph, firm, ctx)
    return FeatureRow(firm, v, facts)


def _pledges(graph: Graph, firm: str) -> bool:
    return any(graph.loans[e.ref].receipts for e in graph.in_edges("loans", firm))


def _payment(graph: Graph, firm: str, as_of: int) -> tuple[float, str]:
    due = on_time = 0
    for e in graph.in_edges("trades", firm):
        t = graph.trades[e.ref]
        if t.due > as_of:
            continue
        due += t.amount
        if t.paid_t is not None and t.paid_t <= t.due + GRACE_DAYS * DAY:
            on_time += t.paid
    dpd = max((graph.loans[e.ref].dpd for e in graph.in_edges("loans", firm)), default=0)
    share = on_time / due if due else 0.5
    value = share * (1 - min(1.0, dpd / 90))
    text = f"{share:.0%} of payables paid on time" if due else "no payables due"
    return value, f"{text}; worst loan {dpd} days past due"


def _graph_risk(graph: Graph, firm: str, ctx: Context) -> tuple[float, str]:
    risk, why = 0.0, []
    if firm in ctx.circles:
        risk += 0.5
        why.append(f"in guarantee circle {ctx.circles[firm]}")
    if firm in ctx.circular:
        risk += 0.5
        why.append(f"in circular trade {ctx.circular[firm]}")
    if firm in ctx.shells:
        risk += 0.5
        why.append("flagged as a shell company")
    if firm in ctx.related:
        risk += 0.3
        why.append(f"trades with a related party ({ctx.related[firm]})")
    given = sum(e.amount for e in graph.out_edges("guarantees", firm))
    rec = graph.firms.get(firm)
    if rec is not None and given > rec.capital > 0:
        risk += 0.2
        why.append("guarantees given exceed its capital")
    return _clip(1 - risk), "; ".join(why) or "no graph risk found"


def feature_table(
    graph: Graph, firms: Iterable[str] | None = None, as_of: int | None = None
) -> dict[str, FeatureRow]:
    """Rows for ``firms`` (default: every SME), keyed by firm, in sorted order."""
    ctx = context(graph, as_of)
    chosen = (
        sorted(firms)
        if firms is not None
        else sorted(f.id for f in graph.firms.values() if f.kind == "sme")
    )
    return {f: row(graph, f, ctx) for f in chosen}


__all__ = ["FEATURES", "Context", "FeatureRow", "context", "feature_table", "row"]

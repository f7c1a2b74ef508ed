"""Fraud patterns in the graph: shell companies and circular trades.

**Shell companies.** Candidates are firms that share a *directing* person (legal
representative or director) **and** an address with another firm; candidates linked that
way form a group (union–find). A candidate is flagged when it shows at least
``min_signals`` (default 3) of four signals of a firm without a business of its own:

``no_production``   no device reports (no telemetry, none online) or under ``min_kwh``
                    (6,000 kWh) of electricity in its twelve months;
``young``           registered less than ``young_days`` (730) before ``as_of``;
``thin_capital``    registered capital below ``thin_capital`` (1,000,000 CNY);
``inward_trade``    it trades with no firm outside the candidates (its own group or any
                    other), or at least half of its trade value is with candidates: shells
                    trade with shells.

A family business sharing a founder and a factory compound is a candidate too; its real
production, age, capital and outside customers keep it from being flagged.

**Circular trades** (循环贸易). The trade graph has an edge seller → buyer per firm pair that
traded. A circular trade is an elementary cycle of ``min_len`` to ``max_len`` firms (3 to 6)
for which one trade per hop can be chosen with all their dates within ``window_days`` (90)
of each other; the chosen trades are the tightest such set (smallest span, found with a
heap over the hops' sorted dates). Reciprocal trade between two firms (a 2-cycle) is not
reported: it is common between a mill and its machine shop. Cycles in canonical rotation.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from tally.graph.cycles import elementary_cycles
from tally.graph.store import Graph

DAY = 86_400_000
SIGNALS = ("no_production", "young", "thin_capital", "inward_trade")


@dataclass(frozen=True, slots=True)
class ShellFirm:
    firm: str
    signals: tuple[str, ...]
    flagged: bool


@dataclass(frozen=True, slots=True)
class ShellGroup:
    """Firms linked by a shared directing person and address, with the shared facts."""

    firms: tuple[ShellFirm, ...]
    persons: tuple[str, ...]
    addresses: tuple[str, ...]

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(f.firm for f in self.firms if f.flagged)


def _find(parent: dict[str, str], x: str) -> str:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _candidates(graph: Graph) -> list[tuple[list[str], set[str], set[str]]]:
    """Groups of firms sharing a directing person and an address: (firms, persons, addrs)."""
    buckets: dict[tuple[str, str], list[str]] = {}
    for person in graph.sources("directs"):
        firms = sorted({e.dst for e in graph.out_edges("directs", person)})
        if len(firms) < 2:
            continue
        for firm in firms:
            rec = graph.firms.get(firm)
            for addr in rec.addresses if rec is not None else ():
                buckets.setdefault((person, addr), []).append(firm)
    parent: dict[str, str] = {}
    shared: list[tuple[str, str, list[str]]] = []
    for (person, addr), firms in sorted(buckets.items()):
        if len(firms) < 2:
            continue
        shared.append((person, addr, firms))
        for f in firms:
            parent.setdefault(f, f)
        for f in firms[1:]:
            a, b = _find(parent, firms[0]), _find(parent, f)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, tuple[list[str], set[str], set[str]]] = {}
    for f in sorted(parent):
        groups.setdefault(_find(parent, f), ([], set(), set()))[0].append(f)
    for person, addr, firms in shared:
        g = groups[_find(parent, firms[0])]
        g[1].add(person)
        g[2].add(addr)
    return [groups[k] for k in sorted(groups)]


def _signals(
    graph: Graph,
    firm: str,
    candidates: set[str],
    as_of: int,
    young_days: int,
    thin_capital: int,
    min_kwh: int,
) -> tuple[str, ...]:
    rec = graph.firms[firm]
    out = []
    tel = graph.telemetry.get(firm)
    if tel is None or tel.online == 0 or sum(tel.electricity) < min_kwh:
        out.append("no_production")
    if as_of - rec.founded < young_days * DAY:
        out.append("young")
    if rec.capital < thin_capital:
        out.append("thin_capital")
    inside = outside = 0
    for e in (*graph.out_edges("trades", firm), *graph.in_edges("trades", firm)):
        other = e.dst if e.src == firm else e.src
        if other in candidates:
            inside += e.amount
        else:
            outside += e.amount
    if outside == 0 or inside >= outside:
        out.append("inward_trade")
    return tuple(out)


def shell_companies(
    graph: Graph,
    as_of: int | None = None,
    *,
    min_signals: int = 3,
    young_days: int = 730,
    thin_capital: int = 100_000_000,
    min_kwh: int = 6000,
) -> list[ShellGroup]:
    """Every candidate group (see the module docstring) with each firm's signals; a firm
    is ``flagged`` when it has at least ``min_signals`` of them."""
    now = graph.as_of if as_of is None else as_of
    out = []
    groups = _candidates(graph)
    members = {f for firms, _, _ in groups for f in firms}
    for firms, persons, addrs in groups:
        rows = []
        for f in firms:
            sig = _signals(graph, f, members, now, young_days, thin_capital, min_kwh)
            rows.append(ShellFirm(f, sig, len(sig) >= min_signals))
        out.append(ShellGroup(tuple(rows), tuple(sorted(persons)), tuple(sorted(addrs))))
    return out


def shell_firms(groups: Sequence[ShellGroup]) -> list[str]:
    """The flagged firms of :func:`shell_companies`' answer, sorted."""
    return sorted(f for g in groups for f in g.flagged)


@dataclass(frozen=True, slots=True)
class TradeCycle:
    """A circular trade: ``firms[i]`` sold to ``firms[i + 1]`` (the last to the first) in
    ``trades[i]``; ``span_ms`` between the first and last of those trades' dates."""

    firms: tuple[str, ...]
    trades: tuple[str, ...]
    span_ms: int
    amount: int

    def text(self) -> str:
        return " → ".join((*self.firms, self.firms[0]))


def _tightest(hops: Sequence[Sequence[tuple[int, str]]]) -> tuple[int, list[str]]:
    """One (t, id) per hop (each hop sorted by t) with the smallest max − min of t."""
    idx = [0] * len(hops)
    heap = [(hop[0][0], i) for i, hop in enumerate(hops)]
    heapq.heapify(heap)
    hi = max(t for t, _ in heap)
    best = (hi - heap[0][0], [hop[0][1] for hop in hops])
    while True:
        _, i = heapq.heappop(heap)
        idx[i] += 1
        if idx[i] >= len(hops[i]):
            return best
        nt = hops[i][idx[i]][0]
        hi = max(hi, nt)
        heapq.heappush(heap, (nt, i))
        if hi - heap[0][0] < best[0]:
            best = (hi - heap[0][0], [hops[j][idx[j]][1] for j in range(len(hops))])


def trade_succ(graph: Graph) -> dict[str, list[str]]:
    """seller → sorted distinct buyers over all trades (self-trades dropped)."""
    out: dict[str, list[str]] = {}
    for s in graph.sources("trades"):
        bs = sorted({e.dst for e in graph.out_edges("trades", s) if e.dst != s})
        if bs:
            out[s] = bs
    return out


def circular_trades(
    graph: Graph, window_days: int = 90, min_len: int = 3, max_len: int = 6
) -> list[TradeCycle]:
    """Every circular trade (see the module docstring), in canonical order."""
    if not 2 <= min_len <= max_len:
        raise ValueError(f"need 2 <= min_len <= max_len, got {min_len} and {max_len}")
    out = []
    for cyc in elementary_cycles(trade_succ(graph), max_len):
        if len(cyc) < min_len:
            continue
        hops = []
        for i, a in enumerate(cyc):
            b = cyc[(i + 1) % len(cyc)]
            hops.append(sorted((e.t, e.ref) for e in graph.out_edges("trades", a) if e.dst == b))
        span, chosen = _tightest(hops)
        if span <= window_days * DAY:
            amount = sum(graph.trades[t].amount for t in chosen)
            out.append(TradeCycle(cyc, tuple(chosen), span, amount))
    return out


__all__ = [
    "SIGNALS",
    "ShellFirm",
    "ShellGroup",
    "TradeCycle",
    "circular_trades",
    "shell_companies",
    "shell_firms",
    "trade_succ",
]

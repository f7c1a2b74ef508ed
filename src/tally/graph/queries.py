"""Queries of the knowledge graph: supplier tiers, relatives, guarantee circles.

* :func:`supplier_tiers` — a core enterprise's upstream chain: tier 1 are the firms that
  supply it (a declared ``supplies`` edge or any trade sold to it), tier ``k + 1`` those that
  supply a tier-``k`` firm and are in no lower tier. Breadth-first, so a firm's tier is its
  shortest distance upstream; consistency: every supplier of a tier-``k`` firm has a tier
  ``≤ k + 1``.
* :func:`relatives` — the firms that share a person (in any role), an address or a bank
  account with a firm, each with the shared facts as evidence.
* :func:`guarantee_circles` — every elementary cycle of active guarantee edges
  (guarantor → debtor) of 2 to ``max_len`` firms: strongly connected components first, then
  bounded enumeration inside each (:mod:`tally.graph.cycles`). Each circle lists the
  guarantees along each hop, their total, and when it closed (its newest guarantee).
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.graph.cycles import elementary_cycles
from tally.graph.store import Graph

UPSTREAM_KINDS = ("supplies", "trades")


def supplier_tiers(graph: Graph, core: str, max_tier: int = 10) -> dict[int, list[str]]:
    """tier → sorted firms upstream of ``core`` (tier 1 sells to it), up to ``max_tier``.
    ``KeyError`` if ``core`` is not a firm of the graph."""
    if core not in graph.firms:
        raise KeyError(f"no firm {core!r} in the graph")
    seen = {core}
    frontier = [core]
    tiers: dict[int, list[str]] = {}
    for tier in range(1, max_tier + 1):
        nxt: set[str] = set()
        for firm in frontier:
            for kind in UPSTREAM_KINDS:
                for e in graph.in_edges(kind, firm):
                    if e.src not in seen:
                        nxt.add(e.src)
        if not nxt:
            break
        seen |= nxt
        frontier = sorted(nxt)
        tiers[tier] = frontier
    return tiers


def tier_of(tiers: dict[int, list[str]]) -> dict[str, int]:
    """firm → tier from :func:`supplier_tiers`' answer."""
    return {f: t for t, firms in tiers.items() for f in firms}


@dataclass(frozen=True, slots=True)
class Link:
    """One shared fact: ``kind`` person/address/account, the fact's id, and the roles the
    two firms hold in it (for a person: legal_rep, director, shareholder; else the kind)."""

    kind: str
    value: str
    role: str
    other_role: str


@dataclass(frozen=True, slots=True)
class Relative:
    firm: str
    links: tuple[Link, ...]


def relatives(graph: Graph, firm: str) -> list[Relative]:
    """The firms sharing a person, address or account with ``firm``, sorted by how many
    facts they share (most first), then id; each with its links."""
    rec = graph.firms.get(firm)
    if rec is None:
        raise KeyError(f"no firm {firm!r} in the graph")
    found: dict[str, list[Link]] = {}
    for r in rec.roles:
        for e in graph.firms_of_person(r.person):
            if e.dst != firm:
                other = graph.firms[e.dst].roles if e.dst in graph.firms else ()
                roles = sorted({x.role for x in other if x.person == r.person}) or [e.kind]
                for o in roles:
                    found.setdefault(e.dst, []).append(Link("person", r.person, r.role, o))
    for kind, edge_kind, facts in (
        ("address", "located_at", rec.addresses),
        ("account", "holds_account", rec.accounts),
    ):
        for value in facts:
            for e in graph.in_edges(edge_kind, value):
                if e.src != firm:
                    found.setdefault(e.src, []).append(Link(kind, value, kind, kind))
    out = [Relative(f, tuple(sorted(set(links), key=_link_key))) for f, links in found.items()]
    out.sort(key=lambda r: (-len(r.links), r.firm))
    return out


def _link_key(link: Link) -> tuple[str, str, str, str]:
    return (link.kind, link.value, link.role, link.other_role)


@dataclass(frozen=True, slots=True)
class Circle:
    """A guarantee circle: ``firms[i]`` guarantees ``firms[i + 1]`` (the last the first)
    by the guarantees ``hops[i]``; ``amount`` their total; ``closed`` the time of the newest
    guarantee in it (when the circle came to be)."""

    firms: tuple[str, ...]
    hops: tuple[tuple[str, ...], ...]
    amount: int
    closed: int

    def text(self) -> str:
        """``"A → B → C → A"``."""
        return " → ".join((*self.firms, self.firms[0]))


def guarantee_succ(graph: Graph) -> dict[str, list[str]]:
    """guarantor → sorted distinct debtors over active guarantees (no self-guarantees)."""
    out: dict[str, list[str]] = {}
    for g in graph.sources("guarantees"):
        ds = sorted({e.dst for e in graph.out_edges("guarantees", g) if e.dst != g})
        if ds:
            out[g] = ds
    return out


def guarantee_circles(graph: Graph, max_len: int = 10, limit: int = 1_000_000) -> list[Circle]:
    """Every guarantee circle of 2 to ``max_len`` firms (see the module docstring), in
    canonical order (least firm first)."""
    out = []
    for cyc in elementary_cycles(guarantee_succ(graph), max_len, limit):
        hops = []
        amount = closed = 0
        for i, a in enumerate(cyc):
            b = cyc[(i + 1) % len(cyc)]
            es = sorted(
                (e for e in graph.out_edges("guarantees", a) if e.dst == b), key=lambda e: e.ref
            )
            hops.append(tuple(e.ref for e in es))
            amount += sum(e.amount for e in es)
            closed = max(closed, max(e.t for e in es))
        out.append(Circle(cyc, tuple(hops), amount, closed))
    return out


__all__ = [
    "Circle",
    "Link",
    "Relative",
    "guarantee_circles",
    "guarantee_succ",
    "relatives",
    "supplier_tiers",
    "tier_of",
]

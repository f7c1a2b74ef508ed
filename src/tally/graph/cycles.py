"""Strongly connected components and bounded enumeration of elementary cycles.

Used for guarantee circles (担保圈) and circular trades: both are the elementary cycles of a
directed graph of firms. Cycles live inside strongly connected components, so the search
first splits the graph into components (Tarjan's algorithm, iterative, ``O(V + E)``) and
then enumerates cycles only inside components with at least two nodes (self-loops are
reported separately by the callers that care).

Enumeration: for each node ``s`` of a component, in sorted order, a depth-first search from
``s`` over nodes greater than ``s`` records every path that returns to ``s``. Each elementary
cycle is therefore found exactly once, in its *canonical rotation* (starting at its least
node, in edge direction). The search is bounded by ``max_len`` nodes per cycle and by
``limit`` cycles in all; :class:`CycleLimitError` says when the limit stopped it, so a
truncated answer is never mistaken for a complete one. Everything is deterministic:
successors are visited in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

Succ = Mapping[str, Sequence[str]]
"""A directed graph as node → sorted distinct successors."""


class CycleLimitError(RuntimeError):
    """Raised when more than ``limit`` cycles were found; carries the ones found so far."""

    def __init__(self, limit: int, found: list[tuple[str, ...]]) -> None:
        super().__init__(f"more than {limit} cycles: enumeration stopped (raise the limit)")
        self.limit = limit
        self.found = found


def canonical(cycle: Sequence[str]) -> tuple[str, ...]:
    """The rotation of ``cycle`` that starts at its least node (direction kept)."""
    i = min(range(len(cycle)), key=cycle.__getitem__)
    return tuple(cycle[i:]) + tuple(cycle[:i])


def successors(edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """node → sorted distinct successors, from ``(src, dst)`` pairs (self-loops dropped)."""
    out: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            out.setdefault(a, set()).add(b)
    return {a: sorted(bs) for a, bs in out.items()}


def strongly_connected(succ: Succ) -> list[list[str]]:
    """The strongly connected components (each sorted), in sorted order of their least
    node; nodes only ever named as successors are included."""
    nodes = sorted(set(succ) | {b for bs in succ.values() for b in bs})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, i = work[-1]
            nxt = succ.get(v, ())
            if i < len(nxt):
                work[-1] = (v, i + 1)
                w = nxt[i]
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, 0))
                elif w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    comps.sort(key=lambda c: c[0])
    return comps


def cycles_in(
    comp: Sequence[str], succ: Succ, max_len: int, limit: int, found: list[tuple[str, ...]]
) -> None:
    """Append to ``found`` the elementary cycles of at most ``max_len`` nodes inside one
    component (canonical rotations, in order of their least node, then lexicographic)."""
    members = set(comp)
    for s in comp:
        path = [s]
        on_path = {s}
        iters = [iter([w for w in succ.get(s, ()) if w in members and w >= s])]
        while iters:
            w = next(iters[-1], None)
            if w is None:
                iters.pop()
                on_path.discard(path.pop())
                continue
            if w == s:
                if len(path) >= 2:
                    found.append(tuple(path))
                    if len(found) > limit:
                        raise CycleLimitError(limit, found[:limit])
                continue
            if w in on_path or len(path) >= max_len:
                continue
            path.append(w)
            on_path.add(w)
            iters.append(iter([x for x in succ.get(w, ()) if x in members and x >= s]))


def elementary_cycles(
    succ: Succ, max_len: int = 10, limit: int = 1_000_000
) -> list[tuple[str, ...]]:
    """Every elementary cycle of 2 to ``max_len`` nodes, canonical, in sorted order."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2, got {max_len}")
    found: list[tuple[str, ...]] = []
    for comp in strongly_connected(succ):
        if len(comp) > 1:
            cycles_in(comp, succ, max_len, limit, found)
    found.sort()
    return found


def is_cycle(cycle: Sequence[str], has_edge: Callable[[str, str], bool]) -> bool:
    """Whether ``cycle`` is elementary (no repeated node, at least 2) and every hop,
    the last back to the first included, is an edge."""
    n = len(cycle)
    return (
        n >= 2
        and len(set(cycle)) == n
        and all(has_edge(cycle[i], cycle[(i + 1) % n]) for i in range(n))
    )


__all__ = [
    "CycleLimitError",
    "Succ",
    "canonical",
    "cycles_in",
    "elementary_cycles",
    "is_cycle",
    "strongly_connected",
    "successors",
]

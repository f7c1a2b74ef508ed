"""Property tests: circles are cycles (and all of them), exposure is monotone in added
records, tiers are consistent, incremental building equals building afresh."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from graph_support import T0, guarantee, loan, note, trade
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.graph.cycles import canonical, is_cycle, strongly_connected, successors
from tally.graph.exposure import exposures
from tally.graph.patterns import DAY, circular_trades
from tally.graph.queries import guarantee_circles, supplier_tiers
from tally.graph.records import Firm, Supply
from tally.graph.store import Graph

FIRMS = ["F0", "F1", "F2", "F3", "F4", "F5"]
BANKS = ["B1", "B2"]
pairs = st.lists(st.tuples(st.sampled_from(FIRMS), st.sampled_from(FIRMS)), max_size=16)


def _brute_cycles(edges: set[tuple[str, str]]) -> set[tuple[str, ...]]:
    nodes = sorted({x for e in edges for x in e})
    out = set()
    for k in range(2, len(nodes) + 1):
        for perm in permutations(nodes, k):
            if perm[0] == min(perm) and is_cycle(perm, lambda a, b: (a, b) in edges):
                out.add(perm)
    return out


@settings(max_examples=150, deadline=None)
@given(pairs, st.lists(st.booleans(), min_size=16, max_size=16))
def test_circles_are_exactly_the_cycles_of_active_guarantees(
    edges: list[tuple[str, str]], active: list[bool]
) -> None:
    g = Graph()
    live = set()
    for i, (a, b) in enumerate(edges):
        g.add(guarantee(f"G{i}", a, b, 10 + i, active=active[i]))
        if active[i] and a != b:
            live.add((a, b))
    circles = guarantee_circles(g)
    for c in circles:
        assert is_cycle(c.firms, lambda a, b: (a, b) in live)
        assert canonical(c.firms) == c.firms
        for i, hop in enumerate(c.hops):
            for gid in hop:
                gr = g.guarantees[gid]
                assert gr.active and gr.guarantor == c.firms[i]
                assert gr.debtor == c.firms[(i + 1) % len(c.firms)]
    assert {c.firms for c in circles} == _brute_cycles(live)
    assert len(circles) == len({c.firms for c in circles})


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_components_partition_and_are_mutually_reachable(edges: list[tuple[str, str]]) -> None:
    succ = successors(edges)
    comps = strongly_connected(succ)
    seen = [n for c in comps for n in c]
    assert len(seen) == len(set(seen))

    def reach(a: str) -> set[str]:
        out, todo = {a}, [a]
        while todo:
            for b in succ.get(todo.pop(), ()):
                if b not in out:
                    out.add(b)
                    todo.append(b)
        return out

    where = {n: i for i, c in enumerate(comps) for n in c}
    for a in seen:
        for b in seen:
            same = b in reach(a) and a in reach(b)
            assert same == (where[a] == where[b])


record = st.one_of(
    st.builds(
        lambda i, b, f, amt: loan(f"L{i}", b, f, amt),
        st.integers(0, 5),
        st.sampled_from(BANKS),
        st.sampled_from(FIRMS),
        st.integers(0, 1000),
    ),
    st.builds(
        lambda i, gr, d, b, li, amt, act: guarantee(
            f"G{i}", gr, d, amt, bank=b, loan_id=f"L{li}", active=act
        ),
        st.integers(0, 5),
        st.sampled_from(FIRMS),
        st.sampled_from(FIRMS),
        st.sampled_from(BANKS),
        st.integers(0, 5),
        st.integers(0, 1000),
        st.booleans(),
    ),
    st.builds(
        lambda i, iss, h, amt, fin, conf, end, state: note(
            f"N{i}", iss, h, amt, financed=fin, confirmed=conf, endorsers=tuple(end), state=state
        ),
        st.integers(0, 5),
        st.sampled_from(FIRMS),
        st.sampled_from(FIRMS),
        st.integers(1, 1000),
        st.sampled_from(["", *BANKS]),
        st.sampled_from(["", *BANKS]),
        st.lists(st.sampled_from(FIRMS), max_size=2),
        st.sampled_from(["live", "financed", "settled", "overdue"]),
    ),
)


def _totals(g: Graph) -> dict[tuple[str, str], int]:
    return {(f, b): ex.total for f, per in exposures(g).items() for b, ex in per.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(record, max_size=12), st.lists(record, min_size=1, max_size=4))
def test_exposure_is_monotone_in_added_records(base: list[Any], extra: list[Any]) -> None:
    g = Graph()
    known: set[str] = set()
    for r in base:
        if r.id not in known:
            known.add(r.id)
            g.add(r)
    before = _totals(g)
    for r in extra:
        if r.id not in known:  # added, never replaced
            known.add(r.id)
            g.add(r)
    after = _totals(g)
    for key, total in before.items():
        assert after.get(key, 0) >= total


@settings(max_examples=150, deadline=None)
@given(pairs, st.lists(st.tuples(st.sampled_from(FIRMS), st.sampled_from(FIRMS)), max_size=6))
def test_supplier_tiers_are_consistent(
    supplies: list[tuple[str, str]], sales: list[tuple[str, str]]
) -> None:
    g = Graph()
    g.add(Firm("CORE", "core (simulated)", "core", "grain", 1, 0))
    for f in FIRMS:
        g.add(Firm(f, f, "sme", "grain", 1, 0))
    for a, b in supplies:
        g.add(Supply(a, b, T0))
    for i, (a, _) in enumerate(sales):
        g.add(trade(f"T{i}", a, "CORE"))
    tiers = supplier_tiers(g, "CORE")
    tier = {f: t for t, fs in tiers.items() for f in fs}
    direct = {e.src for k in ("supplies", "trades") for e in g.in_edges(k, "CORE")}
    assert set(tiers.get(1, [])) == direct - {"CORE"}
    for f, t in tier.items():
        for k in ("supplies", "trades"):
            for e in g.in_edges(k, f):
                assert e.src == "CORE" or tier.get(e.src, 99) <= t + 1
        if t > 1:
            buyers = {e.dst for k in ("supplies", "trades") for e in g.out_edges(k, f)}
            assert any(tier.get(b) == t - 1 for b in buyers)


@settings(max_examples=100, deadline=None)
@given(st.lists(record, max_size=20))
def test_incremental_equals_afresh(stream: list[Any]) -> None:
    inc = Graph()
    inc.add_all(stream)
    final: dict[tuple[type, str], object] = {}
    for r in stream:
        final[(type(r), r.id)] = r
    fresh = Graph()
    fresh.add_all(final.values())
    for kind in ("loans", "guarantees", "notes"):
        for node in set(FIRMS) | set(BANKS):
            assert sorted(inc.out_edges(kind, node), key=repr) == sorted(
                fresh.out_edges(kind, node), key=repr
            )
    assert _totals(inc) == _totals(fresh)
    for f in FIRMS:
        assert {n.id for n in inc.endorsed_notes(f)} == {n.id for n in fresh.endorsed_notes(f)}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(FIRMS[:4]), st.sampled_from(FIRMS[:4]), st.integers(0, 200)),
        max_size=12,
    )
)
def test_circular_trades_are_cycles_of_trades_in_the_window(
    rows: list[tuple[str, str, int]],
) -> None:
    g = Graph()
    for i, (a, b, day) in enumerate(rows):
        g.add(trade(f"T{i}", a, b, 10, T0 + day * DAY))
    for c in circular_trades(g, window_days=30):
        n = len(c.firms)
        assert 3 <= n <= 6 and len(set(c.firms)) == n
        dates = []
        for i, tid in enumerate(c.trades):
            t = g.trades[tid]
            assert (t.seller, t.buyer) == (c.firms[i], c.firms[(i + 1) % n])
            dates.append(t.t)
        assert max(dates) - min(dates) == c.span_ms <= 30 * DAY

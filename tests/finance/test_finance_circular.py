"""Circular trades and related parties (tally.finance.circular): hand-checked small graphs,
the search's bounds and tie-breaks, what adding and removing a trade marks for re-judging,
KYC facts; properties: every reported cycle is a real cycle of trade edges, the search finds
the shortest one whenever one exists, and incremental marking agrees with judging afresh."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.finance.circular import Cycle, KycIndex, KycRecord, Link, TradeGraph

DAY = 86_400_000
T0 = 1_767_225_600_000


def graph(edges: list[tuple[str, str, str]], t: int = T0, **kw: Any) -> TradeGraph:
    g = TradeGraph(**kw)
    for trade, s, b in edges:
        g.add(trade, s, b, t)
    return g


TRIANGLE = [("t1", "A", "B"), ("t2", "B", "C"), ("t3", "C", "A")]


def test_a_triangle_is_reported_from_each_trade() -> None:
    g = graph(TRIANGLE)
    assert g.cycle("t1") == Cycle(("A", "B", "C"), ("t1", "t2", "t3"))
    assert g.cycle("t2") == Cycle(("B", "C", "A"), ("t2", "t3", "t1"))
    assert g.cycle("t3") == Cycle(("C", "A", "B"), ("t3", "t1", "t2"))
    assert g.cycle("t1").text() == "A → B → C → A"  # type: ignore[union-attr]


def test_a_chain_has_no_cycle_and_two_parties_trading_both_ways_have_one() -> None:
    g = graph([("t1", "A", "B"), ("t2", "B", "C"), ("t3", "A", "C")])
    assert [g.cycle(t) for t in ("t1", "t2", "t3")] == [None, None, None]
    g.add("t4", "B", "A", T0)
    assert g.cycle("t1") == Cycle(("A", "B"), ("t1", "t4"))
    assert g.cycle("t4") == Cycle(("B", "A"), ("t4", "t1"))
    assert g.cycle("t2") is None and g.cycle("t3") is None  # C sells to nobody


def test_the_length_bound() -> None:
    ring = [(f"t{i}", f"P{i}", f"P{(i + 1) % 7}") for i in range(7)]
    assert graph(ring, max_len=6).cycle("t0") is None
    found = graph(ring, max_len=7).cycle("t0")
    assert found is not None and len(found.parties) == 7
    assert found.parties == tuple(f"P{i}" for i in range(7))


def test_the_window_is_around_the_judged_trade() -> None:
    g = TradeGraph(window_ms=30 * DAY)
    g.add("t1", "A", "B", T0)
    g.add("t2", "B", "C", T0 + 20 * DAY)
    g.add("t3", "C", "A", T0 + 31 * DAY)
    assert g.cycle("t1") is None  # t3 is 31 days after t1
    assert g.cycle("t2") is not None  # t1 and t3 are within 30 days of t2
    assert g.cycle("t3") is None


def test_the_shortest_cycle_and_a_tie_broken_by_party() -> None:
    edges = [("t1", "A", "B"), ("t2", "B", "A"), ("t3", "B", "C"), ("t4", "C", "A")]
    assert graph(edges).cycle("t1") == Cycle(("A", "B"), ("t1", "t2"))
    # two paths of length 2 from B back to A: via D and via C; C sorts first
    tie = [("t1", "A", "B"), ("t2", "B", "D"), ("t3", "D", "A"), ("t4", "B", "C"),
           ("t5", "C", "A")]  # fmt: skip
    want = Cycle(("A", "B", "C"), ("t1", "t4", "t5"))
    for perm in itertools.permutations(tie):
        assert graph(list(perm)).cycle("t1") == want
    # parallel trades on one hop: the smallest trade id names it
    assert graph([*TRIANGLE, ("t0", "B", "C")]).cycle("t1") == Cycle(
        ("A", "B", "C"), ("t1", "t0", "t3")
    )


def test_adding_and_removing_mark_the_trades_of_the_cycles_they_touch() -> None:
    g = TradeGraph()
    assert g.add("t1", "A", "B", T0) == {"t1"}
    assert g.add("t2", "B", "C", T0) == {"t2"}
    assert g.add("x", "X", "Y", T0) == {"x"}
    assert g.add("t3", "C", "A", T0) == {"t1", "t2", "t3"}
    assert g.add("t3", "C", "A", T0) == set()  # the same again: nothing
    assert g.add("y", "Y", "Z", T0) == {"y"}  # far from the triangle: only itself


def test_removal_marks_exactly_the_other_trades_of_the_broken_cycle() -> None:
    g = graph(TRIANGLE)
    assert g.remove("t2") == {"t1", "t3"}
    assert g.cycle("t1") is None and g.cycle("t3") is None


def test_a_conflicting_trade_is_refused_and_changes_nothing() -> None:
    g = graph(TRIANGLE)
    with pytest.raises(ValueError) as e:
        g.add("t1", "A", "C", T0)
    assert str(e.value) == (
        f"trade 't1' is already in the graph as A → B at {T0}, not A → C at {T0}: remove it first"
    )
    assert g.edge("t1") == ("A", "B", T0) and g.cycle("t1") is not None
    bad = [
        (("", "A", "B", T0), "trade must be non-empty text, got ''"),
        (("t9", "A", " ", T0), "trade 't9': buyer must be non-empty text"),
        (("t9", "A", "B", -1), "trade 't9': date must be an integer >= 0, got -1"),
    ]
    for args, msg in bad:
        with pytest.raises(ValueError, match="^" + msg.replace("(", r"\(")):
            g.add(*args)
    assert len(g) == 3
    with pytest.raises(ValueError, match="trade 'nope' is not in the graph"):
        g.cycle("nope")
    with pytest.raises(ValueError, match="max_len must be an integer >= 2, got 1"):
        TradeGraph(max_len=1)


def test_a_party_trading_with_itself_is_related_not_circular() -> None:
    g = graph([("t1", "A", "A")])
    assert g.cycle("t1") is None
    assert g.related("t1").links == (Link("same_party", "A"),)
    assert g.related("t1", KycIndex()).links == (Link("same_party", "A"),)
    assert g.remove("t1") == set() and len(g) == 0


# -- KYC ----------------------------------------------------------------------------------------


def test_shared_person_address_and_account_are_found_after_normalising() -> None:
    kyc = KycIndex([
        KycRecord("sup-a", ("110101199001011234",), ("No. 1  Harbour Road, Qingdao",),
                  ("6222 0200 0000 0001",)),
        KycRecord("core-b", ("110101199001011234", "X"), ("no. 1 harbour road, qingdao",),
                  ("6222-0200-0000-0001",)),
        KycRecord("other", ("Y",), ("Elsewhere",), ("1",)),
    ])  # fmt: skip
    assert kyc.links("sup-a", "core-b") == (
        Link("person", "110101199001011234"),
        Link("address", "no. 1 harbour road, qingdao"),
        Link("account", "6222020000000001"),
    )
    assert kyc.links("sup-a", "other") == () and kyc.links("sup-a", "unknown") == ()
    assert kyc.related_parties("sup-a") == ["core-b"]
    g = graph([("t1", "sup-a", "core-b")])
    assert len(g.related("t1", kyc).links) == 3


def test_replacing_a_record_marks_the_old_and_new_sharers() -> None:
    kyc = KycIndex([KycRecord("a", accounts=("1",)), KycRecord("b", accounts=("1",)),
                    KycRecord("c", accounts=("2",))])  # fmt: skip
    assert kyc.put(KycRecord("b", accounts=("2",))) == {"a", "b", "c"}
    assert kyc.links("a", "b") == () and kyc.links("b", "c") == (Link("account", "2"),)
    assert kyc.related_parties("a") == [] and len(kyc) == 3


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (KycRecord(""), "KYC record: party must be non-empty text, got ''"),
        (KycRecord("a", persons=("",)), "KYC record of 'a': persons[0] must be non-empty text"),
        (
            KycRecord("a", accounts=("--",)),
            "KYC record of 'a': accounts[0] is empty once normalised",
        ),
        (KycRecord("a", addresses=["x"]), "KYC record of 'a': addresses must be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_record_is_refused_and_changes_nothing(record: KycRecord, message: str) -> None:
    kyc = KycIndex([KycRecord("a", accounts=("1",)), KycRecord("b", accounts=("1",))])
    with pytest.raises(ValueError) as e:
        kyc.put(record)
    assert message in str(e.value)
    assert kyc.links("a", "b") == (Link("account", "1"),) and len(kyc) == 2


# -- properties ---------------------------------------------------------------------------------

PARTIES = [f"P{i}" for i in range(7)]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[tuple[str, str, str, int]], int, int]:
    n = draw(st.integers(1, 18))
    edges = []
    for i in range(n):
        s = draw(st.sampled_from(PARTIES))
        b = draw(st.sampled_from(PARTIES))
        edges.append((f"t{i:02d}", s, b, T0 + draw(st.integers(0, 40)) * DAY))
    return edges, draw(st.integers(2, 6)), draw(st.sampled_from([10, 30, 365])) * DAY


def shortest(
    edges: list[tuple[str, str, str, int]], trade: str, max_len: int, window: int
) -> int | None:
    """Brute force: the fewest parties of a simple cycle through ``trade``."""
    by = {t: (s, b, d) for t, s, b, d in edges}
    s0, b0, d0 = by[trade]
    if s0 == b0:
        return None
    adj: dict[str, set[str]] = {}
    for _, s, b, d in edges:
        if s != b and abs(d - d0) <= window:
            adj.setdefault(s, set()).add(b)
    best = None
    stack = [(b0, (s0, b0))]
    while stack:
        u, path = stack.pop()
        if len(path) > max_len:
            continue
        for v in adj.get(u, ()):
            if v == s0:
                best = len(path) if best is None else min(best, len(path))
            elif v not in path:
                stack.append((v, (*path, v)))
    return best


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_reported_cycles_are_real_shortest_and_incremental_marking_is_complete(
    g_: tuple[list[tuple[str, str, str, int]], int, int],
) -> None:
    edges, max_len, window = g_
    g = TradeGraph(max_len=max_len, window_ms=window)
    verdict: dict[str, Cycle | None] = {}
    for t, s, b, d in edges:
        for x in g.add(t, s, b, d):
            verdict[x] = g.cycle(x)
        # incremental verdicts equal verdicts judged afresh
        assert verdict == {x: g.cycle(x) for x in verdict}
    by = {t: (s, b, d) for t, s, b, d in edges}
    for t, cyc in verdict.items():
        want = shortest(edges, t, max_len, window)
        if cyc is None:
            assert want is None
            continue
        n = len(cyc.parties)
        assert want == n and 2 <= n <= max_len
        assert cyc.trades[0] == t and len(set(cyc.parties)) == n
        for i, x in enumerate(cyc.trades):
            s, b, d = by[x]
            assert (s, b) == (cyc.parties[i], cyc.parties[(i + 1) % n])
            assert abs(d - by[t][2]) <= window
    for t, _, _, _ in edges[::2]:  # removing trades keeps the marking complete
        for x in g.remove(t):
            verdict[x] = g.cycle(x)
        verdict.pop(t)
        assert verdict == {x: g.cycle(x) for x in verdict}

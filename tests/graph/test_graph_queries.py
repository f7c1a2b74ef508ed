"""Supplier tiers, relatives and guarantee circles on hand-checked graphs."""

from __future__ import annotations

import pytest
from graph_support import DAY, T0, firm, graph, guarantee, trade

from tally.graph.queries import Link, guarantee_circles, relatives, supplier_tiers, tier_of
from tally.graph.records import Supply
from tally.graph.store import Graph


def _chain() -> Graph:
    #   S3 → S1 → C      S4 → S2 → C      S4 → S1 (shortcut: S4 is tier 2 either way)
    #   S5 → S3 (tier 3), S6 sells to S5 only by a trade (tier 4), X sells to nobody in it
    return graph(
        firm("C", "core"),
        firm("S1"),
        firm("S2"),
        firm("S3"),
        firm("S4"),
        firm("S5"),
        firm("S6"),
        firm("X"),
        Supply("S1", "C", T0),
        Supply("S2", "C", T0),
        Supply("S3", "S1", T0),
        Supply("S4", "S2", T0),
        Supply("S4", "S1", T0),
        Supply("S5", "S3", T0),
        trade("T1", "S6", "S5"),
        trade("T2", "C", "X"),
    )


def test_supplier_tiers_by_shortest_distance_upstream() -> None:
    g = _chain()
    tiers = supplier_tiers(g, "C")
    assert tiers == {1: ["S1", "S2"], 2: ["S3", "S4"], 3: ["S5"], 4: ["S6"]}
    assert supplier_tiers(g, "C", max_tier=2) == {1: ["S1", "S2"], 2: ["S3", "S4"]}
    assert tier_of(tiers)["S6"] == 4
    assert supplier_tiers(g, "X") == {
        1: ["C"],
        2: ["S1", "S2"],
        3: ["S3", "S4"],
        4: ["S5"],
        5: ["S6"],
    }
    with pytest.raises(KeyError, match="no firm 'Q'"):
        supplier_tiers(g, "Q")


def test_relatives_with_the_linking_evidence() -> None:
    g = graph(
        firm(
            "A",
            persons=(("P1", "legal_rep"), ("P2", "shareholder")),
            addresses=("AD1",),
            accounts=("AC1",),
        ),
        firm("B", persons=(("P1", "director"),), addresses=("AD1",)),
        firm("C", persons=(("P2", "shareholder"), ("P2", "legal_rep"))),
        firm("D", accounts=("AC1",)),
        firm("E", persons=(("P9", "legal_rep"),), addresses=("AD9",)),
    )
    rel = relatives(g, "A")
    assert [r.firm for r in rel] == ["B", "C", "D"]
    assert rel[0].links == (
        Link("address", "AD1", "address", "address"),
        Link("person", "P1", "legal_rep", "director"),
    )
    assert rel[1].links == (
        Link("person", "P2", "shareholder", "legal_rep"),
        Link("person", "P2", "shareholder", "shareholder"),
    )
    assert rel[2].links == (Link("account", "AC1", "account", "account"),)
    assert relatives(g, "E") == []
    with pytest.raises(KeyError):
        relatives(g, "Z")


def test_guarantee_circles_with_hops_amounts_and_closing_time() -> None:
    g = graph(
        guarantee("G1", "A", "B", 10, t=T0),
        guarantee("G2", "B", "C", 20, t=T0 + DAY),
        guarantee("G3", "C", "A", 30, t=T0 + 5 * DAY),
        guarantee("G4", "C", "A", 5, t=T0),
        guarantee("G5", "A", "D", 1),
        guarantee("G6", "D", "A", 2, active=False),
        guarantee("G7", "E", "F", 3),
        guarantee("G8", "F", "E", 4),
        guarantee("G9", "E", "E", 9),
    )
    circles = guarantee_circles(g)
    assert [c.firms for c in circles] == [("A", "B", "C"), ("E", "F")]
    abc = circles[0]
    assert abc.hops == (("G1",), ("G2",), ("G3", "G4"))
    assert abc.amount == 65 and abc.closed == T0 + 5 * DAY
    assert abc.text() == "A → B → C → A"
    g.add(guarantee("G6", "D", "A", 2))  # the released guarantee is given again
    assert [c.firms for c in guarantee_circles(g)] == [("A", "B", "C"), ("A", "D"), ("E", "F")]
    assert [c.firms for c in guarantee_circles(g, max_len=2)] == [("A", "D"), ("E", "F")]

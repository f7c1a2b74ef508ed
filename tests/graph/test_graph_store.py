"""The graph store: typed edges from records, incremental replacement, indexes."""

from __future__ import annotations

import pytest
from graph_support import AS_OF, T0, firm, graph, guarantee, loan, note, trade

from tally.graph.records import Person, Supply
from tally.graph.store import Edge, Graph


def test_records_become_typed_edges_citing_them() -> None:
    g = graph(
        firm(
            "S1",
            persons=(("P1", "legal_rep"), ("P2", "shareholder")),
            addresses=("A1",),
            accounts=("AC1",),
        ),
        Supply("S1", "C1", T0),
        trade("T1", "S1", "C1", 900, T0 + 5),
        note("N1", "C1", "S1", 300),
        guarantee("G1", "C1", "S1", 50),
        loan("L1", "B1", "S1", 700),
    )
    assert g.out_edges("directs", "P1") == [
        Edge("directs", "P1", "S1", "S1", 0, firm("S1").founded)
    ]
    assert [e.dst for e in g.out_edges("shares", "P2")] == ["S1"]
    assert [e.dst for e in g.out_edges("located_at", "S1")] == ["A1"]
    assert [e.dst for e in g.out_edges("holds_account", "S1")] == ["AC1"]
    assert g.in_edges("supplies", "C1")[0].ref == "S1>C1"
    assert g.in_edges("trades", "C1")[0] == Edge("trades", "S1", "C1", "T1", 900, T0 + 5)
    assert g.out_edges("notes", "C1")[0].amount == 300
    assert g.out_edges("guarantees", "C1")[0].dst == "S1"
    assert g.in_edges("loans", "S1")[0] == Edge("loans", "B1", "S1", "L1", 700, T0)
    assert g.edge_count() == 9
    assert g.node_count() == 5  # S1, P1, P2, A1, AC1 (C1 and B1 are named by no record)
    assert g.as_of == T0 + 5
    assert g.persons_of("S1") == [("P1", "legal_rep"), ("P2", "shareholder")]


def test_a_known_id_replaces_the_record_and_its_edges() -> None:
    g = graph(note("N1", "C1", "S1", 300), guarantee("G1", "A", "B"), loan("L1", "B1", "S1", 700))
    v = g.version
    g.add(note("N1", "C1", "S2", 300, endorsers=("S1",)))  # transferred
    assert [e.dst for e in g.out_edges("notes", "C1")] == ["S2"]
    assert [n.id for n in g.endorsed_notes("S1")] == ["N1"]
    assert [n.id for n in g.endorsed_notes("S2")] == ["N1"]
    g.add(note("N1", "C1", "S3", 300))  # and once more, without the endorsement
    assert g.endorsed_notes("S1") == [] and g.endorsed_notes("S2") == []
    g.add(note("N1", "C1", "S3", 300, state="settled"))
    assert g.out_edges("notes", "C1") == []
    g.add(guarantee("G1", "A", "B", active=False))
    assert g.out_edges("guarantees", "A") == [] and g.guarantees["G1"].active is False
    g.add(loan("L1", "B1", "S1", 0, state="closed"))
    assert g.in_edges("loans", "S1") == []
    assert g.version == v + 5
    g.add(loan("L1", "B1", "S1", 0, state="closed"))  # the same record again: no change
    assert g.version == v + 5


def test_only_records_are_added() -> None:
    with pytest.raises(TypeError, match="not a graph record: str"):
        Graph().add("S1")


def test_counts_report_tables_and_edges() -> None:
    g = graph(firm("S1"), Person("P1", "x"), trade("T1", "S1", "C1"))
    c = g.counts()
    assert c["firm"] == 1 and c["person"] == 1 and c["trade"] == 1 and c["edges_trades"] == 1
    assert g.sources("trades") == ["S1"] and g.as_of < AS_OF

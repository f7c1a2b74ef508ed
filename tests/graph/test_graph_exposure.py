"""A bank's exposure to a firm, path by path, and the contagion of a default — by hand."""

from __future__ import annotations

import pytest
from graph_support import firm, graph, guarantee, loan, note, trade

from tally.graph.contagion import contagion
from tally.graph.exposure import Item, exposure, exposures
from tally.graph.store import Graph


def _book() -> Graph:
    return graph(
        loan("L1", "B1", "S1", 700),
        loan("L2", "B1", "S2", 400),
        loan("L3", "B1", "S1", 0, state="closed"),
        loan("L4", "B2", "S1", 50),
        note(
            "N1", "C", "S2", 300, endorsers=("S1",), financed="B1", confirmed="B1", state="financed"
        ),
        note("N2", "C", "S1", 200, confirmed="B2"),
        note("N3", "C", "S1", 999, financed="B1", state="settled"),
        guarantee("G1", "S1", "S2", 1000, loan_id="L2"),
        guarantee("G2", "S1", "S9", 80, loan_id="Lx"),
        guarantee("G3", "S1", "S2", 500, loan_id="L2", active=False),
        guarantee("G4", "S1", "S3", 70, loan_id="L3"),
    )


def test_exposure_path_by_path() -> None:
    g = _book()
    s1 = exposure(g, "B1", "S1")
    assert (s1.loans, s1.notes_issued, s1.notes_endorsed, s1.guarantees) == (700, 0, 300, 400)
    assert s1.total == 1400
    assert s1.items == [
        Item("loan", "L1", 700),
        Item("note_endorsed", "N1", 300),
        Item("guarantee", "G1", 400),
        Item("guarantee", "G2", 0),
        Item("guarantee", "G4", 0),
    ]
    c1 = exposure(g, "B1", "C")
    assert c1.notes_issued == 300 and c1.total == 300  # financed and confirmed: counted once
    c2 = exposure(g, "B2", "C")
    assert c2.notes_issued == 200 and c2.items == [Item("note_issued", "N2", 200)]
    assert exposure(g, "B2", "S1").total == 50
    assert exposure(g, "B1", "S2").total == 700  # loan 400 + note 300
    assert exposure(g, "B3", "S1").total == 0
    assert s1.as_json()["total"] == 1400
    g.add(loan("Lx", "B1", "S9", 60))  # the loan G2 guarantees arrives: capped at 60
    assert exposure(g, "B1", "S1").guarantees == 460


def test_bulk_exposures_match_one_by_one() -> None:
    g = _book()
    bulk = exposures(g)
    assert sorted(bulk) == ["C", "S1", "S2"]
    for f, per in bulk.items():
        for bank, ex in per.items():
            one = exposure(g, bank, f)
            assert (ex.total, sorted(ex.items, key=repr)) == (
                one.total,
                sorted(one.items, key=repr),
            )


def _cascade() -> Graph:
    return graph(
        firm("C", "core"),
        firm("S1", capital=500),
        firm("S2", capital=10_000),
        firm("S3", capital=100),
        loan("L1", "B1", "C", 1000),
        guarantee("G1", "S2", "C", 300, loan_id="L1"),
        note("N1", "C", "S1", 400),
        note("N2", "C", "S9", 250, financed="B2", state="financed"),
        note("N3", "C", "S3", 60, confirmed="B1"),
        trade("T1", "S1", "C", 200),
        trade("T2", "S3", "S1", 150),
        trade("T3", "S2", "C", 80, paid=80, paid_t=1),
        loan("L2", "B2", "S1", 90),
        firm("S4", capital=1),
        guarantee("G2", "S4", "X", 5),
    )


def test_contagion_round_by_round_and_by_tier() -> None:
    c = contagion(_cascade(), "C")
    assert c.defaults == {"C": 0, "S1": 1, "S3": 2}
    assert c.firm_losses == {"S2": 300, "S1": 600, "S3": 150}
    assert c.bank_losses == {"B1": 760, "B2": 340}
    assert c.by_tier == {"1": 900, "2": 150}  # S2 sells to C too (T3, paid): tier 1
    assert c.by_round() == [
        {"round": 0, "defaults": ["C"], "firm_loss": 0, "bank_loss": 0},
        {"round": 1, "defaults": ["S1"], "firm_loss": 900, "bank_loss": 1010},
        {"round": 2, "defaults": ["S3"], "firm_loss": 150, "bank_loss": 90},
    ]
    paths = {(x.who, x.path, x.ref) for x in c.losses}
    assert ("S2", "guarantee", "G1") in paths and ("B1", "loan", "L1") in paths
    assert ("S1", "receivable", "T1") in paths and ("B1", "note", "N3") in paths
    assert c.as_json()["defaults"] == {"C": 0, "S1": 1, "S3": 2}
    assert "S4" not in c.firm_losses  # it guarantees someone else


def test_contagion_absorb_and_errors() -> None:
    c = contagion(_cascade(), "C", absorb=10.0)
    assert c.defaults == {"C": 0}  # nobody's loss reaches ten times its capital
    with pytest.raises(KeyError, match="no firm 'Q'"):
        contagion(_cascade(), "Q")
    with pytest.raises(ValueError, match="absorb must be > 0"):
        contagion(_cascade(), "C", absorb=0)

"""Signals, strong cores and financing-need mining, by hand."""

from __future__ import annotations

import math

import pytest
from graph_support import firm, graph, loan, note, rising, telemetry

from tally.graph.mining import financing_needs
from tally.graph.signals import core_weakness, cv, strong_cores, trend
from tally.graph.store import Graph

STEADY = (100, 102, 98, 100, 101, 99, 100, 100, 102, 98, 100, 100)


def test_trend_and_variation() -> None:
    assert trend([math.e**k - 1 for k in (0.0, 0.1, 0.2, 0.3)]) == pytest.approx(0.1)
    assert trend([5, 5]) is None
    assert cv([1, 3]) == pytest.approx(0.5)
    assert cv([0, 0]) is None and cv([7]) is None


def _economy() -> Graph:
    return graph(
        firm("C1", "core", rating="AAA"),
        firm("C2", "core", rating="A"),
        firm("C3", "core", rating="AA"),
        note("N9", "C3", "X", 1, state="overdue"),
        firm("C4", "core", rating="AA+"),
        telemetry("C4", rising(1000, -0.05)),
        firm("C5", "core", rating="AA"),
        loan("L9", "B1", "C5", 10, dpd=45),
        # S1: the need (two notes of a strong core, rising, steady)
        firm("S1"),
        telemetry("S1", rising(1000, 0.03), STEADY),
        note("N1", "C1", "S1", 5000, confirmed="B1"),
        note("N2", "C1", "S1", 3000, confirmed="B2"),
        # S2: bigger receivables, but a loan outstanding
        firm("S2"),
        telemetry("S2", rising(), STEADY),
        note("N3", "C1", "S2", 9000, confirmed="B1"),
        loan("L1", "B1", "S2", 100),
        # S3: notes of a weak core only
        firm("S3"),
        telemetry("S3", rising(), STEADY),
        note("N4", "C2", "S3", 9000, confirmed="B1"),
        # S4: unconfirmed note; S5: falling power; S6: unsteady stock; S7: endorsed a financed note
        firm("S4"),
        telemetry("S4", rising(), STEADY),
        note("N5", "C1", "S4", 9000),
        firm("S5"),
        telemetry("S5", rising(1000, -0.01), STEADY),
        note("N6", "C1", "S5", 9000, confirmed="B1"),
        firm("S6"),
        telemetry("S6", rising(), (100, 50) * 6),
        note("N7", "C1", "S6", 9000, confirmed="B1"),
        firm("S7"),
        telemetry("S7", rising(), STEADY),
        note("N8", "C1", "S7", 900, confirmed="B1"),
        note("N10", "C1", "Z", 10, endorsers=("S7",), financed="B1", state="financed"),
        # S8: a smaller need, slower growth
        firm("S8"),
        telemetry("S8", rising(1000, 0.015), STEADY),
        note("N11", "C1", "S8", 2000, confirmed="B1"),
    )


def test_strong_cores_and_why_not() -> None:
    g = _economy()
    assert strong_cores(g) == {"C1"}
    assert core_weakness(g, "C2") == ["rated A, below AA"]
    assert core_weakness(g, "C3") == ["1 notes overdue (e.g. N9)"]
    assert core_weakness(g, "C4")[0].startswith("electricity falling -5.")
    assert core_weakness(g, "C5") == ["1 loans past due (e.g. L9)"]
    assert core_weakness(g, "S1") == ["not a core enterprise"]


def test_financing_needs_ranked_with_reasons() -> None:
    needs = financing_needs(_economy())
    assert [n.firm for n in needs] == ["S1", "S8"]
    s1 = needs[0]
    assert s1.receivables == 8000 and s1.cores == ("C1",) and s1.notes == ("N1", "N2")
    assert s1.trend == pytest.approx(math.log1p(0.03), abs=2e-3)
    assert s1.reasons[0].startswith("holds 2 confirmed notes of 80.00 CNY from strong core")
    assert s1.reasons[1] == "no loan outstanding and no note financed"
    assert s1.reasons[2] == "electricity rising +3.0% a month"
    assert s1.as_json()["receivables"] == 8000
    looser = financing_needs(_economy(), max_cv=0.5)
    assert "S6" in [n.firm for n in looser]
    assert [n.firm for n in financing_needs(_economy(), min_trend=0.02)] == ["S1"]
    given = financing_needs(_economy(), strong={"C2"})
    assert [n.firm for n in given] == ["S3"]  # the caller decides which cores are strong

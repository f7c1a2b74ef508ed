"""The scorecard's features of two firms, computed by hand."""

from __future__ import annotations

import math

import pytest
from graph_support import AS_OF, DAY, T0, firm, graph, guarantee, loan, rising, telemetry, trade

from tally.graph.features import FEATURES, feature_table
from tally.graph.store import Graph

STEADY = (100,) * 12


def _g() -> Graph:
    due = T0 + 30 * DAY
    return graph(
        firm("C1", "core", rating="AAA"),
        firm("S1", capital=1000),
        firm("S2"),
        telemetry(
            "S1", rising(1000, 0.03), STEADY, devices=4, online=3, custody_gaps=2, gap_hours=18
        ),
        trade("T1", "S1", "C1", 2400, T0),
        trade("T2", "S2", "S1", 1000, T0, paid=1000, paid_t=due + 2 * DAY, mismatches=("iot",)),
        loan("L1", "B1", "S1", 500, kind="receipt", receipts=("R1",), dpd=18),
        guarantee("G1", "S1", "S9", 2000),
    )


def test_features_by_hand() -> None:
    rows = feature_table(_g(), as_of=AS_OF)
    assert list(rows) == ["S1", "S2"]
    s1, s2 = rows["S1"].values, rows["S2"].values
    assert list(s1) == list(FEATURES)
    slope = rows["S1"].facts["production"]
    assert slope.startswith("electricity +3.0% a month, 3 of 4 devices reporting")
    assert s1["production"] == pytest.approx((math.log1p(0.03) + 0.05) / 0.1 * 0.75, abs=2e-3)
    assert s1["inventory_turnover"] == pytest.approx(1.0)
    assert s1["custody"] == pytest.approx(0.75)
    assert s1["fourflow"] == pytest.approx(0.5)
    assert s1["payment"] == pytest.approx(0.8)
    assert s1["tier_distance"] == 1.0
    assert s1["graph_risk"] == pytest.approx(0.8)
    assert rows["S1"].facts["graph_risk"] == "guarantees given exceed its capital"
    assert s2 == {
        "production": 0.0,
        "inventory_turnover": 0.5,
        "custody": 0.5,
        "fourflow": 0.0,
        "payment": 0.5,
        "tier_distance": 0.5,
        "graph_risk": 1.0,
    }
    assert rows["S2"].facts["tier_distance"] == "2 hops from a strong core"
    assert rows["S2"].facts["payment"] == "no payables due; worst loan 0 days past due"


def test_feature_table_for_chosen_firms() -> None:
    rows = feature_table(_g(), ["S2", "C1"], as_of=AS_OF)
    assert list(rows) == ["C1", "S2"]
    assert rows["C1"].values["tier_distance"] == 1.0
    assert rows["C1"].facts["tier_distance"] == "is a strong core enterprise"

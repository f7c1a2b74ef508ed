"""The daily brief on a hand-built portfolio: every section, with its evidence."""

from __future__ import annotations

import json

import pytest
from graph_support import AS_OF, DAY, T0, firm, graph, guarantee, loan, note, telemetry, trade

from tally.graph.brief import SECTIONS, daily_brief
from tally.graph.records import Note
from tally.graph.store import Graph

HOUR = 3_600_000


def _g() -> Graph:
    return graph(
        firm("C", "core", rating="AAA"),
        firm("S1"),
        firm("S2"),
        firm("S3"),
        loan("L1", "B1", "S1", 100, kind="receipt", coverage=1.25, receipts=("R1",)),
        loan("L2", "B1", "S2", 100, kind="receipt", coverage=1.1, receipts=("R2", "R3")),
        loan("L3", "B1", "S3", 100, kind="receipt", coverage=1.5, receipts=("R4",)),
        telemetry("S1", (1,) * 12, devices=5, online=3, dark_since=AS_OF - 5 * HOUR),
        telemetry("S2", (1,) * 12),
        trade("T1", "S1", "C", 10, AS_OF - 3 * HOUR, mismatches=("iot", "quantity")),
        trade("T2", "S2", "C", 10, AS_OF - 3 * DAY, mismatches=("payer",)),
        trade("T3", "S2", "C", 10, AS_OF - 2 * HOUR),
        Note("N1", "C", "S1", 50, T0, AS_OF + 3 * DAY, "T1", "financed", financed="B1"),
        note("N2", "C", "S2", 50, confirmed="B1"),
        guarantee("G1", "S1", "S2", 5, bank="B1", t=AS_OF - 2 * HOUR),
        guarantee("G2", "S2", "S1", 5, bank="B2", t=T0),
    )


def test_every_section_with_evidence() -> None:
    b = daily_brief(_g(), as_of=AS_OF)
    assert b["as_of"] == "2027-01-01T00:00:00Z" and b["window"]["days"] == 1
    b1 = b["banks"]["B1"]
    assert b1["firms"] == 4  # S1, S2, S3 borrow; C issued a note B1 financed (S1 holds it)
    assert list(b1["counts"]) == list(SECTIONS)
    cov = b1["coverage_below_lines"]
    assert [(c["loan"], c["below"]) for c in cov] == [("L1", "warning"), ("L2", "disposal")]
    assert cov[1]["evidence"] == [
        {"kind": "loans", "id": "L2"},
        {"kind": "receipts", "id": "R2"},
        {"kind": "receipts", "id": "R3"},
    ]
    dark = b1["devices_dark"]
    assert dark == [
        {
            "firm": "S1",
            "dark": 2,
            "devices": 5,
            "dark_since": "2026-12-31T19:00:00Z",
            "evidence": [{"kind": "telemetry", "id": "S1"}],
        }
    ]
    assert [(m["trade"], m["rules"]) for m in b1["fourflow_mismatches"]] == [
        ("T1", ["iot", "quantity"])
    ]
    assert [n["note"] for n in b1["notes_near_maturity"]] == ["N1"]
    circles = b1["new_guarantee_circles"]
    assert [c["firms"] for c in circles] == [["S1", "S2"]]
    assert circles[0]["evidence"] == [
        {"kind": "guarantees", "id": "G1"},
        {"kind": "guarantees", "id": "G2"},
    ]
    assert [c["firms"] for c in b["banks"]["B2"]["new_guarantee_circles"]] == [["S1", "S2"]]
    chain = b["chains"]["C"]
    assert chain["firms"] == 3 and chain["tiers"] == {"1": 2}
    assert [c["loan"] for c in chain["coverage_below_lines"]] == ["L1", "L2"]
    assert [n["note"] for n in chain["notes_near_maturity"]] == ["N1"]
    assert b["state"]["circles"] == [["S1", "S2"]]
    json.dumps(b)  # JSON-able


def test_yesterdays_state_decides_what_is_new_and_what_moved() -> None:
    prev = {"circles": [["S1", "S2"]], "scores": {"S1": 650, "S2": 645}}
    b = daily_brief(_g(), as_of=AS_OF, scores={"S1": 600, "S2": 640}, previous=prev)
    b1 = b["banks"]["B1"]
    assert b1["new_guarantee_circles"] == []
    assert b1["scores_moved"] == [
        {
            "firm": "S1",
            "from": 650,
            "to": 600,
            "delta": -50,
            "evidence": [{"kind": "score", "id": "S1"}],
        }
    ]
    assert b["state"]["scores"] == {"S1": 600, "S2": 640}
    later = daily_brief(_g(), as_of=AS_OF + 2 * DAY, banks=["B2"], cores=[])
    assert list(later["banks"]) == ["B2"] and later["chains"] == {}
    assert later["banks"]["B2"]["new_guarantee_circles"] == []  # closed two days before


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="days must be >= 1"):
        daily_brief(_g(), days=0)

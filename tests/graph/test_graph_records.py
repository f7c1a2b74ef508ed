"""Records and their JSON form: round trips, and a precise error for every bad field."""

from __future__ import annotations

from typing import Any

import pytest
from graph_support import AS_OF, T0, firm, guarantee, loan, note, telemetry, trade

from tally.graph.record_json import from_json, to_json
from tally.graph.records import KIND_OF, KINDS, Account, Outcome, RecordError, Supply


def test_every_kind_round_trips_through_json() -> None:
    recs: list[Any] = [
        firm(
            "S1",
            persons=(("P1", "legal_rep"), ("P1", "shareholder")),
            addresses=("A1",),
            accounts=("AC1",),
        ),
        trade("T1", "S1", "C1", paid=400, paid_t=T0 + 40 * 86_400_000, mismatches=("iot",)),
        loan("L1", "B1", "S1", 500, coverage=1.25, receipts=("R1",), dpd=3),
        guarantee("G1", "S2", "S1", active=False),
        note("N1", "C1", "S1", 700, confirmed="B1", endorsers=("S0",)),
        telemetry("S1", (1, 2, 3), (4, 5), dark_since=AS_OF - 1),
        Supply("S1", "C1", T0),
        Account("AC1", "B1"),
        Outcome("S1", "L1", True),
    ]
    for rec in recs:
        obj = to_json(rec)
        assert list(obj) == list(rec.__dataclass_fields__)
        assert from_json(KIND_OF[type(rec)], {**obj, "sim": 1}) == rec
    assert to_json(recs[0])["roles"][0] == {"person": "P1", "role": "legal_rep", "share_bp": 0}


@pytest.mark.parametrize(
    ("kind", "obj", "message"),
    [
        ("loans", {"id": "L"}, "Loan record: field 'bank' is missing"),
        (
            "banks",
            {"id": "B", "name": "n", "colour": 1},
            "Bank record: field 'colour' is not a field",
        ),
        (
            "trades",
            {**to_json(trade("T", "a", "b")), "amount": -5},
            "Trade record: field 'amount' must be an integer >= 0, got -5",
        ),
        ("trades", {**to_json(trade("T", "a", "b")), "amount": True}, "must be an integer >= 0"),
        ("firms", {**to_json(firm("S")), "kind": "bank"}, "field 'kind' must be one of core, sme"),
        (
            "firms",
            {**to_json(firm("S")), "roles": [{"person": "P", "role": "cfo"}]},
            "Role record: field 'role' must be one of legal_rep, director, shareholder",
        ),
        ("firms", {**to_json(firm("S")), "roles": ["P"]}, "field 'roles' must hold objects"),
        ("firms", {**to_json(firm("S")), "addresses": "A1"}, "field 'addresses' must be an array"),
        (
            "guarantees",
            {**to_json(guarantee("G", "a", "b")), "active": 1},
            "field 'active' must be true or false",
        ),
        (
            "loans",
            {**to_json(loan("L", "B", "S", 1)), "coverage": "1.2"},
            "field 'coverage' must be a number >= 0",
        ),
        (
            "notes",
            {**to_json(note("N", "C", "S", 1)), "state": "lost"},
            "field 'state' must be one of offered, live",
        ),
        ("widgets", {}, "field 'kind' is not a record kind"),
        ("banks", [1], "Bank record: field '*' must be a JSON object"),
    ],
)
def test_bad_records_are_refused_precisely(kind: str, obj: object, message: str) -> None:
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace("*", r"\*")):
        from_json(kind, obj)


def test_optional_fields_take_their_defaults() -> None:
    rec = from_json(
        "guarantees",
        {"id": "G", "guarantor": "a", "debtor": "b", "bank": "B", "loan": "L", "amount": 5, "t": 1},
    )
    assert rec.active is True
    assert set(KINDS) >= {"firms", "trades", "notes", "guarantees", "loans", "telemetry"}

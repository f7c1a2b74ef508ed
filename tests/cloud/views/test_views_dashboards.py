"""Dashboards of the read model on SQLite and PostgreSQL, every number checked by hand against
views_factory's rows (the comments say which rows count), and the government aggregates
without a single firm name or id."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from views_factory import NOTES, ORGS, RECEIPTS, load

from tally.cloud.views import Views
from tally.cloud.views.dashq import LIVE_LOANS


@pytest.fixture
def loaded(views: Views) -> Views:
    load(views)
    return views


def test_portfolio_of_a_bank(loaded: Views) -> None:
    got = loaded.portfolio("bank1")
    json.dumps(got)  # JSON-able
    assert got == {
        "bank": "bank1",
        # L1, L6 active; L2 margin_call; L4 closed; L7 overdue
        "loans": {
            "active": {"count": 2, "outstanding_fen": 900_000},
            "closed": {"count": 1, "outstanding_fen": 0},
            "margin_call": {"count": 1, "outstanding_fen": 100_000},
            "overdue": {"count": 1, "outstanding_fen": 50_000},
        },
        "live": {"count": 4, "principal_fen": 1_100_000, "outstanding_fen": 1_050_000},
        "coverage": {  # L2 1.1; L1 1.25; none in 1.3-1.5; L7 exactly 1.5; L6 unknown
            "<1.2": {"count": 1, "outstanding_fen": 100_000},
            "1.2-1.3": {"count": 1, "outstanding_fen": 800_000},
            "1.3-1.5": {"count": 0, "outstanding_fen": 0},
            ">=1.5": {"count": 1, "outstanding_fen": 50_000},
            "unknown": {"count": 1, "outstanding_fen": 100_000},
        },
        "alerts_open": {"info": 1, "warning": 1, "critical": 1},  # A5, A1, A2
        "margin_calls_open": 1,  # L2
        "applications_waiting": 2,  # P1, P3
        "top_exposures": [  # s1: L1 + L7; s2: L2 + L6 (L4 is closed)
            {"borrower": "s1", "name": "s1 (simulated)", "loans": 2, "outstanding_fen": 850_000},
            {"borrower": "s2", "name": "s2 (simulated)", "loans": 2, "outstanding_fen": 200_000},
        ],
    }
    other = loaded.portfolio("bank2")  # L3 live, L5 only applied; A3 acknowledged; P2 refused
    assert other["live"] == {"count": 1, "principal_fen": 500_000, "outstanding_fen": 500_000}
    assert other["coverage"][">=1.5"] == {"count": 1, "outstanding_fen": 500_000}
    assert other["alerts_open"] == {"info": 0, "warning": 0, "critical": 0}
    assert other["applications_waiting"] == 0 and other["margin_calls_open"] == 0
    assert [e["borrower"] for e in other["top_exposures"]] == ["s3"]
    nobody = loaded.portfolio("bank9")
    assert nobody["loans"] == {} and nobody["top_exposures"] == []
    assert nobody["live"] == {"count": 0, "principal_fen": 0, "outstanding_fen": 0}


def test_supplier_position(loaded: Views) -> None:
    assert loaded.supplier("s1") == {
        "party": "s1",
        "receipts": {  # r2 live; r1 pledged
            "free": {"count": 1, "value_fen": 400_000},
            "pledged": {"count": 1, "value_fen": 1_000_000},
            "other": {"count": 0, "value_fen": 0},
        },
        "notes_held": {  # N2 (N1 is split: its amount lives on in N2, N3)
            "count": 1,
            "amount_fen": 600_000,
            "by_status": {"live": {"count": 1, "amount_fen": 600_000}},
        },
        "loans": {
            "active": {"count": 1, "outstanding_fen": 800_000},
            "closed": {"count": 1, "outstanding_fen": 0},
            "overdue": {"count": 1, "outstanding_fen": 50_000},
        },
        "limits": [
            {"bank": "bank1", "kind": "limit", "limit_fen": 2_000_000, "used_fen": 800_000,
             "available_fen": 1_200_000, "currency": "CNY", "rate": None, "expires_ms": None},
            {"bank": "bank2", "kind": "limit", "limit_fen": 500_000, "used_fen": 600_000,
             "available_fen": 0, "currency": "CNY", "rate": None, "expires_ms": None},
        ],
        "applications": {"submitted": 1},
    }  # fmt: skip
    s4 = loaded.supplier("s4")  # r5 delivered without value; N5 settled; L5 applied; P2 refused
    assert s4["receipts"]["other"] == {"count": 1, "value_fen": 0}
    assert s4["notes_held"] == {"count": 0, "amount_fen": 0, "by_status": {}}
    assert s4["loans"] == {"applied": {"count": 1, "outstanding_fen": 200_000}}
    assert s4["limits"] == [] and s4["applications"] == {"refused": 1}
    core = loaded.supplier("core1")
    assert core["limits"][0]["kind"] == "credit" and core["limits"][0]["rate"] == "0.035"


def test_core_tiers(loaded: Views) -> None:
    assert loaded.core_tiers("core1") == {
        "core": "core1",
        "tiers": [  # s1, s3 at tier 1 hold N2, N4; s2 at tier 2 holds N3
            {"tier": 1, "suppliers": 2, "notes": 2, "notes_amount_fen": 850_000},
            {"tier": 2, "suppliers": 1, "notes": 1, "notes_amount_fen": 400_000},
        ],
        "notes": {
            "financed": {"count": 1, "amount_fen": 400_000},
            "live": {"count": 1, "amount_fen": 600_000},
            "offered": {"count": 1, "amount_fen": 250_000},
            "split": {"count": 1, "amount_fen": 1_000_000},
        },
        "outstanding_fen": 1_250_000,
        "edges": [  # core1 → tier 1; s1 → s2 from trade T3 and from the split N1 → N3
            {"from": "core1", "to": "s1", "tier": 1},
            {"from": "core1", "to": "s3", "tier": 1},
            {"from": "s1", "to": "s2", "tier": 2},
        ],
    }
    core2 = loaded.core_tiers("core2")  # s4 at tier 1; N5 settled
    assert core2["tiers"] == [{"tier": 1, "suppliers": 1, "notes": 0, "notes_amount_fen": 0}]
    assert core2["outstanding_fen"] == 0 and core2["notes"]["settled"]["count"] == 1
    assert core2["edges"] == [{"from": "core2", "to": "s4", "tier": 1}]


def test_split_notes_alone_make_an_edge(views: Views) -> None:
    for o in ORGS:
        views.upsert_org(o)
    for n in NOTES[:3]:  # N1 split by s1; N3 held by s2; no trade between them
        views.upsert_note(n)
    edges = views.core_tiers("core1")["edges"]
    assert {"from": "s1", "to": "s2", "tier": 2} in edges


def test_warehouse_sites(loaded: Views) -> None:
    assert loaded.warehouse("wh1", frozenset()) == {  # the custodian of r1, r2, r3, r6
        "tenant": "wh1",
        "sites": [
            {"site": "wh1-a", "receipts": 2, "by_status": {"live": 1, "pledged": 1},
             "value_fen": 1_400_000, "pledged": {"count": 1, "quantity": {"t": "10.5"}},
             "alerts_open": 1},  # A2
            {"site": "wh1-b", "receipts": 2, "by_status": {"frozen": 1, "live": 1},
             "value_fen": 350_000, "pledged": {"count": 1, "quantity": {"t": "2.25"}},
             "alerts_open": 1},  # A1
        ],
        "totals": {"receipts": 4, "pledged": 2, "alerts_open": 2},
    }  # fmt: skip
    got = loaded.warehouse("wh9", frozenset({"wh2-a", "empty"}))
    assert [s["site"] for s in got["sites"]] == ["empty", "wh2-a"]
    empty = {"site": "empty", "receipts": 0, "by_status": {}, "value_fen": 0,
             "pledged": {"count": 0, "quantity": {}}, "alerts_open": 0}  # fmt: skip
    assert got["sites"][0] == empty
    wh2a = got["sites"][1]  # r4 pledged 7 t, r5 delivered; A4 open, A3 acknowledged
    assert wh2a["receipts"] == 2 and wh2a["pledged"] == {"count": 1, "quantity": {"t": "7"}}
    assert wh2a["alerts_open"] == 1 and wh2a["value_fen"] == 700_000


def test_pledged_quantities_are_summed_as_decimals(views: Views) -> None:
    base = RECEIPTS[0]
    for i, q in enumerate(["0.1", "0.2", "1000000.001"]):
        views.upsert_receipt(dataclasses.replace(base, no=f"q{i}", quantity=q))
    views.upsert_receipt(dataclasses.replace(base, no="kg", quantity="5", unit="kg"))
    got = views.warehouse("wh1", frozenset())["sites"][0]["pledged"]
    assert got == {"count": 4, "quantity": {"kg": "5", "t": "1000000.301"}}


def strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings(v)}
    return set()


def test_government_aggregates_hold_no_firm(loaded: Views) -> None:
    got = loaded.aggregates()
    assert got == {
        # financed = disbursed: L1, L2, L3, L4, L6, L7 (L5 only applied)
        "loans": {"count": 6, "amount_fen": 1_900_000},
        "by_industry": [  # textiles: s1, s2; electronics: s3
            {"industry": "textiles", "loans": 5, "amount_fen": 1_400_000},
            {"industry": "electronics", "loans": 1, "amount_fen": 500_000},
        ],
        "by_region": [  # Jiangsu: s1; Zhejiang: s2, s3
            {"region": "Jiangsu", "loans": 3, "amount_fen": 1_150_000},
            {"region": "Zhejiang", "loans": 3, "amount_fen": 750_000},
        ],
        "smes_reached": 3,  # s1, s2, s3 borrowed; s2 also holds the financed N3
        "notes_financed": {"count": 1, "amount_fen": 400_000},
        "mean_rate": "0.048158",  # 91 500 / 1 900 000
        "time_to_loan_hours": {"count": 6, "median": 3.5, "p90": 7.5},  # 1 2 3 4 5 10 h
    }
    firms = {o.id for o in ORGS} | {o.name for o in ORGS}
    assert not strings(got) & firms


def test_aggregates_of_an_empty_view(views: Views) -> None:
    got = views.aggregates()
    assert got["loans"] == {"count": 0, "amount_fen": 0} and got["mean_rate"] is None
    assert got["time_to_loan_hours"] == {"count": 0, "median": None, "p90": None}
    assert got["by_industry"] == [] and got["smes_reached"] == 0


def test_live_loans_are_the_contracts_accruing_states() -> None:
    from tally.finance.contracts.loan_ops import ACCRUING

    assert set(LIVE_LOANS) == set(ACCRUING)

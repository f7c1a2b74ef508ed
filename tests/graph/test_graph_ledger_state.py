"""Graph records from the finance contracts' state entries (docs/formats.md §27, 31, 34, 35)."""

from __future__ import annotations

from decimal import Decimal

from tally.graph.exposure import exposure
from tally.graph.ledger_state import record_from_state
from tally.graph.records import Loan, Note, Receipt, Trade
from tally.graph.store import Graph

NOTE = {
    "v": 1,
    "id": "N-1",
    "root": "N-1",
    "parent": None,
    "issuer": "core",
    "holder": "sme-2",
    "amount": 500_000,
    "currency": "CNY",
    "issued": 1_000,
    "due": 9_000,
    "trade": "T-1",
    "state": "financed",
    "confirmed": "bank",
    "financed": {
        "bank": "bank-b",
        "kind": "discount",
        "rate": Decimal("0.035"),
        "advance": 490_000,
        "t": 2_000,
    },
    "endorsers": ["sme-1"],
    "children": [],
    "seq": 3,
    "settlement": None,
}
LOAN = {
    "v": 1,
    "id": "L-1",
    "bank": "bank",
    "borrower": "sme-1",
    "receipts": ["R-1", "R-2"],
    "commodity": "copper",
    "amount": 1_000_000,
    "currency": "CNY",
    "rate": Decimal("0.05"),
    "term_days": 90,
    "seller": "x",
    "seller_account": "1",
    "trade": "T-1",
    "state": "margin_call",
    "principal": 800_000,
    "interest": Decimal(0),
    "accrued_to": 20500,
    "start": 20450,
    "maturity": 20540,
    "cash_margin": 0,
    "margin_call": {"t": 5, "deadline": 6, "coverage": Decimal("1.25")},
    "postings": [],
    "seq": 4,
}
TRADE = {
    "v": 1,
    "id": "T-1",
    "seller": "sme-1",
    "buyer": "core",
    "status": "mismatch",
    "amount": 0,
    "currency": "CNY",
    "invoiced": 700_000,
    "paid": 100_000,
    "invoices": [],
    "waybills": [],
    "docs": [],
    "result": b"",
    "reasons": ["quantity"],
    "by": "bank",
    "t": 3_000,
    "seq": 0,
}
RCPT = {
    "v": 1,
    "no": "R-1",
    "holder": "sme-1",
    "custodian": "warehouse",
    "goods": "copper",
    "issued": 500,
    "pledgee": "bank",
    "loan": "L-1",
    "state": "pledged",
}


def test_state_entries_become_graph_records() -> None:
    note = record_from_state("note/N-1", NOTE)
    assert note == Note(
        "N-1",
        "core",
        "sme-2",
        500_000,
        1_000,
        9_000,
        "T-1",
        "financed",
        "bank",
        "bank-b",
        ("sme-1",),
    )
    loan = record_from_state("loan/L-1", LOAN)
    assert isinstance(loan, Loan)
    assert (loan.principal, loan.outstanding, loan.state, loan.coverage) == (
        1_000_000,
        800_000,
        "margin_call",
        1.25,
    )
    assert loan.t == 20450 * 86_400_000 - 8 * 3_600_000 and loan.receipts == ("R-1", "R-2")
    assert record_from_state("trade/T-1", TRADE) == Trade(
        "T-1", "sme-1", "core", 700_000, 3_000, 3_000, 100_000, 3_000, ("quantity",)
    )
    assert record_from_state("rcpt/R-1", RCPT) == Receipt(
        "R-1", "sme-1", "warehouse", "copper", 0, 500, "bank", "L-1"
    )


def test_what_the_graph_does_not_follow() -> None:
    assert record_from_state("loan/L-1", {**LOAN, "state": "applied"}) is None
    assert record_from_state("price/copper", {"price": 1}) is None
    assert record_from_state("note/N-1", None) is None


def test_the_graph_follows_the_ledger() -> None:
    g = Graph()
    for key, value in (("note/N-1", NOTE), ("loan/L-1", LOAN), ("trade/T-1", TRADE)):
        g.add(record_from_state(key, value))
    assert exposure(g, "bank-b", "sme-1").notes_endorsed == 500_000
    assert exposure(g, "bank", "core").notes_issued == 500_000
    assert exposure(g, "bank", "sme-1").loans == 800_000
    g.add(record_from_state("loan/L-1", {**LOAN, "state": "closed", "principal": 0}))
    assert exposure(g, "bank", "sme-1").loans == 0

"""The ``loans`` contract through a loan's life, every refusal precise and changing nothing.

The harness (loans_harness.py) sets up copper at 70 000 CNY/t with ``bank``'s parameters
haircut 0.9, pledge rate 0.6, warning 1.3, disposal 1.2, cure 3 days. The usual loan is
3 000 000.00 CNY against 100 t (market value 7 000 000.00 CNY, limit 4 200 000.00 CNY,
coverage 100 × 70 000 × 0.9 / 3 000 000 = 2.1) at 4.35 %: 36 250 fen of interest a day.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import Site, fields
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loans_harness import DAY0, T0, LoanChain, posting, trade_docs, trade_record

from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.interest import accrue, day, day_start, to_minor
from tally.finance.keys import loan_key, receipt_key, relord_prefix
from tally.finance.policies import default_policies, finance_contracts
from tally.finance.receipt import iso
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.consortium import Consortium
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Member
from tally.ledger.policy import describe, satisfied

D = Decimal
RATE = D("0.0435")
DAILY = 36_250  # 300 000 000 × 0.0435 / 360


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LoanChain]:
    c = LoanChain(tmp_path)
    c.market()
    yield c
    c.close()


def orders(chain: LoanChain) -> list[dict[str, Any]]:
    return [v for _, v, _ in chain.state.range(relord_prefix("qd"))]


# -- the happy path ------------------------------------------------------------------------------


def test_apply_records_the_application(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.pledge("R1")
    chain.issue("R2", "20")  # a live receipt may be named: it must be pledged by approval
    receipts_before = [chain.receipt("R1"), chain.receipt("R2")]
    r = chain.ok("loans", "apply", *chain.apply_args("L1", ["R1", "R2"], 300_000_000))
    assert r == {"id": "L1", "state": "applied", "commodity": "copper"}
    assert chain.loan("L1") == {
        "v": 1, "id": "L1", "bank": "bank", "borrower": "sme", "receipts": ["R1", "R2"],
        "commodity": "copper", "amount": 300_000_000, "currency": "CNY", "rate": None,
        "term_days": 90, "seller": "smelter", "seller_account": "6222 0000 1111",
        "trade": None, "state": "applied", "principal": 0, "interest": 0, "accrued_to": None,
        "start": None, "maturity": None, "cash_margin": 0, "margin_call": None, "postings": [],
        "seq": 0,
    }  # fmt: skip
    assert [chain.receipt("R1"), chain.receipt("R2")] == receipts_before


def test_approve_links_the_receipts(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.pledge("R1")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 300_000_000))
    chain.attach("L1")
    seq = chain.receipt("R1")["seq"]
    t = chain.t
    assert chain.ok("loans", "approve", "L1", RATE) == {
        "id": "L1",
        "state": "approved",
        "rate": RATE,
    }
    loan = chain.loan("L1")
    assert (loan["state"], loan["rate"], loan["seq"], loan["principal"]) == (
        "approved",
        RATE,
        2,  # apply 0, attach_trade 1, approve 2
        0,
    )
    rec = chain.receipt("R1")
    assert (rec["state"], rec["pledgee"], rec["loan"], rec["seq"]) == (
        "pledged",
        "bank",
        "L1",
        seq + 1,
    )
    assert rec["endorsements"][-1] == {"t": t, "act": "loans.approve", "by": "bank", "loan": "L1"}


def test_disbursement_pays_the_seller(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.pledge("R1")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 300_000_000, term_days=90))
    chain.attach("L1")
    chain.ok("loans", "approve", "L1", RATE)
    chain.at_day(DAY0 + 2)
    p = posting("disbursement")
    r = chain.ok("loans", "disburse", "L1", p)
    assert r == {
        "id": "L1", "state": "active", "amount": 300_000_000, "seller": "smelter",
        "seller_account": "6222 0000 1111", "posting": p, "start": DAY0 + 2,
        "maturity": DAY0 + 92,
    }  # fmt: skip
    loan = chain.loan("L1")
    assert loan["state"] == "active" and loan["principal"] == 300_000_000
    assert (loan["start"], loan["maturity"], loan["accrued_to"]) == (DAY0 + 2, DAY0 + 92, DAY0 + 2)
    assert loan["postings"] == [p] and loan["seq"] == 3


def test_interest_accrues_daily_act_360(chain: LoanChain) -> None:
    chain.active_loan()
    chain.at_day(DAY0, hour=23)  # later the same business day: nothing to accrue
    assert chain.refused("loans", "accrue", "L1") == (
        f"accrue: loan L1 is accrued to 2024-03-01 (day {DAY0}) already"
    )
    chain.at_day(DAY0 + 1, hour=0)  # midnight Beijing: the first day has ended
    r = chain.ok("loans", "accrue", "L1")
    assert (r["interest"], r["accrued_to"]) == (DAILY, DAY0 + 1)
    chain.at_day(DAY0 + 31)  # 2024-04-01: March has 31 days
    chain.ok("loans", "accrue", "L1")
    loan = chain.loan("L1")
    assert loan["interest"] == 31 * DAILY == accrue(300_000_000, RATE, 31)
    assert loan["accrued_to"] == DAY0 + 31 and loan["seq"] == 5


def test_accruing_once_equals_accruing_daily(chain: LoanChain) -> None:
    rate = D("0.0517")  # 300 000 000 × 0.0517 / 360 does not terminate
    chain.active_loan("L1", rate=rate)
    chain.active_loan("L2", rate=rate)
    for d in range(1, 46):
        chain.at_day(DAY0 + d)
        chain.ok("loans", "accrue", "L1")
    chain.ok("loans", "accrue", "L2")
    assert chain.loan("L1")["interest"] == chain.loan("L2")["interest"]
    assert chain.loan("L2")["interest"] == accrue(300_000_000, rate, 45)
    assert chain.loan("L2")["interest"] == D("1938749.9999999985")  # 45 × 43 083.3333333333


def test_partial_repayment_pays_interest_first_and_releases_pro_rata(chain: LoanChain) -> None:
    chain.active_loan()
    chain.at_day(DAY0 + 30)
    p = posting("repay 1")
    r = chain.ok("loans", "repay", "L1", 100_000_000, p)
    # 30 days of interest first, the rest off the principal; 100 t × 98 912 500 / 300 000 000
    assert r == {
        "id": "L1", "state": "active", "interest_paid": 30 * DAILY,
        "principal_paid": 100_000_000 - 30 * DAILY, "principal": 201_087_500,
        "cash_margin_returned": 0, "cured": False, "released": ["L1-R0.1"], "held": None,
    }  # fmt: skip
    loan = chain.loan("L1")
    assert loan["interest"] == 0 and loan["accrued_to"] == DAY0 + 30
    assert loan["receipts"] == ["L1-R0.2"] and loan["postings"][-1] == p
    released, kept = chain.receipt("L1-R0.1"), chain.receipt("L1-R0.2")
    assert released["weight"] == D("32.970") and released["state"] == "live"
    assert (released["pledgee"], released["loan"]) == (None, None)
    assert kept["weight"] == D("67.030") and kept["state"] == "pledged" and kept["loan"] == "L1"
    assert chain.receipt("L1-R0")["state"] == "split"
    [order] = orders(chain)
    assert (order["receipt"], order["weight"], order["kind"], order["loan"]) == (
        "L1-R0.1",
        D("32.970"),
        "release",
        "L1",
    )
    # coverage is kept (a little above, from rounding the release down to the kilogram)
    assert D("67.030") * 70000 * D("0.9") * 100 / 201_087_500 >= D("2.1")


def test_a_repayment_below_the_interest_releases_nothing(chain: LoanChain) -> None:
    chain.active_loan()
    chain.at_day(DAY0 + 10)
    r = chain.ok("loans", "repay", "L1", 100_000, posting("small"))
    assert (r["interest_paid"], r["principal_paid"], r["released"]) == (100_000, 0, [])
    assert chain.loan("L1")["interest"] == 10 * DAILY - 100_000


def test_full_repayment_closes_and_releases_everything(chain: LoanChain) -> None:
    chain.active_loan(weights=("60", "40"))
    chain.at_day(DAY0 + 20)
    chain.ok("loans", "add_margin", "L1", 5_000_000, posting("margin"))
    owed = 300_000_000 + 20 * DAILY
    assert chain.refused("loans", "repay", "L1", owed + 1, posting("too much")) == (
        "repay: amount 3007250.01 CNY exceeds what loan L1 owes: 3007250.00 CNY "
        "(interest 7250.00 CNY + principal 3000000.00 CNY)"
    )
    r = chain.ok("loans", "repay", "L1", owed, posting("all"))
    assert r["state"] == "closed" and r["released"] == ["L1-R0", "L1-R1"]
    assert r["cash_margin_returned"] == 5_000_000
    loan = chain.loan("L1")
    assert (loan["state"], loan["principal"], loan["interest"], loan["cash_margin"]) == (
        "closed",
        0,
        0,
        0,
    )
    for no in ("L1-R0", "L1-R1"):
        rec = chain.receipt(no)
        assert (rec["state"], rec["pledgee"], rec["loan"]) == ("live", None, None)
    assert sorted((o["receipt"], o["weight"]) for o in orders(chain)) == [
        ("L1-R0", D(60)),
        ("L1-R1", D(40)),
    ]
    assert chain.refused("loans", "repay", "L1", 1, posting("after")) == (
        "repay: loan L1 is closed, repay needs it active or margin_call or overdue or disposing"
    )


def test_half_a_fen_of_interest_is_paid_rounded_half_up(chain: LoanChain) -> None:
    # 1 000 fen at 0.018: 0.05 fen a day; 10 days: 0.5 fen, paid as 1 fen
    chain.issue("R1", "1")
    chain.pledge("R1")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 1_000))
    chain.attach("L1")
    chain.ok("loans", "approve", "L1", D("0.018"))
    chain.ok("loans", "disburse", "L1", posting("d"))
    chain.at_day(DAY0 + 10)
    chain.ok("loans", "accrue", "L1")
    assert chain.loan("L1")["interest"] == D("0.5")
    r = chain.ok("loans", "repay", "L1", 1_001, posting("r"))
    assert (r["interest_paid"], r["principal_paid"], r["state"]) == (1, 1_000, "closed")


# -- coverage: releases, margin calls and their cure ---------------------------------------------


def test_a_release_may_not_bring_coverage_below_the_warning_line(chain: LoanChain) -> None:
    chain.active_loan()
    assert chain.refused("receipts", "release", "L1-R0", D(40)) == (
        "releasing 40 t of L1-R0 would bring coverage of L1 to 1.26, below the warning line 1.3"
    )
    r = chain.ok("receipts", "release", "L1-R0", D(38))  # 62 t left: coverage 1.302
    assert r == {"released": "L1-R0.1", "kept": "L1-R0.2"}
    # the loan follows its pledged remainder
    chain.ok("market", "set_price", "copper", D(60000), "CNY")
    r = chain.ok("loans", "margin_call", "L1", D("1.116"))  # 62 × 60 000 × 0.9 / 3 000 000
    assert r["coverage"] == D("1.116")


def test_a_margin_call_blocks_releases_until_cured_by_cash(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(42000), "CNY")  # coverage 1.26
    assert chain.refused("loans", "margin_call", "L1", D("1.2")) == (
        "margin_call: coverage 1.2 does not agree with the chain's coverage 1.26 of loan L1"
    )
    t = chain.t
    r = chain.ok("loans", "margin_call", "L1", D("1.26"))
    call = {"t": t, "deadline": t + 3 * 86_400_000, "coverage": D("1.26")}
    assert r == {"id": "L1", "state": "margin_call", **call}
    assert chain.loan("L1")["margin_call"] == call
    assert chain.refused("receipts", "release", "L1-R0", D(1)) == (
        "loan L1 is under a margin call: releases are blocked"
    )
    # a repayment during the call releases nothing
    r = chain.ok("loans", "repay", "L1", 3_000_000, posting("r"))
    assert r["released"] == [] and r["state"] == "margin_call" and not r["cured"]
    # 378 000 000 + cash ≥ 1.3 × 297 000 000 = 386 100 000
    r = chain.ok("loans", "add_margin", "L1", 8_000_000, posting("m1"))
    assert r["state"] == "margin_call" and not r["cured"] and r["coverage"] == D("1.299663")
    r = chain.ok("loans", "add_margin", "L1", 100_000, posting("m2"))
    assert r["state"] == "active" and r["cured"] and r["coverage"] == D("1.3")
    loan = chain.loan("L1")
    assert loan["margin_call"] is None and loan["cash_margin"] == 8_100_000
    # releases are no longer blocked by the call, but coverage sits exactly on the line
    assert chain.refused("receipts", "release", "L1-R0", D("0.001")) == (
        "releasing 0.001 t of L1-R0 would bring coverage of L1 to 1.299987, below the warning "
        "line 1.3"
    )


def test_a_margin_call_is_cured_by_more_receipts(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    chain.issue("T1", "1")
    chain.pledge("T1")
    r = chain.ok("loans", "top_up", "L1", ["T1"])  # 101 t: 1.2726
    assert (r["state"], r["cured"], r["coverage"]) == ("margin_call", False, D("1.2726"))
    chain.issue("T2", "4")
    chain.pledge("T2")
    r = chain.ok("loans", "top_up", "L1", ["T2"])  # 105 t: 1.323
    assert (r["state"], r["cured"], r["coverage"]) == ("active", True, D("1.323"))
    loan = chain.loan("L1")
    assert loan["receipts"] == ["L1-R0", "T1", "T2"]
    assert chain.receipt("T2")["loan"] == "L1"


def test_a_recovered_price_ends_the_call_at_the_next_accrual(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    chain.ok("market", "set_price", "copper", D(50000), "CNY")
    r = chain.ok("loans", "accrue", "L1")  # same day: no interest, but the call ends
    assert (r["state"], r["cured"], r["interest"]) == ("active", True, 0)


def test_margin_call_refusals(chain: LoanChain) -> None:
    chain.active_loan()
    assert chain.refused("loans", "margin_call", "L1", D("2.1")) == (
        "margin_call: coverage 2.1 of loan L1 is not below the warning line 1.3"
    )
    assert chain.refused("loans", "margin_call", "L1", "1.2") == (
        "margin_call: coverage must be a decimal, got str '1.2'"
    )
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    assert chain.refused("loans", "margin_call", "L1", D("1.26")) == (
        "margin_call: loan L1 is margin_call, margin_call needs it active"
    )


# -- maturity, default and disposal --------------------------------------------------------------


def test_overdue_only_after_maturity(chain: LoanChain) -> None:
    chain.active_loan(term_days=30)  # matures on day DAY0 + 30, 2024-03-31
    chain.at_day(DAY0 + 30, hour=23)
    assert chain.refused("loans", "overdue", "L1") == (
        f"overdue: loan L1 matures on 2024-03-31 (day {DAY0 + 30}); it is 2024-03-31 "
        f"(day {DAY0 + 30})"
    )
    chain.at_day(DAY0 + 31)
    r = chain.ok("loans", "overdue", "L1")
    assert r == {"id": "L1", "state": "overdue", "owed": 300_000_000 + 31 * DAILY}
    assert chain.refused("receipts", "release", "L1-R0", D(1)) == (
        "loan L1 is overdue: releases are blocked"
    )
    # a partial repayment releases nothing while overdue; interest keeps accruing
    chain.at_day(DAY0 + 35)
    r = chain.ok("loans", "repay", "L1", 10_000_000, posting("late"))
    assert r["released"] == [] and r["interest_paid"] == 35 * DAILY


def test_default_freezes_and_disposal_sells_the_collateral(chain: LoanChain) -> None:
    chain.active_loan(weights=("70", "30"), term_days=30)
    chain.ok("loans", "add_margin", "L1", 1_000_000, posting("m"))
    chain.at_day(DAY0 + 31)
    chain.ok("loans", "overdue", "L1")
    t = chain.t
    r = chain.ok("loans", "default", "L1")
    assert r["state"] == "defaulted" and r["reason"] == "overdue since 2024-04-01"
    rec = chain.receipt("L1-R0")
    assert rec["state"] == "frozen"
    assert rec["frozen"] == {
        "by": "bank",
        "reason": "loan L1 defaulted: overdue since 2024-04-01",
        "t": t,
        "was": "pledged",
    }
    assert chain.refused("receipts", "release", "L1-R0", D(1)) == (
        "receipt L1-R0 is frozen by bank (loan L1 defaulted: overdue since 2024-04-01)"
    )
    chain.at_day(DAY0 + 40)
    owed = 300_000_000 + 40 * DAILY  # 301 450 000
    r = chain.ok("loans", "dispose", "L1", 250_000_000, posting("sale"))
    # proceeds + the cash margin: 251 000 000 against 301 450 000
    assert r == {
        "id": "L1", "state": "disposing", "disposed": ["L1-R0", "L1-R1"],
        "interest_paid": 40 * DAILY, "principal_paid": 251_000_000 - 40 * DAILY,
        "surplus": 0, "owed": owed - 251_000_000,
    }  # fmt: skip
    for no in ("L1-R0", "L1-R1"):
        rec = chain.receipt(no)
        assert rec["state"] == "disposed" and rec["frozen"] is None
    assert sorted((o["receipt"], o["kind"], o["loan"]) for o in orders(chain)) == [
        ("L1-R0", "disposal", "L1"),
        ("L1-R1", "disposal", "L1"),
    ]
    loan = chain.loan("L1")
    assert loan["cash_margin"] == 0 and loan["principal"] == owed - 251_000_000
    r = chain.ok("loans", "close", "L1")  # same day: nothing more accrued
    assert r == {"id": "L1", "state": "closed", "written_off": owed - 251_000_000}
    assert chain.loan("L1")["state"] == "closed" and chain.loan("L1")["principal"] == 0


def test_disposal_with_a_surplus_closes_the_loan(chain: LoanChain) -> None:
    chain.active_loan(term_days=30)
    chain.at_day(DAY0 + 31)
    chain.ok("loans", "overdue", "L1")
    chain.ok("loans", "default", "L1")
    r = chain.ok("loans", "dispose", "L1", 400_000_000, posting("sale"))
    assert r["state"] == "closed" and r["owed"] == 0
    assert r["surplus"] == 400_000_000 - 300_000_000 - 31 * DAILY


def test_default_below_the_disposal_line(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(40000), "CNY")  # coverage 1.2: on the line
    assert chain.refused("loans", "default", "L1") == (
        "default: loan L1 is active and not in default: it matures on 2024-05-30, and "
        "coverage 1.2 is not below the disposal line 1.2"
    )
    chain.ok("market", "set_price", "copper", D(35000), "CNY")
    r = chain.ok("loans", "default", "L1")
    assert r["reason"] == "coverage 1.05 below the disposal line 1.2"


def test_default_after_an_uncured_margin_call(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    t = chain.t
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    deadline = t + 3 * 86_400_000
    assert iso(deadline).startswith("2024-03-04T02:00:00.")  # 10:00 Beijing, 3 days on
    assert chain.refused("loans", "default", "L1") == (
        f"default: loan L1 is margin_call and not in default: its margin call runs until "
        f"{iso(deadline)}, and coverage 1.26 is not below the disposal line 1.2"
    )
    chain.t = deadline + 1
    r = chain.ok("loans", "default", "L1")
    assert r["reason"] == f"margin call not cured by {iso(deadline)}"


def test_no_default_when_a_lapsed_call_is_covered_again(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    t = chain.t
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    chain.ok("market", "set_price", "copper", D(50000), "CNY")
    chain.t = t + 3 * 86_400_000 + 1
    assert chain.refused("loans", "default", "L1") == (
        f"default: the margin call on loan L1 lapsed at {iso(t + 3 * 86_400_000)} but its "
        "coverage 1.5 is back at the warning line 1.3"
    )


# -- rejection -----------------------------------------------------------------------------------


def test_reject_an_approved_loan_frees_its_receipts(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.pledge("R1")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 300_000_000))
    chain.attach("L1")
    chain.ok("loans", "approve", "L1", RATE)
    r = chain.ok("loans", "reject", "L1", "credit committee declined")
    assert r == {"id": "L1", "state": "rejected", "reason": "credit committee declined"}
    rec = chain.receipt("R1")
    assert (rec["state"], rec["pledgee"], rec["loan"]) == ("pledged", "bank", None)
    # the receipt can secure another loan now
    chain.ok("loans", "apply", *chain.apply_args("L2", ["R1"], 300_000_000))
    chain.attach("L2")
    chain.ok("loans", "approve", "L2", RATE)
    assert chain.refused("loans", "disburse", "L1", posting("x")) == (
        "disburse: loan L1 is rejected, disburse needs it approved"
    )


def test_reject_an_application(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 300_000_000))
    assert chain.ok("loans", "reject", "L1", "no")["state"] == "rejected"
    assert chain.refused("loans", "reject", "L1", "again") == (
        "reject: loan L1 is rejected, reject needs it applied or approved"
    )


# -- refusals --------------------------------------------------------------------------------------


def applied(chain: LoanChain, weight: str = "100", amount: int = 300_000_000) -> None:
    """R1 of ``weight`` t pledged; loan L1 of ``amount`` applied on it, its trade attached."""
    chain.issue("R1", weight)
    chain.pledge("R1")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], amount))
    chain.attach("L1")


def test_apply_refusals(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.issue("R2", "10", holder="sme2")
    chain.issue("R3", "10")
    chain.pledge("R3", bank="bank2")
    chain.issue("Z1", "10", commodity="zinc")
    expiry = chain.t + 5
    chain.issue("X1", "10", period_to=expiry)
    chain.ok("market", "set_commodity", "zinc", "t", D(0), creator="reg")
    args = chain.apply_args

    def refused(*a: Any, creator: str = "bank") -> str:
        return chain.refused("loans", "apply", *a, creator=creator)

    assert refused(*args("L1", ["R1"], 1), creator="wh") == (
        "apply: 'wh' is not a member with role bank"
    )
    assert refused(*args("L/1", ["R1"], 1)) == "apply: id must not contain '/', got 'L/1'"
    assert refused(*args("L1", ["R1"], 1, borrower="bank")) == (
        "apply: the borrower must not be the lending bank 'bank'"
    )
    a = list(args("L1", ["R1"], 1))
    a[1] = "nobody"
    assert refused(*a) == "apply: borrower: 'nobody' is neither a registered party nor a member"
    assert refused(*args("L1", [], 1)) == "apply: receipts must be a non-empty list, got list []"
    assert refused(*args("L1", ["R1", "R1"], 1)) == "apply: receipt R1 is listed twice"
    assert refused(*args("L1", ["R1"], 0)) == "apply: amount must be an integer >= 1, got 0"
    assert refused(*args("L1", ["R1"], 10**15 + 1)) == (
        "apply: amount must be at most 1000000000000000, got 1000000000000001"
    )
    assert refused(*args("L1", ["R1"], 1, term_days=0)) == (
        "apply: term_days must be an integer >= 1, got 0"
    )
    assert refused(*args("L1", ["R1"], 1, seller="")) == (
        "apply: seller must be non-empty text, got str ''"
    )
    assert refused(*args("L1", ["R9"], 1)) == "apply: receipt R9 does not exist"
    assert refused(*args("L1", ["R2"], 1)) == (
        "apply: receipt R2 is held by 'sme2', not the borrower 'sme'"
    )
    assert refused(*args("L1", ["R3"], 1)) == "apply: receipt R3 is pledged to 'bank2', not 'bank'"
    assert refused(*args("L1", ["R1", "Z1"], 1)) == (
        "apply: receipt Z1 is 'zinc', the loan is 'copper'"
    )
    assert refused(*args("L1", ["X1"], 1)) == f"apply: receipt X1 expired at {iso(expiry)}"


def test_apply_needs_the_borrowers_consent(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    a = list(chain.apply_args("L1", ["R1"], 300_000_000))
    a[7] = None
    assert chain.refused("loans", "apply", *a) == "loans.apply of L1: consent of 'sme' is missing"
    # a consent to other terms
    other = chain.apply_args("L1", ["R1"], 200_000_000)[7]
    a[7] = other
    error = chain.refused("loans", "apply", *a)
    assert error.startswith("loans.apply of L1: consent of 'sme': it agrees to terms ")
    assert "'amount': 200000000" in error and "'amount': 300000000" in error
    # a consent signed by someone else
    a[7] = chain.consent("sme2", "loans.apply", "L1", 0, {"x": 1})
    assert chain.refused("loans", "apply", *a) == (
        "loans.apply of L1: consent of 'sme': it is signed by 'sme2'"
    )


def test_apply_refuses_a_loan_twice_and_a_receipt_securing_another(chain: LoanChain) -> None:
    chain.active_loan("L1")
    assert chain.refused("loans", "apply", *chain.apply_args("L1", ["L1-R0"], 1)) == (
        "apply: loan L1 already exists"
    )
    assert chain.refused("loans", "apply", *chain.apply_args("L2", ["L1-R0"], 1)) == (
        "apply: receipt L1-R0 already secures loan L1"
    )
    chain.ok("market", "set_price", "copper", D(42000), "CNY")
    chain.ok("loans", "margin_call", "L1", D("1.26"))
    chain.issue("F1", "1")
    chain.ok("receipts", "freeze", "F1", "court order", creator="reg")
    assert chain.refused("loans", "apply", *chain.apply_args("L2", ["F1"], 1)) == (
        "apply: receipt F1 is frozen"
    )


def test_approve_refusals(chain: LoanChain) -> None:
    chain.issue("R1", "100")
    chain.ok("loans", "apply", *chain.apply_args("L1", ["R1"], 420_000_001))
    chain.attach("L1")
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: receipt R1 is live, not pledged to 'bank'"
    )
    chain.pledge("R1")
    assert chain.refused("loans", "approve", "L1", RATE, creator="bank2") == (
        "approve: loan L1 is a loan of 'bank'; 'bank2' may not approve it"
    )
    assert chain.refused("loans", "approve", "L9", RATE) == "approve: loan L9 does not exist"
    assert chain.refused("loans", "approve", "L1", D(0)) == (
        "approve: rate must be in (0, 1) (annual, e.g. 0.0435), got 0"
    )
    assert chain.refused("loans", "approve", "L1", D(1)) == (
        "approve: rate must be in (0, 1) (annual, e.g. 0.0435), got 1"
    )
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: amount 4200000.01 CNY of loan L1 exceeds pledge rate 0.6 × collateral value "
        "7000000.00 CNY = 4200000.00 CNY (100 t × 70000 CNY/t)"
    )


def test_approve_needs_price_and_parameters(tmp_path: Path) -> None:
    chain = LoanChain(tmp_path)
    try:
        chain.ok("market", "set_commodity", "copper", "t", D(0), creator="reg")
        applied(chain)
        assert chain.refused("loans", "approve", "L1", RATE) == ("commodity 'copper' has no price")
        chain.ok("market", "set_price", "copper", D(70000), "CNY")
        assert chain.refused("loans", "approve", "L1", RATE) == (
            "bank 'bank' has no lending parameters for 'copper'"
        )
    finally:
        chain.close()


def test_disburse_refusals(chain: LoanChain) -> None:
    applied(chain, amount=420_000_000)  # the full limit
    assert chain.refused("loans", "disburse", "L1", posting("p")) == (
        "disburse: loan L1 is applied, disburse needs it approved"
    )
    chain.ok("loans", "approve", "L1", RATE)
    assert chain.refused("loans", "disburse", "L1", b"short") == (
        "disburse: posting_hash must be 32 bytes (the book posting's anchored hash), got 5 bytes"
    )
    assert chain.refused("loans", "disburse", "L1", "ab" * 32) == (
        "disburse: posting_hash must be 32 bytes (the book posting's anchored hash), got str "
        f"'{'ab' * 32}'"
    )
    chain.ok("market", "set_price", "copper", D(69999), "CNY")  # the collateral fell
    assert chain.refused("loans", "disburse", "L1", posting("p")) == (
        "disburse: amount 4200000.00 CNY of loan L1 exceeds pledge rate 0.6 × collateral "
        "value 6999900.00 CNY = 4199940.00 CNY (100 t × 69999 CNY/t)"
    )


def test_repay_refusals(chain: LoanChain) -> None:
    chain.active_loan()
    assert chain.refused("loans", "repay", "L1", 0, posting("p")) == (
        "repay: amount must be an integer >= 1, got 0"
    )
    assert chain.refused("loans", "repay", "L1", 1, posting("p"), creator="bank2") == (
        "repay: loan L1 is a loan of 'bank'; 'bank2' may not repay it"
    )
    chain.ok("loans", "repay", "L1", 1_000, posting("p"))
    assert chain.refused("loans", "repay", "L1", 1_000, posting("p")) == (
        f"repay: posting {posting('p').hex()[:16]}… is already recorded on loan L1"
    )


def test_top_up_and_add_margin_refusals(chain: LoanChain) -> None:
    chain.active_loan()
    chain.issue("T1", "5")
    assert chain.refused("loans", "top_up", "L1", ["T1"]) == (
        "top_up: receipt T1 is live, not pledged to 'bank'"
    )
    chain.pledge("T1", bank="bank2")
    assert chain.refused("loans", "top_up", "L1", ["T1"]) == (
        "top_up: receipt T1 is pledged to 'bank2', not 'bank'"
    )
    chain.issue("T2", "5", holder="sme2")
    assert chain.refused("loans", "top_up", "L1", ["T2"]) == (
        "top_up: receipt T2 is held by 'sme2', not the borrower 'sme'"
    )
    assert chain.refused("loans", "top_up", "L1", ["L1-R0"]) == (
        "top_up: receipt L1-R0 already secures loan L1"
    )
    assert chain.refused("loans", "add_margin", "L1", -5, posting("m")) == (
        "add_margin: amount must be an integer >= 1, got -5"
    )
    chain.at_day(DAY0 + 91)
    chain.ok("loans", "overdue", "L1")
    assert chain.refused("loans", "add_margin", "L1", 5, posting("m")) == (
        "add_margin: loan L1 is overdue, add_margin needs it active or margin_call"
    )


def test_disposal_and_close_refusals(chain: LoanChain) -> None:
    chain.active_loan()
    assert chain.refused("loans", "dispose", "L1", 1, posting("s")) == (
        "dispose: loan L1 is active, dispose needs it defaulted"
    )
    assert chain.refused("loans", "close", "L1") == (
        "close: loan L1 is active, close needs it disposing"
    )
    chain.ok("market", "set_price", "copper", D(35000), "CNY")
    chain.ok("loans", "default", "L1")
    assert chain.refused("loans", "dispose", "L1", -1, posting("s")) == (
        "dispose: proceeds must be an integer >= 0, got -1"
    )
    assert chain.refused("loans", "default", "L1") == (
        "default: loan L1 is defaulted, default needs it active or margin_call or overdue"
    )


def test_accrue_before_disbursement_is_refused(chain: LoanChain) -> None:
    applied(chain)
    assert chain.refused("loans", "accrue", "L1") == (
        "accrue: loan L1 is applied, accrue needs it active or margin_call or overdue or "
        "defaulted or disposing"
    )


def test_every_transition_bumps_seq(chain: LoanChain) -> None:
    chain.active_loan(term_days=30)
    seqs = [chain.loan("L1")["seq"]]
    chain.at_day(DAY0 + 1)
    chain.ok("loans", "accrue", "L1")
    seqs.append(chain.loan("L1")["seq"])
    chain.ok("loans", "add_margin", "L1", 1, posting("m"))
    seqs.append(chain.loan("L1")["seq"])
    chain.ok("loans", "repay", "L1", 1_000_000, posting("r"))
    seqs.append(chain.loan("L1")["seq"])
    chain.at_day(DAY0 + 31)
    chain.ok("loans", "overdue", "L1")
    seqs.append(chain.loan("L1")["seq"])
    assert seqs == [3, 4, 5, 6, 7]


def test_the_harness_starts_at_ten_in_the_morning_in_beijing() -> None:
    assert day_start(DAY0) + 10 * 3_600_000 == T0
    assert iso(T0) == "2024-03-01T02:00:00.000Z"


WRONG_BANK = [
    ("attach_trade", ("T-L1",)),
    ("approve", (RATE,)),
    ("reject", ("no",)),
    ("disburse", (posting("d"),)),
    ("accrue", ()),
    ("repay", (1, posting("r"))),
    ("margin_call", (D("1.2"),)),
    ("top_up", (["R1"],)),
    ("add_margin", (1, posting("m"))),
    ("overdue", ()),
    ("default", ()),
    ("dispose", (1, posting("s"))),
    ("close", ()),
]


@pytest.mark.parametrize(("fn", "args"), WRONG_BANK, ids=[w[0] for w in WRONG_BANK])
def test_only_the_lending_bank_acts_on_a_loan(
    chain: LoanChain, fn: str, args: tuple[Any, ...]
) -> None:
    chain.active_loan()
    for creator in ("bank2", "wh", "reg"):
        assert chain.refused("loans", fn, "L1", *args, creator=creator) == (
            f"{fn}: loan L1 is a loan of 'bank'; {creator!r} may not {fn} it"
        )


# -- properties over whole loans -----------------------------------------------------------------

weights = st.decimals(min_value=D("0.5"), max_value=D(500), places=3)
shares = st.integers(min_value=1, max_value=60)  # percent of the principal repaid


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(weights, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(min_value=0, max_value=20), shares), max_size=5),
)
def test_a_repaid_loans_released_weight_is_its_pledged_weight(
    ws: list[Decimal], steps: list[tuple[int, int]]
) -> None:
    """Partial repayments on random days release pro rata; the final repayment releases
    the rest: the release orders of the loan add up to the pledged weight exactly, every
    piece is back with the borrower, and coverage never fell on the way."""
    with tempfile.TemporaryDirectory() as d:
        chain = LoanChain(Path(d))
        try:
            chain.market()
            amount = int(sum(ws) * 70000 * 100 * D("0.6"))  # the full limit
            loan = chain.active_loan("L1", weights=tuple(str(w) for w in ws), amount=amount)
            coverage = chain.ok("loans", "add_margin", "L1", 1, posting("m"))["coverage"]
            today = DAY0
            for k, (days, share) in enumerate(steps):
                today += days
                chain.at_day(today)
                owed = chain.loan("L1")["principal"]
                pay = max(1, owed * share // 100)
                r = chain.ok("loans", "repay", "L1", pay, posting(f"r{k}"))
                assert r["held"] is None
                now = chain.ok("loans", "add_margin", "L1", 1, posting(f"m{k}"))["coverage"]
                assert now >= coverage
                coverage = now
            chain.at_day(today + 1)
            chain.ok("loans", "accrue", "L1")
            rest = chain.loan("L1")
            owed = to_minor(rest["interest"]) + rest["principal"]
            assert chain.ok("loans", "repay", "L1", owed, posting("last"))["state"] == "closed"
            released = [o for o in orders(chain) if o["loan"] == "L1"]
            assert all(o["kind"] == "release" for o in released)
            assert sum(o["weight"] for o in released) == sum(ws)
            for o in released:
                rec = chain.receipt(o["receipt"])
                assert (rec["state"], rec["holder"], rec["loan"]) == ("live", "sme", None)
            assert sorted(loan["receipts"]) == [f"L1-R{i}" for i in range(len(ws))]
        finally:
            chain.close()


# -- end to end on a running consortium -----------------------------------------------------------


async def test_a_loan_on_a_running_consortium(tmp_path: Path) -> None:
    """A bank, a warehouse and a regulator run peers with a solo orderer. The warehouse's
    site reports an inbound lot and its weight, anchored; the warehouse issues a receipt on
    that evidence; the borrower pledges it and applies; the bank approves, disburses to the
    seller (the purchase's reconciled trade attached first), is repaid in part ten days later
    and then in full: every step a transaction
    endorsed per the finance policies, and every peer ends with the same closed loan."""
    wall = time.time_ns() // 1_000_000
    offset = [day_start(day(wall) + 1) + 10 * 3_600_000 - wall]  # 10:00 Beijing: no midnight

    def clock() -> int:
        return time.time_ns() // 1_000_000 + offset[0]

    wh_key = SigningKey.generate(INTL)
    borrower = SigningKey.generate(INTL)
    members = {"bank": ["bank"], "wh": ["warehouse"], "reg": ["regulator"]}
    policies = {**system_policies(members), **default_policies(members)}
    c = await Consortium.create(
        tmp_path, members=list(members.items()), policies=policies, quorum=2,
        contracts=Registry(*system_contracts(), *finance_contracts()), clock=clock,
        keys={"wh": wh_key},
    )  # fmt: skip
    try:

        async def submit(contract: str, fn: str, *args: Any, creator: str = "bank") -> Any:
            r = await c.submit(contract, fn, list(args), creator, timeout=20)
            assert r.valid, (contract, fn, r.code, r.error or r.reason)
            return r.result

        site = Site("wh", wh_key)
        for reg in site.registrations():
            await submit("registry", "register", reg, creator="wh")
        await submit("parties", "register", "sme-1", "SME One", "supplier", "intl",
                     borrower.public.raw)  # fmt: skip
        await submit("market", "set_commodity", "copper", "t", D("0.005"), creator="reg")
        await submit("market", "set_price", "copper", D(70000), "CNY")
        await submit("market", "set_params", "copper", D("0.9"), D("0.6"), D("1.3"), D("1.2"),
                     3 * 86_400_000)  # fmt: skip

        now = clock()
        leaves = [site.scan("LOT-W-1", now - 10), site.weigh("A1", "101", now)]
        await submit("anchoring", "anchor_batch", site.header(leaves, now - 10, now), creator="wh")
        f = fields("W-1", "100", period={"from": now, "to": now + 60 * 86_400_000})
        await submit("receipts", "issue", f, site.evidence(leaves, 0), creator="wh")
        terms, cid = {"bank": "bank"}, c.genesis.chain
        holder = make_consent(borrower, cid, "sme-1", "receipts.pledge", "W-1", 0, terms)
        custodian = make_consent(wh_key, cid, "wh", "receipts.pledge", "W-1", 0, terms)
        await submit("receipts", "pledge", "W-1", "bank", holder, custodian)

        amount = 300_000_000
        apply_terms = {"bank": "bank", "receipts": ["W-1"], "amount": amount, "term_days": 90,
                       "seller": "smelter", "seller_account": "6222 0000 1111"}  # fmt: skip
        consent = make_consent(borrower, cid, "sme-1", "loans.apply", "L-1", 0, apply_terms)
        await submit("loans", "apply", "L-1", "sme-1", ["W-1"], amount, 90, "smelter",
                     "6222 0000 1111", consent)  # fmt: skip
        # the purchase the loan pays for, reconciled and attested, then attached
        await submit("parties", "register", "smelter", "Smelter", "supplier", "intl",
                     SigningKey.generate(INTL).public.raw)  # fmt: skip
        for kind, h in trade_docs("T-1"):
            await submit("trades", "anchor", kind, h, "T-1")
        await submit("trades", "attest", "T-1", trade_record("T-1", amount, "sme-1", "smelter"))
        await submit("loans", "attach_trade", "L-1", "T-1")
        # a refusal is committed as an invalid transaction and changes nothing
        before = c.peers["bank"].state.get(loan_key("L-1"))
        r = await c.submit("loans", "approve", ["L-1", D(1)], "bank", timeout=20)
        assert not r.valid
        assert r.error == "approve: rate must be in (0, 1) (annual, e.g. 0.0435), got 1"
        assert c.peers["bank"].state.get(loan_key("L-1")) == before
        await submit("loans", "approve", "L-1", RATE)
        paid = await submit("loans", "disburse", "L-1", posting("disbursement"))
        assert (paid["seller"], paid["posting"]) == ("smelter", posting("disbursement"))

        offset[0] += 10 * 86_400_000  # ten days on
        r1 = await submit("loans", "repay", "L-1", 150_000_000, posting("repay 1"))
        assert r1["interest_paid"] == 10 * DAILY
        assert r1["released"] == ["W-1.1"]
        rest = r1["principal"]
        r2 = await submit("loans", "repay", "L-1", rest, posting("repay 2"))
        assert (r2["state"], r2["released"]) == ("closed", ["W-1.2"])

        height = max(p.height for p in c.peers.values())
        await c.wait_height(height)
        loans = [p.state.get(loan_key("L-1")) for p in c.peers.values()]
        assert all(x is not None and x[0] == loans[0][0] for x in loans)  # type: ignore[index]
        loan = loans[0][0]  # type: ignore[index]
        assert (loan["state"], loan["principal"], loan["interest"]) == ("closed", 0, 0)
        assert loan["postings"] == [posting("disbursement"), posting("repay 1"), posting("repay 2")]
        state = c.peers["reg"].state
        pieces = [state.get(receipt_key(n)) for n in ("W-1.1", "W-1.2")]
        assert [(p[0]["state"], p[0]["pledgee"]) for p in pieces] == [("live", None)] * 2  # type: ignore[index]
        assert sum(p[0]["weight"] for p in pieces) == 100  # type: ignore[index]
        assert len({p.commitment() for p in c.peers.values()}) == 1
    finally:
        await c.close()


# -- policies ------------------------------------------------------------------------------------


def test_the_finance_policies_and_contracts() -> None:
    members = {"bank": ["bank"], "wh": ["warehouse"]}
    p = default_policies(members)
    assert {k: describe(v) for k, v in p.items()} == {
        "parties.*": "role:bank",
        "market.*": "role:bank",
        "receipts.*": "AND(role:warehouse, role:bank)",
        "loans.*": "AND(role:bank, OR(role:warehouse, role:regulator))",
        "trades.*": "AND(role:bank, OR(role:warehouse, role:regulator, role:core_enterprise))",
        "credit.*": "role:bank",
        "notes.*": "AND(role:bank, OR(role:core_enterprise, role:warehouse, role:regulator))",
    }
    orgs = {o: Member(o, tuple(r), b"") for o, r in members.items()}
    assert satisfied(p["loans.*"], {"bank", "wh"}, orgs)
    assert not satisfied(p["loans.*"], {"bank"}, orgs)
    assert [c.name for c in finance_contracts()] == [
        "parties",
        "market",
        "receipts",
        "loans",
        "trades",
        "credit",
        "notes",
    ]
    with pytest.raises(ValueError, match=r"need a warehouse among the members \(roles held: bank"):
        default_policies({"bank": ["bank"], "reg": ["regulator"]})
    with pytest.raises(ValueError, match="need a bank among the members"):
        default_policies({"wh": ["warehouse"]})

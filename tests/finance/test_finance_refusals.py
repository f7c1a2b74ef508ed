"""The refused operations on receipts and loans, table-driven: each case sets a chain up and
makes one proposal that must be refused, checking the exact refusal and that every key, value
and version of the state is as before.

Covered exactly elsewhere, so not repeated here:

* double pledge to a second bank (test_finance_receipts.py ``test_pledge_needs_holder_…``);
  a receipt securing a loan applied for again (test_finance_loans.py ``test_apply_refuses_a_
  loan_twice_and_a_receipt_securing_another``);
* over-issue: ``test_issuing_past_the_measured_stock_is_refused_with_the_numbers``;
* release below the warning line, in a margin call, overdue: ``test_a_release_may_not_bring_
  coverage_below_…``, ``test_a_margin_call_blocks_releases_…``, ``test_overdue_only_…``;
* wrong party: pledge by a non-bank, for another pledgee, consents missing or swapped
  (``test_pledge_needs_…``); release by another bank (``test_release_refusals``); freeze and
  unfreeze by a non-pledgee bank, a regulator's freeze lifted by a bank (``test_freeze_and_
  unfreeze``); transfer without or with the old holder's consent (``test_transfer_…``);
  deliver by another warehouse (``test_deliver_and_cancel_…``); approve, disburse, repay and
  every loan function by another bank, the warehouse or the regulator (``test_only_the_
  lending_bank_acts_on_a_loan``); apply by a non-bank (``test_apply_refusals``);
* expired receipt transferred, split, pledged (``test_an_expired_receipt_cannot_be_…``),
  applied for (``test_apply_refusals``);
* malformed fields with bad values, and no, depositor, quantity, weight, packaging of the
  wrong type, through the contract (test_finance_receipt_fields.py ``test_issue_refuses_a_bad_
  field_and_changes_nothing``; missing fields there only through validate_fields);
* every refusal of ``consent.require`` (test_finance_consent.py); through contracts: an
  old-seq transfer consent, transfer/split/apply consents to other terms, an apply consent
  signed by another party.

Added here: the rest, through the contracts (including four defects they found and that are
fixed: release weights finer than a receipt's, a regulator's freeze overwritten by a default or
lifted by a repayment, and partial-release numbers a stranger could take first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import FinanceChain, fields
from loans_harness import LoanChain, posting

from tally.finance.consent import make_consent
from tally.finance.keys import relord_prefix
from tally.finance.receipt import FIELDS, iso

D = Decimal
Call = tuple[str, str, tuple[Any, ...], str]
"""(contract, function, arguments, creator)."""
Chain = Any  # FinanceChain or LoanChain
Case = tuple[str, Callable[[Chain], Any], Callable[[Chain, Any], Call], Any]
"""(name, set-up returning what the proposal needs, the proposal, its exact refusal: text
or a function of the set-up's value)."""


def every(chain: Chain) -> dict[str, tuple[Any, Any]]:
    return {k: (v, version) for k, v, version in chain.state.range("")}


def refused(chain: Chain, call: Call) -> str:
    """The refusal of ``call``, checked to write nothing and leave every key as it was."""
    contract, fn, args, creator = call
    before = every(chain)
    ex = chain.run(contract, fn, *args, creator=creator)
    assert ex.error, f"expected a refusal, got {ex.result!r}"
    assert (ex.writes, ex.result) == ((), None)
    assert every(chain) == before
    error: str = ex.error
    return error


def run_case(chain: Chain, case: Case) -> None:
    _, setup, call, error = case
    got = setup(chain)
    assert refused(chain, call(chain, got)) == (error(got) if callable(error) else error)


def names(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c[0]) for c in cases]


@pytest.fixture
def fc(tmp_path: Path) -> Iterator[FinanceChain]:
    c = FinanceChain(tmp_path / "state.sqlite")
    yield c
    c.close()


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LoanChain]:
    c = LoanChain(tmp_path)
    c.market()
    yield c
    c.close()


# -- receipts: a FinanceChain (site S; parties sme-1, sme-2; member supplier sup) -------------

KIDS = [{"no": "W-1a", "quantity": D(10), "weight": D(20)},
        {"no": "W-1b", "quantity": D(10), "weight": D(20)}]  # fmt: skip
REPLAY = "it is for seq 0, W-1 is at seq 2 (a consent is good for one transition)"
NOT_HIS = "the signature does not verify with the key of"


def live(c: FinanceChain) -> None:
    c.issue("W-1", "40")


def pledged(c: FinanceChain) -> None:
    live(c)
    c.pledge("W-1")


def ok(c: FinanceChain, fn: str, *args: Any, creator: str = "bank") -> None:
    c.ok("receipts", fn, "W-1", *args, creator=creator)


def consent(c: FinanceChain, party: str, fn: str, terms: Any, seq: int | None = None) -> bytes:
    return c.consent(party, f"receipts.{fn}", "W-1", terms, seq)


def forged(c: FinanceChain, signer: str, party: str, fn: str, terms: Any) -> bytes:
    key = c.party_keys.get(signer) or c.keys[signer]
    return make_consent(key, c.genesis.chain, party, f"receipts.{fn}", "W-1", 0, terms)


def pledge(c: FinanceChain, hc: bytes | None = None, cc: bytes | None = None,
           bank: str = "bank") -> Call:  # fmt: skip
    """receipts.pledge of W-1 to ``bank``; the consents not given are the right ones."""
    hc = hc or consent(c, "sme-1", "pledge", {"bank": bank})
    cc = cc or consent(c, "wh", "pledge", {"bank": bank})
    return ("receipts", "pledge", ("W-1", bank, hc, cc), bank)


def transfer(to: str, consent_: bytes | None, creator: str = "bank") -> Call:
    return ("receipts", "transfer", ("W-1", to, consent_), creator)


def split(consent_: bytes | None) -> Call:
    return ("receipts", "split", ("W-1", KIDS, consent_), "wh")


def released_in_part(c: FinanceChain) -> None:
    pledged(c)
    ok(c, "release", D(10))  # W-1 split: W-1.1 10 t live, W-1.2 30 t still pledged


def frozen(by: str, reason: str) -> Callable[[FinanceChain], None]:
    def setup(c: FinanceChain) -> None:
        pledged(c)
        ok(c, "freeze", reason, creator=by)

    return setup


def over_issue(c: FinanceChain) -> tuple[int, list[dict[str, Any]]]:
    released_in_part(c)
    c.issue("W-2", "40")
    c.ok("receipts", "freeze", "W-2", "audit", creator="reg")
    t = c.t
    return t, c.stock_evidence("100.2", "A1", "LOT-W-3")


def round_trip(c: FinanceChain) -> tuple[bytes, bytes]:
    """W-1 to sme-2 and back (seq 2); the first transfer's and a split consent at seq 0."""
    live(c)
    first = consent(c, "sme-1", "transfer", {"to": "sme-2"})
    kids = consent(c, "sme-1", "split", {"children": KIDS})
    ok(c, "transfer", "sme-2", first)
    ok(c, "transfer", "sme-1", consent(c, "sme-2", "transfer", {"to": "sme-1"}))
    return first, kids


def pledged_and_released(c: FinanceChain) -> tuple[bytes, bytes, bytes]:
    """W-1 pledged and released in full (live, seq 2); the pledge consents and a delivery
    consent made at seq 0."""
    live(c)
    hc, cc = (consent(c, p, "pledge", {"bank": "bank"}) for p in ("sme-1", "wh"))
    deliver = consent(c, "sme-1", "deliver", None)
    c.ok("receipts", "pledge", "W-1", "bank", hc, cc)
    ok(c, "release", D(40))
    return hc, cc, deliver


RECEIPT_CASES: list[Case] = [
    # double pledge
    ("pledge_of_a_partly_released_parent", released_in_part, lambda c, _: pledge(c, bank="bank2"),
     "receipt W-1 is split"),
    ("pledge_of_a_pledged_receipt_frozen",
     frozen("reg", "audit"), lambda c, _: pledge(c, bank="bank2"),
     "receipt W-1 is frozen by reg (audit)"),
    # over-issue: pledged, frozen and split receipts count against the stock
    ("issue_over_pledged_frozen_and_split_receipts", over_issue,
     lambda c, got: ("receipts", "issue", (fields("W-3", "20"), got[1]), "wh"),
     lambda got: f"issuing 20 t at S/A1 would bring live receipts to 100 t; measured stock "
                 f"100.2 t at {iso(got[0])} less tolerance 0.501 t allows 99.699 t"),
    # wrong party
    ("release_by_the_custodian", pledged,
     lambda c, _: ("receipts", "release", ("W-1", D(1)), "wh"),
     "receipt W-1 is pledged to bank, not wh"),
    ("freeze_by_the_custodian", pledged, lambda c, _: ("receipts", "freeze", ("W-1", "x"), "wh"),
     "receipts.freeze of W-1: 'wh' is neither its pledgee nor a regulator"),
    ("unfreeze_by_the_custodian", frozen("bank", "inspection"),
     lambda c, _: ("receipts", "unfreeze", ("W-1",), "wh"),
     "receipts.unfreeze of W-1: 'wh' is neither its pledgee nor a regulator"),
    ("pledge_with_another_warehouses_consent", live,
     lambda c, _: pledge(c, cc=c.consent("wh2", "receipts.pledge", "W-1", {"bank": "bank"}, 0)),
     "receipts.pledge of W-1: consent of 'wh': it is signed by 'wh2'"),
    ("split_without_the_holder", live, lambda c, _: split(None),
     "receipts.split of W-1: consent of 'sme-1' is missing"),
    ("split_by_another_party", live,
     lambda c, _: split(c.consent("sme-2", "receipts.split", "W-1", {"children": KIDS}, 0)),
     "receipts.split of W-1: consent of 'sme-1': it is signed by 'sme-2'"),
    ("cancel_by_another_warehouse", live,
     lambda c, _: ("receipts", "cancel", ("W-1", consent(c, "sme-1", "cancel", None)), "wh2"),
     "receipts.cancel of W-1: only its custodian wh can, not wh2"),
    # forged: the party's id, another key (the creating bank's own, another party's, ...)
    ("forged_transfer_consent", live,
     lambda c, _: transfer("sme-2", forged(c, "bank", "sme-1", "transfer", {"to": "sme-2"})),
     f"receipts.transfer of W-1: consent of 'sme-1': {NOT_HIS} 'sme-1'"),
    ("forged_split_consent", live,
     lambda c, _: split(forged(c, "sme-2", "sme-1", "split", {"children": KIDS})),
     f"receipts.split of W-1: consent of 'sme-1': {NOT_HIS} 'sme-1'"),
    ("forged_holder_pledge_consent", live,
     lambda c, _: pledge(c, hc=forged(c, "bank", "sme-1", "pledge", {"bank": "bank"})),
     f"receipts.pledge of W-1: consent of 'sme-1': {NOT_HIS} 'sme-1'"),
    ("forged_custodian_pledge_consent", live,
     lambda c, _: pledge(c, cc=forged(c, "wh2", "wh", "pledge", {"bank": "bank"})),
     f"receipts.pledge of W-1: consent of 'wh': {NOT_HIS} 'wh'"),
    ("forged_deliver_consent", live,
     lambda c, _: ("receipts", "deliver", ("W-1", forged(c, "wh", "sme-1", "deliver", None)),
                   "wh"),
     f"receipts.deliver of W-1: consent of 'sme-1': {NOT_HIS} 'sme-1'"),
    ("forged_cancel_consent", live,
     lambda c, _: ("receipts", "cancel", ("W-1", forged(c, "sme-2", "sme-1", "cancel", None)),
                   "wh"),
     f"receipts.cancel of W-1: consent of 'sme-1': {NOT_HIS} 'sme-1'"),
    # replayed: the subject came back to the state the consent was made in
    ("replayed_transfer_consent", round_trip, lambda c, got: transfer("sme-2", got[0]),
     f"receipts.transfer of W-1: consent of 'sme-1': {REPLAY}"),
    ("replayed_split_consent", round_trip, lambda c, got: split(got[1]),
     f"receipts.split of W-1: consent of 'sme-1': {REPLAY}"),
    ("replayed_pledge_consents", pledged_and_released, lambda c, got: pledge(c, got[0], got[1]),
     f"receipts.pledge of W-1: consent of 'sme-1': {REPLAY}"),
    ("replayed_custodian_pledge_consent", pledged_and_released,
     lambda c, got: pledge(c, cc=got[1]), f"receipts.pledge of W-1: consent of 'wh': {REPLAY}"),
    ("replayed_deliver_consent", pledged_and_released,
     lambda c, got: ("receipts", "deliver", ("W-1", got[2]), "wh"),
     f"receipts.deliver of W-1: consent of 'sme-1': {REPLAY}"),
    # a consent to other terms, another act or another subject
    ("holder_pledge_consent_for_another_bank", live,
     lambda c, _: pledge(c, hc=consent(c, "sme-1", "pledge", {"bank": "bank2"})),
     "receipts.pledge of W-1: consent of 'sme-1': it agrees to terms {'bank': 'bank2'}, the "
     "proposal has {'bank': 'bank'}"),
    ("custodian_pledge_consent_for_another_bank", live,
     lambda c, _: pledge(c, cc=consent(c, "wh", "pledge", {"bank": "bank2"})),
     "receipts.pledge of W-1: consent of 'wh': it agrees to terms {'bank': 'bank2'}, the "
     "proposal has {'bank': 'bank'}"),
    ("deliver_consent_with_terms", live,
     lambda c, _: ("receipts", "deliver", ("W-1", consent(c, "sme-1", "deliver", {"to": "x"})),
                   "wh"),
     "receipts.deliver of W-1: consent of 'sme-1': it agrees to terms {'to': 'x'}, the proposal "
     "has None"),
    ("pledge_with_a_transfer_consent", live,
     lambda c, _: pledge(c, hc=consent(c, "sme-1", "transfer", {"bank": "bank"})),
     "receipts.pledge of W-1: consent of 'sme-1': it is a consent to 'receipts.transfer'"),
    ("transfer_with_a_consent_for_another_receipt",
     lambda c: (c.issue("W-1", "20"), c.issue("W-2", "20")),
     lambda c, _: transfer("sme-2", c.consent("sme-1", "receipts.transfer", "W-2",
                                              {"to": "sme-2"})),
     "receipts.transfer of W-1: consent of 'sme-1': it is for 'W-2'"),
    # a release may not make parts finer than a receipt's weight can be
    ("release_finer_than_a_receipt_weight", pledged,
     lambda c, _: ("receipts", "release", ("W-1", D("10.0000001")), "bank"),
     "releasing from W-1: the weight must have at most 6 decimal places, got 10.0000001"),
]  # fmt: skip


@pytest.mark.parametrize("case", names(RECEIPT_CASES))
def test_a_receipt_refusal_says_why_and_changes_nothing(fc: FinanceChain, case: Case) -> None:
    run_case(fc, case)


# -- receipt fields through receipts.issue (each GB/T element missing, or of the wrong type) --

WRONG_TYPE: list[tuple[str, Any, str, str]] = [
    ("goods", 5, "goods", "must be non-empty text, got int 5"),
    ("spec", ["Cu"], "spec", "must be non-empty text, got list ['Cu']"),
    ("unit", None, "unit", "must be non-empty text, got NoneType None"),
    ("lot", 7, "lot", "must be non-empty text, got int 7"),
    ("site", b"S", "site", "must be non-empty text, got bytes b'S'"),
    ("location", {"row": 1}, "location", "must be non-empty text, got dict {'row': 1}"),
    ("period", "30 days", "period", "must be a map of exactly from, to, got str '30 days'"),
    ("period", {"from": "0", "to": 1}, "period.from", "must be an integer >= 0, got str '0'"),
    ("fees", [150, "CNY"], "fees", "must be a map of exactly rate, currency, got list "
                                   "[150, 'CNY']"),
    ("fees", {"rate": D("1.5"), "currency": "CNY"}, "fees.rate",
     "must be an integer >= 0, got 1.5"),
    ("fees", {"rate": 1, "currency": 156}, "fees.currency",
     "must be an ISO 4217 code like 'CNY', got int 156"),
    ("insurance", "PICC", "insurance",
     "must be a map of exactly insurer, policy, amount, got str 'PICC'"),
    ("insurance", {"insurer": "PICC", "policy": None, "amount": 1}, "insurance.policy",
     "must be non-empty text, got NoneType None"),
    ("insurance", {"insurer": "PICC", "policy": "P", "amount": "1"}, "insurance.amount",
     "must be an integer >= 1, got str '1'"),
    ("commodity", 29, "commodity", "must be non-empty text, got int 29"),
]  # fmt: skip


@pytest.mark.parametrize("name", FIELDS)
def test_issue_refuses_a_missing_field(fc: FinanceChain, name: str) -> None:
    ev = fc.stock_evidence("100", "A1")
    given = {k: v for k, v in fields().items() if k != name}
    assert refused(fc, ("receipts", "issue", (given, ev), "wh")) == (
        f"receipt field {name!r}: missing"
    )


@pytest.mark.parametrize(("name", "value", "field", "reason"), WRONG_TYPE,
                         ids=[f"{w[2]}-{type(w[1]).__name__}" for w in WRONG_TYPE])  # fmt: skip
def test_issue_refuses_a_field_of_the_wrong_type(
    fc: FinanceChain, name: str, value: Any, field: str, reason: str
) -> None:
    ev = fc.stock_evidence("100", "A1")
    given = {**fields(), name: value}
    assert refused(fc, ("receipts", "issue", (given, ev), "wh")) == (
        f"receipt field {field!r}: {reason}"
    )


# -- loans: a LoanChain (copper at 70 000 CNY/t, warning line 1.3; borrower sme) -----------

APPLY_TERMS = {"bank": "bank", "receipts": ["R1"], "amount": 300_000_000, "term_days": 90,
               "seller": "smelter", "seller_account": "6222 0000 1111"}  # fmt: skip


def pledged_r1(c: LoanChain, period_to: int | None = None) -> None:
    c.issue("R1", "100", period_to=period_to)
    c.pledge("R1")


def expiring(c: LoanChain, no: str) -> int:
    """Receipt ``no`` pledged (R1 and loan L1 applied on it, its trade attached; T1 beside
    the active loan L1); then its storage period ends. Returns the end."""
    if no == "T1":
        c.active_loan()
    end = c.t + 100
    c.issue(no, "5", period_to=end)
    c.pledge(no)
    if no == "R1":
        c.ok("loans", "apply", *c.apply_args("L1", ["R1"], 300_000))
        c.attach("L1")
    c.t = end + 1
    return end


def financed_twice(c: LoanChain) -> None:
    pledged_r1(c)
    for loan in ("L1", "L2"):
        c.ok("loans", "apply", *c.apply_args(loan, ["R1"], 300_000_000))
        c.attach(loan)  # each on its own reconciled trade
    c.ok("loans", "approve", "L1", D("0.0435"))


def defaulted_under_a_court_freeze(c: LoanChain) -> None:
    c.active_loan(term_days=30)
    c.ok("receipts", "freeze", "L1-R0", "court order", creator="reg")
    c.at_day(c.today + 31)
    c.ok("loans", "overdue", "L1")
    c.ok("loans", "default", "L1")


def rejected(c: LoanChain) -> None:
    pledged_r1(c)
    c.ok("loans", "apply", *c.apply_args("L1", ["R1"], 300_000_000))
    c.ok("loans", "reject", "L1", "declined")


def apply_with(c: LoanChain, loan: str, consent: bytes) -> Call:
    args = c.apply_args("L1", ["R1"], 300_000_000)
    return ("loans", "apply", (loan, *args[1:7], consent), "bank")


LOAN_CASES: list[Case] = [
    ("release_of_a_second_receipt_below_the_line",
     lambda c: c.active_loan(weights=("50", "50")),
     lambda c, _: ("receipts", "release", ("L1-R1", D(50)), "bank"),
     "releasing 50 t of L1-R1 would bring coverage of L1 to 1.05, below the warning line 1.3"),
    ("release_of_the_pledged_remainder_below_the_line",  # 62 t left: coverage 1.302
     lambda c: (c.active_loan(), c.ok("receipts", "release", "L1-R0", D(38))),
     lambda c, _: ("receipts", "release", ("L1-R0.2", D(1)), "bank"),
     "releasing 1 t of L1-R0.2 would bring coverage of L1 to 1.281, below the warning line 1.3"),
    ("approve_of_a_receipt_financed_twice", financed_twice,
     lambda c, _: ("loans", "approve", ("L2", D("0.0435")), "bank"),
     "approve: receipt R1 already secures loan L1"),
    ("approve_of_an_expired_receipt", lambda c: expiring(c, "R1"),
     lambda c, _: ("loans", "approve", ("L1", D("0.0435")), "bank"),
     lambda end: f"approve: receipt R1 expired at {iso(end)}"),
    ("top_up_with_an_expired_receipt", lambda c: expiring(c, "T1"),
     lambda c, _: ("loans", "top_up", ("L1", ["T1"]), "bank"),
     lambda end: f"top_up: receipt T1 expired at {iso(end)}"),
    ("forged_apply_consent", pledged_r1,
     lambda c, _: apply_with(c, "L1", make_consent(c.keys["bank"], c.genesis.chain, "sme",
                                                   "loans.apply", "L1", 0, APPLY_TERMS)),
     "loans.apply of L1: consent of 'sme': the signature does not verify with the key of 'sme'"),
    ("apply_consent_replayed_for_another_loan", pledged_r1,
     lambda c, _: apply_with(c, "L2", c.apply_args("L1", ["R1"], 300_000_000)[7]),
     "loans.apply of L2: consent of 'sme': it is for 'L1'"),
    ("apply_consent_replayed_after_a_rejection",
     rejected,
     lambda c, _: ("loans", "apply", c.apply_args("L1", ["R1"], 300_000_000), "bank"),
     "apply: loan L1 already exists"),
    ("unfreeze_of_a_court_freeze_after_default", defaulted_under_a_court_freeze,
     lambda c, _: ("receipts", "unfreeze", ("L1-R0",), "bank"),
     "receipt L1-R0 was frozen by the regulator reg: only a regulator can unfreeze it"),
]  # fmt: skip


@pytest.mark.parametrize("case", names(LOAN_CASES))
def test_a_loan_refusal_says_why_and_changes_nothing(lc: LoanChain, case: Case) -> None:
    run_case(lc, case)


def test_a_repayment_does_not_lift_a_regulators_freeze(lc: LoanChain) -> None:
    lc.active_loan()
    lc.ok("receipts", "freeze", "L1-R0", "court order", creator="reg")
    lc.ok("loans", "repay", "L1", 300_000_000, posting("all"))
    rec = lc.receipt("L1-R0")
    frozen = rec["frozen"] or {}
    assert (rec["state"], frozen.get("by")) == ("frozen", "reg")
    assert [o for _, o, _ in lc.state.range(relord_prefix("qd"))] == []


def test_a_stranger_cannot_block_a_partial_repayment(lc: LoanChain) -> None:
    lc.active_loan()
    lc.issue("X", "2", holder="sme2")
    kids = [{"no": f"L1-R0.{i}", "quantity": D(1), "weight": D(1)} for i in (1, 2)]
    agreed = lc.consent("sme2", "receipts.split", "X", 0, {"children": kids})
    lc.ok("receipts", "split", "X", kids, agreed, creator="wh")
    r = lc.ok("loans", "repay", "L1", 100_000_000, posting("r"))  # a third of the principal
    [part] = r["released"]
    assert (lc.receipt(part)["weight"], lc.receipt(part)["holder"]) == (D("33.333"), "sme")

"""The ``loans`` contract: receipt-pledge loans from application to closing.

A bank (the creator of every proposal here) lends to a borrower against warehouse receipts
pledged to it. The borrower, usually not a consortium member, agrees to the application
with a signed consent (:mod:`tally.finance.consent`); everything after that is the bank's
act, recorded on chain. Money moves off chain in the bank's book; each money transition
names the hash of its book posting.

=====================================  =======================  ===========================
function                               from state               to state
=====================================  =======================  ===========================
``apply(id, borrower, receipts,        (none)                   applied
amount, term_days, seller,
seller_account, consent)``
``attach_trade(id, trade_id)``         applied                  applied (the trade attached)
``approve(id, rate)``                  applied, with a trade    approved
``reject(id, reason)``                 applied, approved        rejected
``disburse(id, posting_hash)``         approved                 active
``accrue(id)``                         any disbursed state      (same), active after a cure
``repay(id, amount, posting_hash)``    active, margin_call,     (same), active after a cure,
                                       overdue, disposing       closed when all is repaid
``margin_call(id, coverage)``          active                   margin_call
``top_up(id, receipts)``               active, margin_call      (same), active after a cure
``add_margin(id, amount,               active, margin_call      (same), active after a cure
posting_hash)``
``overdue(id)``                        active, margin_call      overdue
``default(id)``                        active, margin_call,     defaulted
                                       overdue
``dispose(id, proceeds,                defaulted                closed, or disposing if a
posting_hash)``                                                 shortfall remains
``close(id)``                          disposing                closed (shortfall written
                                                                off)
=====================================  =======================  ===========================

A loan pays for a purchase: before approval the bank attaches the reconciled trade it
finances (``attach_trade``: bought by the borrower from the loan's seller, for at least the
loan's amount), which claims the trade's invoices and waybills in the double-financing
registry of :mod:`tally.finance.contracts.trades`; rejecting the application frees them, an
approved loan keeps them (:mod:`tally.finance.contracts.loan_ops`).

The loan record, the conditions of each transition and its refusals are in
docs/finance-loans.md; the interest convention in :mod:`tally.finance.interest`; coverage in
:mod:`tally.finance.coverage` and :mod:`tally.finance.contracts.coverage`. Every transition
bumps the loan's ``seq`` and, from disbursement on, first accrues interest to the
proposal's business day. A margin call is cured (the loan back to active) by whichever
transition finds coverage at the warning line again: a top-up, cash margin, a repayment,
or an accrual after prices recovered.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.finance import interest as i
from tally.finance.consent import require
from tally.finance.contracts import loan_ops as ops
from tally.finance.contracts import receipt_ops
from tally.finance.contracts.coverage import (
    below_line,
    check_limit,
    collateral,
    held_by_another,
    link,
    loan_coverage,
    loan_receipt,
    money,
    num,
    release_all,
    release_pro_rata,
    require_pledged_here,
    securing,
    unlink,
)
from tally.finance.contracts.market import (
    CURRENCY,
    decimal,
    ident,
    integer,
    require_role,
    text,
)
from tally.finance.contracts.parties import known_party
from tally.finance.keys import loan_key
from tally.finance.receipt import iso
from tally.ledger.contract import Context, Contract, ContractError, function

MAX_AMOUNT = 10**15
"""The largest loan in fen (10 trillion CNY)."""
MAX_TERM_DAYS = 3660
ACCRUING = ops.ACCRUING


def _owed(loan: dict[str, Any]) -> int:
    return i.owed(loan["interest"], loan["principal"])


def _cure(ctx: Context, loan: dict[str, Any]) -> bool:
    """End a margin call if coverage is back at the warning line; say whether it ended."""
    if loan["state"] == "margin_call" and not below_line(ctx, loan, "warning"):
        loan["state"] = "active"
        loan["margin_call"] = None
        return True
    return False


def _pay(loan: dict[str, Any], amount: int) -> tuple[int, int]:
    """Apply ``amount`` (<= what is owed) to interest first, then principal."""
    to_interest, to_principal, loan["interest"] = i.allocate(
        loan["interest"], loan["principal"], amount
    )
    loan["principal"] -= to_principal
    return to_interest, to_principal


class Loans(Contract):
    """Receipt-pledge loans (see the module docstring)."""

    name = "loans"

    @function
    def apply(
        self,
        ctx: Context,
        loan_id: Any,
        borrower: Any,
        receipts: Any,
        amount: Any,
        term_days: Any,
        seller: Any,
        seller_account: Any,
        consent: Any,
    ) -> dict[str, Any]:
        fn = "apply"
        require_role(ctx, fn, "bank")
        lid = ident(fn, "id", loan_id)
        who = ident(fn, "borrower", borrower)
        if who == ctx.creator:
            raise ContractError(f"{fn}: the borrower must not be the lending bank {who!r}")
        known_party(ctx, who, f"{fn}: borrower")
        nos = ops.receipt_list(fn, receipts)
        amt = ops.bounded(fn, "amount", amount, MAX_AMOUNT)
        term = ops.bounded(fn, "term_days", term_days, MAX_TERM_DAYS)
        payee = ident(fn, "seller", seller)
        account = text(fn, "seller_account", seller_account, 64)
        if ctx.get(loan_key(lid)) is not None:
            raise ContractError(f"{fn}: loan {lid} already exists")
        terms = {"bank": ctx.creator, "receipts": nos, "amount": amt, "term_days": term,
                 "seller": payee, "seller_account": account}  # fmt: skip
        require(ctx, who, "loans.apply", lid, 0, terms, consent)
        loan: dict[str, Any] = {
            "v": 1, "id": lid, "bank": ctx.creator, "borrower": who, "receipts": nos,
            "commodity": None, "amount": amt, "currency": CURRENCY, "rate": None,
            "term_days": term, "seller": payee, "seller_account": account, "trade": None,
            "state": "applied",
            "principal": 0, "interest": Decimal(0), "accrued_to": None, "start": None,
            "maturity": None, "cash_margin": 0, "margin_call": None, "postings": [], "seq": 0,
        }  # fmt: skip
        for no in nos:
            rec = loan_receipt(ctx, fn, loan, no)
            loan["commodity"] = rec["commodity"]
            if rec["state"] == "pledged":
                require_pledged_here(fn, loan, rec)
            elif rec["state"] != "live":
                raise ContractError(f"{fn}: receipt {no} is {rec['state']}")
        ctx.put(loan_key(lid), loan)
        return {"id": lid, "state": "applied", "commodity": loan["commodity"]}

    @function
    def attach_trade(self, ctx: Context, loan_id: Any, trade_id: Any) -> dict[str, Any]:
        fn = "attach_trade"
        loan = ops.get_loan(ctx, fn, loan_id, "applied")
        claimed = ops.attach_trade(ctx, fn, loan, trade_id)
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "applied", "trade": loan["trade"], "claimed": claimed}

    @function
    def approve(self, ctx: Context, loan_id: Any, rate: Any) -> dict[str, Any]:
        fn = "approve"
        loan = ops.get_loan(ctx, fn, loan_id, "applied")
        r = decimal(fn, "rate", rate)
        if not 0 < r < 1:
            raise ContractError(f"{fn}: rate must be in (0, 1) (annual, e.g. 0.0435), got {r:f}")
        ops.approved_trade(ctx, fn, loan)
        link(ctx, fn, loan, loan["receipts"])
        check_limit(ctx, fn, loan)  # the linked receipts now secure it
        loan["rate"] = r
        loan["state"] = "approved"
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "approved", "rate": r}

    @function
    def reject(self, ctx: Context, loan_id: Any, reason: Any) -> dict[str, Any]:
        fn = "reject"
        loan = ops.get_loan(ctx, fn, loan_id, "applied", "approved")
        why = text(fn, "reason", reason)
        if loan["state"] == "approved":
            unlink(ctx, fn, loan)  # its trade's invoices stay claimed: they were financed
        else:
            ops.release_trade(ctx, fn, loan)
        loan["state"] = "rejected"
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "rejected", "reason": why}

    @function
    def disburse(self, ctx: Context, loan_id: Any, posting_hash: Any) -> dict[str, Any]:
        fn = "disburse"
        loan = ops.get_loan(ctx, fn, loan_id, "approved")
        posting = ops.posting(fn, loan, posting_hash)
        check_limit(ctx, fn, loan)
        today = i.day(ctx.time)
        loan |= {"state": "active", "principal": loan["amount"], "start": today,
                 "maturity": today + loan["term_days"], "accrued_to": today}  # fmt: skip
        loan["postings"] = [*loan["postings"], posting]
        ops.save(ctx, loan)
        return {
            "id": loan["id"], "state": "active", "amount": loan["amount"],
            "seller": loan["seller"], "seller_account": loan["seller_account"],
            "posting": posting, "start": today, "maturity": loan["maturity"],
        }  # fmt: skip

    @function
    def accrue(self, ctx: Context, loan_id: Any) -> dict[str, Any]:
        fn = "accrue"
        lid = ident(fn, "id", loan_id)
        before = ctx.get(loan_key(lid))
        loan = ops.get_loan(ctx, fn, lid, *ACCRUING)
        assert before is not None
        cured = _cure(ctx, loan)
        if loan["accrued_to"] == before["accrued_to"] and not cured:
            d = loan["accrued_to"]
            raise ContractError(f"{fn}: loan {lid} is accrued to {i.date_of(d)} (day {d}) already")
        ops.save(ctx, loan)
        return {"id": lid, "state": loan["state"], "interest": loan["interest"],
                "accrued_to": loan["accrued_to"], "cured": cured}  # fmt: skip

    @function
    def repay(self, ctx: Context, loan_id: Any, amount: Any, posting_hash: Any) -> dict[str, Any]:
        fn = "repay"
        loan = ops.get_loan(ctx, fn, loan_id, "active", "margin_call", "overdue", "disposing")
        amt = integer(fn, "amount", amount, 1)
        posting = ops.posting(fn, loan, posting_hash)
        owed = _owed(loan)
        if amt > owed:
            raise ContractError(
                f"{fn}: amount {money(amt)} exceeds what loan {loan['id']} owes: {money(owed)} "
                f"(interest {money(i.to_minor(loan['interest']))} + principal "
                f"{money(loan['principal'])})"
            )
        before = loan["principal"]
        to_interest, to_principal = _pay(loan, amt)
        loan["postings"] = [*loan["postings"], posting]
        out: dict[str, Any] = {"released": [], "held": None}
        cash = 0
        if loan["principal"] == 0:
            out["released"] = release_all(ctx, loan, "release", "loans.repay")
            cash = loan["cash_margin"]  # under half a fen of interest is settled by rounding
            loan |= {"state": "closed", "cash_margin": 0, "margin_call": None,
                     "interest": Decimal(0)}  # fmt: skip
        elif loan["state"] == "active" and to_principal > 0:
            out = release_pro_rata(ctx, loan, to_principal, before)
        cured = _cure(ctx, loan)
        ops.save(ctx, loan)
        return {
            "id": loan["id"], "state": loan["state"], "interest_paid": to_interest,
            "principal_paid": to_principal, "principal": loan["principal"],
            "cash_margin_returned": cash, "cured": cured, **out,
        }  # fmt: skip

    @function
    def margin_call(self, ctx: Context, loan_id: Any, coverage: Any) -> dict[str, Any]:
        fn = "margin_call"
        loan = ops.get_loan(ctx, fn, loan_id, "active")
        claimed = decimal(fn, "coverage", coverage)
        params = collateral(ctx, loan).params
        c = loan_coverage(ctx, loan)
        assert c is not None
        warning = params["warning"]
        if claimed != c:
            raise ContractError(
                f"{fn}: coverage {num(claimed)} does not agree with the chain's coverage "
                f"{num(c)} of loan {loan['id']}"
            )
        if not below_line(ctx, loan, "warning"):
            raise ContractError(
                f"{fn}: coverage {num(c)} of loan {loan['id']} is not below the warning line "
                f"{num(warning)}"
            )
        call = {"t": ctx.time, "deadline": ctx.time + params["cure_ms"], "coverage": c}
        loan |= {"state": "margin_call", "margin_call": call}
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "margin_call", **call}

    @function
    def top_up(self, ctx: Context, loan_id: Any, receipts: Any) -> dict[str, Any]:
        fn = "top_up"
        loan = ops.get_loan(ctx, fn, loan_id, "active", "margin_call")
        nos = ops.receipt_list(fn, receipts)
        link(ctx, fn, loan, nos)
        loan["receipts"] = [*loan["receipts"], *nos]
        cured = _cure(ctx, loan)
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": loan["state"], "cured": cured,
                "coverage": loan_coverage(ctx, loan)}  # fmt: skip

    @function
    def add_margin(
        self, ctx: Context, loan_id: Any, amount: Any, posting_hash: Any
    ) -> dict[str, Any]:
        fn = "add_margin"
        loan = ops.get_loan(ctx, fn, loan_id, "active", "margin_call")
        amt = integer(fn, "amount", amount, 1)
        posting = ops.posting(fn, loan, posting_hash)
        loan["cash_margin"] += amt
        loan["postings"] = [*loan["postings"], posting]
        cured = _cure(ctx, loan)
        ops.save(ctx, loan)
        cover = loan_coverage(ctx, loan)
        return {"id": loan["id"], "state": loan["state"], "cured": cured,
                "cash_margin": loan["cash_margin"], "coverage": cover}  # fmt: skip

    @function
    def overdue(self, ctx: Context, loan_id: Any) -> dict[str, Any]:
        fn = "overdue"
        loan = ops.get_loan(ctx, fn, loan_id, "active", "margin_call")
        today, due = i.day(ctx.time), loan["maturity"]
        if today <= due:
            raise ContractError(
                f"{fn}: loan {loan['id']} matures on {i.date_of(due)} (day {due}); it is "
                f"{i.date_of(today)} (day {today})"
            )
        loan["state"] = "overdue"
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "overdue", "owed": _owed(loan)}

    @function
    def default(self, ctx: Context, loan_id: Any) -> dict[str, Any]:
        fn = "default"
        loan = ops.get_loan(ctx, fn, loan_id, "active", "margin_call", "overdue")
        lid, state = loan["id"], loan["state"]
        call = loan["margin_call"]
        if state == "overdue":
            why = f"overdue since {i.date_of(loan['maturity'] + 1)}"
        elif state == "margin_call" and ctx.time > call["deadline"]:
            if not below_line(ctx, loan, "warning"):
                c = loan_coverage(ctx, loan)
                line = collateral(ctx, loan).params["warning"]
                raise ContractError(
                    f"{fn}: the margin call on loan {lid} lapsed at {iso(call['deadline'])} "
                    f"but its coverage {num(c or Decimal(0))} is back at the warning line "
                    f"{num(line)}"
                )
            why = f"margin call not cured by {iso(call['deadline'])}"
        elif below_line(ctx, loan, "disposal"):
            c = loan_coverage(ctx, loan)
            line = collateral(ctx, loan).params["disposal"]
            why = f"coverage {num(c or Decimal(0))} below the disposal line {num(line)}"
        else:
            c = loan_coverage(ctx, loan)
            line = collateral(ctx, loan).params["disposal"]
            pending = (
                f"its margin call runs until {iso(call['deadline'])}"
                if state == "margin_call"
                else f"it matures on {i.date_of(loan['maturity'])}"
            )
            raise ContractError(
                f"{fn}: loan {lid} is {state} and not in default: {pending}, and coverage "
                f"{num(c or Decimal(0))} is not below the disposal line {num(line)}"
            )
        for rec in securing(ctx, loan):
            if held_by_another(ctx, rec):
                continue  # a regulator's freeze stays as it is: only a regulator may lift it
            # a receipt the bank froze already keeps the state it had before that freeze
            was = rec["frozen"]["was"] if rec["state"] == "frozen" else rec["state"]
            frozen = {"by": ctx.creator, "reason": f"loan {lid} defaulted: {why}",
                      "t": ctx.time, "was": was}  # fmt: skip
            receipt_ops.set_state(ctx, rec, "frozen", "loans.default", ctx.creator, frozen=frozen)
        loan["state"] = "defaulted"
        ops.save(ctx, loan)
        return {"id": lid, "state": "defaulted", "reason": why, "owed": _owed(loan)}

    @function
    def dispose(
        self, ctx: Context, loan_id: Any, proceeds: Any, posting_hash: Any
    ) -> dict[str, Any]:
        fn = "dispose"
        loan = ops.get_loan(ctx, fn, loan_id, "defaulted")
        got = integer(fn, "proceeds", proceeds, 0)
        posting = ops.posting(fn, loan, posting_hash)
        disposed = release_all(ctx, loan, "disposal", "loans.dispose")
        recovered = got + loan["cash_margin"]
        owed = _owed(loan)
        paid = min(recovered, owed)
        to_interest, to_principal = _pay(loan, paid)
        loan["cash_margin"] = 0
        loan["postings"] = [*loan["postings"], posting]
        if loan["principal"] == 0:
            loan |= {"state": "closed", "interest": Decimal(0)}
        else:
            loan["state"] = "disposing"
        ops.save(ctx, loan)
        return {
            "id": loan["id"], "state": loan["state"], "disposed": disposed,
            "interest_paid": to_interest, "principal_paid": to_principal,
            "surplus": recovered - paid, "owed": _owed(loan),
        }  # fmt: skip

    @function
    def close(self, ctx: Context, loan_id: Any) -> dict[str, Any]:
        fn = "close"
        loan = ops.get_loan(ctx, fn, loan_id, "disposing")
        written_off = _owed(loan)
        loan |= {"state": "closed", "principal": 0, "interest": Decimal(0)}
        ops.save(ctx, loan)
        return {"id": loan["id"], "state": "closed", "written_off": written_off}

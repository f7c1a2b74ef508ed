"""Reading, checking and writing loans for the ``loans`` contract, and a loan's trade.

The loan record itself (:func:`get_loan`, :func:`save`) and the checks of arguments every
transition shares (:func:`posting`, :func:`receipt_list`, :func:`bounded`) live here; which
transition may run, and what it changes, the contract decides
(:mod:`tally.finance.contracts.loans`).

A loan finances a purchase: the borrower (the trade's buyer) pays the seller (the trade's
seller) with the loan, by entrusted payment. Before a loan is approved the bank attaches the
reconciled trade it finances (``trade/<id>``, :mod:`tally.finance.contracts.trades`):

* :func:`attach_trade` checks that the trade is attested and reconciled, bought by the
  borrower from the loan's seller, in the loan's currency, and that the loan's amount is
  within what the reconciliation allows to be financed; it claims every invoice and waybill
  of the trade in the double-financing registry (``use/<identity>`` backs ``loan:<id>``), so
  none of them can back a note or another loan, at any bank. Because the first financing of
  a trade claims all its identities, a trade backs one loan or one family of notes: the loan
  may take up to the trade's reconciled amount, and a second use is refused by the registry;
* :func:`approved_trade`, at approval, refuses a loan without a trade, checks the trade is
  still reconciled and still allows the amount, and claims any identity the trade gained by a
  re-attestation since;
* :func:`release_trade`, when an application is rejected, frees the identities the loan
  claimed so that the invoice may back another financing. A loan that was approved keeps its
  claims for good: the invoice was financed.
"""

from __future__ import annotations

from typing import Any

from tally.finance import interest as i
from tally.finance.contracts.coverage import money
from tally.finance.contracts.market import ident, integer, shown
from tally.finance.contracts.trades import claim_trade, reconciled_trade, release_uses
from tally.finance.keys import loan_key, trade_key, use_key
from tally.ledger.contract import Context, ContractError

POSTING_HASH_SIZE = 32
MAX_RECEIPTS = 64
ACCRUING = ("active", "margin_call", "overdue", "defaulted", "disposing")
"""States in which interest accrues (the loan is disbursed and not closed)."""


# -- the loan record ---------------------------------------------------------------------------


def get_loan(ctx: Context, fn: str, loan_id: Any, *states: str) -> dict[str, Any]:
    """The loan, its bank the creator, in one of ``states``, with interest accrued to the
    proposal's business day when it accrues; refuse otherwise."""
    lid = ident(fn, "id", loan_id)
    loan = ctx.get(loan_key(lid))
    if loan is None:
        raise ContractError(f"{fn}: loan {lid} does not exist")
    if loan["bank"] != ctx.creator:
        raise ContractError(
            f"{fn}: loan {lid} is a loan of {loan['bank']!r}; {ctx.creator!r} may not {fn} it"
        )
    if loan["state"] not in states:
        need = " or ".join(states)
        raise ContractError(f"{fn}: loan {lid} is {loan['state']}, {fn} needs it {need}")
    loan = dict(loan)
    today = i.day(ctx.time)
    if loan["state"] in ACCRUING and today > loan["accrued_to"]:
        days = today - loan["accrued_to"]
        loan["interest"] = i.add(loan["interest"], i.accrue(loan["principal"], loan["rate"], days))
        loan["accrued_to"] = today
    return loan


def save(ctx: Context, loan: dict[str, Any]) -> None:
    """Write the loan with its ``seq`` bumped."""
    loan["seq"] += 1
    ctx.put(loan_key(loan["id"]), loan)


# -- arguments ---------------------------------------------------------------------------------


def posting(fn: str, loan: dict[str, Any], value: Any) -> bytes:
    """A book posting's 32-byte anchored hash, new to the loan."""
    if not isinstance(value, bytes) or len(value) != POSTING_HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else shown(value)
        raise ContractError(
            f"{fn}: posting_hash must be {POSTING_HASH_SIZE} bytes (the book posting's "
            f"anchored hash), got {got}"
        )
    if value in loan["postings"]:
        raise ContractError(
            f"{fn}: posting {value.hex()[:16]}… is already recorded on loan {loan['id']}"
        )
    return value


def receipt_list(fn: str, value: Any) -> list[str]:
    """1 to :data:`MAX_RECEIPTS` distinct receipt numbers."""
    if not isinstance(value, list | tuple) or not value:
        raise ContractError(f"{fn}: receipts must be a non-empty list, got {shown(value)}")
    if len(value) > MAX_RECEIPTS:
        raise ContractError(f"{fn}: at most {MAX_RECEIPTS} receipts, got {len(value)}")
    out = [ident(fn, "receipt number", no) for no in value]
    twice = sorted({no for no in out if out.count(no) > 1})
    if twice:
        raise ContractError(f"{fn}: receipt {twice[0]} is listed twice")
    return out


def bounded(fn: str, name: str, value: Any, most: int) -> int:
    """An integer in [1, ``most``]."""
    n = integer(fn, name, value, 1)
    if n > most:
        raise ContractError(f"{fn}: {name} must be at most {most}, got {n}")
    return n


# -- the trade a loan finances -----------------------------------------------------------------


def backs(loan: dict[str, Any]) -> str:
    """What the loan's claims in the registry say they back: ``loan:<id>``."""
    return f"loan:{loan['id']}"


def _check_amount(fn: str, loan: dict[str, Any], trade: dict[str, Any]) -> None:
    due = trade["invoiced"] - trade["paid"]
    room = max(0, min(trade["amount"], due))
    if loan["amount"] > room:
        raise ContractError(
            f"{fn}: amount {money(loan['amount'])} of loan {loan['id']} exceeds what trade "
            f"{trade['id']} allows to be financed: {money(room)} (reconciled "
            f"{money(trade['amount'])}; invoiced {money(trade['invoiced'])} − paid "
            f"{money(trade['paid'])} = {money(due)})"
        )


def attach_trade(ctx: Context, fn: str, loan: dict[str, Any], trade_id: Any) -> int:
    """Check the reconciled trade ``trade_id`` for the applied ``loan`` (see the module
    docstring), claim its invoices and waybills for the loan and record it as the loan's
    ``trade``; return how many identities the trade has."""
    lid = loan["id"]
    if loan.get("trade") is not None:
        raise ContractError(
            f"{fn}: loan {lid} already finances trade {loan['trade']}: a loan finances one trade"
        )
    trade = reconciled_trade(ctx, trade_id, fn)
    tid = trade["id"]
    if trade["buyer"] != loan["borrower"]:
        raise ContractError(
            f"{fn}: trade {tid}'s buyer is {trade['buyer']!r}, not loan {lid}'s borrower "
            f"{loan['borrower']!r}"
        )
    if trade["seller"] != loan["seller"]:
        raise ContractError(
            f"{fn}: trade {tid}'s seller is {trade['seller']!r}, not loan {lid}'s seller "
            f"{loan['seller']!r} (the entrusted payment goes to the trade's seller)"
        )
    if trade["currency"] != loan["currency"]:
        raise ContractError(
            f"{fn}: trade {tid} is in {trade['currency']}, loan {lid} in {loan['currency']}"
        )
    claim_trade(ctx, trade, backs(loan), fn)  # a refusal below discards these writes too
    _check_amount(fn, loan, trade)
    loan["trade"] = tid
    return len(trade["invoices"]) + len(trade["waybills"])


def approved_trade(ctx: Context, fn: str, loan: dict[str, Any]) -> dict[str, Any]:
    """The loan's trade, still reconciled and still allowing the loan's amount, with every
    identity it has now claimed for the loan; refuse a loan without one."""
    tid = loan.get("trade")
    if tid is None:
        raise ContractError(
            f"{fn}: loan {loan['id']} has no reconciled trade: attach one with loans.attach_trade"
        )
    trade = reconciled_trade(ctx, tid, fn)
    _check_amount(fn, loan, trade)
    claim_trade(ctx, trade, backs(loan), fn)  # what a re-attestation added since
    return trade


def release_trade(ctx: Context, fn: str, loan: dict[str, Any]) -> int:
    """Free the registry entries the loan's claims hold (its application is rejected);
    return how many."""
    tid = loan.get("trade")
    trade = None if tid is None else ctx.get(trade_key(tid))
    if trade is None:
        return 0
    b = backs(loan)
    mine = [
        h
        for h in [*trade["invoices"], *trade["waybills"]]
        if (use := ctx.get(use_key(h))) is not None and use["backs"] == b
    ]
    release_uses(ctx, mine, b, fn)
    return len(mine)


__all__ = [
    "ACCRUING",
    "MAX_RECEIPTS",
    "POSTING_HASH_SIZE",
    "approved_trade",
    "attach_trade",
    "backs",
    "bounded",
    "get_loan",
    "posting",
    "receipt_list",
    "release_trade",
    "save",
]

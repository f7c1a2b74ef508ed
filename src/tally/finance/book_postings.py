"""The standard postings of the bank's account book (:mod:`tally.finance.book`): one function
per kind, each building the :class:`~tally.finance.book_rules.Draft` of a loan's money event
from amounts and parties (``docs/finance-book.md``, "Standard postings").

* :func:`disbursement`: entrusted payment of a loan to the seller (here, or at another bank
  through the bank's settlement account);
* :func:`repayment`, :func:`interest`: principal and interest paid from the borrower's
  account (or through settlement);
* :func:`margin_deposit`, :func:`margin_return`: cash margin posted and returned;
* :func:`settlement`: money between a customer here and another bank;
* :func:`disposal`: proceeds of selling collateral, applied to principal, then interest, any
  surplus held for the borrower.

Each returns a draft for :meth:`tally.finance.book.Book.post`, which checks it
(:func:`~tally.finance.book_rules.check_draft`).
"""

from __future__ import annotations

from tally.finance.book_rules import AccountKey, Draft, Line, credit, debit


def _payer(bank: str, borrower: str, source: str, currency: str) -> AccountKey:
    org = bank if source == "settlement" else borrower
    return AccountKey(org, source, currency)


def _lines(*lines: Line) -> list[Line]:
    return [ln for ln in lines if ln.amount]


def disbursement(
    bank: str,
    loan: str,
    borrower: str,
    seller: str,
    amount: int,
    currency: str = "CNY",
    seller_account: str | None = None,
) -> Draft:
    """Entrusted payment of a loan to the seller: Dr borrower loans; Cr the seller's deposit
    here, or (``seller_account`` at another bank) Cr the bank's settlement."""
    refs = {"loan": loan, "borrower": borrower, "seller": seller}
    to = AccountKey(seller, "deposit", currency)
    if seller_account is not None:
        refs["seller_account"] = seller_account
        to = AccountKey(bank, "settlement", currency)
    return Draft(
        "disbursement",
        [debit(AccountKey(borrower, "loans", currency), amount), credit(to, amount)],
        refs,
    )


def repayment(
    bank: str, loan: str, borrower: str, amount: int, currency: str = "CNY", source: str = "deposit"
) -> Draft:
    """Principal repaid: Dr the payer (the borrower's ``source`` account, or the bank's
    settlement for money from another bank); Cr borrower loans."""
    return Draft(
        "repayment",
        [
            debit(_payer(bank, borrower, source, currency), amount),
            credit(AccountKey(borrower, "loans", currency), amount),
        ],
        {"loan": loan, "borrower": borrower},
    )


def interest(
    bank: str, loan: str, borrower: str, amount: int, currency: str = "CNY", source: str = "deposit"
) -> Draft:
    """Interest paid (rounded to minor units when paid): Dr the payer; Cr interest income."""
    return Draft(
        "interest",
        [
            debit(_payer(bank, borrower, source, currency), amount),
            credit(AccountKey(bank, "interest_income", currency), amount),
        ],
        {"loan": loan, "borrower": borrower},
    )


def margin_deposit(
    bank: str, loan: str, borrower: str, amount: int, currency: str = "CNY", source: str = "deposit"
) -> Draft:
    """Cash margin posted: Dr the payer; Cr borrower margin."""
    return Draft(
        "margin_deposit",
        [
            debit(_payer(bank, borrower, source, currency), amount),
            credit(AccountKey(borrower, "margin", currency), amount),
        ],
        {"loan": loan, "borrower": borrower},
    )


def margin_return(
    bank: str, loan: str, borrower: str, amount: int, currency: str = "CNY", to: str = "deposit"
) -> Draft:
    """Cash margin returned: Dr borrower margin; Cr the borrower's deposit (or settlement)."""
    return Draft(
        "margin_return",
        [
            debit(AccountKey(borrower, "margin", currency), amount),
            credit(_payer(bank, borrower, to, currency), amount),
        ],
        {"loan": loan, "borrower": borrower},
    )


def settlement(
    bank: str,
    customer: str,
    amount: int,
    currency: str = "CNY",
    incoming: bool = True,
    source: str = "deposit",
) -> Draft:
    """Money from another bank to a customer (Dr settlement; Cr customer deposit), or, with
    ``incoming=False``, from the customer's ``source`` account (deposit or disposal) out."""
    ours = AccountKey(bank, "settlement", currency)
    if incoming:
        lines = [debit(ours, amount), credit(AccountKey(customer, "deposit", currency), amount)]
    else:
        lines = [debit(AccountKey(customer, source, currency), amount), credit(ours, amount)]
    return Draft("settlement", lines, {"customer": customer})


def disposal(
    bank: str,
    loan: str,
    borrower: str,
    buyer: str,
    proceeds: int,
    principal: int,
    interest_due: int,
    currency: str = "CNY",
) -> Draft:
    """Proceeds of selling the collateral, received through settlement, applied to principal,
    then interest; any surplus is held in the borrower's disposal account."""
    to_principal = min(principal, proceeds)
    to_interest = min(interest_due, proceeds - to_principal)
    surplus = proceeds - to_principal - to_interest
    return Draft(
        "disposal",
        _lines(
            debit(AccountKey(bank, "settlement", currency), proceeds),
            credit(AccountKey(borrower, "loans", currency), to_principal),
            credit(AccountKey(bank, "interest_income", currency), to_interest),
            credit(AccountKey(borrower, "disposal", currency), surplus),
        ),
        {"loan": loan, "borrower": borrower, "buyer": buyer},
    )

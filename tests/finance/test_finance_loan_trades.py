"""A loan is approved only on a reconciled trade: ``loans.attach_trade`` ties an applied loan
to the purchase it pays for and claims the trade's invoices and waybills in the
double-financing registry, across banks; ``approve`` refuses a loan without one and checks
the trade again; rejecting an application frees the invoices, an approved loan keeps them.
Every refusal is checked word for word and to change nothing (``LoanChain.refused``).

The chain is the loans harness (copper at 70 000 CNY/t; banks ``bank`` and ``bank2``; the
parties ``sme``, ``sme2`` and the seller ``smelter``) with a core enterprise member ``core``
that issues receivable notes. Trades are attested through the real ``trades`` contract by
``LoanChain.trade``: one invoice and one waybill, reconciled, nothing paid.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loans_harness import ORGS, LoanChain, identity, posting, stand_in

from tally.finance.keys import trade_key, use_key
from tally.ledger.contract import Context

RATE = Decimal("0.0435")
AMOUNT = 300_000_000
"""3 000 000.00 CNY: the usual loan, within the pledge rate of 100 t of copper."""
DAY_MS = 86_400_000


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LoanChain]:
    c = LoanChain(tmp_path, orgs={**ORGS, "core": ["core_enterprise"]})
    c.market()
    c.market(bank="bank2")
    yield c
    c.close()


def short(h: bytes) -> str:
    return h.hex()[:16] + "…"


def applied(
    chain: LoanChain,
    loan: str = "L1",
    amount: int = AMOUNT,
    borrower: str = "sme",
    seller: str = "smelter",
    bank: str = "bank",
) -> None:
    """Receipt ``<loan>-R`` of 100 t held by ``borrower``, pledged to ``bank``; loan ``loan``
    applied on it."""
    no = f"{loan}-R"
    chain.issue(no, "100", holder=borrower)
    chain.pledge(no, bank=bank)
    args = chain.apply_args(loan, [no], amount, borrower=borrower, bank=bank, seller=seller)
    chain.ok("loans", "apply", *args, creator=bank)


def due(chain: LoanChain) -> int:
    """A note's due time 90 days on."""
    return chain.t + 90 * DAY_MS


# -- attaching and approving -------------------------------------------------------------------


def test_a_loan_is_approved_on_its_attached_reconciled_trade(chain: LoanChain) -> None:
    applied(chain)
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: loan L1 has no reconciled trade: attach one with loans.attach_trade"
    )
    tr = chain.trade("T-1", AMOUNT)
    t = chain.t
    out = chain.ok("loans", "attach_trade", "L1", "T-1")
    assert out == {"id": "L1", "state": "applied", "trade": "T-1", "claimed": 2}
    loan = chain.loan("L1")
    assert (loan["trade"], loan["state"], loan["seq"]) == ("T-1", "applied", 1)
    inv, wb = tr["invoices"][0], tr["waybills"][0]
    assert chain.get(use_key(inv)) == {"kind": "invoice", "backs": "loan:L1", "by": "bank", "t": t}
    assert chain.get(use_key(wb)) == {"kind": "waybill", "backs": "loan:L1", "by": "bank", "t": t}
    assert chain.ok("loans", "approve", "L1", RATE)["state"] == "approved"
    paid = chain.ok("loans", "disburse", "L1", posting("disbursement"))
    assert (paid["seller"], paid["amount"]) == ("smelter", AMOUNT)  # the trade's seller is paid
    assert chain.loan("L1")["trade"] == "T-1"
    assert chain.get(use_key(inv))["backs"] == "loan:L1"


def test_a_trade_from_another_bank_may_be_attached(chain: LoanChain) -> None:
    applied(chain)
    chain.trade("T-1", AMOUNT, bank="bank2")  # reconciled and attested by the other bank
    assert chain.ok("loans", "attach_trade", "L1", "T-1")["trade"] == "T-1"
    assert chain.get(use_key(identity("invoice", "T-1")))["by"] == "bank"


def test_attach_trade_refusals(chain: LoanChain) -> None:
    applied(chain)
    chain.trade("T-M", AMOUNT, status="mismatch", reasons=["quantity off by 3 %"])
    chain.trade("T-F", AMOUNT, status="flagged", reasons=["circular trade: sme → smelter → sme"])
    chain.trade("T-B", AMOUNT, buyer="sme2")
    chain.trade("T-S", AMOUNT, seller="mill")
    chain.trade("T-U", AMOUNT, currency="USD")
    chain.trade("T-A", AMOUNT - 1)
    chain.trade("T-P", 200_000_000, invoiced=400_000_000, paid=150_000_000)
    w = "attach_trade"
    cases = [
        (("L9", "T-1"), "bank", f"{w}: loan L9 does not exist"),
        (("L/1", "T-1"), "bank", f"{w}: id must not contain '/', got 'L/1'"),
        (("L1", "T-1"), "bank2", f"{w}: loan L1 is a loan of 'bank'; 'bank2' may not {w} it"),
        (("L1", "T-1"), "wh", f"{w}: loan L1 is a loan of 'bank'; 'wh' may not {w} it"),
        (("L1", "T/1"), "bank", f"{w}: trade must not contain '/', got 'T/1'"),
        (("L1", 7), "bank", f"{w}: trade must be non-empty text, got 7"),
        (("L1", "T-9"), "bank", f"{w}: trade T-9 is not attested"),
        (("L1", "T-M"), "bank", f"{w}: trade T-M is not reconciled: quantity off by 3 %"),
        (("L1", "T-F"), "bank",
         f"{w}: trade T-F is not reconciled: circular trade: sme → smelter → sme"),
        (("L1", "T-B"), "bank", f"{w}: trade T-B's buyer is 'sme2', not loan L1's borrower 'sme'"),
        (("L1", "T-S"), "bank", f"{w}: trade T-S's seller is 'mill', not loan L1's seller "
         "'smelter' (the entrusted payment goes to the trade's seller)"),
        (("L1", "T-U"), "bank", f"{w}: trade T-U is in USD, loan L1 in CNY"),
        (("L1", "T-A"), "bank", f"{w}: amount 3000000.00 CNY of loan L1 exceeds what trade T-A "
         "allows to be financed: 2999999.99 CNY (reconciled 2999999.99 CNY; invoiced "
         "2999999.99 CNY − paid 0.00 CNY = 2999999.99 CNY)"),
        (("L1", "T-P"), "bank", f"{w}: amount 3000000.00 CNY of loan L1 exceeds what trade T-P "
         "allows to be financed: 2000000.00 CNY (reconciled 2000000.00 CNY; invoiced "
         "4000000.00 CNY − paid 1500000.00 CNY = 2500000.00 CNY)"),
    ]  # fmt: skip
    for args, creator, message in cases:
        assert chain.refused("loans", "attach_trade", *args, creator=creator) == message
    loan = chain.loan("L1")
    assert (loan["trade"], loan["seq"]) == (None, 0)
    # the loan's amount exactly at what the trade allows is attached
    chain.trade("T-1", AMOUNT)
    chain.ok("loans", "attach_trade", "L1", "T-1")
    assert chain.refused("loans", "attach_trade", "L1", "T-A") == (
        f"{w}: loan L1 already finances trade T-1: a loan finances one trade"
    )
    chain.ok("loans", "approve", "L1", RATE)
    assert chain.refused("loans", "attach_trade", "L1", "T-A") == (
        f"{w}: loan L1 is approved, {w} needs it applied"
    )


# -- one financing per invoice, across banks ---------------------------------------------------


def test_an_invoice_backs_one_loan_across_banks(chain: LoanChain) -> None:
    applied(chain)
    tr = chain.trade("T-1", AMOUNT)
    chain.ok("loans", "attach_trade", "L1", "T-1")
    inv, wb = tr["invoices"][0], tr["waybills"][0]
    # the other bank lends on the same purchase: the same trade, or another trade citing its
    # invoice or its waybill
    applied(chain, "L2", bank="bank2")
    chain.trade("T-2", AMOUNT, bank="bank2", invoices=[inv])
    chain.trade("T-3", AMOUNT, bank="bank2", waybills=[wb])
    for tid, kind, h in (("T-1", "invoice", inv), ("T-2", "invoice", inv), ("T-3", "waybill", wb)):
        assert chain.refused("loans", "attach_trade", "L2", tid, creator="bank2") == (
            f"attach_trade: {kind} {short(h)} already backs loan:L1"
        )
    assert chain.loan("L2")["trade"] is None
    # so does a second loan of the same bank
    applied(chain, "L3")
    assert chain.refused("loans", "attach_trade", "L3", "T-1") == (
        f"attach_trade: invoice {short(inv)} already backs loan:L1"
    )


def test_an_invoice_backing_a_note_backs_no_loan(chain: LoanChain) -> None:
    # the core enterprise buys from sme on trade T-N, attested by bank2, and issues a note
    tn = chain.trade("T-N", AMOUNT, buyer="core", seller="sme", bank="bank2")
    chain.ok("notes", "issue", "N1", "sme", AMOUNT, due(chain), "T-N", creator="core")
    inv = tn["invoices"][0]
    assert chain.get(use_key(inv))["backs"] == "note:N1"
    # a loan at bank on a trade citing the same invoice
    applied(chain)
    chain.trade("T-L", AMOUNT, invoices=[inv])
    assert chain.refused("loans", "attach_trade", "L1", "T-L") == (
        f"attach_trade: invoice {short(inv)} already backs note:N1"
    )
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: loan L1 has no reconciled trade: attach one with loans.attach_trade"
    )


def core_loan(chain: LoanChain) -> dict[str, Any]:
    """Loan L1 of ``bank`` to the core enterprise, paying its supplier sme for trade T-1 (the
    trade's invoice could back a note of the core enterprise to sme as well); the trade
    attached. Returns the trade."""
    applied(chain, borrower="core", seller="sme")
    tr = chain.trade("T-1", AMOUNT, buyer="core", seller="sme")
    chain.ok("loans", "attach_trade", "L1", "T-1")
    return tr


def test_a_rejected_application_frees_its_invoice_for_a_note(chain: LoanChain) -> None:
    tr = core_loan(chain)
    inv, wb = tr["invoices"][0], tr["waybills"][0]
    assert chain.refused("notes", "issue", "N1", "sme", AMOUNT, due(chain), "T-1",
                         creator="core") == (
        f"notes.issue: invoice {short(inv)} already backs loan:L1"
    )  # fmt: skip
    assert chain.ok("loans", "reject", "L1", "declined")["state"] == "rejected"
    assert (chain.get(use_key(inv)), chain.get(use_key(wb))) == (None, None)
    assert chain.loan("L1")["trade"] == "T-1"  # the record still says what it was for
    chain.ok("notes", "issue", "N1", "sme", AMOUNT, due(chain), "T-1", creator="core")
    assert chain.get(use_key(inv))["backs"] == "note:N1"
    assert chain.get(use_key(wb))["backs"] == "note:N1"


def test_an_approved_loan_keeps_its_invoice_when_rejected(chain: LoanChain) -> None:
    tr = core_loan(chain)
    inv = tr["invoices"][0]
    chain.ok("loans", "approve", "L1", RATE)
    chain.ok("loans", "reject", "L1", "the borrower withdrew")
    assert chain.get(use_key(inv))["backs"] == "loan:L1"
    assert chain.refused("notes", "issue", "N1", "sme", AMOUNT, due(chain), "T-1",
                         creator="core") == (
        f"notes.issue: invoice {short(inv)} already backs loan:L1"
    )  # fmt: skip


# -- approval checks the trade again ------------------------------------------------------------


def test_approve_checks_the_trade_again(chain: LoanChain) -> None:
    applied(chain)
    tr = chain.trade("T-1", AMOUNT)
    chain.ok("loans", "attach_trade", "L1", "T-1")
    inv = tr["invoices"][0]
    # a trade that backs a loan cannot be downgraded
    mismatch = {**tr, "status": "mismatch", "amount": 0, "reasons": ["quantity off by 3 %"]}
    assert chain.refused("trades", "attest", "T-1", mismatch) == (
        f"trades.attest of T-1: its invoice {short(inv)} backs loan:L1; the trade cannot become "
        "'mismatch'"
    )
    # a payment received since lowers what may be financed
    chain.ok("trades", "attest", "T-1", {**tr, "paid": 100_000_000, "amount": 200_000_000})
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: amount 3000000.00 CNY of loan L1 exceeds what trade T-1 allows to be financed: "
        "2000000.00 CNY (reconciled 2000000.00 CNY; invoiced 3000000.00 CNY − paid "
        "1000000.00 CNY = 2000000.00 CNY)"
    )
    # a second invoice added to the trade is claimed at approval
    extra = stand_in("invoice 2 document of T-1")
    chain.ok("trades", "anchor", "invoice", extra, "T-1")
    inv2 = stand_in("invoice 2 identity of T-1")
    more = {**tr, "invoiced": 400_000_000, "paid": 100_000_000, "amount": AMOUNT,
            "invoices": [inv, inv2], "docs": [*tr["docs"], extra]}  # fmt: skip
    chain.ok("trades", "attest", "T-1", more)
    assert chain.get(use_key(inv2)) is None
    chain.ok("loans", "approve", "L1", RATE)
    assert chain.get(use_key(inv2))["backs"] == "loan:L1"


def test_approve_refuses_a_trade_that_is_no_longer_reconciled(chain: LoanChain) -> None:
    """The trades contract never downgrades a trade whose invoice backs a loan (above); should
    the record say otherwise, approval still refuses. The record is written straight into
    the state here."""
    applied(chain)
    chain.trade("T-1", AMOUNT)
    chain.ok("loans", "attach_trade", "L1", "T-1")
    rec = {**chain.get(trade_key("T-1")), "status": "flagged", "reasons": ["related parties"]}
    ctx = Context(chain.state, "bank", b"", chain.t, {}, chain=chain.genesis.chain)
    ctx.put(trade_key("T-1"), rec)
    chain.commit(ctx.writes())
    assert chain.refused("loans", "approve", "L1", RATE) == (
        "approve: trade T-1 is not reconciled: related parties"
    )

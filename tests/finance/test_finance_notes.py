"""The ``notes`` contract through a note's life, every refusal precise and changing nothing.

The harness (test_finance_notes_harness.py) attests trade T1: sup-1 sold to core for
1 000 000.00 CNY, one invoice and one waybill. ``bank`` grants core a 5 000 000.00 CNY line
at 3.6 % a year. The usual note is 600 000.00 CNY due in 90 days (2024-05-30).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_finance_notes_harness import DAY, DAY0, RATE, NoteChain, digest

from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.notes import Notes
from tally.finance.contracts.notes_ops import discount
from tally.finance.interest import day_start
from tally.finance.keys import note_key, use_key
from tally.finance.notes import check_conservation, provenance
from tally.finance.policies import default_policies, finance_contracts
from tally.finance.receipt import iso
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Member
from tally.ledger.policy import describe, satisfied

D = Decimal
DUE = "2024-05-30T02:00:00.000Z"
"""The usual note's due time: 10:00 Beijing time, 90 days after 2024-03-01."""


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[NoteChain]:
    c = NoteChain(tmp_path)
    c.grant()
    c.trade("T1")
    yield c
    c.close()


def at_due(chain: NoteChain) -> None:
    chain.at_day(DAY0 + 90)


# -- the life of a note ---------------------------------------------------------------------------


def test_a_note_from_issue_to_settlement(chain: NoteChain) -> None:
    out = chain.issue("N1")
    assert out == {"id": "N1", "root": "N1", "state": "offered", "amount": 600_000_00,
                   "currency": "CNY", "term_days": 90, "claimed": 2}  # fmt: skip
    n = chain.note("N1")
    assert (n["state"], n["holder"], n["issuer"], n["trade"], n["seq"]) == (
        "offered", "sup-1", "core", "T1", 0,
    )  # fmt: skip
    assert (n["parent"], n["confirmed"], n["financed"], n["endorsers"]) == (None, None, None, [])
    for kind in ("invoice", "waybill"):
        use = chain.get(use_key(digest(f"{kind} T1")))
        assert (use["kind"], use["backs"], use["by"]) == (kind, "note:N1", "core")
    assert chain.root("N1") == {"issued": 600_000_00, "settled": 0, "live": 600_000_00, "notes": 1}

    assert chain.accept("N1") == {"id": "N1", "state": "live", "holder": "sup-1"}
    assert chain.ok("notes", "confirm", "N1") == {
        "id": "N1", "confirmed": "bank", "used": 600_000_00, "limit": 5_000_000_00,
    }  # fmt: skip
    assert chain.line()["used"] == 600_000_00

    # tier 1 keeps 400 000.00 and pays tier 2 with 200 000.00, who pays tier 3
    assert chain.split("N1", [("N1.1", 400_000_00), ("N1.2", 200_000_00)]) == ["N1.1", "N1.2"]
    parent = chain.note("N1")
    assert (parent["state"], parent["children"], parent["seq"]) == ("split", ["N1.1", "N1.2"], 3)
    for cid, amount in (("N1.1", 400_000_00), ("N1.2", 200_000_00)):
        c = chain.note(cid)
        assert (c["state"], c["amount"], c["parent"], c["root"], c["holder"], c["seq"]) == (
            "live", amount, "N1", "N1", "sup-1", 0,
        )  # fmt: skip
        assert (c["confirmed"], c["due"], c["trade"]) == ("bank", parent["due"], "T1")
    assert chain.root("N1")["notes"] == 3
    assert chain.transfer("N1.2", "sup-2") == {
        "id": "N1.2", "holder": "sup-2", "endorsers": ["sup-1"],
    }  # fmt: skip
    chain.transfer("N1.2", "sup-3")
    assert chain.note("N1.2")["endorsers"] == ["sup-1", "sup-2"]

    # tier 1 discounts its part at bank: 400 000.00 × 3.6 % × 90 / 360 = 3 600.00
    assert chain.finance("N1.1") == {
        "id": "N1.1", "bank": "bank", "kind": "discount", "rate": RATE, "days": 90,
        "discount": 3_600_00, "advance": 396_400_00,
    }  # fmt: skip
    f = chain.note("N1.1")["financed"]
    assert (f["bank"], f["kind"], f["rate"], f["advance"]) == ("bank", "discount", RATE, 396_400_00)

    at_due(chain)
    out = chain.ok("notes", "settle", "N1.1", digest("posting 1"), creator="core")
    assert out == {"id": "N1.1", "state": "settled", "was": "financed", "paid_to": "bank",
                   "amount": 400_000_00, "credit_used": 200_000_00,
                   "family_live": 200_000_00}  # fmt: skip
    out = chain.ok("notes", "settle", "N1.2", digest("posting 2"), creator="bank")
    assert (out["paid_to"], out["credit_used"], out["family_live"]) == ("sup-3", 0, 0)
    s = chain.note("N1.2")["settlement"]
    assert s == {"to": "sup-3", "posting": digest("posting 2"), "by": "bank", "t": chain.t - 1}
    assert chain.root("N1") == {"issued": 600_000_00, "settled": 600_000_00, "live": 0,
                                "notes": 3}  # fmt: skip
    assert chain.line()["used"] == 0
    assert check_conservation(chain.state) == []

    p = provenance(chain.state, "N1.2")
    assert p.ids == ["N1", "N1.2"]
    assert p.holders == ["sup-1", "sup-2", "sup-3"]
    assert p.trade is not None and (p.trade["id"], p.trade["seller"]) == ("T1", "sup-1")


def test_a_second_note_on_a_trade_joins_its_family(chain: NoteChain) -> None:
    chain.issue("N1", 600_000_00)
    out = chain.issue("N2", 400_000_00)
    assert (out["root"], out["claimed"]) == ("N1", 0)  # the invoice already backs note:N1
    assert chain.note("N2")["root"] == "N1"
    assert chain.root("N1") == {"issued": 1_000_000_00, "settled": 0, "live": 1_000_000_00,
                                "notes": 2}  # fmt: skip
    assert provenance(chain.state, "N2").ids == ["N2"]
    assert check_conservation(chain.state) == []


def test_an_overdue_note_names_its_recourse_chain(chain: NoteChain) -> None:
    chain.live("N1")
    chain.transfer("N1", "sup-2")
    chain.transfer("N1", "sup-3")
    chain.at_day(DAY0 + 91)
    out = chain.ok("notes", "overdue", "N1", creator="reg")
    assert out == {"id": "N1", "state": "overdue", "owed": 600_000_00, "to": "sup-3",
                   "issuer": "core", "confirmed": None,
                   "recourse": ["sup-2", "sup-1"]}  # fmt: skip
    out = chain.ok("notes", "settle", "N1", digest("late"), creator="core")
    assert (out["was"], out["paid_to"]) == ("overdue", "sup-3")
    assert check_conservation(chain.state) == []


def test_an_overdue_financed_note_has_recourse_to_its_holder_first(chain: NoteChain) -> None:
    chain.live("N1")
    chain.transfer("N1", "sup-2")
    chain.finance("N1")
    chain.at_day(DAY0 + 91)
    out = chain.ok("notes", "overdue", "N1", creator="bank")
    assert (out["to"], out["recourse"]) == ("bank", ["sup-2", "sup-1"])


def test_a_refused_note_gives_back_the_trade(chain: NoteChain) -> None:
    chain.issue("N1")
    consent = chain.consent("sup-1", "notes.refuse", "N1", None)
    assert chain.ok("notes", "refuse", "N1", consent) == {
        "id": "N1", "state": "refused", "amount": 600_000_00, "released": 2,
    }  # fmt: skip
    assert chain.root("N1") == {"issued": 0, "settled": 0, "live": 0, "notes": 1}
    assert chain.get(use_key(digest("invoice T1"))) is None
    # the whole trade can be issued again, as a new family
    assert chain.issue("N2", 1_000_000_00)["root"] == "N2"
    assert check_conservation(chain.state) == []
    consent = chain.consent("sup-1", "notes.accept", "N1", None)
    assert chain.refused("notes", "accept", "N1", consent) == (
        "notes.accept: note N1 was refused by 'sup-1'"
    )


def test_a_refusal_keeps_the_claims_another_note_of_the_trade_relies_on(
    chain: NoteChain,
) -> None:
    chain.issue("N1", 300_000_00)
    chain.issue("N2", 300_000_00)
    out = chain.ok("notes", "refuse", "N1", chain.consent("sup-1", "notes.refuse", "N1", None))
    assert out["released"] == 0
    assert chain.get(use_key(digest("invoice T1")))["backs"] == "note:N1"
    assert chain.root("N1")["issued"] == 300_000_00


# -- issuing -------------------------------------------------------------------------------------


def test_a_term_of_18_months_is_refused(chain: NoteChain) -> None:
    due = chain.due(548)
    assert chain.refused(
        "notes", "issue", "N1", "sup-1", 600_000_00, due, "T1", creator="core"
    ) == (
        "notes.issue: term of 548 days (2024-03-01 to 2025-08-31) exceeds the maximum of 183 "
        "days (payment terms: 6 months in principle, 1 year at most)"
    )


def test_the_term_is_at_most_183_days_by_default(chain: NoteChain) -> None:
    err = chain.refused("notes", "issue", "N1", "sup-1", 100, chain.due(184), "T1", creator="core")
    assert err.startswith("notes.issue: term of 184 days (2024-03-01 to 2024-09-01) exceeds")
    assert chain.issue("N1", 100, days=183)["term_days"] == 183


def test_a_consortium_may_allow_a_year_and_never_more(chain: NoteChain) -> None:
    chain.registry = Registry(
        *system_contracts(),
        *[c for c in finance_contracts() if c.name != "notes"],
        Notes(max_term_days=366),
    )
    assert chain.issue("N1", 100, days=366)["term_days"] == 366
    err = chain.refused("notes", "issue", "N2", "sup-1", 100, chain.due(367), "T1", creator="core")
    assert "term of 367 days" in err and "maximum of 366 days" in err
    with pytest.raises(ValueError, match=r"max_term_days must be 1 to 366 \(one year at most\)"):
        Notes(max_term_days=367)


def test_a_due_time_not_after_the_issue_is_refused(chain: NoteChain) -> None:
    t = chain.t
    err = chain.refused("notes", "issue", "N1", "sup-1", 100, t, "T1", creator="core")
    assert err == f"notes.issue: due {iso(t)} is not after the issue at {iso(t)}"
    assert iso(t).startswith("2024-03-01T02:00:00.")


def test_no_note_beyond_the_invoice_less_payments(chain: NoteChain) -> None:
    chain.trade("T2", invoiced=1_000_000_00, paid=300_000_00)
    err = chain.refused("notes", "issue", "N1", "sup-1", 700_000_01, chain.due(90), "T2",
                        creator="core")  # fmt: skip
    assert err == (
        "notes.issue: amount 700000.01 CNY exceeds what trade T2 leaves to issue: 700000.00 CNY "
        "(invoiced 1000000.00 CNY − paid 300000.00 CNY = 700000.00 CNY, reconciled "
        "700000.00 CNY, already issued 0.00 CNY)"
    )
    chain.issue("N1", 500_000_00, trade="T2")
    err = chain.refused("notes", "issue", "N2", "sup-1", 200_000_01, chain.due(90), "T2",
                        creator="core")  # fmt: skip
    assert err.endswith("leaves to issue: 200000.00 CNY (invoiced 1000000.00 CNY − paid "
                        "300000.00 CNY = 700000.00 CNY, reconciled 700000.00 CNY, already "
                        "issued 500000.00 CNY)")  # fmt: skip
    chain.issue("N2", 200_000_00, trade="T2")


def test_no_note_beyond_the_reconciled_amount(chain: NoteChain) -> None:
    chain.trade("T2", amount=800_000_00)
    err = chain.refused("notes", "issue", "N1", "sup-1", 800_000_01, chain.due(90), "T2",
                        creator="core")  # fmt: skip
    assert "leaves to issue: 800000.00 CNY (invoiced 1000000.00 CNY" in err


@pytest.mark.parametrize(
    ("args", "creator", "error"),
    [
        (("N1", "sup-1", 100, None, "T1"), "bank",
         "notes.issue: 'bank' is not a member with role core_enterprise"),
        (("N/1", "sup-1", 100, None, "T1"), "core",
         "notes.issue: id must not contain '/', got 'N/1'"),
        (("N1", "sup-9", 100, None, "T1"), "core",
         "notes.issue: 'sup-9' is neither a registered party nor a member"),
        (("N1", "sup-1", 0, None, "T1"), "core",
         "notes.issue: amount must be an integer >= 1, got 0"),
        (("N1", "sup-1", D("1.5"), None, "T1"), "core",
         "notes.issue: amount must be an integer >= 1, got 1.5"),
        (("N1", "sup-1", 100, None, "T9"), "core", "notes.issue: trade T9 is not attested"),
        (("N1", "sup-2", 100, None, "T1"), "core",
         "notes.issue: the holder must be trade T1's seller 'sup-1', got 'sup-2'"),
        (("N1", "sup-1", 100, None, "T1"), "core2",
         "notes.issue: trade T1's buyer is 'core', not the issuer 'core2'"),
    ],
)  # fmt: skip
def test_issue_refusals(chain: NoteChain, args: tuple[Any, ...], creator: str, error: str) -> None:
    nid, holder, amount, _, trade = args
    got = chain.refused("notes", "issue", nid, holder, amount, chain.due(90), trade,
                        creator=creator)  # fmt: skip
    assert got == error


def test_a_trade_that_is_not_reconciled_backs_no_note(chain: NoteChain) -> None:
    chain.trade("T2", status="mismatch")
    err = chain.refused("notes", "issue", "N1", "sup-1", 100, chain.due(90), "T2", creator="core")
    assert err == "notes.issue: trade T2 is not reconciled: quantities differ by 3 %"


def test_a_note_id_is_issued_once(chain: NoteChain) -> None:
    chain.issue("N1", 100)
    err = chain.refused("notes", "issue", "N1", "sup-1", 100, chain.due(90), "T1", creator="core")
    assert err == "notes.issue: note N1 already exists"


def test_an_invoice_backing_a_loan_backs_no_note(chain: NoteChain) -> None:
    h = digest("invoice T1")
    chain.commit([(use_key(h), {"kind": "invoice", "backs": "loan:L1", "by": "bank", "t": 1})])
    err = chain.refused("notes", "issue", "N1", "sup-1", 100, chain.due(90), "T1", creator="core")
    assert err == f"notes.issue: invoice {h.hex()[:16]}… already backs loan:L1"


def test_an_invoice_on_two_trades_backs_one_note(chain: NoteChain) -> None:
    """The same invoice (identity) attested on a second trade cannot back a second note."""
    chain.issue("N1", 100)
    r = chain.trade_record("T2")
    r["invoices"] = [digest("invoice T1")]
    for kind, h in zip(("invoice", "waybill"), r["docs"], strict=True):
        chain.ok("trades", "anchor", kind, h, "T2")
    chain.ok("trades", "attest", "T2", r)
    err = chain.refused("notes", "issue", "N2", "sup-1", 100, chain.due(90), "T2", creator="core")
    assert err == f"notes.issue: invoice {digest('invoice T1').hex()[:16]}… already backs note:N1"


# -- consents: wrong party, forged, replayed ----------------------------------------------------


def test_only_the_holder_accepts(chain: NoteChain) -> None:
    chain.issue("N1")
    wrong = chain.consent("sup-2", "notes.accept", "N1", None)
    assert chain.refused("notes", "accept", "N1", wrong) == (
        "notes.accept of N1: consent of 'sup-1': it is signed by 'sup-2'"
    )
    assert chain.refused("notes", "accept", "N1", None) == (
        "notes.accept of N1: consent of 'sup-1' is missing"
    )


def test_a_forged_consent_is_refused(chain: NoteChain) -> None:
    chain.live("N1")
    forged = make_consent(SigningKey.generate(INTL), chain.genesis.chain, "sup-1",
                          "notes.transfer", "N1", 1, {"to": "sup-2"})  # fmt: skip
    assert chain.refused("notes", "transfer", "N1", "sup-2", forged) == (
        "notes.transfer of N1: consent of 'sup-1': the signature does not verify with the key "
        "of 'sup-1'"
    )


def test_a_consent_is_good_for_one_transition(chain: NoteChain) -> None:
    chain.live("N1")
    first = chain.consent("sup-1", "notes.transfer", "N1", {"to": "sup-2"})
    chain.ok("notes", "transfer", "N1", "sup-2", first)
    chain.transfer("N1", "sup-1")  # back to sup-1: it holds N1 again, at seq 3
    assert chain.refused("notes", "transfer", "N1", "sup-2", first) == (
        "notes.transfer of N1: consent of 'sup-1': it is for seq 1, N1 is at seq 3 (a consent "
        "is good for one transition)"
    )


def test_a_consent_binds_its_terms(chain: NoteChain) -> None:
    chain.live("N1")
    to_2 = chain.consent("sup-1", "notes.transfer", "N1", {"to": "sup-2"})
    assert chain.refused("notes", "transfer", "N1", "sup-3", to_2) == (
        "notes.transfer of N1: consent of 'sup-1': it agrees to terms {'to': 'sup-2'}, the "
        "proposal has {'to': 'sup-3'}"
    )
    split = chain.consent("sup-1", "notes.split", "N1", {"children": []})
    assert chain.refused("notes", "transfer", "N1", "sup-2", split) == (
        "notes.transfer of N1: consent of 'sup-1': it is a consent to 'notes.split'"
    )


# -- spend once ---------------------------------------------------------------------------------


def test_a_note_is_spent_once(chain: NoteChain) -> None:
    chain.live("N1")
    stale = chain.transfer_args("N1", "sup-3")
    chain.split("N1", [("N1.1", 100_000_00), ("N1.2", 500_000_00)])
    assert chain.refused("notes", "transfer", *stale) == (
        "notes.transfer: note N1 was split into N1.1, N1.2: it is spent"
    )
    assert chain.refused("notes", "split", *chain.split_args("N1", [("X", 1), ("Y", 1)])) == (
        "notes.split: note N1 was split into N1.1, N1.2: it is spent"
    )
    chain.transfer("N1.2", "sup-2")
    # sup-1 signs away what it no longer holds: only the holder's consent counts
    again = chain.consent("sup-1", "notes.transfer", "N1.2", {"to": "sup-3"})
    assert chain.refused("notes", "transfer", "N1.2", "sup-3", again) == (
        "notes.transfer of N1.2: consent of 'sup-2': it is signed by 'sup-1'"
    )
    assert check_conservation(chain.state) == []


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ([("A", 600_000_00)], "notes.split: children must be a list of 2 to 100 parts, got list "
         "[{'id': 'A', 'amount': 60000000}]"),
        ([("A", 300_000_00), ("B", 299_999_99)],
         "notes.split: the children sum to 599999.99 CNY, note N1 holds 600000.00 CNY"),
        ([("A", 300_000_00), ("B", 300_000_01)],
         "notes.split: the children sum to 600000.01 CNY, note N1 holds 600000.00 CNY"),
        ([("A", 300_000_00), ("A", 300_000_00)], "notes.split: child id A appears twice"),
        ([("A", 600_000_00), ("B", 0)],
         "notes.split: child 1 amount must be an integer >= 1, got 0"),
        ([("N1", 300_000_00), ("B", 300_000_00)], "notes.split: note N1 already exists"),
    ],
)  # fmt: skip
def test_split_refusals(chain: NoteChain, parts: list[tuple[str, int]], error: str) -> None:
    chain.live("N1")
    assert chain.refused("notes", "split", *chain.split_args("N1", parts)) == error


def test_transfer_refusals(chain: NoteChain) -> None:
    chain.live("N1")
    args = chain.transfer_args("N1", "sup-9")
    assert chain.refused("notes", "transfer", *args) == (
        "notes.transfer: 'sup-9' is neither a registered party nor a member"
    )
    assert chain.refused("notes", "transfer", *chain.transfer_args("N1", "sup-1")) == (
        "notes.transfer: 'sup-1' already holds note N1"
    )
    assert chain.refused("notes", "transfer", "N9", "sup-2", None) == (
        "notes.transfer: note N9 does not exist"
    )


def test_an_offered_note_cannot_move(chain: NoteChain) -> None:
    chain.issue("N1")
    assert chain.refused("notes", "transfer", *chain.transfer_args("N1", "sup-2")) == (
        "notes.transfer: note N1 is offered to 'sup-1' and not accepted yet"
    )


# -- credit lines and confirmation --------------------------------------------------------------


def test_the_credit_line_is_never_exceeded(chain: NoteChain) -> None:
    chain.grant(limit=1_000_000_00)
    chain.live("N1", 600_000_00)
    chain.ok("notes", "confirm", "N1")
    chain.issue("N2", 400_000_00)
    chain.accept("N2")
    chain.trade("T2")
    chain.live("N3", 100, trade="T2")
    chain.ok("notes", "confirm", "N2")  # exactly the limit
    assert chain.refused("notes", "confirm", "N3") == (
        "notes.confirm: 1.00 CNY exceeds the credit line of 'bank' for 'core': limit "
        "1000000.00 CNY, used 1000000.00 CNY, available 0.00 CNY"
    )
    assert chain.line()["used"] == 1_000_000_00


def test_confirm_refusals(chain: NoteChain) -> None:
    chain.live("N1")
    assert chain.refused("notes", "confirm", "N1", creator="core") == (
        "notes.confirm: 'core' is not a member with role bank"
    )
    assert chain.refused("notes", "confirm", "N1", creator="bank2") == (
        "notes.confirm: 'bank2' has granted 'core' no credit line"
    )
    chain.ok("notes", "confirm", "N1")
    assert chain.refused("notes", "confirm", "N1") == (
        "notes.confirm: note N1 is already confirmed by 'bank'"
    )


def test_an_expired_line_confirms_nothing(chain: NoteChain) -> None:
    until = chain.t + 10
    chain.grant(bank="bank2", expires=until)
    chain.live("N1")
    chain.t = max(chain.t, until)
    assert chain.refused("notes", "confirm", "N1", creator="bank2") == (
        f"notes.confirm: the credit line of 'bank2' for 'core' expired at {iso(until)}"
    )


def test_a_split_confirmed_note_gives_back_the_line_part_by_part(chain: NoteChain) -> None:
    chain.live("N1")
    chain.ok("notes", "confirm", "N1")
    chain.split("N1", [("A", 100_000_00), ("B", 500_000_00)])
    at_due(chain)
    chain.ok("notes", "settle", "A", digest("pa"), creator="core")
    assert chain.line()["used"] == 500_000_00
    chain.ok("notes", "settle", "B", digest("pb"), creator="bank")  # the confirming bank
    assert chain.line()["used"] == 0


# -- financing ------------------------------------------------------------------------------------


def test_a_note_is_financed_once(chain: NoteChain) -> None:
    chain.live("N1")
    args = chain.finance_args("N1")
    chain.finance("N1")
    assert chain.refused("notes", "finance", *args) == (
        "notes.finance: note N1 is financed by 'bank' (discount): it is locked to the bank"
    )
    chain.grant(bank="bank2")
    assert chain.refused("notes", "finance", *chain.finance_args("N1", "bank2"),
                         creator="bank2") == (
        "notes.finance: note N1 is financed by 'bank' (discount): it is locked to the bank"
    )  # fmt: skip


def test_a_financed_note_cannot_be_transferred_or_split(chain: NoteChain) -> None:
    chain.live("N1")
    transfer, split = (
        chain.transfer_args("N1", "sup-2"),
        chain.split_args("N1", [("A", 1), ("B", 600_000_00 - 1)]),
    )
    chain.finance("N1", kind="pledge")
    locked = "note N1 is financed by 'bank' (pledge): it is locked to the bank"
    assert chain.refused("notes", "transfer", *transfer) == f"notes.transfer: {locked}"
    assert chain.refused("notes", "split", *split) == f"notes.split: {locked}"


def test_finance_refusals(chain: NoteChain) -> None:
    chain.live("N1")
    args = chain.finance_args("N1")
    assert chain.refused("notes", "finance", *args, creator="core") == (
        "notes.finance: 'core' is not a member with role bank"
    )
    assert chain.refused("notes", "finance", "N1", "bank2", "discount", args[3]) == (
        "notes.finance: the financing bank 'bank2' must be the creator"
    )
    assert chain.refused("notes", "finance", "N1", "bank", "factoring", args[3]) == (
        "notes.finance: kind must be one of discount, pledge, got str 'factoring'"
    )
    assert chain.refused("notes", "finance", *chain.finance_args("N1", "bank2"),
                         creator="bank2") == (
        "notes.finance: 'bank2' has granted 'core' no credit line"
    )  # fmt: skip
    # the holder agreed to 3.6 %; the bank has raised its rate since
    chain.grant(rate=D("0.05"))
    assert chain.refused("notes", "finance", *args) == (
        "notes.finance of N1: consent of 'sup-1': it agrees to terms {'bank': 'bank', 'kind': "
        "'discount', 'rate': Decimal('0.036')}, the proposal has {'bank': 'bank', 'kind': "
        "'discount', 'rate': Decimal('0.05')}"
    )


def test_no_discount_on_the_due_day_and_no_financing_once_due(chain: NoteChain) -> None:
    chain.live("N1")
    chain.live("N2", 100_000_00)
    chain.at_day(DAY0 + 90, hour=9)  # the due day, an hour before the due time
    out = chain.finance("N1")
    assert (out["days"], out["discount"], out["advance"]) == (0, 0, 600_000_00)
    chain.at_day(DAY0 + 90, hour=10)
    t = chain.t
    assert chain.refused("notes", "finance", *chain.finance_args("N2")) == (
        f"notes.finance: note N2 fell due at {DUE}; it is {iso(t)}: too late to finance"
    )


def test_the_advance_is_exact_and_rounded_half_up() -> None:
    # 1.00 CNY at 3.6 % for 5 days: 100 × 0.036 × 5 / 360 = 0.05 fen -> 0
    assert discount(100, D("0.036"), 5) == (0, 100)
    # 12 345.67 CNY at 4.35 % for 90 days = 13 425.916125 fen -> 13 426
    assert discount(1_234_567, D("0.0435"), 90) == (13_426, 1_234_567 - 13_426)
    # exactly half a fen rounds up: 100.00 CNY at 1.8 % for one day = 0.5 fen
    assert discount(10_000, D("0.018"), 1) == (1, 9_999)
    assert discount(10_000, D("0.017999"), 1) == (0, 10_000)


# -- settlement and overdue -----------------------------------------------------------------------


def test_no_settlement_before_due(chain: NoteChain) -> None:
    chain.live("N1")
    t = chain.t
    assert chain.refused("notes", "settle", "N1", digest("p"), creator="core") == (
        f"notes.settle: note N1 is due at {DUE}; it is {iso(t)}"
    )


def test_settle_refusals(chain: NoteChain) -> None:
    chain.live("N1")
    at_due(chain)
    assert chain.refused("notes", "settle", "N1", digest("p"), creator="core2") == (
        "notes.settle: 'core2' may not settle note N1: only its issuer, its confirming bank or "
        "its financing bank ('core')"
    )
    assert chain.refused("notes", "settle", "N1", b"short", creator="core") == (
        "notes.settle: posting_hash must be 32 bytes (the book posting's anchored hash), got "
        "5 bytes"
    )
    chain.ok("notes", "settle", "N1", digest("p"), creator="core")
    assert chain.refused("notes", "settle", "N1", digest("p2"), creator="core") == (
        "notes.settle: note N1 is settled (paid to 'sup-1')"
    )


def test_overdue_only_after_the_due_day(chain: NoteChain) -> None:
    chain.live("N1")
    chain.at_day(DAY0 + 90, hour=23)
    assert chain.refused("notes", "overdue", "N1", creator="reg") == (
        "notes.overdue: note N1 is due on 2024-05-30; it is 2024-05-30: not overdue before the "
        "day after"
    )
    chain.at_day(DAY0 + 91, hour=0)
    chain.ok("notes", "overdue", "N1", creator="reg")
    assert chain.refused("notes", "overdue", "N1", creator="reg") == (
        "notes.overdue: note N1 is overdue: it was due on 2024-05-30"
    )


# -- policies ------------------------------------------------------------------------------------


def test_the_genesis_policies_of_notes_and_credit() -> None:
    demo = {"bank": ["bank"], "bank-b": ["bank"], "warehouse": ["warehouse"],
            "logistics": ["logistics"], "regulator": ["regulator"],
            "core": ["core_enterprise"]}  # fmt: skip
    p = default_policies(demo)
    assert describe(p["credit.*"]) == "role:bank"
    assert describe(p["notes.*"]) == (
        "AND(role:bank, OR(role:core_enterprise, role:warehouse, role:regulator))"
    )
    orgs = {o: Member(o, tuple(r), b"") for o, r in demo.items()}
    assert satisfied(p["notes.*"], {"bank", "core"}, orgs)
    assert satisfied(p["notes.*"], {"bank-b", "warehouse"}, orgs)
    assert satisfied(p["notes.*"], {"bank", "regulator"}, orgs)
    assert not satisfied(p["notes.*"], {"bank", "bank-b"}, orgs)
    assert not satisfied(p["notes.*"], {"core", "warehouse", "logistics"}, orgs)
    assert not satisfied(p["credit.*"], {"core", "warehouse"}, orgs)
    without_core = {o: r for o, r in demo.items() if o != "core"}
    assert satisfied(default_policies(without_core)["notes.*"], {"bank", "warehouse"}, orgs)
    names = [c.name for c in finance_contracts()]
    assert names[-2:] == ["credit", "notes"]
    with pytest.raises(ValueError, match="need a bank among the members"):
        default_policies({"core": ["core_enterprise"], "wh": ["warehouse"]})


def test_every_note_key_is_a_note(chain: NoteChain) -> None:
    chain.live("N1")
    chain.split("N1", [("A", 1), ("B", 600_000_00 - 1)])
    keys = [k for k, _ in chain.snapshot() if k.startswith("note")]
    assert keys == [note_key("A"), note_key("B"), note_key("N1"), "noteroot/N1"]
    assert day_start(DAY0) + DAY > chain.t - 1  # everything happened on the first day

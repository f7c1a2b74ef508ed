"""``resource_of``: the one mapping from a read-model row to its authz resource, for every kind
(owner, parties, bank, site, sensitivity), its refusals, and the decisions it leads to."""

from __future__ import annotations

import pytest
from views_factory import (
    ALERTS,
    APPLICATIONS,
    BLOCKS,
    DOCUMENTS,
    LOANS,
    NOTES,
    ORGS,
    RECEIPTS,
    TRADES,
)

from tally.cloud.authz import ResourceRef, decide
from tally.cloud.identity import Principal
from tally.cloud.views import resource_of
from tally.cloud.views.access import CONSORTIUM

F = frozenset


def test_each_kind_maps_to_its_resource() -> None:
    r1, r2 = RECEIPTS[0], RECEIPTS[1]  # r2 has no bank
    assert resource_of("receipt", r1) == ResourceRef("receipt", "s1", F({"wh1"}), "bank1", "wh1-a")
    assert resource_of("receipt", r2) == ResourceRef("receipt", "s1", F({"wh1"}), None, "wh1-a")
    assert resource_of("loan", LOANS[0]) == ResourceRef("loan", "s1", F(), "bank1")
    assert resource_of("application", APPLICATIONS[1]) == ResourceRef("loan", "s4", F(), "bank2")
    assert resource_of("note", NOTES[2]) == ResourceRef("note", "s2", F({"core1"}), "bank1")
    assert resource_of("trade", TRADES[0]) == ResourceRef("trade", "s1", F({"core1"}), "bank1")
    assert resource_of("document", DOCUMENTS[0]) == ResourceRef("document", "s1", F({"core1"}))
    assert resource_of("document", DOCUMENTS[0], bank="bank1").bank == "bank1"
    assert resource_of("document", DOCUMENTS[2]) == ResourceRef("document", "wh1", F())
    assert resource_of("alert", ALERTS[0]) == ResourceRef("alert", "s2", F(), "bank1", "wh1-b")
    assert resource_of("alert", ALERTS[4]) == ResourceRef("alert", "s1", F(), "bank1", None)
    s1 = next(o for o in ORGS if o.id == "s1")
    assert resource_of("org", s1) == ResourceRef("party", "s1", F(), "bank1")
    assert resource_of("party", s1, sensitive=True) == ResourceRef(
        "party", "s1", F(), "bank1", sensitive=True
    )
    block, txs = BLOCKS[0]
    assert resource_of("block", block) == ResourceRef("chain", CONSORTIUM)
    assert resource_of("tx", txs[0]) == ResourceRef("chain", "bank1")


def test_extra_parties_join_but_never_the_owner() -> None:
    ref = resource_of("note", NOTES[2], parties=["s1", "s2", "", "bank1"])
    assert ref.owner == "s2" and ref.parties == {"core1", "s1", "bank1"}
    assert ref.bank == "bank1"


def test_unknown_kinds_and_wrong_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of receipt, loan"):
        resource_of("receipts", RECEIPTS[0])
    with pytest.raises(ValueError, match="a loan resource needs a LoanRow, got ReceiptRow"):
        resource_of("loan", RECEIPTS[0])


def who(tenant: str, kind: str, sites: frozenset[str] = F()) -> Principal:
    return Principal(tenant, kind, "u", F({"viewer"}), F(), "session", sites)


def test_decisions_follow_the_mapping() -> None:
    r1 = resource_of("receipt", RECEIPTS[0])
    assert decide(who("s1", "supplier"), "read", r1).allowed
    assert decide(who("bank1", "bank"), "read", r1).allowed
    assert decide(who("wh1", "warehouse"), "read", r1).allowed
    assert not decide(who("s2", "supplier"), "read", r1).allowed
    assert not decide(who("bank2", "bank"), "read", r1).allowed
    s1 = next(o for o in ORGS if o.id == "s1")
    sealed = resource_of("org", s1, sensitive=True)
    assert not decide(who("s1", "supplier"), "read", sealed).allowed  # a viewer, sensitive

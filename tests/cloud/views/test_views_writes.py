"""Writes of the read model on SQLite and PostgreSQL: upserts replace rows and move their
visibility with them (a receipt's new holder sees it, the old one no longer does; a note's
earlier holders keep seeing it), documents follow their trade's bank, alerts are added once
and acknowledged once, applications are decided once, blocks replace their transactions,
meta values, bulk loads are all or nothing, and malformed rows are refused precisely."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from views_factory import ALERTS, APPLICATIONS, DOCUMENTS, NOTES, RECEIPTS, TRADES, block, load

from tally.cloud.errors import BadRequest, Conflict, NotFound
from tally.cloud.views import (
    AlertRow,
    ApplicationRow,
    LimitRow,
    OrgRow,
    ReceiptRow,
    Scope,
    TradeRow,
    Views,
)
from tally.cloud.views import tables as T

EVERYTHING = Scope("reg", everything=True)


def nos(page: Any) -> list[str]:
    return [getattr(r, "no", None) or r.id for r in page.items]


def test_a_receipts_visibility_follows_its_holder_and_bank(views: Views) -> None:
    r1 = RECEIPTS[0]
    views.upsert_receipt(r1)
    assert nos(views.list_receipts(Scope("s1"))) == ["r1"]
    assert nos(views.list_receipts(Scope("bank1"))) == ["r1"]
    moved = dataclasses.replace(r1, holder="s7", bank=None, status="live", height=99)
    views.upsert_receipt(moved)
    assert views.receipt("r1") == moved
    assert nos(views.list_receipts(Scope("s1"))) == []
    assert nos(views.list_receipts(Scope("bank1"))) == []
    assert nos(views.list_receipts(Scope("s7"))) == ["r1"]
    assert nos(views.list_receipts(Scope("wh1"))) == ["r1"]  # still its custodian
    assert views.parties_of("receipt", "r1") == {"s7", "wh1"}
    assert len(views.list_receipts(EVERYTHING).items) == 1


def test_a_notes_earlier_holders_keep_seeing_it(views: Views) -> None:
    n2 = NOTES[1]
    views.upsert_note(n2)
    views.upsert_note(dataclasses.replace(n2, holder="s2", height=20))
    views.upsert_note(dataclasses.replace(n2, holder="s3", bank="bank2", height=21))
    for who in ("s1", "s2", "s3", "core1", "bank2"):
        assert [n.id for n in views.list_notes(Scope(who)).items] == ["N2"], who
    ref = views.resource("note", views.note("N2"))
    assert ref.owner == "s3" and ref.bank == "bank2"
    assert ref.parties == {"core1", "s1", "s2"}


def test_documents_take_their_trades_bank_in_either_order(views: Views) -> None:
    aa01, t1 = DOCUMENTS[0], TRADES[0]
    views.upsert_document(aa01)  # before its trade: no bank yet
    assert [d.hash for d in views.list_documents(Scope("bank1")).items] == []
    assert views.resource("document", aa01).bank is None
    views.upsert_trade(t1)
    assert [d.hash for d in views.list_documents(Scope("bank1")).items] == ["aa01"]
    assert views.resource("document", aa01).bank == "bank1"
    views.upsert_trade(dataclasses.replace(t1, bank="bank2", height=9))
    assert [d.hash for d in views.list_documents(Scope("bank1")).items] == []
    assert [d.hash for d in views.list_documents(Scope("bank2")).items] == ["aa01"]
    views.upsert_document(dataclasses.replace(DOCUMENTS[1], trade="T1"))  # after its trade
    assert {d.hash for d in views.list_documents(Scope("bank2")).items} == {"aa01", "aa02"}


def test_a_trades_sort_key_is_the_height_it_was_first_seen(views: Views) -> None:
    t1, t2 = TRADES[0], TRADES[1]  # heights 5 and 6
    views.upsert_trade(t1)
    views.upsert_trade(t2)
    views.upsert_trade(dataclasses.replace(t1, status="flagged", height=50))
    assert [t.id for t in views.list_trades(EVERYTHING).items] == ["T2", "T1"]
    assert [t.id for t in views.list_trades(Scope("core1")).items] == ["T2", "T1"]
    stored = views.trade("T1")
    assert stored is not None and stored.status == "flagged" and stored.height == 50


def test_alerts_are_added_once_and_acknowledged_once(views: Views) -> None:
    a1 = ALERTS[0]
    assert views.add_alert(a1) is True
    assert views.add_alert(dataclasses.replace(a1, message="other")) is False
    assert views.alert("A1") == a1
    acked = views.ack_alert("A1", "bank1/olga", 7000)
    assert (acked.acked_by, acked.acked_ms) == ("bank1/olga", 7000)
    again = views.ack_alert("A1", "bank1/pete", 8000)
    assert (again.acked_by, again.acked_ms) == ("bank1/olga", 7000)
    assert views.list_alerts(EVERYTHING, open_only=True).items == ()
    with pytest.raises(NotFound, match="alert 'nope' does not exist"):
        views.ack_alert("nope", "x", 1)
    with pytest.raises(BadRequest, match="acknowledging user must be named"):
        views.ack_alert("A1", "", 1)


def test_applications_are_decided_once(views: Views) -> None:
    p1 = APPLICATIONS[0]
    views.add_application(p1)
    with pytest.raises(Conflict, match="application 'P1' already exists"):
        views.add_application(p1)
    done = views.decide_application("P1", "approved", "bank1/carl", 900, None)
    assert done == dataclasses.replace(p1, status="approved", decided_by="bank1/carl",
                                       decided_ms=900)  # fmt: skip
    assert views.application("P1") == done
    with pytest.raises(Conflict, match="application 'P1' is already approved"):
        views.decide_application("P1", "refused", "bank1/carl", 901, "late")
    with pytest.raises(NotFound, match="application 'P9' does not exist"):
        views.decide_application("P9", "refused", "bank1/carl", 901, None)
    with pytest.raises(BadRequest, match="decision must be one of approved, refused, withdrawn"):
        views.decide_application("P1", "submitted", "bank1/carl", 901, None)
    assert [a.id for a in views.list_applications(Scope("bank1")).items] == ["P1"]
    assert [a.id for a in views.list_applications(Scope("s1")).items] == ["P1"]
    assert views.list_applications(Scope("bank2")).items == ()


def test_blocks_replace_their_transactions(views: Views) -> None:
    b, txs = block(7, txs=3)
    views.upsert_block(b, txs)
    assert [t.index for t in views.block_txs(7)] == [0, 1, 2]
    b2, txs2 = block(7, txs=1)
    views.upsert_block(b2, txs2)
    assert views.block(7) == b2 and views.block_txs(7) == txs2
    with pytest.raises(BadRequest, match="is at height 7, not 8"):
        views.upsert_block(block(8)[0], txs2)
    assert views.chain_height() == 7


def test_meta_values(views: Views) -> None:
    views.meta_put("projector.height", "12")
    views.meta_put("projector.height", "13")
    assert views.meta_get("projector.height") == "13"
    assert views.meta_get("other") is None
    with pytest.raises(BadRequest, match=r"meta key must be 1\.\.200 characters"):
        views.meta_put("", "x")
    with pytest.raises(BadRequest, match="meta value of 'k' must be a string"):
        views.meta_put("k", 5)  # type: ignore[arg-type]


def test_bulk_load_is_all_or_nothing(views: Views) -> None:
    assert views.bulk_load("receipt", RECEIPTS[:2]) == 2
    with pytest.raises(Conflict, match="bulk_load receipt: nothing loaded"):
        views.bulk_load("receipt", RECEIPTS[2:4] + RECEIPTS[:1])
    assert nos(views.list_receipts(EVERYTHING)) == ["r2", "r1"]
    with pytest.raises(Conflict, match="appears twice"):
        views.bulk_load("receipt", [RECEIPTS[3], RECEIPTS[3]])
    with views.engine.connect() as conn:
        links = conn.execute(sa.select(sa.func.count()).select_from(T.parties)).scalar_one()
    assert links == 5  # r1: s1, wh1, bank1; r2: s1, wh1
    with pytest.raises(BadRequest, match="kind must be one of"):
        views.bulk_load("receipts", RECEIPTS)
    with pytest.raises(BadRequest, match="row 0 must be an OrgRow"):
        views.bulk_load("org", [RECEIPTS[0]])
    with pytest.raises(BadRequest, match="row 0 must be \\(BlockRow"):
        views.bulk_load("block", [RECEIPTS[0]])
    assert views.bulk_load("limit", []) == 0


def test_bulk_load_matches_the_upserts(views: Views) -> None:
    load(views, bulk=True)
    assert views.receipt("r4") == RECEIPTS[3]
    assert views.resource("document", DOCUMENTS[0]).bank == "bank1"
    assert views.chain_height() == 5 and len(views.block_txs(5)) == 2
    assert views.supplier("s1")["limits"][0]["bank"] == "bank1"


BAD: list[tuple[Any, str]] = [
    (dataclasses.replace(RECEIPTS[0], value_fen=-1), "value_fen must not be negative"),
    (dataclasses.replace(RECEIPTS[0], holder=""), "holder must not be empty"),
    (dataclasses.replace(RECEIPTS[0], holder=None), "holder must not be null"),  # type: ignore[arg-type]
    (dataclasses.replace(RECEIPTS[0], issued_ms="1"), "issued_ms must be int"),  # type: ignore[arg-type]
    (dataclasses.replace(RECEIPTS[0], issued_ms=True), "issued_ms must be int"),
    (dataclasses.replace(RECEIPTS[0], commodity="c" * 201), "more than 200"),
]


@pytest.mark.parametrize(("row", "message"), BAD)
def test_malformed_rows_are_refused_and_nothing_is_written(
    views: Views, row: ReceiptRow, message: str
) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        views.upsert_receipt(row)
    assert "ReceiptRow 'r1'" in info.value.detail
    with pytest.raises(BadRequest, match=message):
        views.bulk_load("receipt", [RECEIPTS[1], row])
    assert views.list_receipts(EVERYTHING).items == ()


def test_enumerations_and_types_are_checked(views: Views) -> None:
    with pytest.raises(BadRequest, match="severity must be one of info, warning, critical"):
        views.add_alert(dataclasses.replace(ALERTS[0], severity="urgent"))
    with pytest.raises(BadRequest, match="status must be one of submitted"):
        views.add_application(dataclasses.replace(APPLICATIONS[0], status="pending"))
    with pytest.raises(BadRequest, match="subject_kind must be one of receipt, note"):
        views.add_application(dataclasses.replace(APPLICATIONS[0], subject_kind="loan"))
    with pytest.raises(BadRequest, match="reasons must be a tuple of strings"):
        views.upsert_trade(dataclasses.replace(TRADES[0], reasons=(1,)))  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="kind must be one of credit, limit"):
        views.upsert_limit(LimitRow("b", "p", "cap", 1, 0, "CNY", None, None, 1, 1))
    with pytest.raises(BadRequest, match="expected a ReceiptRow, got TradeRow"):
        views.upsert_receipt(TRADES[0])  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="simulated must be bool"):
        views.upsert_org(OrgRow("o", "O", "bank", None, None, None, None, None, 1))  # type: ignore[arg-type]
    assert isinstance(TRADES[0], TradeRow) and isinstance(ALERTS[0], AlertRow)
    assert isinstance(APPLICATIONS[0], ApplicationRow)

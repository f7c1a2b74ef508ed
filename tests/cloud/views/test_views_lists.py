"""Lists of the read model on SQLite and PostgreSQL: every filter on a hand-checked dataset,
visibility in SQL (a tenant sees exactly the rows whose owner, bank or party it is — the same
rows :func:`resource_of` lets it read — a regulator's ``everything`` sees all, a warehouse
sees its sites), newest-first order, and the same answers after a bulk load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from views_factory import (
    ALERTS,
    APPLICATIONS,
    DOCUMENTS,
    KIND_ROWS,
    LOANS,
    NOTES,
    RECEIPTS,
    TENANTS,
    TRADES,
    load,
    trade_bank,
)

from tally.cloud.views import Page, Scope, Views, resource_of
from tally.cloud.views.codec import KINDS

EVERYTHING = Scope("reg", everything=True)


def ids(kind: str, rows: Any) -> list[str]:
    return [getattr(r, KINDS[kind].id_col) for r in rows]


def every(
    list_fn: Callable[..., Page[Any]], scope: Scope, /, limit: int = 2, **kw: Any
) -> list[Any]:
    """All the rows of a list, read page by page (small pages, to cross page boundaries)."""
    out: list[Any] = []
    cursor = None
    for _ in range(100):
        page = list_fn(scope, limit=limit, cursor=cursor, **kw)
        assert len(page.items) <= limit
        out += page.items
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


LISTS: dict[str, str] = {
    "org": "list_orgs",
    "receipt": "list_receipts",
    "loan": "list_loans",
    "note": "list_notes",
    "trade": "list_trades",
    "document": "list_documents",
    "alert": "list_alerts",
    "application": "list_applications",
}


def may_read(kind: str, row: Any, scope: Scope) -> bool:
    """What authz would let ``scope``'s tenant read: owner, party or bank (or its site)."""
    if scope.everything:
        return True
    rkind = "party" if kind == "org" else kind
    bank = trade_bank(row.trade) if kind == "document" else None
    ref = resource_of(rkind, row, bank=bank)
    who = {ref.owner, ref.bank, *ref.parties}
    return scope.tenant in who or (ref.site is not None and ref.site in scope.sites)


def expected(kind: str, scope: Scope) -> list[str]:
    spec = KINDS[kind]
    rows = [r for r in KIND_ROWS[kind] if may_read(kind, r, scope)]
    if spec.k_col is None:
        return sorted(ids(kind, rows))
    key = (lambda r: (r.height, r.id)) if kind == "trade" else None
    if key is None:
        key = lambda r: (getattr(r, spec.k_col), getattr(r, spec.id_col))  # noqa: E731
    return ids(kind, sorted(rows, key=key, reverse=True))


@pytest.mark.parametrize("bulk", [False, True], ids=["upserts", "bulk"])
def test_each_tenant_sees_exactly_what_authz_allows_newest_first(views: Views, bulk: bool) -> None:
    load(views, bulk=bulk)
    scopes = [Scope(t) for t in TENANTS] + [EVERYTHING, Scope("nobody")]
    scopes += [Scope("wh9", sites=frozenset({"wh2-a"})), Scope("wh1", sites=frozenset({"wh1-b"}))]
    for kind, name in LISTS.items():
        for scope in scopes:
            got = ids(kind, every(getattr(views, name), scope))
            assert got == expected(kind, scope), (kind, scope)
    # spot checks by hand, so the model above is not the only witness
    assert ids("receipt", every(views.list_receipts, Scope("s1"))) == ["r2", "r1"]
    assert ids("receipt", every(views.list_receipts, Scope("bank1"))) == ["r3", "r1"]
    assert ids("receipt", every(views.list_receipts, Scope("wh1"))) == ["r6", "r3", "r2", "r1"]
    assert ids("receipt", every(views.list_receipts, Scope("wh9", sites=frozenset({"wh2-a"})))) == [
        "r5",
        "r4",
    ]
    assert ids("document", every(views.list_documents, Scope("bank1"))) == ["aa01"]
    assert ids("note", every(views.list_notes, Scope("bank1"))) == ["N3"]
    assert ids("note", every(views.list_notes, Scope("core1"))) == ["N4", "N3", "N2", "N1"]
    assert ids("alert", every(views.list_alerts, Scope("wh2"))) == ["A4"]
    assert ids("alert", every(views.list_alerts, Scope("x", sites=frozenset({"wh2-a"})))) == [
        "A4",
        "A3",
    ]
    assert ids("org", every(views.list_orgs, Scope("bank1"))) == ["bank1", "s1", "s2"]
    assert every(views.list_receipts, Scope("nobody")) == []
    assert len(every(views.list_receipts, EVERYTHING)) == len(RECEIPTS)


def test_filters_are_exact_matches(views: Views) -> None:
    load(views)
    ev = EVERYTHING

    def got(name: str, what: str, scope: Scope = ev, /, **kw: Any) -> list[str]:
        return ids(what, every(getattr(views, name), scope, **kw))

    assert got("list_receipts", "receipt", status="pledged") == ["r4", "r1"]
    assert got("list_receipts", "receipt", holder="s2") == ["r6", "r3"]
    assert got("list_receipts", "receipt", bank="bank1") == ["r3", "r1"]
    assert got("list_receipts", "receipt", site="wh2-a") == ["r5", "r4"]
    assert got("list_receipts", "receipt", commodity="copper") == ["r4", "r2", "r1"]
    assert got("list_receipts", "receipt", commodity="copper", status="live") == ["r2"]
    assert got("list_receipts", "receipt", Scope("s1"), commodity="copper", status="live") == ["r2"]
    assert got("list_receipts", "receipt", Scope("s2"), commodity="copper") == []
    assert got("list_receipts", "receipt", status="Pledged") == []  # exact, case included
    assert got("list_loans", "loan", status="active") == ["L6", "L3", "L1"]
    assert got("list_loans", "loan", borrower="s1") == ["L7", "L4", "L1"]
    assert got("list_loans", "loan", bank="bank2") == ["L5", "L3"]
    assert got("list_loans", "loan", Scope("bank1"), status="active") == ["L6", "L1"]
    assert got("list_notes", "note", status="financed") == ["N3"]
    assert got("list_notes", "note", issuer="core2") == ["N5"]
    assert got("list_notes", "note", holder="s1") == ["N2", "N1"]
    assert got("list_notes", "note", root="N1") == ["N3", "N2", "N1"]
    assert got("list_trades", "trade", status="reconciled") == ["T3", "T1"]
    assert got("list_trades", "trade", seller="s3") == ["T2"]
    assert got("list_trades", "trade", buyer="core1") == ["T2", "T1"]
    assert got("list_documents", "document", kind="invoice") == ["aa01"]
    assert got("list_documents", "document", trade="T2") == ["aa02"]
    assert got("list_alerts", "alert", severity="critical") == ["A4", "A2"]
    assert got("list_alerts", "alert", kind="custody") == ["A3"]
    assert got("list_alerts", "alert", open_only=True) == ["A5", "A4", "A2", "A1"]
    assert got("list_alerts", "alert", since_ms=3000) == ["A5", "A4", "A3"]
    assert got("list_alerts", "alert", Scope("bank1"), open_only=True, since_ms=1500) == [
        "A5",
        "A2",
    ]
    assert got("list_applications", "application", status="submitted") == ["P3", "P1"]
    assert got("list_applications", "application", applicant="s4") == ["P2"]
    assert got("list_applications", "application", bank="bank1") == ["P3", "P1"]
    assert got("list_orgs", "org", kind="supplier") == ["s1", "s2", "s3", "s4"]
    assert got("list_orgs", "org", core="core1") == ["s1", "s2", "s3"]
    assert got("list_orgs", "org", Scope("bank2"), core="core1") == ["s3"]


def test_single_reads_return_the_stored_rows(views: Views) -> None:
    load(views)
    assert views.receipt("r3") == RECEIPTS[2]
    assert views.loan("L2") == LOANS[1]
    assert views.note("N3") == NOTES[2]
    assert views.trade("T2") == TRADES[1]
    assert views.document("aa02") == DOCUMENTS[1]
    assert views.alert("A3") == ALERTS[2]
    assert views.application("P2") == APPLICATIONS[1]
    got = views.org("s3")
    assert got is not None and got.tier == 1 and got.simulated is True and got.core == "core1"
    for fn in (views.receipt, views.loan, views.note, views.trade, views.document, views.alert,
               views.application, views.org):  # fmt: skip
        assert fn("missing") is None
    assert views.chain_height() == 5
    blk = views.block(3)
    assert blk is not None and blk.signers == ("bank1", "bank2") and blk.tx_count == 2
    txs = views.block_txs(3)
    assert [t.index for t in txs] == [0, 1] and all(t.height == 3 for t in txs)
    assert views.tx(txs[1].id.upper()) == txs[1]
    assert views.block(99) is None and views.block_txs(99) == [] and views.tx("00") is None
    page = views.list_blocks(limit=2)
    assert [b.height for b in page.items] == [5, 4]
    assert page.next_cursor is not None
    page = views.list_blocks(limit=2, cursor=page.next_cursor)
    assert [b.height for b in page.items] == [3, 2]
    assert page.next_cursor is not None
    page = views.list_blocks(limit=2, cursor=page.next_cursor)
    assert [b.height for b in page.items] == [1] and page.next_cursor is None


def test_an_empty_read_model(views: Views) -> None:
    assert views.chain_height() == 0
    assert views.list_blocks() == Page((), None)
    assert views.list_receipts(EVERYTHING) == Page((), None)
    assert views.list_orgs(Scope("x")) == Page((), None)
    assert views.meta_get("cursor") is None

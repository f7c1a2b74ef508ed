"""The simulated read-model dataset: its size at the reported scale, labels, determinism,
referential consistency, and loading it into SQLite and PostgreSQL through ``bulk_load``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from tally.cloud.storage import open_storage
from tally.cloud.storage.api import Storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import tables as t
from tally.cloud.views.model import LoanRow, NoteRow, OrgRow, ReceiptRow, Scope
from tally.cloud.views.seed import INDUSTRIES, REGIONS, T_END, generate, seed_views
from tally.cloud.views.store import Views


@pytest.fixture(scope="module")
def full() -> tuple[dict[str, list[Any]], Any]:
    return generate(1.0, seed=7)


def test_full_scale_has_the_reported_numbers(full: tuple[dict[str, list[Any]], Any]) -> None:
    rows, summary = full
    kinds = Counter(o.kind for o in rows["org"])
    assert kinds["core_enterprise"] == 4800
    assert kinds["supplier"] == 34000
    assert kinds["bank"] == 12 and kinds["warehouse"] == 60
    assert kinds["regulator"] == 1 and kinds["government"] == 1
    assert len(rows["loan"]) == 40000
    assert len(rows["receipt"]) == 60000
    assert 100000 <= len(rows["note"]) < 100050
    assert len(rows["application"]) == 5000
    assert summary.counts["tx"] == sum(len(txs) for _, txs in rows["block"])
    assert summary.rows == sum(len(v) for v in rows.values()) + summary.counts["tx"]
    assert {o.industry for o in rows["org"] if o.kind == "supplier"} == set(INDUSTRIES)
    assert {o.region for o in rows["org"] if o.kind == "supplier"} == set(REGIONS)
    assert summary.simulated


def test_everything_is_labelled_simulated(full: tuple[dict[str, list[Any]], Any]) -> None:
    rows, _ = full
    assert all(o.simulated and o.name.startswith("Simulated ") for o in rows["org"])


def test_deterministic_given_the_seed() -> None:
    a, sa_ = generate(0.02, seed=3)
    b, sb = generate(0.02, seed=3)
    c, _ = generate(0.02, seed=4)
    assert a == b and sa_ == sb
    assert a["loan"] != c["loan"]


def test_rows_refer_to_each_other(full: tuple[dict[str, list[Any]], Any]) -> None:
    rows, summary = full
    orgs: dict[str, OrgRow] = {o.id: o for o in rows["org"]}
    receipts: dict[str, ReceiptRow] = {r.no: r for r in rows["receipt"]}
    trades = {tr.id for tr in rows["trade"]}
    notes: dict[str, NoteRow] = {n.id: n for n in rows["note"]}
    for o in orgs.values():
        if o.kind == "supplier":
            assert o.core is not None and orgs[o.core].kind == "core_enterprise"
            assert o.tier in (1, 2, 3) and o.bank in orgs
    for loan in rows["loan"]:
        assert isinstance(loan, LoanRow)
        assert loan.borrower in orgs and orgs[loan.bank].kind == "bank"
        assert loan.trade is None or loan.trade in trades
        assert loan.outstanding_fen <= loan.principal_fen
        assert loan.applied_ms <= T_END + 30 * 86_400_000
        for no in loan.receipts:
            r = receipts[no]
            assert r.holder == loan.borrower
            if r.status in ("pledged", "frozen"):
                assert r.loan == loan.id and r.bank == loan.bank
    for r in receipts.values():
        assert orgs[r.custodian or ""].kind == "warehouse"
        assert r.site in summary.sites[r.custodian]
    children: dict[str, int] = Counter()
    for n in notes.values():
        assert orgs[n.issuer].kind == "core_enterprise"
        holder = orgs[n.holder]
        assert holder.core == n.issuer and holder.tier == n.tier
        if n.parent is not None:
            assert notes[n.parent].status == "split" and notes[n.parent].root == n.root
            children[n.parent] += n.amount_fen
    for parent, total in children.items():
        assert notes[parent].amount_fen == total  # a split conserves the amount
    for a in rows["application"]:
        held = (
            receipts[a.subject].holder if a.subject_kind == "receipt" else notes[a.subject].holder
        )
        assert held == a.applicant and orgs[a.bank].kind == "bank"
    for alert in rows["alert"]:
        assert alert.owner in orgs and (alert.loan is None or alert.bank is not None)
    assert set(summary.sample.values()) <= set(orgs)


def _views(storage: Storage) -> Views:
    assert isinstance(storage, SqlStorage)
    return Views(storage.engine)


def _check_loaded(views: Views, summary: Any) -> None:
    with views.engine.connect() as conn:

        def count(table: sa.Table) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

        assert count(t.orgs) == summary.counts["org"]
        assert count(t.loans) == summary.counts["loan"]
        assert count(t.receipts) == summary.counts["receipt"]
        assert count(t.notes) == summary.counts["note"]
        assert count(t.blocks) == summary.counts["block"]
        assert count(t.txs) == summary.counts["tx"]
    bank = summary.sample["bank"]
    page = views.list_loans(Scope(bank), limit=50)
    assert page.items and all(loan.bank == bank or loan.borrower == bank for loan in page.items)
    wh = summary.sample["warehouse"]
    sites = frozenset(summary.sites[wh])
    mine = views.list_receipts(Scope(wh, sites=sites), limit=200)
    assert mine.items and all(r.site in sites or r.custodian == wh for r in mine.items)
    org = views.org(summary.sample["supplier"])
    assert org is not None and org.simulated


def test_seed_views_sqlite(sqlite_storage: Storage) -> None:
    views = _views(sqlite_storage)
    summary = seed_views(views, scale=0.02, seed=7)
    assert summary.seconds > 0
    _check_loaded(views, summary)


@pytest.mark.postgres
def test_seed_views_postgres(postgres_url: str) -> None:
    storage = open_storage(postgres_url)
    try:
        storage.migrate()
        views = _views(storage)
        summary = seed_views(views, scale=0.02, seed=7)
        _check_loaded(views, summary)
    finally:
        storage.close()


def test_seed_twice_is_refused(sqlite_storage: Storage) -> None:
    views = _views(sqlite_storage)
    seed_views(views, scale=0.01)
    from tally.cloud.errors import Conflict

    with pytest.raises(Conflict):
        seed_views(views, scale=0.01)


def test_scale_out_of_range() -> None:
    with pytest.raises(ValueError, match="scale"):
        generate(0)

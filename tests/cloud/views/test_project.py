"""The projector on a running in-process consortium (peers of bank-a, bank-b and the
warehouse wh, a solo orderer, every finance contract; the world of tests/finance/race_world.py):
parties, a receipt issued on anchored IoT evidence, pledged, a loan applied for on a
reconciled trade, approved and disbursed; then a price fall, a restart and a partial
repayment. After each step one sync, checked row by row against the chain, with the hub's
events and their authz resources; a second sync changes nothing. The same chain projected
through a source that gives no writes (a full scan) ends with the same rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tally.cloud.authz import ResourceRef
from tally.cloud.live import EventHub, LiveEvent, Subscription
from tally.cloud.storage import open_storage
from tally.cloud.views.model import BlockRow, OrgRow, Scope, TxRow
from tally.cloud.views.project import CURSOR, Projector
from tally.cloud.views.sources import ConsortiumSource
from tally.cloud.views.store import Views
from tally.finance.interest import day_start
from tally.finance.keys import loan_key, trade_key

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "finance"))
from race_world import World, open_world

pytestmark = pytest.mark.timeout(180)
EVERYONE = Scope("regulator", everything=True)
AMOUNT = 300_000_000


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    storage = open_storage(f"sqlite:///{tmp_path / 'cloud.db'}")
    storage.migrate()
    yield Views(storage.engine)
    storage.close()


async def drain(sub: Subscription) -> list[LiveEvent]:
    """The events the subscription holds now (all were published before this is called)."""
    out = []
    while sub.pending():
        e = await sub.next(1.0)
        assert e is not None
        out.append(e)
    return out


class Plain:
    """A source without writes: the projector must scan the whole state."""

    def __init__(self, inner: ConsortiumSource) -> None:
        self.inner = inner

    def height(self) -> int:
        return self.inner.height()

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        return self.inner.scan(prefix)

    def blocks(self, after: int, limit: int) -> list[tuple[BlockRow, list[TxRow]]]:
        return self.inner.blocks(after, limit)


async def sync(p: Projector, w: World) -> Any:
    await w.level()
    return await asyncio.to_thread(p.sync)


def chain(w: World, key: str) -> dict[str, Any]:
    got = w.get("bank-a", key)
    assert got is not None, key
    return dict(got)


def timeless(row: Any) -> Any:
    names = {f.name for f in dataclasses.fields(row)}
    drop = {"height", "updated_ms", "applied_ms", "disbursed_ms"} & names
    return dataclasses.replace(row, **dict.fromkeys(drop, 0))


async def test_a_pledge_and_a_loan_are_projected_with_their_events(
    tmp_path: Path, views: Views
) -> None:
    hub = EventHub(history=10_000, queue=10_000)
    sub = hub.subscribe()
    async with open_world("solo", tmp_path / "chain") as w:
        p = Projector(views, ConsortiumSource(w.c, "bank-a"), hub, simulated=True)
        first = await sync(p, w)
        height = w.c.peers["bank-a"].height
        assert (first.before, first.height, first.blocks, first.full_scan) == (0, height, height,
                                                                             False)  # fmt: skip
        assert views.meta_get(CURSOR) == str(height) and views.chain_height() == height
        assert views.org("sme-1") == OrgRow(
            "sme-1", "sme-1 Ltd", "supplier", None, None, None, None, "bank-a", True
        )
        for h in range(1, height + 1):
            block = views.block(h)
            assert block is not None and len(block.signers) >= 2 and len(block.state or "") == 64
            assert block.hash == w.c.peers["bank-a"].txlog.block_hash_at(h).hex()
            assert block.time_ms is not None
            txs = views.block_txs(h)
            assert len(txs) == block.tx_count >= 1 and all(x.code == "valid" for x in txs)
        assert [x.fn for x in views.block_txs(1)] == ["register"]
        events = await drain(sub)
        assert [e.data["height"] for e in events if e.kind == "block"] == list(range(1, height + 1))
        assert all(e.resource == ResourceRef("chain", "consortium") for e in events)

        await w.active_loan("L-1", {"W-1": "100"}, AMOUNT)
        second = await sync(p, w)
        assert second.rows["receipt"] == 1 and second.rows["loan"] == 1
        rec, loan = chain(w, "rcpt/W-1"), chain(w, loan_key("L-1"))
        r = views.receipt("W-1")
        assert r is not None
        assert (r.holder, r.custodian, r.bank, r.status, r.loan) == (
            "sme-1", "wh", "bank-a", "pledged", "L-1")  # fmt: skip
        assert (r.site, r.location, r.commodity, r.quantity, r.unit) == (
            "S", "A1", "copper", "100", "t")  # fmt: skip
        assert r.value_fen == 100 * 70_000 * 100 and r.issued_ms == rec["issued"]
        assert r.updated_ms == max(e["t"] for e in rec["endorsements"])
        lo = views.loan("L-1")
        assert lo is not None
        assert (lo.borrower, lo.bank, lo.status, lo.principal_fen, lo.outstanding_fen) == (
            "sme-1", "bank-a", "active", AMOUNT, AMOUNT)  # fmt: skip
        assert lo.rate == "0.0435" and lo.receipts == ("W-1",) and lo.trade == "T-L-1"
        assert lo.coverage == 2.1  # 100 t × 70 000 CNY × 0.9 haircut / 3 000 000 CNY
        assert lo.disbursed_ms is not None and lo.applied_ms <= lo.disbursed_ms
        assert lo.due_ms == day_start(loan["maturity"])
        trade = views.trade("T-L-1")
        assert trade is not None
        tr = chain(w, trade_key("T-L-1"))
        assert (trade.seller, trade.buyer, trade.bank, trade.status, trade.amount_fen) == (
            tr["seller"], tr["buyer"], "bank-a", "reconciled", AMOUNT)  # fmt: skip
        docs = views.list_documents(EVERYONE, trade="T-L-1").items
        assert sorted(d.kind for d in docs) == ["invoice", "waybill"]
        assert all(d.issuer == "bank-a" for d in docs)

        events = await drain(sub)
        kinds = [e.kind for e in events]
        assert kinds.count("block") == second.blocks
        (re,) = [e for e in events if e.kind == "receipt"]
        assert re.data["no"] == "W-1" and re.data["change"] == "new"
        assert re.data["status"] == "pledged"
        assert re.resource == ResourceRef("receipt", "sme-1", frozenset({"wh"}), "bank-a", "S")
        (le,) = [e for e in events if e.kind == "loan"]
        assert le.data["status"] == "active" and le.data["receipts"] == ["W-1"]
        assert le.resource == ResourceRef("loan", "sme-1", frozenset(), "bank-a")
        (ce,) = [e for e in events if e.kind == "coverage"]
        assert ce.data == {"loan": "L-1", "bank": "bank-a", "borrower": "sme-1",
                           "status": "active", "coverage": 2.1, "before": None}  # fmt: skip
        assert ce.resource == le.resource

        again = await sync(p, w)  # nothing new: nothing written, nothing published
        assert (again.blocks, sum(again.rows.values())) == (0, 0) and not await drain(sub)

        # the price falls: the receipt is worth less and the loan's coverage drops
        await w.ok("market", "set_price", "copper", Decimal(50_000), "CNY")
        third = await sync(p, w)
        assert third.rows == {"receipt": 1, "loan": 1}
        assert views.receipt("W-1").value_fen == 100 * 50_000 * 100  # type: ignore[union-attr]
        assert views.loan("L-1").coverage == 1.5  # type: ignore[union-attr]
        events = await drain(sub)
        assert sorted(e.kind for e in events if e.kind != "block") == ["coverage", "receipt"]
        (ce,) = [e for e in events if e.kind == "coverage"]
        assert (ce.data["before"], ce.data["coverage"]) == (2.1, 1.5)

        # a new projector (a restart) goes on from the cursor; a partial repayment releases
        # half the collateral: the receipt is split, the loan secured by the pledged half
        p2 = Projector(views, ConsortiumSource(w.c, "bank-a"), hub, simulated=True)
        assert (await sync(p2, w)).blocks == 0
        await w.ok("loans", "repay", "L-1", AMOUNT // 2, hashlib.sha256(b"repay 1").digest())
        fourth = await sync(p2, w)
        assert fourth.before == third.height and fourth.rows["receipt"] == 3
        loan = chain(w, loan_key("L-1"))
        states = {no: views.receipt(no) for no in ("W-1", "W-1.1", "W-1.2")}
        assert {no: (x.status, x.bank, x.loan, x.quantity) for no, x in states.items() if x} == {
            "W-1": ("split", "bank-a", "L-1", "100"),
            "W-1.1": ("live", None, None, "50"),
            "W-1.2": ("pledged", "bank-a", "L-1", "50"),
        }
        lo = views.loan("L-1")
        assert lo is not None and lo.outstanding_fen == loan["principal"] == AMOUNT // 2
        assert lo.receipts == tuple(loan["receipts"])
        assert lo.coverage == float(w.coverage("bank-a", "L-1")) == 1.5  # type: ignore[arg-type]
        events = await drain(sub)
        new = sorted(e.data["no"] for e in events if e.kind == "receipt" and
                     e.data["change"] == "new")  # fmt: skip
        assert new == ["W-1.1", "W-1.2"]
        assert [e.data["outstanding_fen"] for e in events if e.kind == "loan"] == [AMOUNT // 2]

        # the same chain through a source without writes: a full scan, the same rows
        storage2 = open_storage(f"sqlite:///{tmp_path / 'scan.db'}")
        storage2.migrate()
        try:
            other = Views(storage2.engine)
            full = await asyncio.to_thread(
                Projector(other, Plain(ConsortiumSource(w.c, "bank-a")), simulated=True).sync
            )
            assert full.full_scan and full.height == fourth.height
            for kind in ("receipts", "loans", "trades", "documents", "orgs"):
                mine = getattr(views, f"list_{kind}")(EVERYONE, limit=200).items
                theirs = getattr(other, f"list_{kind}")(EVERYONE, limit=200).items
                assert [timeless(x) for x in mine] == [timeless(x) for x in theirs], kind
                assert mine, kind
        finally:
            storage2.close()


async def test_a_source_behind_the_read_model_is_refused(tmp_path: Path, views: Views) -> None:
    async with open_world("solo", tmp_path / "chain") as w:
        p = Projector(views, ConsortiumSource(w.c, "bank-a"))
        await sync(p, w)
        views.meta_put(CURSOR, str(p.height() + 5))
        with pytest.raises(RuntimeError, match="below the projected height"):
            p.sync()
        views.meta_put(CURSOR, "2")  # a read model of another chain at height 2
        block = views.block(2)
        assert block is not None
        views.upsert_block(dataclasses.replace(block, hash="00" * 32), views.block_txs(2))
        await w.ok("market", "set_price", "copper", Decimal(60_000), "CNY")
        with pytest.raises(RuntimeError, match="another chain"):
            await sync(p, w)

"""The projector and receivable notes on a running in-process consortium (race_world's members
with the core enterprise ``core``): bank-a's credit line for core and limit for sme-1, trade
T1 (sme-1 sold to core) reconciled, note N1 issued to sme-1, accepted, confirmed by bank-a,
split, one half passed on to sme-2 (tier 2), the other discounted at bank-a. Each note's row,
its ``note`` event and the event's authz resource (an earlier holder stays a party), the
lines, the trade and its documents with the trade's bank."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tally.cloud.authz import ResourceRef
from tally.cloud.live import EventHub, LiveEvent
from tally.cloud.storage import open_storage
from tally.cloud.views import tables as t
from tally.cloud.views.model import LimitRow, NoteRow, Scope
from tally.cloud.views.project import Projector
from tally.cloud.views.sources import ConsortiumSource
from tally.cloud.views.store import Views
from tally.finance.interest import day, day_start
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.consortium import Consortium
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Ordering

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "finance"))
from race_world import MEMBERS, World

pytestmark = pytest.mark.timeout(180)
RATE = Decimal("0.036")
AMOUNT = 60_000_000


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    storage = open_storage(f"sqlite:///{tmp_path / 'cloud.db'}")
    storage.migrate()
    yield Views(storage.engine)
    storage.close()


@contextlib.asynccontextmanager
async def note_world(directory: Path) -> AsyncIterator[World]:
    wall = time.time_ns() // 1_000_000
    offset = day_start(day(wall) + 1) + 10 * 3_600_000 - wall  # 10:00 Beijing tomorrow

    def clock() -> int:
        return time.time_ns() // 1_000_000 + offset

    members = {**MEMBERS, "core": ["core_enterprise"]}
    c = await Consortium.create(
        directory, members=list(members.items()),
        policies={**system_policies(members), **default_policies(members)}, quorum=2,
        ordering=Ordering("solo", 50, 10), clock=clock,
        contracts=Registry(*system_contracts(), *finance_contracts()),
    )  # fmt: skip
    try:
        w = World(c, clock)
        await w.setup()
        yield w
    finally:
        await c.close()


async def notes_story(w: World) -> None:
    until = w.clock() + 365 * 86_400_000
    await w.ok("credit", "grant", "core", 10**10, "CNY", RATE, until)
    await w.ok("credit", "set_limit", "sme-1", 5 * 10**8, "CNY")
    docs = [digest("invoice doc T1"), digest("waybill doc T1")]
    for kind, h in zip(("invoice", "waybill"), docs, strict=True):
        await w.ok("trades", "anchor", kind, h, "T1")
    record = {
        "v": 1, "id": "T1", "seller": "sme-1", "buyer": "core", "status": "reconciled",
        "amount": 10**8, "currency": "CNY", "invoiced": 10**8, "paid": 0,
        "invoices": [digest("invoice T1")], "waybills": [digest("waybill T1")],
        "docs": docs, "result": digest("report T1"), "reasons": [],
    }  # fmt: skip
    await w.ok("trades", "attest", "T1", record)
    due = day_start(day(w.clock()) + 90) + 10 * 3_600_000
    await w.ok("notes", "issue", "N1", "sme-1", AMOUNT, due, "T1", creator="core")
    await w.ok("notes", "accept", "N1", w.consent("sme-1", "notes.accept", "N1", 0, None))
    await w.ok("notes", "confirm", "N1")
    children = [{"id": "N1.1", "amount": 10_000_000}, {"id": "N1.2", "amount": 50_000_000}]
    c = w.consent("sme-1", "notes.split", "N1", 2, {"children": children})
    await w.ok("notes", "split", "N1", children, c)
    c = w.consent("sme-1", "notes.transfer", "N1.2", 0, {"to": "sme-2"})
    await w.ok("notes", "transfer", "N1.2", "sme-2", c)
    terms = {"bank": "bank-a", "kind": "discount", "rate": RATE}
    c = w.consent("sme-1", "notes.finance", "N1.1", 0, terms)
    await w.ok("notes", "finance", "N1.1", "bank-a", "discount", c)


async def test_notes_lines_and_trades_are_projected(tmp_path: Path, views: Views) -> None:
    hub = EventHub(history=10_000, queue=10_000)
    sub = hub.subscribe()
    async with note_world(tmp_path / "chain") as w:
        await notes_story(w)
        await w.level()
        res = await asyncio.to_thread(
            Projector(views, ConsortiumSource(w.c, "bank-a"), hub, simulated=True).sync
        )
        assert res.rows["note"] == 3 and res.rows["limit"] == 2 and res.rows["trade"] == 1
        note = w.get("bank-a", "note/N1")
        assert note is not None
        issued, due = note["issued"], note["due"]
        got = {n: views.note(n) for n in ("N1", "N1.1", "N1.2")}
        want = {
            "N1": NoteRow("N1", "N1", None, "core", "sme-1", "bank-a", AMOUNT, "split", 1, "T1",
                          issued, due, 0, 0),
            "N1.1": NoteRow("N1.1", "N1", "N1", "core", "sme-1", "bank-a", 10_000_000,
                            "financed", 1, "T1", issued, due, 0, 0),
            "N1.2": NoteRow("N1.2", "N1", "N1", "core", "sme-2", "bank-a", 50_000_000, "live", 2,
                            "T1", issued, due, 0, 0),
        }  # fmt: skip
        for nid, row in got.items():
            assert row is not None and row.height > 0 and row.updated_ms >= issued
            assert row.__class__(**{**row.__dict__, "height": 0, "updated_ms": 0}) == want[nid]
        # sme-1 held N1.2 before sme-2: it stays a party (recourse), in the list and the event
        tier2 = views.list_notes(Scope("sme-1"), holder="sme-2").items
        assert [n.id for n in tier2] == ["N1.2"]
        events: list[LiveEvent] = []
        while sub.pending():
            e = await sub.next(1.0)
            assert e is not None
            events.append(e)
        by_id = {e.data["id"]: e for e in events if e.kind == "note"}
        assert set(by_id) == {"N1", "N1.1", "N1.2"}
        assert all(e.data["change"] == "new" for e in by_id.values())
        assert by_id["N1.2"].resource == ResourceRef(
            "note", "sme-2", frozenset({"core", "sme-1"}), "bank-a"
        )
        assert by_id["N1.1"].data["status"] == "financed"
        with views.engine.connect() as conn:
            lines = [LimitRow(**dict(r)) for r in conn.execute(
                sa.select(t.limits).order_by(t.limits.c.kind)).mappings()]  # fmt: skip
        credit, limit = lines
        assert (credit.bank, credit.party, credit.kind, credit.limit_fen, credit.used_fen) == (
            "bank-a", "core", "credit", 10**10, AMOUNT)  # fmt: skip
        assert credit.rate == "0.036" and credit.expires_ms is not None
        assert (limit.bank, limit.party, limit.kind, limit.limit_fen, limit.rate) == (
            "bank-a", "sme-1", "limit", 5 * 10**8, None)  # fmt: skip
        trade = views.trade("T1")
        assert trade is not None and (trade.seller, trade.buyer, trade.bank) == (
            "sme-1", "core", "bank-a")  # fmt: skip
        docs = views.list_documents(Scope("bank-a"), trade="T1").items
        assert sorted(d.hash for d in docs) == sorted(h.hex() for h in (
            digest("invoice doc T1"), digest("waybill doc T1")))  # fmt: skip

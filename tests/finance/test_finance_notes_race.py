"""Double spends of one receivable note racing on a running consortium, with solo ordering in
process and with JetStream ordering on a real local 3-server NATS cluster (the approach of
race_world.py, whose World this module extends with a core enterprise member ``core``):

* a holder transferring one note to two suppliers at once: one transfer commits;
* a split racing a transfer of the same note: exactly one of them;
* two banks financing the same note at once: one bank holds it.

Contenders are endorsed against one state and ordered together; a loser is invalidated at
commit (MVCC on ``note/<id>``) and, endorsed again on the new state, refused with the
reason. At the end every peer holds the same state and every family's amounts add up.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from race_world import MEMBERS, TIMEOUT, Call, World, require_nats_server

from tally.finance.interest import day, day_start
from tally.finance.keys import note_key, noteroot_key
from tally.finance.notes import check_conservation
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Genesis, Ordering
from tally.ledger.jetstream import JetStreamOrderer
from tally.ledger.natscluster import NatsCluster

NOTE_MEMBERS = {**MEMBERS, "core": ["core_enterprise"]}
AMOUNT = 600_000_00
RATE = Decimal("0.036")

pytestmark = pytest.mark.timeout(120)


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class NoteWorld(World):
    """race_world's World with core enterprise ``core``, trade T1 (sme-1 sold to core),
    credit lines of bank-a and bank-b for core, and note N1 issued to sme-1 and accepted."""

    async def setup_note(self) -> None:
        until = self.clock() + 365 * 86_400_000
        for bank in ("bank-a", "bank-b"):
            await self.ok("credit", "grant", "core", 10**10, "CNY", RATE, until, creator=bank)
        docs = [digest("invoice doc T1"), digest("waybill doc T1")]
        for kind, h in zip(("invoice", "waybill"), docs, strict=True):
            await self.ok("trades", "anchor", kind, h, "T1")
        record = {
            "v": 1, "id": "T1", "seller": "sme-1", "buyer": "core", "status": "reconciled",
            "amount": 10**8, "currency": "CNY", "invoiced": 10**8, "paid": 0,
            "invoices": [digest("invoice T1")], "waybills": [digest("waybill T1")],
            "docs": docs, "result": digest("report T1"), "reasons": [],
        }  # fmt: skip
        await self.ok("trades", "attest", "T1", record)
        due = day_start(day(self.clock()) + 90) + 10 * 3_600_000
        await self.ok("notes", "issue", "N1", "sme-1", AMOUNT, due, "T1", creator="core")
        await self.ok("notes", "accept", "N1", self.consent("sme-1", "notes.accept", "N1", 0, None))

    def transfer_call(self, to: str, seq: int = 1) -> Call:
        c = self.consent("sme-1", "notes.transfer", "N1", seq, {"to": to})
        return ("notes", "transfer", ["N1", to, c], "bank-a")

    def split_call(self, seq: int = 1) -> Call:
        children = [{"id": "N1.1", "amount": 100_000_00}, {"id": "N1.2", "amount": 500_000_00}]
        c = self.consent("sme-1", "notes.split", "N1", seq, {"children": children})
        return ("notes", "split", ["N1", children, c], "bank-a")

    def finance_call(self, bank: str, seq: int = 1) -> Call:
        terms = {"bank": bank, "kind": "discount", "rate": RATE}
        c = self.consent("sme-1", "notes.finance", "N1", seq, terms)
        return ("notes", "finance", ["N1", bank, "discount", c], bank)


@contextlib.asynccontextmanager
async def open_note_world(ordering: str, directory: Path) -> AsyncIterator[NoteWorld]:
    """race_world.open_world with the core enterprise among the members."""
    wall = time.time_ns() // 1_000_000
    offset = day_start(day(wall) + 1) + 10 * 3_600_000 - wall

    def clock() -> int:
        return time.time_ns() // 1_000_000 + offset

    async with contextlib.AsyncExitStack() as stack:
        factory = None
        if ordering == "jetstream":
            require_nats_server()
            cluster = await stack.enter_async_context(NatsCluster(directory / "nats", size=3))
            urls = cluster.urls

            def factory(genesis: Genesis, _directory: Path) -> JetStreamOrderer:
                return JetStreamOrderer(genesis, urls, clock=clock, timeout=TIMEOUT)

        policies = {**system_policies(NOTE_MEMBERS), **default_policies(NOTE_MEMBERS)}
        c = await Consortium.create(
            directory / "consortium", members=list(NOTE_MEMBERS.items()), policies=policies,
            quorum=2, ordering=Ordering(ordering, 50, 10),
            contracts=Registry(*system_contracts(), *finance_contracts()), clock=clock,
            orderer=factory,
        )  # fmt: skip
        stack.push_async_callback(c.close)
        if isinstance(c.orderer, JetStreamOrderer):
            await c.orderer.start()
        w = NoteWorld(c, clock)
        await w.setup()
        await w.setup_note()
        yield w


@pytest.fixture(params=["solo", "jetstream"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NoteWorld]:
    async with open_note_world(request.param, tmp_path) as w:
        yield w


def one_winner(first: dict[str, TxResult]) -> str:
    """The one contender that committed first; the others lost on MVCC over note/N1."""
    winners = [name for name, r in first.items() if r.valid]
    assert len(winners) == 1, {n: (r.code, r.reason or r.error) for n, r in first.items()}
    for name, r in first.items():
        if name != winners[0]:
            assert r.code == "mvcc_conflict", (name, r.code, r.reason)
            assert r.reason.startswith(f"read {note_key('N1')!r} at version "), r.reason
    return winners[0]


async def settled_state(world: NoteWorld) -> dict[str, Any]:
    """The agreed state, with every family's amounts checked on every peer."""
    state = await world.agreed()
    for peer in world.c.peers.values():
        assert check_conservation(peer.state) == []
    return state


async def test_a_note_transferred_twice_at_once_goes_to_one_holder(world: NoteWorld) -> None:
    calls = {to: world.transfer_call(to) for to in ("sme-2", "sme-3")}
    first, final = await world.race(calls)
    winner = one_winner(first)
    loser = "sme-3" if winner == "sme-2" else "sme-2"
    assert (final[loser].code, final[loser].error) == (
        "contract_error",
        f"notes.transfer of N1: consent of {winner!r}: it is signed by 'sme-1'",
    )
    state = await settled_state(world)
    note = state[note_key("N1")]
    assert (note["holder"], note["endorsers"], note["seq"]) == (winner, ["sme-1"], 2)


async def test_a_split_racing_a_transfer_spends_the_note_once(world: NoteWorld) -> None:
    calls: dict[str, Call] = {"split": world.split_call(), "transfer": world.transfer_call("sme-2")}
    first, final = await world.race(calls)
    winner = one_winner(first)
    state = await settled_state(world)
    note = state[note_key("N1")]
    if winner == "split":
        assert final["transfer"].error == (
            "notes.transfer: note N1 was split into N1.1, N1.2: it is spent"
        )
        assert note["state"] == "split" and note["holder"] == "sme-1"
        kids = [state[note_key(c)] for c in ("N1.1", "N1.2")]
        assert [(k["holder"], k["amount"]) for k in kids] == [
            ("sme-1", 100_000_00), ("sme-1", 500_000_00),
        ]  # fmt: skip
    else:
        assert final["split"].error == (
            "notes.split of N1: consent of 'sme-2': it is signed by 'sme-1'"
        )
        assert (note["state"], note["holder"]) == ("live", "sme-2")
        assert note_key("N1.1") not in state
    assert state[noteroot_key("N1")]["live"] == AMOUNT


async def test_two_banks_financing_one_note_at_once(world: NoteWorld) -> None:
    calls = {bank: world.finance_call(bank) for bank in ("bank-a", "bank-b")}
    first, final = await world.race(calls)
    winner = one_winner(first)
    loser = "bank-b" if winner == "bank-a" else "bank-a"
    assert final[loser].error == (
        f"notes.finance: note N1 is financed by {winner!r} (discount): it is locked to the bank"
    )
    state = await settled_state(world)
    financed = state[note_key("N1")]["financed"]
    assert (financed["bank"], financed["rate"]) == (winner, RATE)
    # 600 000.00 CNY at 3.6 % for 90 days: 5 400.00 CNY of discount
    assert financed["advance"] == AMOUNT - 5_400_00

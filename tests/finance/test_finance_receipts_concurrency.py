"""Races on a running consortium (solo ordering in process, and JetStream ordering on a real
local 3-server NATS cluster): two banks racing to pledge one receipt — exactly one wins, on
every peer; and warehouse issues racing at one location — no more gets issued than the
measured stock allows. Every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import COMMODITY, DAY, TOLERANCE, Site, fields

from services import require_nats_server
from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.market import Market
from tally.finance.contracts.parties import Parties
from tally.finance.contracts.receipts import Receipts
from tally.finance.keys import receipt_key
from tally.finance.receipt import iso
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.errors import EndorsementFailed
from tally.ledger.genesis import Genesis, Ordering
from tally.ledger.jetstream import JetStreamOrderer
from tally.ledger.natscluster import NatsCluster

MEMBERS = [("bank-a", ["bank"]), ("bank-b", ["bank"]), ("wh", ["warehouse"])]
POLICIES = {
    "membership.*": "org:bank-a",
    "registry.*": "role:warehouse",
    "anchoring.*": "role:warehouse",
    "market.*": "role:bank",
    "parties.*": "role:bank",
    "receipts.*": "AND(role:warehouse, role:bank)",
}
TIMEOUT = 20.0
MAX_ROUNDS = 20

pytestmark = pytest.mark.timeout(120)


class World:
    """A consortium with site S of wh, commodity copper and party sme-1 of bank-a."""

    def __init__(self, c: Consortium) -> None:
        self.c = c
        self.site = Site("wh", c.keys["wh"])
        self.sme = SigningKey.generate(INTL)
        self.now = time.time_ns() // 1_000_000

    async def ok(self, contract: str, fn: str, *args: Any, creator: str) -> TxResult:
        r = await self.c.submit(contract, fn, list(args), creator, timeout=TIMEOUT)
        assert r.valid, (contract, fn, r.code, r.error or r.reason)
        # a final checkpoint needs a quorum, not every peer: let the rest catch up, so that
        # the next endorsements are made against one state
        await self.c.wait_height(r.height, timeout=TIMEOUT)
        return r

    async def setup(self) -> None:
        for reg in self.site.registrations():
            await self.ok("registry", "register", reg, creator="wh")
        await self.ok("market", "set_commodity", COMMODITY, "t", TOLERANCE, creator="bank-a")
        await self.ok("parties", "register", "sme-1", "SME One", "supplier", "intl",
                      self.sme.public.raw, creator="bank-a")  # fmt: skip

    async def weigh(self, weight: str) -> tuple[dict[str, Any], int]:
        """Anchored evidence of a weighing of S/A1 now; and its time."""
        t = time.time_ns() // 1_000_000
        reading = self.site.weigh("A1", weight, t)
        header = self.site.header([reading], t, t)
        await self.ok("anchoring", "anchor_batch", header, creator="wh")
        (ev,) = self.site.evidence([reading], len(self.site.headers) - 1)
        return ev, t

    def fields(self, no: str, weight: str) -> dict[str, Any]:
        period = {"from": self.now - DAY, "to": self.now + 30 * DAY}
        return fields(no, weight, period=period)

    def transaction(self, contract: str, fn: str, args: list[Any], creator: str) -> bytes:
        """Endorsed now, against the peers' current state; ordered later."""
        return Client.transaction(*self.c.endorse(contract, fn, args, creator))

    def state(self, org: str, key: str) -> Any:
        found = self.c.peers[org].state.get(key)
        return None if found is None else found[0]


@pytest.fixture(params=["solo", "jetstream"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    registry = Registry(*system_contracts(), Parties(), Receipts(), Market())
    async with contextlib.AsyncExitStack() as stack:
        factory = None
        if request.param == "jetstream":
            require_nats_server()
            cluster = await stack.enter_async_context(NatsCluster(tmp_path / "nats", size=3))
            urls = cluster.urls

            def factory(genesis: Genesis, _directory: Path) -> JetStreamOrderer:
                return JetStreamOrderer(genesis, urls, timeout=TIMEOUT)

        c = await Consortium.create(
            tmp_path / "consortium", members=MEMBERS, policies=POLICIES, quorum=2,
            ordering=Ordering(request.param, 50, 10), contracts=registry, orderer=factory,
        )  # fmt: skip
        stack.push_async_callback(c.close)
        if isinstance(c.orderer, JetStreamOrderer):
            await c.orderer.start()
        w = World(c)
        await w.setup()
        yield w


async def test_two_banks_racing_to_pledge_one_receipt_exactly_one_wins(world: World) -> None:
    ev, _ = await world.weigh("100.2")
    await world.ok("receipts", "issue", world.fields("W-1", "40"), [ev], creator="wh")
    c = world.c
    txs = {}
    cid = c.genesis.chain
    for bank in ("bank-a", "bank-b"):
        terms = {"bank": bank}
        holder = make_consent(world.sme, cid, "sme-1", "receipts.pledge", "W-1", 0, terms)
        custodian = make_consent(c.keys["wh"], cid, "wh", "receipts.pledge", "W-1", 0, terms)
        # both endorsed against the same state, before either is ordered: both pass there
        txs[bank] = world.transaction("receipts", "pledge", ["W-1", bank, holder, custodian], bank)
    results = await asyncio.gather(
        *(c.submit_tx(tx, timeout=TIMEOUT, prefer=bank) for bank, tx in txs.items())
    )
    codes = sorted(r.code for r in results)
    assert codes == ["mvcc_conflict", "valid"], [(r.code, r.reason) for r in results]
    winner = next(bank for bank, r in zip(txs, results, strict=True) if r.valid)
    loser = "bank-b" if winner == "bank-a" else "bank-a"
    height = max(r.height for r in results)
    await c.wait_height(height, timeout=TIMEOUT)
    for org in c.peers:
        rec = world.state(org, receipt_key("W-1"))
        assert (rec["state"], rec["pledgee"], rec["seq"]) == ("pledged", winner, 1)
    # the loser tries again with fresh consents: refused at endorsement, with the reason
    terms = {"bank": loser}
    holder = make_consent(world.sme, cid, "sme-1", "receipts.pledge", "W-1", 1, terms)
    custodian = make_consent(c.keys["wh"], cid, "wh", "receipts.pledge", "W-1", 1, terms)
    r = await c.submit("receipts", "pledge", ["W-1", loser, holder, custodian], loser,
                       timeout=TIMEOUT)  # fmt: skip
    assert (r.code, r.error) == ("contract_error", f"receipt W-1 is pledged to {winner}")
    for org in c.peers:
        assert world.state(org, receipt_key("W-1"))["pledgee"] == winner


async def test_racing_issues_at_one_location_stay_within_the_stock(world: World) -> None:
    """Five 30 t receipts race against 100.2 t measured (99.699 t allowed): three get issued,
    two are refused with the numbers, whatever the order."""
    ev, t = await world.weigh("100.2")
    c = world.c
    outcome: dict[str, TxResult] = {}

    async def issue(no: str) -> None:
        for _ in range(MAX_ROUNDS):
            try:
                tx = world.transaction("receipts", "issue", [world.fields(no, "30"), [ev]], "wh")
            except EndorsementFailed:  # endorsers at different heights mid-race: endorse again
                heights = lambda: len({p.height for p in c.peers.values()}) == 1  # noqa: E731
                await c.wait_for(heights, TIMEOUT)
                continue
            r = await c.submit_tx(tx, timeout=TIMEOUT, prefer="wh")
            if r.code != "mvcc_conflict":  # lost a race: endorse again on the new state
                outcome[no] = r
                return
        raise AssertionError(f"{no}: still conflicting after {MAX_ROUNDS} rounds")

    nos = [f"W-{i}" for i in range(5)]
    await asyncio.gather(*(issue(no) for no in nos))
    issued = sorted(no for no, r in outcome.items() if r.valid)
    refused = {no: r for no, r in outcome.items() if not r.valid}
    assert len(issued) == 3 and len(refused) == 2
    for r in refused.values():
        assert (r.code, r.error) == ("contract_error", (
            f"issuing 30 t at S/A1 would bring live receipts to 120 t; measured stock 100.2 t "
            f"at {iso(t)} less tolerance 0.501 t allows 99.699 t"
        ))  # fmt: skip
    await c.wait_height(max(r.height for r in outcome.values()), timeout=TIMEOUT)
    for org in c.peers:
        index = {k: v for k, v, _ in c.peers[org].state.range("rloc/S/A1/")}
        assert sorted(k.rsplit("/", 1)[1] for k in index) == issued
        assert sum(index.values(), Decimal(0)) == Decimal(90) <= Decimal("99.699")
        for no in refused:
            assert world.state(org, receipt_key(no)) is None

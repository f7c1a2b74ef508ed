"""A running consortium for races over receipts and loans: in-process peers of bank-a,
bank-b and the warehouse wh, ordered by a solo orderer or by JetStream on a real local
3-server NATS cluster, with every finance contract registered and the genesis finance
policies.

The world has site S of wh (load cells, edge), commodity copper at 70 000 CNY/t, bank-a's
lending parameters (haircut 0.9, pledge rate 0.6, warning line 1.3, disposal 1.2) and the
parties sme-1, sme-2 and sme-3 of bank-a (and the seller smelter, once a loan's trade names
it). Its clock is 10:00 Beijing time of the next business day (moving with the wall clock),
so that no business day ends during a test.

:meth:`World.race` is what competing clients do: endorse every contender against one state,
order them all at once, and endorse again on the new state whichever lost to an MVCC
conflict, until each has an outcome. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from finance_harness import COMMODITY, DAY, TOLERANCE, Site, fields
from loans_harness import trade_docs, trade_record

from services import require_nats_server
from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.coverage import loan_coverage
from tally.finance.interest import day, day_start
from tally.finance.keys import loan_key, party_key, receipt_key
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Context, Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.errors import EndorsementFailed
from tally.ledger.genesis import Genesis, Ordering
from tally.ledger.jetstream import JetStreamOrderer
from tally.ledger.natscluster import NatsCluster

MEMBERS = {"bank-a": ["bank"], "bank-b": ["bank"], "wh": ["warehouse"]}
PARTIES = ("sme-1", "sme-2", "sme-3")
PRICE = Decimal(70000)
WARNING = Decimal("1.3")
PARAMS = (Decimal("0.9"), Decimal("0.6"), WARNING, Decimal("1.2"), 3 * 86_400_000)
"""bank-a's haircut, pledge rate, warning line, disposal line and cure period."""
TIMEOUT = 20.0
MAX_ROUNDS = 10

Call = tuple[str, str, list[Any], str]
"""(contract, function, arguments, creator) of one proposal."""


class World:
    """The consortium described in the module docstring, and what its clients do."""

    def __init__(self, c: Consortium, clock: Any) -> None:
        self.c = c
        self.clock = clock
        self.site = Site("wh", c.keys["wh"])
        self.party_keys = {p: SigningKey.generate(INTL) for p in PARTIES}

    # -- transactions ------------------------------------------------------------------------

    async def level(self) -> None:
        """Wait until every peer has every block the orderer has delivered to any of them."""
        top = max(p.height for p in self.c.peers.values())
        await self.c.wait_height(top, timeout=TIMEOUT)

    async def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank-a") -> Any:
        r = await self.c.submit(contract, fn, list(args), creator, timeout=TIMEOUT)
        assert r.valid, (contract, fn, r.code, r.error or r.reason)
        # a final checkpoint needs a quorum, not every peer: let the rest catch up, so that
        # the next endorsements are made against one state
        await self.c.wait_height(r.height, timeout=TIMEOUT)
        return r.result

    def endorsed(self, call: Call) -> bytes:
        """The transaction of ``call`` endorsed now, against the peers' current state."""
        contract, fn, args, creator = call
        return Client.transaction(*self.c.endorse(contract, fn, args, creator))

    async def again(self, call: Call) -> TxResult:
        """Endorse ``call`` on the current state and order it, as a client retrying after a
        conflict does; endorse again when its endorsers were at different heights."""
        for _ in range(MAX_ROUNDS):
            await self.level()
            try:
                tx = self.endorsed(call)
            except EndorsementFailed:  # a block arrived at one endorser mid-way
                continue
            r = await self.c.submit_tx(tx, timeout=TIMEOUT, prefer=call[3])
            await self.level()
            return r
        raise AssertionError(f"{call[:2]}: no agreeing endorsements in {MAX_ROUNDS} rounds")

    async def race(
        self, calls: Mapping[str, Call], endorsed: Mapping[str, bytes] | None = None
    ) -> tuple[dict[str, TxResult], dict[str, TxResult]]:
        """Order the contenders ``calls`` at once, each endorsed against the current state
        (or given already ``endorsed``); then retry each that lost to an MVCC conflict until
        it gets another outcome. Returns (first outcomes, final outcomes) by name."""
        txs = {name: (endorsed or {}).get(name) or self.endorsed(c) for name, c in calls.items()}
        got = await asyncio.gather(
            *(
                self.c.submit_tx(tx, timeout=TIMEOUT, prefer=calls[name][3])
                for name, tx in txs.items()
            )
        )
        first = dict(zip(txs, got, strict=True))
        await self.level()
        final = dict(first)
        for name, r in first.items():
            rounds = 0
            while r.code == "mvcc_conflict":
                rounds += 1
                assert rounds <= MAX_ROUNDS, f"{name}: still conflicting after {rounds} rounds"
                r = await self.again(calls[name])
            final[name] = r
        return first, final

    # -- the business --------------------------------------------------------------------------

    async def setup(self) -> None:
        for reg in self.site.registrations():
            await self.ok("registry", "register", reg, creator="wh")
        await self.ok("market", "set_commodity", COMMODITY, "t", TOLERANCE)
        await self.ok("market", "set_price", COMMODITY, PRICE, "CNY")
        await self.ok("market", "set_params", COMMODITY, *PARAMS)
        for p in PARTIES:
            pub = self.party_keys[p].public.raw
            await self.ok("parties", "register", p, f"{p} Ltd", "supplier", "intl", pub)

    def consent(self, party: str, act: str, on: str, seq: int, terms: Any) -> bytes:
        key = self.party_keys[party] if party in self.party_keys else self.c.keys[party]
        return make_consent(key, self.c.genesis.chain, party, act, on, seq, terms)

    async def issue(self, weights: Mapping[str, str]) -> None:
        """Receipts of these weights for sme-1 at S/A1, against one anchored weighing of all
        of them (with room for the tolerance)."""
        t = self.clock()
        total = sum((Decimal(w) for w in weights.values()), Decimal(0))
        reading = self.site.weigh("A1", total + 1, t)
        await self.ok("anchoring", "anchor_batch", self.site.header([reading], t, t), creator="wh")
        (ev,) = self.site.evidence([reading], len(self.site.headers) - 1)
        period = {"from": t - DAY, "to": t + 30 * DAY}
        for no, w in weights.items():
            await self.ok("receipts", "issue", fields(no, w, period=period), [ev], creator="wh")

    def pledge_call(self, no: str, bank: str = "bank-a", seq: int = 0) -> Call:
        terms = {"bank": bank}
        holder = self.consent("sme-1", "receipts.pledge", no, seq, terms)
        custodian = self.consent("wh", "receipts.pledge", no, seq, terms)
        return ("receipts", "pledge", [no, bank, holder, custodian], bank)

    async def attach(self, loan_id: str, amount: int) -> None:
        """Attest the purchase loan ``loan_id`` pays for (trade ``T-<loan>``: sme-1 buys
        ``amount`` fen from the seller ``smelter``, registered by bank-a when first named) as
        a minimal reconciled trade through the real ``trades`` contract, and attach it."""
        if self.get("bank-a", party_key("smelter")) is None:
            pub = SigningKey.generate(INTL).public.raw
            await self.ok("parties", "register", "smelter", "Smelter", "supplier", "intl", pub)
        tid = f"T-{loan_id}"
        for kind, h in trade_docs(tid):
            await self.ok("trades", "anchor", kind, h, tid)
        await self.ok("trades", "attest", tid, trade_record(tid, amount, "sme-1", "smelter"))
        await self.ok("loans", "attach_trade", loan_id, tid)

    async def active_loan(self, loan_id: str, weights: Mapping[str, str], amount: int) -> None:
        """Receipts of ``weights`` issued, pledged to bank-a and securing loan ``loan_id`` of
        ``amount`` fen to sme-1, its trade attached, disbursed."""
        await self.issue(weights)
        for no in weights:
            contract, fn, args, creator = self.pledge_call(no)
            await self.ok(contract, fn, *args, creator=creator)
        nos = list(weights)
        terms = {"bank": "bank-a", "receipts": nos, "amount": amount, "term_days": 90,
                 "seller": "smelter", "seller_account": "6222 0000 1111"}  # fmt: skip
        consent = self.consent("sme-1", "loans.apply", loan_id, 0, terms)
        await self.ok("loans", "apply", loan_id, "sme-1", nos, amount, 90, "smelter",
                      "6222 0000 1111", consent)  # fmt: skip
        await self.attach(loan_id, amount)
        await self.ok("loans", "approve", loan_id, Decimal("0.0435"))
        await self.ok("loans", "disburse", loan_id, bytes(32))

    # -- what the peers hold ---------------------------------------------------------------------

    def get(self, org: str, key: str) -> Any:
        found = self.c.peers[org].state.get(key)
        return None if found is None else found[0]

    def receipt(self, org: str, no: str) -> dict[str, Any]:
        rec = self.get(org, receipt_key(no))
        assert rec is not None, f"{org} has no receipt {no}"
        return dict(rec)

    def coverage(self, org: str, loan_id: str) -> Decimal | None:
        """Loan ``loan_id``'s coverage on ``org``'s peer, as the contracts compute it."""
        chain = self.c.genesis.chain
        ctx = Context(self.c.peers[org].state, org, b"", self.clock(), {}, chain=chain)
        loan = ctx.get(loan_key(loan_id))
        assert loan is not None, f"{org} has no loan {loan_id}"
        return loan_coverage(ctx, loan)

    async def agreed(self) -> dict[str, Any]:
        """Once every peer is level: check they hold the same state, key by key and by
        commitment; return it (key -> value)."""
        await self.level()
        snapshots = {
            org: {k: (v, ver) for k, v, ver in p.state.range("")} for org, p in self.c.peers.items()
        }
        first = next(iter(snapshots.values()))
        for org, snap in snapshots.items():
            assert snap == first, f"{org}'s state differs"
        assert len({p.commitment() for p in self.c.peers.values()}) == 1
        return {k: v for k, (v, _) in first.items()}


@contextlib.asynccontextmanager
async def open_world(ordering: str, directory: Path) -> AsyncIterator[World]:
    """A set-up :class:`World` on ``ordering`` ("solo" or "jetstream"), closed afterwards."""
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

        policies = {**system_policies(MEMBERS), **default_policies(MEMBERS)}
        registry = Registry(*system_contracts(), *finance_contracts())
        c = await Consortium.create(
            directory / "consortium", members=list(MEMBERS.items()), policies=policies,
            quorum=2, ordering=Ordering(ordering, 50, 10), contracts=registry, clock=clock,
            orderer=factory,
        )  # fmt: skip
        stack.push_async_callback(c.close)
        if isinstance(c.orderer, JetStreamOrderer):
            await c.orderer.start()
        w = World(c, clock)
        await w.setup()
        yield w

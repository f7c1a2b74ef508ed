"""The disposal path end to end on a running consortium (solo ordering): the bank's monitor
sees coverage fall, the executor carries out its intents as the bank — margin call, frozen
receipts, default — and outbound at the location is stopped at the edge, so that a later
weight drop is an unexplained removal. Also: the cure period running out, refusals by the
chain reported with the contract's reason, and intents refused before anything is submitted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import Site, fields
from loans_harness import posting, trade_docs, trade_record

from tally.crypto import INTL, SigningKey
from tally.device.envelope import parse_envelope
from tally.edge.rules import Firing, Observation, RuleEngine
from tally.finance.actions import ActionError, Executor, Outcome
from tally.finance.consent import make_consent
from tally.finance.interest import date_of, day, day_start
from tally.finance.keys import loan_key, receipt_key
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_model import (
    CommodityParams,
    Intent,
    Loan,
    PledgedReceipt,
    Ref,
    Result,
    WeightReading,
)
from tally.finance.orders import OrderFeed
from tally.finance.policies import default_policies, finance_contracts
from tally.finance.prices import PriceTick
from tally.finance.receipt import iso
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.errors import TxTimeout
from tally.ledger.state import SqliteState

D = Decimal
CURE_MS = 3 * 86_400_000
PARAMS = CommodityParams(D("0.9"), D("0.6"), D("1.3"), D("1.2"), CURE_MS)
AMOUNT = 300_000_000  # 3 000 000.00 CNY against 100 t of copper at 70 000 CNY/t: coverage 2.1
WINDOW = 600_000
CELL = "lc-S-A1"
ACTIONS = ["receipts.freeze", "warehouse.stop_outbound", "loans.default"]


class World:
    """A bank, a warehouse and a regulator; the warehouse's site S (its load cell at A1 feeds
    an edge rules engine); copper; a borrower; the bank's monitor and executor."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        wall = time.time_ns() // 1_000_000
        self.offset = day_start(day(wall) + 1) + 10 * 3_600_000 - wall  # 10:00 Beijing
        self.wh_key = SigningKey.generate(INTL)
        self.borrower = SigningKey.generate(INTL)
        self.site = Site("wh", self.wh_key)
        self.dt = 0  # the load cell's clock
        rule = {"id": "a1", "type": "plausibility", "location": "A1", "devices": [CELL],
                "tolerance": "0.2", "window_ms": WINDOW}  # fmt: skip
        self.edge = RuleEngine.from_config([rule], "S")
        self.twin = RuleEngine.from_config([rule], "S")  # the same edge, never told to revoke
        self.revocations: list[str] = []
        self.feed = OrderFeed("S", self._authorise, self._revoke)
        self.monitor = CollateralMonitor("bank")

    def clock(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset

    async def start(self) -> None:
        members = {"bank": ["bank"], "wh": ["warehouse"], "reg": ["regulator"]}
        policies = {**system_policies(members), **default_policies(members)}
        self.c = await Consortium.create(
            self.tmp_path, members=list(members.items()), policies=policies, quorum=2,
            contracts=Registry(*system_contracts(), *finance_contracts()), clock=self.clock,
            keys={"wh": self.wh_key},
        )  # fmt: skip
        self.executor = Executor("bank", self.c, self.state, edges={"S": self.feed})
        self.dt = self.clock()

    @property
    def state(self) -> Any:
        return self.c.peers["bank"].state

    async def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Any:
        r = await self.c.submit(contract, fn, list(args), creator, timeout=20)
        assert r.valid, (contract, fn, r.code, r.error or r.reason)
        return r.result

    def get(self, key: str) -> Any:
        found = self.state.get(key)
        return None if found is None else found[0]

    async def active_loan(self) -> None:
        """Receipt W-1 (100 t of copper at S/A1, issued on anchored readings), pledged; loan
        L-1 of 3 000 000.00 CNY on it applied, its trade (T-1, from the seller smelter)
        attached, approved and disbursed."""
        for reg in self.site.registrations():
            await self.ok("registry", "register", reg, creator="wh")
        await self.ok("parties", "register", "sme-1", "SME One", "supplier", "intl",
                      self.borrower.public.raw)  # fmt: skip
        await self.ok("market", "set_commodity", "copper", "t", D("0.005"), creator="reg")
        await self.ok("market", "set_price", "copper", D(70000), "CNY")
        await self.ok("market", "set_params", "copper", PARAMS.haircut, PARAMS.pledge_rate,
                      PARAMS.warning, PARAMS.disposal, CURE_MS)  # fmt: skip
        now = self.clock()
        leaves = [self.site.scan("LOT-W-1", now - 10), self.site.weigh("A1", "101", now)]
        header = self.site.header(leaves, now - 10, now)
        await self.ok("anchoring", "anchor_batch", header, creator="wh")
        f = fields("W-1", "100", period={"from": now, "to": now + 60 * 86_400_000})
        await self.ok("receipts", "issue", f, self.site.evidence(leaves, 0), creator="wh")
        terms, cid = {"bank": "bank"}, self.c.genesis.chain
        holder = make_consent(self.borrower, cid, "sme-1", "receipts.pledge", "W-1", 0, terms)
        custodian = make_consent(self.wh_key, cid, "wh", "receipts.pledge", "W-1", 0, terms)
        await self.ok("receipts", "pledge", "W-1", "bank", holder, custodian)
        apply = {"bank": "bank", "receipts": ["W-1"], "amount": AMOUNT, "term_days": 90,
                 "seller": "smelter", "seller_account": "6222 0000 1111"}  # fmt: skip
        consent = make_consent(self.borrower, cid, "sme-1", "loans.apply", "L-1", 0, apply)
        await self.ok("loans", "apply", "L-1", "sme-1", ["W-1"], AMOUNT, 90, "smelter",
                      "6222 0000 1111", consent)  # fmt: skip
        # the purchase it pays for: a minimal reconciled trade, attested and attached
        await self.ok("parties", "register", "smelter", "Smelter", "supplier", "intl",
                      SigningKey.generate(INTL).public.raw)  # fmt: skip
        for kind, h in trade_docs("T-1"):
            await self.ok("trades", "anchor", kind, h, "T-1")
        await self.ok("trades", "attest", "T-1", trade_record("T-1", AMOUNT, "sme-1", "smelter"))
        await self.ok("loans", "attach_trade", "L-1", "T-1")
        await self.ok("loans", "approve", "L-1", D("0.0435"))
        await self.ok("loans", "disburse", "L-1", posting("disbursement"))

    def watch(self, held: Sequence[tuple[str, str]], other: str, measured: str) -> Result:
        """The monitor takes the loan as the chain has it (``held``: receipt, weight), the
        other live receipts at S/A1 and the load cell's reading, at 70 000 CNY/t."""
        t = self.clock()
        out = self.monitor.set_params("copper", PARAMS, t)
        self.monitor.add_device(CELL, "S", "A1")
        receipts = tuple(PledgedReceipt(no, "S", "A1", "LOT-W-1", D(w)) for no, w in held)
        loan = Loan("L-1", "bank", "sme-1", AMOUNT, 0, "copper", receipts)
        out.extend(self.monitor.add_loan(loan, t))
        out.extend(self.monitor.set_other_claims("S", "A1", D(other), t))
        ref = Ref("reading", f"{CELL}/0/1", b"\x01" * 32)
        out.extend(self.monitor.apply(WeightReading("S", "A1", CELL, D(measured), t, ref)))
        out.extend(self.tick("70000"))
        return out

    def tick(self, price: str, t: int | None = None) -> Result:
        t = self.clock() if t is None else t
        return self.monitor.apply_price(PriceTick("copper", D(price), "CNY", t, "test"))

    # -- the site's edge ------------------------------------------------------------------------

    def _authorise(self, *args: Any) -> None:
        self.edge.authorise_release(*args)
        self.twin.authorise_release(*args)

    def _revoke(self, ref: str) -> bool:
        self.revocations.append(ref)
        return self.edge.revoke_release(ref)

    def weigh(self, weight: str, n: int = 1) -> tuple[list[Firing], list[Firing]]:
        """``n`` readings of the load cell at A1, 5 s apart, into both engines."""
        fired: tuple[list[Firing], list[Firing]] = ([], [])
        for _ in range(n):
            self.dt += 5_000
            cose = self.site.weigh("A1", weight, self.dt)
            _, reading = parse_envelope(cose)
            obs = Observation(CELL, "load_cell", "S", reading, INTL.hash(cose), self.dt)
            fired[0].extend(self.edge.observe(obs))
            fired[1].extend(self.twin.observe(obs))
        return fired


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    await w.start()
    try:
        yield w
    finally:
        await w.c.close()


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [o.status for o in outcomes]


# -- below the disposal line --------------------------------------------------------------------


async def test_below_the_disposal_line_the_goods_are_frozen_and_outbound_stops(
    world: World,
) -> None:
    w = world
    await w.active_loan()
    # 10 t are released to the borrower: an order the site's edge now honours
    kept = await w.ok("receipts", "release", "W-1", D(10))
    assert kept == {"released": "W-1.1", "kept": "W-1.2"}
    (order,) = w.feed.poll(w.state)
    assert (order.receipt, order.location, order.weight) == ("W-1.1", "A1", D(10))
    assert w.weigh("101", 3) == ([], [])
    assert w.watch([("W-1.2", "90")], other="10", measured="101").alerts == []
    assert w.monitor.coverage("L-1") == D("1.89")

    # the price falls to 40 000 CNY/t: 90 t × 40 000 × 0.9 / 3 000 000 = 1.08 < 1.2
    await w.ok("market", "set_price", "copper", D(40000), "CNY")
    t = w.clock()
    res = w.tick("40000", t)
    (alert,) = res.alerts
    assert (alert.kind, alert.severity, alert.coverage_after) == ("disposal", "critical", D("1.08"))
    assert any(r.kind == "price" and r.id.endswith("/copper/" + str(t) + "/40000")
               for r in alert.evidence)  # fmt: skip
    assert [i.action for i in res.intents] == ACTIONS

    outcomes = await w.executor.execute(res.intents)
    assert statuses(outcomes) == ["done", "done", "done"]
    freeze, stop, default = outcomes
    assert freeze.txs[0].valid and freeze.reason == ""
    assert dict(stop.detail) == {"receipts": ["W-1.2"], "frozen": [], "revoked": [order.id],
                                 "edge": True}  # fmt: skip
    assert default.detail["reason"] == "coverage 1.08 below the disposal line 1.2"

    # on chain: the loan defaulted (disposal started) and the pledged remainder is frozen
    loan = w.get(loan_key("L-1"))
    assert loan["state"] == "defaulted"
    rec = w.get(receipt_key("W-1.2"))
    assert rec["state"] == "frozen"
    assert (
        rec["frozen"]["reason"] == "loan L-1 defaulted: coverage 1.08 below the disposal line 1.2"
    )
    assert [e["act"] for e in rec["endorsements"]][-2:] == ["receipts.freeze", "loans.default"]
    # frozen twice (the freeze, then the default): it still remembers it was pledged
    assert rec["frozen"]["was"] == "pledged"
    r = await w.c.submit("receipts", "release", ["W-1.2", D(1)], "bank", timeout=20)
    assert not r.valid and r.error.startswith("receipt W-1.2 is frozen by bank (loan L-1")

    # at the edge: the order is revoked once; a later drop of 10 t is an unexplained removal,
    # where the same edge without the revocation would have taken it for the release
    assert w.revocations == [order.id] and w.feed.revoked == [order.id]
    assert w.feed.poll(w.state) == [] and w.revocations == [order.id]
    drop_at = w.dt + 5_000
    fired, twin = w.weigh("91", 2 * WINDOW // 5_000)
    assert twin == []
    (fire,) = fired
    assert (fire.kind, fire.sev, fire.t) == (
        "unexplained_weight_drop",
        "critical",
        drop_at + WINDOW,
    )
    detail = dict(fire.detail)
    assert (detail["location"], detail["unexplained_t"], detail["explained_release_t"]) == (
        "A1",
        D(10),
        0,
    )

    # the same intents again: each is skipped, saying why, and nothing is submitted
    height = w.c.peers["bank"].height
    again = await w.executor.execute(res.intents)
    assert statuses(again) == ["skipped", "skipped", "skipped"]
    assert [o.reason for o in again] == [
        "receipt W-1.2 is frozen already by bank (loan L-1 defaulted: coverage 1.08 below the "
        "disposal line 1.2)",
        "outbound at S/A1 is stopped already: every receipt of loan L-1 there is frozen, no "
        "release order there was left to revoke",
        "loan L-1 is defaulted already",
    ]
    assert w.c.peers["bank"].height == height

    # the bank sells: the disposal's order reaches the edge and stays
    sold = await w.ok("loans", "dispose", "L-1", 330_000_000, posting("sale"))
    assert sold["disposed"] == ["W-1.2"]
    (sale,) = w.feed.poll(w.state)
    assert (sale.kind, sale.receipt) == ("disposal", "W-1.2")
    assert w.feed.poll(w.state) == [] and w.revocations == [order.id]


# -- the cure period runs out -------------------------------------------------------------------


async def test_an_uncured_margin_call_ends_in_disposal(world: World) -> None:
    w = world
    await w.active_loan()
    w.executor = Executor("bank", w.c, w.state)  # the site's edge is not connected here
    # the load cell weighs 99 t of the 100 t: the monitor counts 99 t, the chain 100 t
    assert w.watch([("W-1", "100")], other="0", measured="99").alerts == []
    await w.ok("market", "set_price", "copper", D(42000), "CNY")
    res = w.tick("42000")
    assert res.kinds() == ["margin_call"]
    (intent,) = res.intents
    assert (intent.action, intent.args) == ("loans.margin_call",
                                            {"id": "L-1", "coverage": D("1.2474")})  # fmt: skip

    (call,) = await w.executor.execute(res.intents)
    assert call.status == "done"
    assert (call.detail["coverage"], call.detail["monitor_coverage"]) == (D("1.26"), D("1.2474"))
    loan = w.get(loan_key("L-1"))
    assert loan["state"] == "margin_call" and loan["margin_call"]["coverage"] == D("1.26")
    deadline = loan["margin_call"]["deadline"]
    assert call.detail["deadline"] == deadline
    r = await w.c.submit("receipts", "release", ["W-1", D(1)], "bank", timeout=20)
    assert (r.valid, r.error) == (False, "loan L-1 is under a margin call: releases are blocked")
    (again,) = await w.executor.execute(res.intents)
    assert (again.status, again.reason) == (
        "skipped",
        f"loan L-1 is under a margin call already, until {iso(deadline)}",
    )

    # three days pass without a cure
    w.offset += CURE_MS + 60_000
    res = w.monitor.advance(w.clock())
    (alert,) = res.alerts
    assert alert.kind == "disposal" and any(r.kind == "margin_call" for r in alert.evidence)
    assert [i.action for i in res.intents] == ACTIONS
    freeze, stop, default = await w.executor.execute(res.intents)
    assert (freeze.status, default.status) == ("done", "done")
    assert (stop.status, stop.reason) == (
        "skipped",
        "outbound at S/A1 is stopped already: every receipt of loan L-1 there is frozen, no edge "
        "of site S is connected here: the frozen receipts carry the order",
    )
    assert default.detail["reason"] == f"margin call not cured by {iso(deadline)}"
    assert w.get(loan_key("L-1"))["state"] == "defaulted"
    assert w.get(receipt_key("W-1"))["state"] == "frozen"


# -- the chain disagrees ------------------------------------------------------------------------


async def test_a_refused_intent_reports_the_contracts_reason_and_changes_nothing(
    world: World,
) -> None:
    w = world
    await w.active_loan()
    w.watch([("W-1", "100")], other="0", measured="101")
    res = w.tick("42000")  # the monitor's feed moved; the chain's price is still 70 000
    loan_before = w.state.get(loan_key("L-1"))
    receipt_before = w.state.get(receipt_key("W-1"))
    (call,) = await w.executor.execute(res.intents)
    assert call.status == "refused"
    assert call.reason == "margin_call: coverage 2.1 of loan L-1 is not below the warning line 1.3"
    assert call.txs[0].code == "contract_error"
    assert w.state.get(loan_key("L-1")) == loan_before
    assert w.state.get(receipt_key("W-1")) == receipt_before

    # the monitor orders disposal; the chain still sees coverage 2.1: the receipt is frozen
    # (the pledgee may), the default is refused with the contract's reason
    res = w.tick("30000")
    assert res.kinds() == ["disposal"]
    freeze, stop, default = await w.executor.execute(res.intents)
    assert (freeze.status, stop.status, default.status) == ("done", "skipped", "refused")
    loan = w.get(loan_key("L-1"))
    assert default.reason == (
        f"default: loan L-1 is active and not in default: it matures on "
        f"{date_of(loan['maturity'])}, and coverage 2.1 is not below the disposal line 1.2"
    )
    assert loan["state"] == "active" and w.get(receipt_key("W-1"))["state"] == "frozen"


# -- intents the executor refuses -----------------------------------------------------------------


class Recorder:
    """A ledger that records what it is asked and answers as told."""

    def __init__(self, answer: TxResult | Exception) -> None:
        self.calls: list[tuple[str, str, list[Any], str]] = []
        self.answer = answer

    async def submit(self, contract: str, fn: str, args: Sequence[Any], creator: str) -> TxResult:
        self.calls.append((contract, fn, list(args), creator))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def empty(tmp_path: Path) -> Any:
    s = SqliteState(tmp_path / "empty.sqlite")
    yield s
    s.close()


FREEZE = Intent("receipts.freeze", "W-1", {"no": "W-1", "reason": "loan L-1: below the line"})
VALID = TxResult(b"t", "valid", 1, 0, {"no": "W-1"}, None)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            Intent("loans.foreclose", "L-1", {"id": "L-1"}),
            "intent 1: unknown action 'loans.foreclose' (known: loans.margin_call, "
            "receipts.freeze, warehouse.stop_outbound, loans.default)",
        ),
        (
            Intent("receipts.freeze", "W-1", {"no": "W-1"}),
            "intent 1 (receipts.freeze W-1): args must be no, reason; missing: reason",
        ),
        (
            Intent("loans.default", "L-1", {"id": "L-1", "why": "x"}),
            "intent 1 (loans.default L-1): args must be id; unknown: why",
        ),
        (
            Intent("loans.margin_call", "L-1", {"id": "L-1", "coverage": 1.2}),
            "intent 1 (loans.margin_call L-1): coverage must be a non-negative Decimal, got 1.2",
        ),
        (
            Intent(
                "warehouse.stop_outbound",
                "S/A1",
                {"site": "S", "location": "A1", "lots": [], "loan": "L-1"},
            ),
            "intent 1 (warehouse.stop_outbound S/A1): lots must be a non-empty list of lots, "
            "got []",
        ),
        (
            Intent("loans.default", "L/1", {"id": "L/1"}),
            "intent 1 (loans.default L/1): id must be non-empty text without '/', got 'L/1'",
        ),
        ("loans.default", "intent 1: must be an Intent, got str"),
    ],
)
async def test_bad_intents_are_refused_before_anything_is_submitted(
    empty: Any, bad: Any, message: str
) -> None:
    ledger = Recorder(VALID)
    ex = Executor("bank", ledger, empty)
    with pytest.raises(ActionError) as exc:
        await ex.execute([FREEZE, bad])
    assert str(exc.value) == message
    assert ledger.calls == []


async def test_a_ledger_that_cannot_be_reached_is_a_failure(empty: Any) -> None:
    ledger = Recorder(TxTimeout(b"\x00" * 8, "commit", 20))
    (out,) = await Executor("bank", ledger, empty).execute([FREEZE])
    assert (out.status, out.reason) == (
        "failed",
        "transaction 0000000000000000…: no commit within 20 s",
    )
    conflict = TxResult(b"t", "mvcc_conflict", 3, 0, None, None, "rcpt/W-1 changed")
    (out,) = await Executor("bank", Recorder(conflict), empty).execute([FREEZE])
    assert (out.status, out.reason) == ("failed", "mvcc_conflict: rcpt/W-1 changed")
    ledger = Recorder(VALID)
    (out,) = await Executor("bank", ledger, empty).execute([FREEZE])
    assert (out.status, out.txs) == ("done", (VALID,))
    assert ledger.calls == [("receipts", "freeze", ["W-1", "loan L-1: below the line"], "bank")]


class Port:
    """A site's edge as the executor sees it."""

    def __init__(self, revoked: list[str] | Exception) -> None:
        self.revoked = revoked
        self.calls: list[tuple[str, tuple[str, ...], str]] = []

    def stop_outbound(self, location: str, lots: Sequence[str], loan: str) -> list[str]:
        self.calls.append((location, tuple(lots), loan))
        if isinstance(self.revoked, Exception):
            raise self.revoked
        return self.revoked


STOP = Intent(
    "warehouse.stop_outbound", "S/A1", {"site": "S", "location": "A1", "lots": ["LOT-1"],
                                        "loan": "L-9"}
)  # fmt: skip


async def test_stop_outbound_reaches_the_edge_even_when_the_chain_refuses(empty: Any) -> None:
    port = Port(["R-1:release:2"])
    (out,) = await Executor("bank", Recorder(VALID), empty, edges={"S": port}).execute([STOP])
    assert (out.status, out.reason) == ("refused", "loan L-9 is not on the chain")
    assert port.calls == [("A1", ("LOT-1",), "L-9")]
    assert dict(out.detail) == {"receipts": [], "frozen": [], "revoked": ["R-1:release:2"],
                                "edge": True}  # fmt: skip
    broken = Port(RuntimeError("edge unreachable"))
    (out,) = await Executor("bank", Recorder(VALID), empty, edges={"S": broken}).execute([STOP])
    assert (out.status, out.reason) == (
        "refused",
        "loan L-9 is not on the chain; the edge of site S: edge unreachable",
    )
    other = Port(["X"])
    (out,) = await Executor("bank", Recorder(VALID), empty, edges={"T": other}).execute([STOP])
    assert other.calls == [] and out.detail["edge"] is False

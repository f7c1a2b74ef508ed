"""``tally demo``'s warehouse-receipt financing story, on the real telemetry and the real chain.

A small steel trader (a party of the bank, simulated) stores two lots of steel coil in the
warehouse; the load cell and the RFID gate measure them, the edge signs and batches the
readings, the cloud stores them and the chain anchors the batches. Then, each step a
ledger transaction checked by the contracts:

1. the warehouse issues a receipt per lot on that IoT evidence (the proven readings);
2. a forged extra receipt beyond the measured stock is refused, with the numbers;
3. the trader pledges the first receipt to the bank, which lends against it and pays the
   mill by entrusted payment (a posting in the bank's book, anchored);
4. a second bank tries to take the same receipt as collateral and is refused;
5. the trader repays part; the collateral is released pro rata; the release order reaches
   the site's edge and the released coils leave through the gate;
6. the steel price falls through the warning line: the bank's monitor issues a margin call
   (on chain); the trader cures it by pledging the second receipt (top-up);
7. at 02:00 goods leave the pledged location with no release order: the edge's signed
   event reaches the bank's monitor, a critical alert with its evidence bundle.

:meth:`FinanceStory.scenarios` lists each step with what was expected and what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tally.cloud.storage.api import Storage
from tally.device.sim import Site
from tally.edge.gateway import EdgeGateway
from tally.finance.actions import Executor
from tally.finance.book import Book, anchored_in, consortium_anchor
from tally.finance.contracts.coverage import money
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_model import CommodityParams, Loan, PledgedReceipt
from tally.finance.orders import OrderFeed, ReleaseOrder
from tally.finance.prices import PriceTick, RandomWalk
from tally.ledger.consortium import Consortium
from tally.sim.finance_chain import (
    CURE_MS,
    DISPOSAL,
    HAIRCUT,
    MILL,
    PLEDGE_RATE,
    PRICE0,
    STEEL,
    TRADER,
    WARNING,
    FinanceChain,
)
from tally.sim.finance_purchase import Purchase, Sealing
from tally.sim.finance_steps import Steps
from tally.sim.finance_watch import MonitorFeed

LOT_WEIGHTS = (Decimal("12.000"), Decimal("8.000"))
"""The trader's two lots of steel coil (t)."""


@dataclass
class Scenario:
    """One step of the story: what the rules say must happen, and what did."""

    name: str
    expected: str
    outcome: str = "did not happen in this run"
    ok: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "outcome": self.outcome,
            "ok": self.ok,
            "detail": jsonable(self.detail),
            "evidence": self.evidence,
        }


def jsonable(value: Any) -> Any:
    """``value`` with Decimals as text and bytes as hex, for the JSON report."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


EXPECTED = {
    "receipts issued on IoT evidence": "the warehouse issues a receipt per lot, each linked to "
    "the proven load-cell weighing and RFID in-scan",
    "over-issue refused": "a receipt beyond the measured stock less tolerance is refused with "
    "the numbers",
    "pledge and loan": "the receipt is pledged to the bank; the loan is approved within the "
    "pledge rate and paid to the seller by entrusted payment, anchored in the bank's book",
    "double pledge refused": "a second bank's pledge of the same receipt is refused",
    "partial repayment releases collateral": "a partial repayment releases the same share of "
    "the collateral; the release order reaches the edge and the goods leave without an alert",
    "margin call": "a price fall through the warning line triggers a margin call on chain; "
    "releases are blocked",
    "margin call cured by top-up": "pledging more goods brings coverage back above the warning "
    "line and ends the margin call",
    "night removal alert": "goods leaving a pledged location without a release order raise a "
    "critical alert carrying the edge's signed evidence",
    "books reconcile": "every posting in the bank's book balances and is anchored on the chain",
}


class FinanceStory:
    """The story's state; :class:`tally.sim.finance_steps.Steps` drives it."""

    def __init__(
        self,
        consortium: Consortium,
        site: Site,
        location: str,
        clock: Any,
        data_dir: Path,
        *,
        bank: str,
        bank_b: str,
        warehouse: str,
        logistics: str,
        seed: int,
        removal_at: int,
        sealing: Sealing | None = None,
    ) -> None:
        self.chain = FinanceChain(consortium, bank, bank_b, warehouse)
        self.site = site
        self.location = location
        self.clock = clock
        self.removal_at = removal_at
        """When the goods go missing (the site's scripted incident): an alert before it is false."""
        self.scenario = {name: Scenario(name, text) for name, text in EXPECTED.items()}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.purchase = Purchase(
            self.chain, data_dir, warehouse=warehouse, logistics=logistics, sealing=sealing
        )
        self.book = Book(
            f"sqlite:///{data_dir / 'bank-book.db'}",
            bank,
            suite=consortium.genesis.suite,
            anchor=consortium_anchor(consortium, bank),
            clock=clock,
        )
        self.monitor = CollateralMonitor(bank)
        self.prices = RandomWalk(
            {STEEL: PRICE0}, seed=seed, t0_ms=clock(), step_ms=60_000, step_bp=20
        )
        self.lots: list[str] = []
        self.receipts: list[str] = []
        self.loan_id = "LN-DEMO-0001"
        self.orders: OrderFeed | None = None
        self.feed: MonitorFeed | None = None
        self.alerts: list[dict[str, Any]] = []
        self.intents: list[Any] = []
        """The monitor's intents not carried out yet."""
        self.on_alerts: Callable[[list[Any]], None] | None = None
        self.actions: list[dict[str, Any]] = []
        """What the executor did with each intent (the report's ``finance.actions``)."""
        self.executor: Executor | None = None
        self.steps = Steps(self)
        self.export_missing: list[str] = []

    # -- the run -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Set up the chain, the book and the monitor; the trader's lots arrive at the dock."""
        await self.chain.setup()
        t = self.clock()
        for w in LOT_WEIGHTS:
            lot = self.site.receive(self.location, w, STEEL, t)
            self.lots.append(lot.lot_id)
        self.site.held.add(self.location)
        for org, purpose in (
            (TRADER, "deposit"),
            (TRADER, "loans"),
            (TRADER, "margin"),
            (MILL, "deposit"),
        ):
            self.book.open_account(org, purpose)
        for purpose in ("settlement", "interest_income"):
            self.book.open_account(self.chain.bank, purpose)
        params = CommodityParams(HAIRCUT, PLEDGE_RATE, WARNING, DISPOSAL, CURE_MS)
        self.monitor.set_params(STEEL, params, t)
        self.monitor.add_device(
            self.site.locations[self.location], self.site.site_id, self.location
        )
        others = sum(
            (
                lot.quantity_t
                for lot in self.site.lots_in(self.location)
                if lot.lot_id not in self.lots
            ),
            Decimal(0),
        )
        self.monitor.set_other_claims(self.site.site_id, self.location, others, t)
        self.apply_price(self.prices.step()[0])

    async def step(self, storage: Storage, client: httpx.AsyncClient, gateway: EdgeGateway) -> None:
        """Advance the story as far as the site's data allows; called from the demo's loop."""
        if self.orders is None:

            def revoke(ref: str) -> None:  # outbound stopped: neither the edge nor the monitor
                gateway.revoke_release(ref)  # may count the order any more
                self.monitor.revoke_release(ref)

            self.orders = OrderFeed(self.site.site_id, gateway.authorise_release, revoke)
            self.executor = Executor(
                self.chain.bank,
                self.chain.c,
                self.chain.c.peers[self.chain.bank].state,
                edges={self.site.site_id: self.orders},
            )
        if self.feed is None:
            watched = [self.site.locations[self.location]]
            if self.site.gate is not None:
                watched.append(self.site.gate.device_id)
            self.feed = MonitorFeed(storage, self.site.site_id, self.monitor, watched)
        self.note(await self.feed.poll(self.clock()))
        self.note(self.monitor.advance(self.clock()))
        await self.run_intents()
        await self.steps.advance(storage, client)
        self.orders.poll(self.chain.c.peers[self.chain.bank].state)

    async def run_intents(self) -> list[Any]:
        """Carry out what the monitor asked for (margin calls, freezes, stops, defaults)."""
        todo, self.intents = self.intents, []
        if not todo or self.executor is None:
            return []
        done = await self.executor.execute(todo)
        for o in done:
            self.actions.append(
                {
                    "action": o.intent.action,
                    "target": o.intent.target,
                    "status": o.status,
                    "reason": o.reason,
                }
            )
        heights = [r.height for o in done for r in o.txs]
        if heights:
            await self.chain.c.wait_height(max(heights))
        return done

    async def export(self, client: httpx.AsyncClient) -> None:
        """Make the proof bundles the scenarios cite (after the anchors are drained)."""
        self.export_missing = await self.steps.export(client)

    async def finish(self) -> None:
        """Reconcile the bank's book against the chain; check that the authorised pick-up
        raised no removal alert."""
        early = [
            a
            for a in self.alerts
            if a["kind"] == "unauthorised_removal" and a["t"] < self.removal_at
        ]
        released = self.scenario["partial repayment releases collateral"]
        if early and released.ok:
            released.ok = False
            released.outcome += f"; but {len(early)} removal alert(s) before the removal"
        sc = self.scenario["books reconcile"]
        state = self.chain.c.peers[self.chain.bank].state
        report = self.book.reconcile(anchored_in(state))
        sc.detail = {"postings": report.postings, "anchored": report.anchored}
        sc.ok = report.clean and report.postings > 0 and report.anchored == report.postings
        sc.outcome = (
            f"{report.postings} postings, {report.anchored} anchored, balanced"
            if sc.ok
            else "; ".join(report.discrepancies) or "no postings"
        )
        self.book.close()
        self.purchase.close()

    def scenarios(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.scenario.values()]

    def summary(self) -> dict[str, Any]:
        """The report's ``finance`` key: the loan as the chain and the monitor see it."""
        out: dict[str, Any] = {
            "simulated": True,
            "commodity": STEEL,
            "borrower": TRADER,
            "location": f"{self.site.site_id}/{self.location}",
            "receipts": list(self.receipts),
            "alerts": self.alerts,
            "release_orders_at_edge": [o.id for o in self.orders.handed] if self.orders else [],
            "monitor_errors": self.feed.errors if self.feed else [],
            "bundles_missing": self.export_missing,
            "actions": self.actions,
        }
        if self.loan_id in self.monitor.loan_ids():
            loan = self.chain.loan(self.loan_id)
            cov = self.monitor.coverage(self.loan_id)
            out["loan"] = {
                "id": self.loan_id,
                "state": loan["state"],
                "principal": loan["principal"],
                "receipts": loan["receipts"],
                "monitor_state": self.monitor.state(self.loan_id),
                "monitor_coverage": None if cov is None else str(cov),
            }
        return out

    def write_bundles(self, out: Path) -> None:
        """Write the proof bundles the scenarios cite (``bundles/finance/<name>``)."""
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.steps.bundles.items():
            (out / name).write_bytes(data)

    # -- helpers the steps use ---------------------------------------------------------------

    def done(self, name: str, ok: bool, outcome: str, **detail: Any) -> Scenario:
        sc = self.scenario[name]
        sc.ok, sc.outcome = ok, outcome
        sc.detail.update(detail)
        return sc

    def note(self, result: Any) -> None:
        """Keep the monitor's alerts (JSON-ready) for the report and the steps, and count
        them where the bank's operators watch (``on_alerts``: the cloud's metrics)."""
        if result.alerts and self.on_alerts is not None:
            self.on_alerts(result.alerts)
        for a in result.alerts:
            self.alerts.append(
                {
                    "kind": a.kind,
                    "loan": a.loan,
                    "severity": a.severity,
                    "t": a.t,
                    "coverage_before": None
                    if a.coverage_before is None
                    else str(a.coverage_before),
                    "coverage_after": None if a.coverage_after is None else str(a.coverage_after),
                    "evidence": [
                        {"kind": r.kind, "id": r.id, "hash": r.hash.hex()} for r in a.evidence
                    ],
                }
            )
        self.intents.extend(result.intents)

    def apply_price(self, tick: PriceTick) -> None:
        self.note(self.monitor.apply_price(tick))

    def monitored_loan(self, principal: int) -> Loan:
        held = []
        for no in self.chain.loan(self.loan_id)["receipts"]:
            rec = self.chain.receipt(no)
            held.append(
                PledgedReceipt(no, rec["site"], rec["location"], rec["lot"], rec["weight"], STEEL)
            )
        return Loan(self.loan_id, self.chain.bank, TRADER, principal, 0, STEEL, tuple(held))

    def order_reached_edge(self, order: ReleaseOrder) -> bool:
        return self.orders is not None and any(o.id == order.id for o in self.orders.handed)

    async def post(self, posting_id: str, draft: Any) -> bytes:
        """Book ``draft`` and return the anchored hash the loan contract records."""
        posting = await self.book.post(posting_id, draft)
        return posting.anchor_hash

    @staticmethod
    def yuan(minor: int) -> str:
        return money(minor)

"""The steps of the demo's financing story (:mod:`tally.sim.finance_story`), in order.

Each phase waits for what the site and the chain must have done first (the lots weighed
and anchored, the release order at the edge, 02:00) and then runs its transactions.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

import httpx

from tally.cloud.storage.api import Storage
from tally.device.envelope import Reading, parse_envelope
from tally.finance import book_postings as P
from tally.finance.keys import relord_prefix
from tally.finance.monitor_model import PledgedReceipt, Ref
from tally.finance.orders import ReleaseOrder
from tally.finance.prices import PriceTick
from tally.ledger.errors import LedgerError
from tally.sim.finance_chain import (
    MILL,
    PLEDGE_RATE,
    RATE,
    STEEL,
    TRADER,
    Outcome,
    receipt_fields,
)
from tally.sim.finance_purchase import PURCHASE
from tally.sim.finance_watch import chain_has_batch, evidence_of, find_reading
from tally.sim.receivables_docs import Shipment

if TYPE_CHECKING:
    from tally.sim.finance_story import FinanceStory

SETTLE_MS = 20_000
"""A weighing counts as evidence this long after the lot came to rest (the platform settles)."""
DAY_MS = 86_400_000
REPAY_SHARE = Decimal("0.3")
PRICE_SHOCK = Decimal("0.85")
SHOCK_AFTER_MS = 3 * 60_000
"""Simulated time from the goods' pick-up to the price fall."""


class Steps:
    def __init__(self, story: FinanceStory) -> None:
        self.s = story
        self.phase = "evidence"
        self.bundles: dict[str, bytes] = {}
        """Proof bundles the scenarios cite, by file name (made by :meth:`export`)."""
        self.cites: list[tuple[str, str, str, bytes]] = []
        """(scenario, file name, "item" or "tx", item hash or transaction id) to export."""
        self.shock_at: int | None = None
        self.next_tick = 0
        self.picked_up_at: int | None = None
        self.r1_weight = Decimal(0)
        self.orders: list[ReleaseOrder] = []
        self.shipment: Shipment | None = None

    def cite(self, scenario: str, name: str, kind: str, ref: bytes) -> None:
        """Have :meth:`export` prove ``ref`` (a stored item or a transaction) for ``scenario``."""
        if ref:
            self.cites.append((scenario, name, kind, ref))

    async def export(self, client: httpx.AsyncClient) -> list[str]:
        """Make the bundles the scenarios cite (once their batches are anchored and their
        checkpoints final: at the end of the run); return what could not be made."""
        missing: list[str] = []
        for scenario, name, kind, ref in self.cites:
            if kind == "tx":
                try:
                    data = await self.s.chain.tx_bundle(ref)
                except LedgerError as exc:
                    missing.append(f"{name}: {exc}")
                    continue
            else:
                resp = await client.get(f"/v1/proofs/items/{ref.hex()}")
                if resp.status_code != 200:
                    missing.append(f"{name}: the cloud answered {resp.status_code}")
                    continue
                data = resp.content
            self.bundles[name] = data
            self.s.scenario[scenario].evidence.append(f"bundles/finance/{name}")
        return missing

    async def advance(self, storage: Storage, client: httpx.AsyncClient) -> None:
        s = self.s
        if self.phase == "evidence" and await self._issue(storage, client):
            self.phase = "lend"
        if self.phase == "lend":
            await self._lend()
            self.phase = "repay"
        if self.phase == "repay":
            await self._repay()
            self.phase = "pickup"
        if self.phase == "pickup" and self._pick_up():
            self.phase = "market"
        if self.phase in ("market", "watch"):
            self._tick_prices()
        if self.phase == "market" and self.shock_at is not None and s.clock() >= self.shock_at:
            await self._margin_call()
            await self._top_up()
            self.phase = "watch"
        if self.phase == "watch" and await self._removal():
            self.phase = "done"

    # -- 1, 2: receipts on IoT evidence, and the forged one ------------------------------------

    async def _issue(self, storage: Storage, client: httpx.AsyncClient) -> bool:
        s = self.s
        site = s.site
        anchored = chain_has_batch(s.chain.state)
        lots = [site.lots[lot] for lot in s.lots]
        rested = max(lot.on_platform_ms for lot in lots) + SETTLE_MS
        cell = site.locations[s.location]
        weighing = find_reading(storage, cell, rested, anchored, lambda r: r.label("stable") != "0")
        if weighing is None or site.gate is None:
            return False
        scans = []
        for lot in lots:

            def in_scan(r: Reading, lot_id: str = lot.lot_id) -> bool:
                return r.label("lot") == lot_id and r.label("direction") == "in"

            scan = find_reading(storage, site.gate.device_id, rested - 600_000, anchored, in_scan)
            if scan is None:
                return False
            scans.append(scan)
        before = find_reading(
            storage,
            cell,
            0,
            anchored,
            lambda r: r.label("stable") != "0" and r.t < min(lot.on_platform_ms for lot in lots),
        )
        if before is None:
            return False
        w0, w1 = (parse_envelope(x.cose)[1].value("weight") for x in (before, weighing))
        if w0 is None or w1 is None:
            return False
        self.shipment = Shipment(
            (w1 - w0).quantize(Decimal("0.001")),
            weighing.t,
            (before.hash, weighing.hash),
            site.site_id,
        )
        w_ev, _ = await evidence_of(client, weighing)
        issue = "receipts issued on IoT evidence"
        self.cite(issue, "receipt-weighing.cbor", "item", weighing.hash)
        issued: list[dict[str, Any]] = []
        t = s.clock()
        for n, (lot, scan) in enumerate(zip(lots, scans, strict=True), start=1):
            s_ev, _ = await evidence_of(client, scan)
            self.cite(issue, f"receipt-{n}-in-scan.cbor", "item", scan.hash)
            no = f"WR-{site.site_id}-{n:04d}"
            fields = receipt_fields(no, lot.lot_id, lot.quantity_t, site.site_id, s.location, t)
            out = await s.chain.call("receipts", "issue", [fields, [w_ev, s_ev]], s.chain.warehouse)
            if out.ok:
                s.receipts.append(no)
                self.cite(issue, f"receipt-{n}-issue-tx.cbor", "tx", out.tx_id)
                issued.append(
                    {
                        "no": no,
                        "weight": str(lot.quantity_t),
                        "height": out.height,
                        "live_after": str(out.result["live"]),
                        "allowed": str(out.result["allowed"]),
                    }
                )
            else:
                issued.append({"no": no, "refused": out.text})
        ok = len(s.receipts) == len(lots)
        s.done(
            issue,
            ok,
            f"{len(s.receipts)} of {len(lots)} receipts issued",
            receipts=issued,
        )
        await self._forge(w_ev, issued, t)
        return True

    async def _forge(self, evidence: dict[str, Any], issued: list[dict[str, Any]], t: int) -> None:
        s = self.s
        last = next((r for r in reversed(issued) if "allowed" in r), None)
        room = Decimal(last["allowed"]) - Decimal(last["live_after"]) if last else Decimal(0)
        weight = (room + Decimal("40")).quantize(Decimal("0.001"))
        no = f"WR-{s.site.site_id}-9999"
        fields = receipt_fields(no, "LOT-NONEXISTENT", weight, s.site.site_id, s.location, t)
        out = await s.chain.call("receipts", "issue", [fields, [evidence]], s.chain.warehouse)
        ok = not out.ok and "would bring live receipts to" in out.text
        s.done(
            "over-issue refused",
            ok,
            f"refused: {out.text}" if not out.ok else "ISSUED — the stock check did not hold",
            weight=str(weight),
        )

    # -- 3, 4: pledge, loan, entrusted payment; the second bank ------------------------------

    async def _lend(self) -> None:
        s, c = self.s, self.s.chain
        if not s.receipts:
            return
        r1 = s.receipts[0]
        ordered = sum((s.site.lots[lot].quantity_t for lot in s.lots), Decimal(0))
        if self.shipment is None:
            return
        trade = await s.purchase.reconcile(ordered, self.shipment, s.clock())
        pledge = await c.pledge(r1, c.bank)
        rec = c.receipt(r1)
        self.r1_weight = rec["weight"]
        value = rec["weight"] * s.chain.price(STEEL)
        amount = int((PLEDGE_RATE * value * 100).to_integral_value(rounding=ROUND_FLOOR))
        steps: dict[str, str] = {"pledge": pledge.text}
        applied = await c.apply(s.loan_id, [r1], amount)
        steps["apply"] = applied.text
        steps["trade"] = (
            f"{PURCHASE} {trade.status}"
            + (f" ({'; '.join(trade.reasons)})" if trade.reasons else "")
            if trade is not None
            else f"{PURCHASE} not judged"
        )
        attached = await c.call("loans", "attach_trade", [s.loan_id, PURCHASE], c.bank)
        steps["attach_trade"] = attached.text
        approved = await c.call("loans", "approve", [s.loan_id, RATE], c.bank)
        steps["approve"] = approved.text
        paid = False
        if approved.ok:
            draft = P.disbursement(c.bank, s.loan_id, TRADER, MILL, amount)
            h = await s.post(f"{s.loan_id}-disbursement", draft)
            disbursed = await c.call("loans", "disburse", [s.loan_id, h], c.bank)
            steps["disburse"] = disbursed.text
            paid = disbursed.ok
            self.cite("pledge and loan", "pledge-tx.cbor", "tx", pledge.tx_id)
            self.cite(
                "pledge and loan",
                "purchase-attest-tx.cbor",
                "tx",
                s.purchase.attested.tx_id if s.purchase.attested else b"",
            )
            self.cite("pledge and loan", "attach-trade-tx.cbor", "tx", attached.tx_id)
            self.cite("pledge and loan", "disburse-tx.cbor", "tx", disbursed.tx_id)
            if paid:
                s.note(s.monitor.add_loan(s.monitored_loan(amount), s.clock()))
        s.done(
            "pledge and loan",
            pledge.ok and paid,
            f"{r1} pledged to {c.bank}; loan of {s.yuan(amount)} on the reconciled purchase "
            f"{PURCHASE}, paid to {MILL}"
            if paid
            else "; ".join(f"{k}: {v}" for k, v in steps.items()),
            amount=amount,
            steps=steps,
        )
        double = await c.pledge(r1, c.bank_b)
        ok = not double.ok and f"pledged to {c.bank}" in double.text
        s.done(
            "double pledge refused",
            ok,
            f"refused: {double.text}" if not double.ok else "PLEDGED TWICE",
        )

    # -- 5: partial repayment, pro-rata release, the order at the edge -------------------------

    async def _repay(self) -> None:
        s, c = self.s, self.s.chain
        sc = s.scenario["partial repayment releases collateral"]
        if s.monitor.loan_ids() == []:
            return
        loan = c.loan(s.loan_id)
        part = int(loan["principal"] * REPAY_SHARE)
        await s.post(f"{s.loan_id}-funds-1", P.settlement(c.bank, TRADER, part))
        h = await s.post(f"{s.loan_id}-repayment-1", P.repayment(c.bank, s.loan_id, TRADER, part))
        out = await c.call("loans", "repay", [s.loan_id, part, h], c.bank)
        if not out.ok:
            s.done(sc.name, False, f"repayment refused: {out.text}")
            return
        self.cite(sc.name, "repay-tx.cbor", "tx", out.tx_id)
        after = c.loan(s.loan_id)
        orders = [
            o
            for k, v, _ in c.c.peers[c.bank].state.range(relord_prefix(s.site.site_id))
            if (o := ReleaseOrder.from_state(k, v)).loan == s.loan_id
        ]
        t = s.clock()
        released = sum((o.weight for o in orders), Decimal(0))
        for o in orders:
            s.monitor.authorise_release(o)
        # the loan now holds the pledged remainder: the monitor takes it as the chain has it
        s.note(s.monitor.remove_loan(s.loan_id, t))
        s.note(s.monitor.add_loan(s.monitored_loan(after["principal"]), t))
        assert s.orders is not None
        s.orders.poll(c.c.peers[c.bank].state)
        sc.detail = {
            "repaid": part,
            "principal": after["principal"],
            "released_t": str(released),
            "orders": [o.id for o in orders],
            "interest_paid": out.result["interest_paid"],
        }
        self.orders = orders

    def _pick_up(self) -> bool:
        s = self.s
        sc = s.scenario["partial repayment releases collateral"]
        orders = self.orders
        at_edge = [o for o in orders if s.order_reached_edge(o)]
        if not orders or len(at_edge) != len(orders):
            return bool(sc.outcome.startswith("repayment refused"))
        t = s.clock()
        for o in orders:
            s.site.pick_up(s.lots[0], o.weight, t, o.id)
        self.picked_up_at = t
        self.shock_at = t + SHOCK_AFTER_MS
        repaid, left = sc.detail["repaid"], sc.detail["principal"]
        expected = self.r1_weight * repaid / (repaid + left)
        released = Decimal(sc.detail["released_t"])
        sc.ok = abs(released - expected) <= Decimal("0.001") and bool(at_edge)
        sc.outcome = (
            f"{released} t released with {sc.detail['repaid'] / 100:.2f} CNY repaid; "
            f"order {orders[0].id} at the edge; the coils left through the gate"
        )
        return True

    # -- 6: the price falls; margin call; top-up -------------------------------------------------

    def _tick_prices(self) -> None:
        s = self.s
        if s.clock() < self.next_tick:
            return
        tick = s.prices.step()[0]
        self.next_tick = tick.t_ms + s.prices.step_ms
        s.apply_price(tick)

    async def _margin_call(self) -> None:
        s, c = self.s, self.s.chain
        t = s.clock()
        price = (s.prices.prices()[STEEL] * PRICE_SHOCK).quantize(Decimal("0.01"))
        priced = await c.must("market", "set_price", [STEEL, price, "CNY"], c.bank)
        self.cite("margin call", "price-tx.cbor", "tx", priced.tx_id)
        tick = PriceTick(STEEL, price, "CNY", t, "simulated")
        before = len(s.alerts)
        s.apply_price(tick)
        calls = [a for a in s.alerts[before:] if a["kind"] == "margin_call"]
        chain_cov = c.chain_coverage(s.loan_id, t)
        # the bank's executor carries out the monitor's intent: the margin call on chain
        done = [o for o in await s.run_intents() if o.intent.action == "loans.margin_call"]
        out = Outcome(False, "the monitor asked for no margin call")
        if done:
            o = done[0]
            tx = o.txs[0] if o.txs else None
            text = o.status + (f": {o.reason}" if o.reason else "")
            out = Outcome(
                o.status == "done", text, None, tx.height if tx else 0, tx.tx_id if tx else b""
            )
        if out.ok:
            self.cite("margin call", "margin-call-tx.cbor", "tx", out.tx_id)
        blocked = await c.call(
            "receipts", "release", [c.loan(s.loan_id)["receipts"][0], Decimal("1")], c.bank
        )
        ok = bool(calls) and out.ok and not blocked.ok and "margin call" in blocked.text
        s.done(
            "margin call",
            ok,
            f"price {price} CNY/t: monitor coverage {calls[0]['coverage_after'] if calls else '?'}"
            f", chain coverage {chain_cov}; margin call {out.text}; a release: {blocked.text}",
            price=str(price),
            chain_coverage=str(chain_cov),
        )

    async def _top_up(self) -> None:
        s, c = self.s, self.s.chain
        if len(s.receipts) < 2:
            return
        r2 = s.receipts[1]
        pledge = await c.pledge(r2, c.bank)
        out = await c.call("loans", "top_up", [s.loan_id, [r2]], c.bank)
        if out.ok:
            self.cite("margin call cured by top-up", "top-up-tx.cbor", "tx", out.tx_id)
        rec = c.receipt(r2)
        held = PledgedReceipt(r2, rec["site"], rec["location"], rec["lot"], rec["weight"], STEEL)
        before = len(s.alerts)
        s.note(
            s.monitor.top_up(s.loan_id, [held], s.clock(), Ref("tx", f"loans.top_up@{out.height}"))
        )
        cured = [a for a in s.alerts[before:] if a["kind"] == "cured"]
        ok = pledge.ok and out.ok and bool(out.result and out.result["cured"]) and bool(cured)
        s.done(
            "margin call cured by top-up",
            ok,
            f"{r2} pledged and added; chain coverage {out.result['coverage'] if out.ok else '?'}"
            f", loan {out.result['state'] if out.ok else out.text}; monitor: "
            f"{s.monitor.state(s.loan_id)}",
        )

    # -- 7: the night removal ------------------------------------------------------------------

    async def _removal(self) -> bool:
        s = self.s
        alert = next(
            (a for a in s.alerts if a["kind"] == "unauthorised_removal" and a["t"] >= s.removal_at),
            None,
        )
        if alert is None:
            return False
        sc = s.done(
            "night removal alert",
            alert["severity"] == "critical",
            f"{alert['severity']} alert {alert['kind']} on loan {alert['loan']}, "
            f"{(alert['t'] - s.removal_at) / 1000:.0f} s of site time after the removal",
            alert=alert,
        )
        for n, ref in enumerate(e for e in alert["evidence"] if e["hash"]):
            name = f"night-removal-{n + 1}-{ref['kind']}.cbor"
            self.cite(sc.name, name, "item", bytes.fromhex(ref["hash"]))
        return True

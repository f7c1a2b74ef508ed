"""The steps of the demo's receivables story (:mod:`tally.sim.receivables_story`), in order.

Each phase waits for what must have happened first (the delivery weighed and anchored, the
note's due time) and then runs its transactions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from tally.cloud.storage.api import Storage
from tally.device.envelope import parse_envelope
from tally.finance.consent import make_consent
from tally.finance.fourflow import ReconResult
from tally.ledger.errors import LedgerError
from tally.sim.finance_chain import Outcome
from tally.sim.finance_watch import chain_has_batch, find_reading
from tally.sim.receivables_docs import Shipment

if TYPE_CHECKING:
    from tally.sim.receivables_story import ReceivablesStory

DELIVERED = Decimal("8.000")
"""The tonnes of steel strip delivered (the devices measure what actually arrived)."""
TERM_MS = 20 * 60_000
"""The demo's notes fall due 20 simulated minutes after issue (see the module docstring)."""
DAY_MS = 86_400_000
SETTLE_MS = 20_000


class RSteps:
    def __init__(self, story: ReceivablesStory) -> None:
        self.s = story
        self.phase = "evidence"
        self.lot = ""
        self.before: int | None = None
        self.due = 0
        self.notes: dict[str, dict[str, Any]] = {}
        self.bundles: dict[str, bytes] = {}
        self.cites: list[tuple[str, str, str, bytes]] = []

    def deliver(self) -> None:
        s = self.s
        lot = s.site.receive(s.location, DELIVERED, "cold-rolled steel strip", s.clock())
        s.site.held.add(s.location)
        self.lot = lot.lot_id

    async def advance(self, storage: Storage, client: httpx.AsyncClient) -> None:
        if self.phase == "evidence":
            shipped = self._measured(storage)
            if shipped is not None:
                await self._paper(shipped)
                await self._issue()
                await self._tiers()
                self.phase = "maturity"
        if self.phase == "maturity" and self.s.clock() >= self.due:
            await self._settle()
            self.phase = "done"

    def cite(self, scenario: str, name: str, kind: str, ref: bytes) -> None:
        if ref:
            self.cites.append((scenario, name, kind, ref))

    async def export(self, client: httpx.AsyncClient) -> list[str]:
        missing: list[str] = []
        for scenario, name, kind, ref in self.cites:
            try:
                if kind == "tx":
                    data = await self.s.chain.tx_bundle(ref)
                else:
                    resp = await client.get(f"/v1/proofs/items/{ref.hex()}")
                    resp.raise_for_status()
                    data = resp.content
            except (LedgerError, httpx.HTTPError) as exc:
                missing.append(f"{name}: {exc}")
                continue
            self.bundles[name] = data
            self.s.scenario[scenario].evidence.append(f"bundles/receivables/{name}")
        return missing

    # -- the delivery, as the devices saw it ---------------------------------------------------

    def _measured(self, storage: Storage) -> Shipment | None:
        """The weight the load cell gained with the delivery: a stable anchored reading from
        before the lot arrived and one after it came to rest."""
        s = self.s
        lot = s.site.lots[self.lot]
        cell = s.site.locations[s.location]
        anchored = chain_has_batch(s.chain.state)
        after = find_reading(
            storage,
            cell,
            lot.on_platform_ms + SETTLE_MS,
            anchored,
            lambda r: r.label("stable") != "0",
        )
        before = find_reading(
            storage,
            cell,
            0,
            anchored,
            lambda r: r.label("stable") != "0" and r.t < lot.on_platform_ms,
        )
        if after is None or before is None:
            return None
        w1 = parse_envelope(after.cose)[1].value("weight")
        w0 = parse_envelope(before.cose)[1].value("weight")
        if w1 is None or w0 is None:
            return None
        scenario = "trade reconciled on four flows"
        self.cite(scenario, "delivery-before.cbor", "item", before.hash)
        self.cite(scenario, "delivery-after.cbor", "item", after.hash)
        q = (w1 - w0).quantize(Decimal("0.001"))
        return Shipment(q, after.t, (before.hash, after.hash), s.site.site_id)

    # -- the paper of every trade, reconciled and attested ------------------------------------

    async def _trade(
        self, trade: str, seller: str, invoiced: Decimal, shipped: Shipment, invoice_no: str, t: int
    ) -> ReconResult | None:
        s, p = self.s, self.s.paper
        window = (t - 10 * DAY_MS, t + 10 * DAY_MS)
        await p.contract(trade, seller, s.core, DELIVERED, t - DAY_MS, window)
        await p.invoice(trade, trade, seller, s.core, invoiced, invoice_no, t)
        await p.logistics(trade, seller, s.core, s.logistics, s.warehouse, shipped, t)
        result = s.reconcile(trade)
        if result is not None:
            record = result.record(s.c.genesis.suite)
            out = await s.chain.call("trades", "attest", [trade, record], s.bank)
            if out.ok and trade == "TR-1":
                self.cite("trade reconciled on four flows", "attest-TR-1.cbor", "tx", out.tx_id)
        return result

    async def _paper(self, shipped: Shipment) -> None:
        from tally.sim.receivables_story import SHELL, TIER1, TIER2

        s = self.s
        t = s.clock()
        ok1 = await self._trade("TR-1", TIER1, DELIVERED, shipped, "31000000000000000001", t)
        # the same invoice number again, for another trade of the same goods
        await self._trade("TR-2", TIER1, DELIVERED, shipped, "31000000000000000001", t)
        # twice the delivered quantity invoiced
        await self._trade("TR-3", TIER1, DELIVERED * 2, shipped, "31000000000000000003", t)
        # a cycle: tier 2 sells to the core enterprise, which sells to a trading company, which
        # sells back to tier 2 (the same goods going round: A→B→C→A)
        window = (t - 10 * DAY_MS, t + 10 * DAY_MS)
        await s.paper.contract("TR-5", s.core, SHELL, DELIVERED, t - DAY_MS, window)
        await s.paper.contract("TR-6", SHELL, TIER2, DELIVERED, t - DAY_MS, window)
        for edge in ("TR-5", "TR-6"):  # their contracts are edges of the trade graph
            s.reconcile(edge)
        await self._trade("TR-4", TIER2, DELIVERED, shipped, "31000000000000000004", t)
        ok = ok1 is not None and ok1.status == "reconciled"
        s.done(
            "trade reconciled on four flows",
            ok and not s.paper.anchored,
            f"TR-1 {ok1.status if ok1 else 'not judged'}: {len(ok1.checks) if ok1 else 0} "
            f"checks, {shipped.quantity} t measured by the dock's load cell; amount "
            f"{ok1.amount / 100 if ok1 else 0:.2f} CNY may be financed",
            checks=[c.as_map() for c in ok1.checks] if ok1 else [],
        )

    # -- notes ---------------------------------------------------------------------------------

    async def _issue(self) -> None:
        from tally.sim.receivables_story import TIER1, TIER2

        s, c = self.s, self.s.chain
        t = s.clock()
        self.due = t + TERM_MS
        tr = s.results.get("TR-1")
        amount = tr.amount if tr else 0
        issued = await c.call("notes", "issue", ["N-1", TIER1, amount, self.due, "TR-1"], s.core)
        accepted = await self._holder("notes", "accept", "N-1", TIER1, None, [])
        confirmed = await c.call("notes", "confirm", ["N-1"], s.bank)
        self.cite("note issued, accepted and confirmed", "issue-tx.cbor", "tx", issued.tx_id)
        self.cite("note issued, accepted and confirmed", "confirm-tx.cbor", "tx", confirmed.tx_id)
        line = s.credit()
        s.done(
            "note issued, accepted and confirmed",
            issued.ok and accepted.ok and confirmed.ok and line.get("used") == amount,
            f"N-1 of {amount / 100:.2f} CNY to {TIER1}: issue {issued.text}; accept "
            f"{accepted.text}; confirm {confirmed.text}; credit line used {line.get('used')}",
        )
        late = t + 548 * DAY_MS
        frauds = [
            ("re-used invoice refused", ["N-2", TIER1, amount, self.due, "TR-2"], "already backs"),
            (
                "inflated invoice refused",
                ["N-3", TIER1, amount, self.due, "TR-3"],
                "not reconciled",
            ),
            ("circular trade refused", ["N-4", TIER2, amount, self.due, "TR-4"], "not reconciled"),
            ("18-month term refused", ["N-5", TIER1, amount, late, "TR-1"], "exceeds the maximum"),
        ]
        for name, args, expect in frauds:
            out = await c.call("notes", "issue", args, s.core)
            ok = not out.ok and expect in out.text
            s.done(name, ok, f"refused: {out.text}" if not out.ok else "ISSUED — not caught")
        circ = s.results.get("TR-4")
        s.scenario["circular trade refused"].detail["reconciliation"] = (
            list(circ.reasons) if circ else []
        )

    async def _holder(
        self,
        contract: str,
        fn: str,
        note: str,
        holder: str,
        terms: Any,
        args: list[Any],
        creator: str | None = None,
    ) -> Outcome:
        """``fn`` on ``note`` with its holder's consent (made at the note's current seq)."""
        s = self.s
        rec = s.note(note)
        key = s.companies[holder].key
        act, seq = f"{contract}.{fn}", rec.get("seq", 0)
        consent = make_consent(key, s.chain.chain_id, holder, act, note, seq, terms)
        return await s.chain.call(contract, fn, [note, *args, consent], creator or s.bank)

    async def _tiers(self) -> None:
        from tally.sim.receivables_story import TIER1, TIER2

        s = self.s
        n1 = s.note("N-1")
        if n1.get("state") != "live":
            return
        part = n1["amount"] * 4 // 10
        kids = [{"id": "N-1.1", "amount": part}, {"id": "N-1.2", "amount": n1["amount"] - part}]
        split = await self._holder("notes", "split", "N-1", TIER1, {"children": kids}, [kids])
        moved = await self._holder("notes", "transfer", "N-1.1", TIER1, {"to": TIER2}, [TIER2])
        s.done(
            "note split and passed to tier 2",
            split.ok and moved.ok and s.note("N-1.1").get("holder") == TIER2,
            f"N-1 split into N-1.1 ({part / 100:.2f}) and N-1.2; N-1.1 to {TIER2}: split "
            f"{split.text}; transfer {moved.text}",
        )
        self.cite("note split and passed to tier 2", "transfer-tx.cbor", "tx", moved.tx_id)
        rate = s.credit().get("discount_rate")
        terms = {"bank": s.bank, "kind": "discount", "rate": rate}
        fin = await self._holder("notes", "finance", "N-1.1", TIER2, terms, [s.bank, "discount"])
        self.cite("tier-2 discount at the bank", "discount-tx.cbor", "tx", fin.tx_id)
        s.done(
            "tier-2 discount at the bank",
            fin.ok and s.note("N-1.1").get("state") == "financed",
            f"N-1.1 discounted at {s.bank} at {rate}: {fin.text}"
            + (f"; advance {fin.result['advance'] / 100:.2f} CNY" if fin.ok else ""),
        )

    async def _settle(self) -> None:
        s = self.s
        tr = s.results.get("TR-1")
        invoice = "31000000000000000001"
        settled = []
        for nid in ("N-1.1", "N-1.2"):
            rec = s.note(nid)
            if rec.get("state") not in ("live", "financed"):
                continue
            payee = rec["financed"]["bank"] if rec.get("financed") else rec["holder"]
            doc = await s.paper.payment(
                "TR-1", s.core, payee, rec["amount"], invoice, f"PAY-{nid}", s.clock()
            )
            out = await s.chain.call("notes", "settle", [nid, doc.hash], s.core)
            settled.append((nid, payee, out))
            self.cite("maturity settles every holder", f"settle-{nid}.cbor", "tx", out.tx_id)
        root = s.root("N-1")
        line = s.credit()
        ok = (
            len(settled) == 2
            and all(o.ok for _, _, o in settled)
            and root.get("live") == 0
            and root.get("settled") == root.get("issued") == (tr.amount if tr else -1)
            and line.get("used") == 0
        )
        s.done(
            "maturity settles every holder",
            ok,
            "; ".join(f"{n} paid to {p}: {o.text}" for n, p, o in settled)
            + f"; live left {root.get('live')}, credit line used {line.get('used')}",
            family=root,
        )
        self.notes = {n: s.note(n) for n in ("N-1", "N-1.1", "N-1.2")}

"""``tally demo``'s receivables story: a core enterprise's credit passed down two supplier tiers.

The core enterprise buys steel strip from its tier-1 supplier; the carrier, the warehouse and
the devices at the dock record the delivery (the load cell's rise, proven on chain); each
owner signs its document of the four flows, the bank stores them and every salted hash is
anchored. The bank reconciles the trade and attests it on chain; then, each a ledger
transaction checked by the contracts:

1. the core enterprise issues a note to the supplier, who accepts; the bank confirms it
   against the core enterprise's credit line;
2. the supplier splits the note and pays its own (tier-2) supplier with a part;
3. the tier-2 supplier discounts its part at the bank;
4. at maturity the core enterprise pays: every holder, or the bank that financed, is settled
   and the credit line is restored;
5. injected frauds are refused for what they are: an invoice used again for another trade, an
   invoice inflated beyond the delivered quantity, a circular trade, an 18-month term.

Simulated time runs an hour a minute, so the demo's notes fall due minutes after issue; the
rules (term at most 183 days, never above a year) are the contracts' own.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tally.cloud.storage.api import Storage
from tally.crypto import SigningKey
from tally.device.sim import Site
from tally.finance.fourflow import Reconciler, ReconResult, view
from tally.finance.keys import credit_key, note_key, noteroot_key
from tally.ledger.consortium import Consortium
from tally.sim.finance_chain import FinanceChain
from tally.sim.finance_purchase import Sealing, open_docstore
from tally.sim.finance_story import Scenario, jsonable
from tally.sim.receivables_docs import Company, Paper, tax_id
from tally.sim.receivables_steps import RSteps

TIER1 = "sme-strip-1"
TIER2 = "sme-coil-2"
SHELL = "sme-shell-3"
"""A trading company that closes the circular trade the story injects."""
CREDIT_LIMIT = 50_000_000
"""The bank's credit line for the core enterprise: 500,000.00 CNY."""
DISCOUNT_RATE = Decimal("0.032")

EXPECTED = {
    "trade reconciled on four flows": "contract, invoice, waybill, warehouse entry and the "
    "IoT-measured delivery agree; the bank attests the trade on chain",
    "note issued, accepted and confirmed": "the core enterprise issues a note for the "
    "invoice; the supplier accepts; the bank confirms it on the core enterprise's credit line",
    "note split and passed to tier 2": "the supplier splits the note and transfers a part to "
    "its own supplier as payment",
    "tier-2 discount at the bank": "the tier-2 supplier discounts its part at the bank; the "
    "note is locked to the bank",
    "maturity settles every holder": "the core enterprise pays at maturity; each holder (or "
    "its financing bank) is settled; nothing of the note is left live; the line is restored",
    "re-used invoice refused": "a note against another trade citing an invoice that already "
    "backs a note is refused",
    "inflated invoice refused": "a trade whose invoice exceeds the delivered quantity does not "
    "reconcile and no note can be issued on it",
    "circular trade refused": "a trade closing a cycle of trades (A→B→C→A) is flagged and no "
    "note can be issued on it",
    "18-month term refused": "a note with an 18-month term is refused (at most 6 months, never "
    "above a year)",
}


class ReceivablesStory:
    """The story's state; :class:`tally.sim.receivables_steps.RSteps` drives it."""

    def __init__(
        self,
        consortium: Consortium,
        site: Site,
        location: str,
        clock: Any,
        data_dir: Path,
        *,
        bank: str,
        core: str,
        warehouse: str,
        logistics: str,
        chain: FinanceChain,
        sealing: Sealing | None = None,
    ) -> None:
        self.c = consortium
        self.chain = chain
        self.site = site
        self.location = location
        self.clock = clock
        self.bank, self.core, self.warehouse, self.logistics = bank, core, warehouse, logistics
        self.scenario = {name: Scenario(name, text) for name, text in EXPECTED.items()}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_docstore(data_dir, "docs_", sealing)
        suite = consortium.genesis.suite
        keys = {p: SigningKey.generate(suite) for p in (TIER1, TIER2, SHELL)}
        companies = {
            core: Company(core, tax_id(1), consortium.keys[core], True),
            TIER1: Company(TIER1, tax_id(2), keys[TIER1], False),
            TIER2: Company(TIER2, tax_id(3), keys[TIER2], False),
            SHELL: Company(SHELL, tax_id(6), keys[SHELL], False),
            logistics: Company(logistics, tax_id(4), consortium.keys[logistics], True),
            warehouse: Company(warehouse, tax_id(5), consortium.keys[warehouse], True),
        }
        self.companies = companies
        self.paper = Paper(chain, self.store, companies)
        self.reconciler = Reconciler()
        self.results: dict[str, ReconResult] = {}
        self.steps = RSteps(self)

    # -- the run -----------------------------------------------------------------------------

    async def start(self) -> None:
        """The suppliers as the bank's parties; the core enterprise's credit line; the steel
        strip arrives at the dock."""
        suite = self.c.genesis.suite.name
        names = {TIER1: "Strip", TIER2: "Coil", SHELL: "Metals"}
        for p in (TIER1, TIER2, SHELL):
            pub = self.companies[p].key.public.raw
            name = f"Simulated {names[p]} Trading Co. (demo)"
            await self.chain.must(
                "parties", "register", [p, name, "supplier", suite, pub], self.bank
            )
        expires = self.clock() + 365 * 86_400_000
        args = [self.core, CREDIT_LIMIT, "CNY", DISCOUNT_RATE, expires]
        await self.chain.must("credit", "grant", args, self.bank)
        self.steps.deliver()

    async def step(self, storage: Storage, client: httpx.AsyncClient) -> None:
        await self.steps.advance(storage, client)

    async def export(self, client: httpx.AsyncClient) -> list[str]:
        return await self.steps.export(client)

    def close(self) -> None:
        self.store.close()

    # -- helpers the steps use ---------------------------------------------------------------

    def done(self, name: str, ok: bool, outcome: str, **detail: Any) -> Scenario:
        sc = self.scenario[name]
        sc.ok, sc.outcome = ok, outcome
        sc.detail.update(detail)
        return sc

    def reconcile(self, trade: str) -> ReconResult | None:
        """Feed the trade's stored documents to the reconciler; its newest judgement."""
        for row in self.store.by_trade(trade):
            self.reconciler.add(view(row.parsed().doc, row.hash, row.identity or b""))
        self.results.update(self.reconciler.judge())
        return self.results.get(trade)

    def note(self, note_id: str) -> dict[str, Any]:
        return dict(self.chain.state(note_key(note_id)) or {})

    def root(self, root: str) -> dict[str, Any]:
        return dict(self.chain.state(noteroot_key(root)) or {})

    def credit(self) -> dict[str, Any]:
        return dict(self.chain.state(credit_key(self.bank, self.core)) or {})

    def scenarios(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.scenario.values()]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(
            {
                "simulated": True,
                "core": self.core,
                "suppliers": [TIER1, TIER2],
                "trades": {
                    t: {"status": r.status, "amount": r.amount, "reasons": list(r.reasons)}
                    for t, r in sorted(self.results.items())
                },
                "notes": self.steps.notes,
                "credit": self.credit(),
                "anchoring_refused": self.paper.anchored,
            }
        )
        return out

    def write_bundles(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.steps.bundles.items():
            (out / name).write_bytes(data)

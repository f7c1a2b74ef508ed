"""The trade behind the demo's receipt-pledge loan: the steel trader's purchase of the coils
from the mill, reconciled on the four flows before the bank may approve the loan.

The trader (buyer) signs the contract, the mill (seller) the VAT invoice, the carrier the
waybill, the warehouse its entry and the IoT-measured delivery (the load cell's readings
before and after the coils arrived, proven on chain). The bank stores the documents,
anchors each salted hash, reconciles the trade and attests it; ``loans.attach_trade`` then
ties the loan to it and claims its invoice and waybill, so they can back nothing else.
Simulated, like everything in the demo.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tally.finance.docstore import DocStore, Sealer
from tally.finance.fourflow import Reconciler, ReconResult, view
from tally.sim.finance_chain import MILL, TRADER, FinanceChain, Outcome
from tally.sim.receivables_docs import Company, Paper, Shipment, tax_id

PURCHASE = "PO-TRADER-0001"
GOODS = "hot-rolled steel coil (simulated)"
PRICE = Decimal(380_000)
"""Fen per tonne, VAT included: 3,800.00 CNY/t."""
DAY_MS = 86_400_000

Sealing = tuple[Sealer[Any], Callable[[str, str, str], Any]]
"""How the bank's document store seals document bodies at rest: a sealer (the cloud's
``FieldCipher``) and its place reference (``FieldRef``); None keeps them as signed."""


def open_docstore(data_dir: Path, prefix: str, sealing: Sealing | None) -> DocStore:
    """The bank's document store in ``data_dir/documents.db`` (tables ``<prefix>…``)."""
    url = f"sqlite:///{data_dir / 'documents.db'}"
    if sealing is None:
        return DocStore(url, prefix=prefix)
    return DocStore(url, prefix=prefix, sealer=sealing[0], field_ref=sealing[1])


class Purchase:
    """The trader's purchase: its documents, its reconciliation, its attestation."""

    def __init__(
        self,
        chain: FinanceChain,
        data_dir: Path,
        *,
        warehouse: str,
        logistics: str,
        sealing: Sealing | None = None,
    ) -> None:
        self.chain = chain
        self.warehouse, self.logistics = warehouse, logistics
        self.store = open_docstore(data_dir, "loandocs_", sealing)
        keys = chain.c.keys
        self.paper = Paper(
            chain,
            self.store,
            {
                TRADER: Company(TRADER, tax_id(11), chain.trader_key, False),
                MILL: Company(MILL, tax_id(12), chain.mill_key, False),
                logistics: Company(logistics, tax_id(4), keys[logistics], True),
                warehouse: Company(warehouse, tax_id(5), keys[warehouse], True),
            },
        )
        self.result: ReconResult | None = None
        self.attested: Outcome | None = None

    async def reconcile(self, ordered: Decimal, shipped: Shipment, t: int) -> ReconResult | None:
        """Sign, store and anchor the purchase's documents; reconcile; attest on chain."""
        p = self.paper
        window = (t - 10 * DAY_MS, t + 10 * DAY_MS)
        await p.contract(PURCHASE, MILL, TRADER, ordered, t - DAY_MS, window, GOODS, PRICE)
        number = "44000000000000000001"
        await p.invoice(PURCHASE, PURCHASE, MILL, TRADER, ordered, number, t, PRICE)
        await p.logistics(PURCHASE, MILL, TRADER, self.logistics, self.warehouse, shipped, t)
        rec = Reconciler()
        for row in self.store.by_trade(PURCHASE):
            rec.add(view(row.parsed().doc, row.hash, row.identity or b""))
        self.result = rec.judge().get(PURCHASE)
        if self.result is not None:
            record = self.result.record(self.chain.c.genesis.suite)
            self.attested = await self.chain.call(
                "trades", "attest", [PURCHASE, record], self.chain.bank
            )
        return self.result

    def close(self) -> None:
        self.store.close()

"""The paper of the demo's receivables story: four-flow documents, each signed by its owner,
kept in the bank's document store and anchored on the chain as a salted hash.

All of it is simulated: the companies, their tax ids (made with the GB 32100-2015 check
character, so they are well formed but belong to nobody), the goods and the prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.crypto import SigningKey
from tally.finance.consent import make_consent
from tally.finance.docstore import DocStore, StoredDocument
from tally.finance.document_bodies import uscc_check_char
from tally.finance.documents import make_document
from tally.sim.finance_chain import FinanceChain

GOODS = "cold-rolled steel strip (simulated)"
PRICE = Decimal(565_000)
"""Minor units (fen) per tonne, VAT included: 5,650.00 CNY/t."""
VAT = Decimal("0.13")


def tax_id(n: int) -> str:
    """A well-formed unified social credit code for simulated company ``n``."""
    first17 = f"91310115MA1FL{n:04d}"
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True)
class Company:
    id: str
    tax_id: str
    key: SigningKey
    member: bool
    """A consortium member signs for itself; a party's documents reach the chain through its
    bank, with the party's consent."""


@dataclass(frozen=True)
class Shipment:
    """What the devices measured of one delivery (tonnes) and the readings that show it."""

    quantity: Decimal
    at: int
    readings: tuple[bytes, ...]
    site: str


class Paper:
    """Makes, stores and anchors the documents of trades."""

    def __init__(self, chain: FinanceChain, store: DocStore, companies: dict[str, Company]):
        self.chain = chain
        self.store = store
        self.companies = companies
        self.anchored: list[str] = []
        """Every refusal of an anchoring (there should be none)."""

    async def submit(
        self, owner: str, kind: str, no: str, trade: str, t: int, body: dict[str, Any]
    ) -> StoredDocument:
        co = self.companies[owner]
        cose = make_document(co.key, kind, no, owner, trade, t, body)
        row, _ = self.store.put(cose, key=co.key.public)
        if co.member:
            out = await self.chain.call("trades", "anchor", [kind, row.hash, trade], owner)
        else:
            terms = {"kind": kind, "hash": row.hash, "trade": trade}
            chain = self.chain.chain_id
            consent = make_consent(co.key, chain, owner, "trades.anchor", row.hash.hex(), 0, terms)
            args = [kind, row.hash, trade, consent]
            out = await self.chain.call("trades", "anchor", args, self.chain.bank)
        if not out.ok:
            self.anchored.append(f"{kind} {no} of {trade}: {out.text}")
        return row

    async def contract(
        self,
        trade: str,
        seller: str,
        buyer: str,
        qty: Decimal,
        t: int,
        window: tuple[int, int],
        goods: str = GOODS,
        price: Decimal = PRICE,
    ) -> StoredDocument:
        s, b = self.companies[seller], self.companies[buyer]
        body = {
            "seller": seller,
            "buyer": buyer,
            "seller_tax_id": s.tax_id,
            "buyer_tax_id": b.tax_id,
            "goods": goods,
            "quantity": qty,
            "unit": "t",
            "price": price,
            "amount": int(price * qty),
            "currency": "CNY",
            "delivery_from": window[0],
            "delivery_to": window[1],
            "payment_term_days": 90,
        }
        return await self.submit(buyer, "contract", f"C-{trade}", trade, t, body)

    async def invoice(
        self,
        trade: str,
        contract_trade: str,
        seller: str,
        buyer: str,
        qty: Decimal,
        number: str,
        t: int,
        price: Decimal = PRICE,
    ) -> StoredDocument:
        s, b = self.companies[seller], self.companies[buyer]
        total = int(price * qty)
        amount = int((Decimal(total) / (1 + VAT)).to_integral_value())
        body = {
            "number": number,
            "seller": seller,
            "buyer": buyer,
            "seller_tax_id": s.tax_id,
            "buyer_tax_id": b.tax_id,
            "contract": f"C-{contract_trade}",
            "quantity": qty,
            "unit": "t",
            "amount": amount,
            "tax": total - amount,
            "total": total,
            "currency": "CNY",
            "issued": t,
        }
        return await self.submit(seller, "invoice", f"INV-{trade}", trade, t, body)

    async def logistics(
        self,
        trade: str,
        seller: str,
        buyer: str,
        carrier: str,
        warehouse: str,
        shipped: Shipment,
        t: int,
    ) -> list[StoredDocument]:
        """The waybill, the warehouse entry and the IoT-measured movement of a delivery."""
        c = self.companies[carrier]
        q = shipped.quantity
        waybill = {
            "number": f"WB{t % 10**9:09d}{trade[-2:]}",
            "carrier": carrier,
            "carrier_tax_id": c.tax_id,
            "shipper": seller,
            "consignee": buyer,
            "quantity": q,
            "unit": "t",
            "picked_up": shipped.at - 3_600_000,
            "delivered": shipped.at,
            "origin": "Simulated Steel Works, Tangshan",
            "destination": shipped.site,
        }
        entry = {
            "number": f"IN-{trade}",
            "warehouse": warehouse,
            "depositor": buyer,
            "quantity": q,
            "unit": "t",
            "at": shipped.at,
        }
        iot = {
            "quantity": q,
            "unit": "t",
            "at": shipped.at,
            "readings": list(shipped.readings),
            "site": shipped.site,
        }
        return [
            await self.submit(carrier, "waybill", f"WB-{trade}", trade, t, waybill),
            await self.submit(warehouse, "warehouse_in", f"IN-{trade}", trade, t, entry),
            await self.submit(warehouse, "iot_movement", f"IOT-{trade}", trade, t, iot),
        ]

    async def payment(
        self, trade: str, payer: str, payee: str, amount: int, invoice: str, no: str, t: int
    ) -> StoredDocument:
        body = {
            "number": no,
            "payer": payer,
            "payee": payee,
            "amount": amount,
            "currency": "CNY",
            "invoice": invoice,
            "paid": t,
        }
        return await self.submit(payer, "payment", no, trade, t, body)

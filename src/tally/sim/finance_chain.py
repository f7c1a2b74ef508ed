"""The demo's finance parties, parameters and chain calls: what the bank, the second bank,
the warehouse and the small steel trader do on the consortium ledger.

All values are simulated: the trader, the mill, the prices and the lending parameters are
made up for the demo and labelled so in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.cloud.anchoring import ConsortiumLink
from tally.crypto import SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.coverage import loan_coverage
from tally.finance.keys import loan_key, price_key, receipt_key
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Context
from tally.ledger.errors import EndorsementFailed, LedgerError

STEEL = "steel coil"
"""The story's commodity."""
TRADER = "sme-steel"
"""The small steel trader (a party the bank registered, not a consortium member)."""
MILL = "mill-tangshan"
"""The seller the loan pays by entrusted payment."""
PRICE0 = Decimal("3800.00")
"""Simulated start price, CNY per tonne."""
TOLERANCE = Decimal("0.005")
"""Stock tolerance: half a percent of the measured stock (load-cell accuracy)."""
HAIRCUT, PLEDGE_RATE = Decimal("0.90"), Decimal("0.60")
WARNING, DISPOSAL = Decimal("1.30"), Decimal("1.20")
CURE_MS = 4 * 3_600_000
RATE = Decimal("0.0435")
TERM_DAYS = 90
DAY_MS = 86_400_000


class StoryError(RuntimeError):
    """A step of the story could not be carried out (not a refusal the story expects)."""


@dataclass(frozen=True)
class Outcome:
    """A transaction's outcome as the story reports it."""

    ok: bool
    text: str
    result: Any = None
    height: int = 0
    tx_id: bytes = b""
    """The transaction's id when it was ordered (its bundle proves it), else empty."""


def describe(r: TxResult) -> Outcome:
    if r.valid:
        return Outcome(True, f"committed at height {r.height}", r.result, r.height, r.tx_id)
    return Outcome(False, f"{r.code}: {r.reason or r.error}", None, r.height, r.tx_id)


class FinanceChain:
    """The story's chain calls, each as the organisation that makes it."""

    def __init__(self, consortium: Consortium, bank: str, bank_b: str, warehouse: str) -> None:
        self.c = consortium
        self.chain_id = consortium.genesis.chain
        """The consortium's chain id, which every consent the story makes names."""
        self.bank, self.bank_b, self.warehouse = bank, bank_b, warehouse
        self.trader_key = SigningKey.generate(consortium.genesis.suite)
        self.mill_key = SigningKey.generate(consortium.genesis.suite)
        self.link = ConsortiumLink(consortium, bank)

    async def tx_bundle(self, tx_id: bytes) -> bytes:
        """The transaction bundle of ``tx_id`` (checkable offline with the genesis)."""
        return await self.link.tx_bundle(tx_id)

    async def call(self, contract: str, fn: str, args: Sequence[Any], creator: str) -> Outcome:
        """Submit and wait until every peer has the block (its checkpoint final); a refusal
        is an outcome. Endorsers that disagree because one is a block behind are asked again
        once all are level."""
        for attempt in (1, 2):
            try:
                r = await self.c.submit(contract, fn, list(args), creator=creator)
            except EndorsementFailed as exc:
                if attempt == 2:
                    return Outcome(False, str(exc))
                await self.c.wait_for(self._level)
                continue
            except LedgerError as exc:
                return Outcome(False, str(exc))
            await self.c.wait_height(r.height)
            return describe(r)
        raise AssertionError("unreachable")

    def _level(self) -> bool:
        return len({p.height for p in self.c.peers.values()}) == 1

    async def must(self, contract: str, fn: str, args: Sequence[Any], creator: str) -> Outcome:
        out = await self.call(contract, fn, args, creator)
        if not out.ok:
            raise StoryError(f"{contract}.{fn} by {creator}: {out.text}")
        return out

    # -- reading the chain (the bank's own peer) ----------------------------------------------

    def state(self, key: str) -> Any:
        got = self.c.peers[self.bank].state.get(key)
        return None if got is None else got[0]

    def receipt(self, no: str) -> dict[str, Any]:
        rec = self.state(receipt_key(no))
        if rec is None:
            raise StoryError(f"receipt {no} is not on the chain")
        return dict(rec)

    def price(self, commodity: str) -> Decimal:
        """The commodity's price on chain (0 when none is set)."""
        got = self.state(price_key(commodity))
        return Decimal(got["price"]) if got else Decimal(0)

    def loan(self, loan_id: str) -> dict[str, Any]:
        loan = self.state(loan_key(loan_id))
        if loan is None:
            raise StoryError(f"loan {loan_id} is not on the chain")
        return dict(loan)

    def chain_coverage(self, loan_id: str, t: int) -> Decimal | None:
        """The loan's coverage as the contracts compute it (issued weights, on-chain price)."""
        peer = self.c.peers[self.bank]
        ctx = Context(peer.state, self.bank, b"", t, peer.members(), chain=self.chain_id)
        return loan_coverage(ctx, self.loan(loan_id))

    # -- setting up -----------------------------------------------------------------------------

    async def setup(self) -> None:
        """The commodity, its price, both banks' parameters; the trader and the mill as the
        bank's parties."""
        await self.must("market", "set_commodity", [STEEL, "t", TOLERANCE], self.bank)
        await self.must("market", "set_price", [STEEL, PRICE0, "CNY"], self.bank)
        for b in (self.bank, self.bank_b):
            params = [STEEL, HAIRCUT, PLEDGE_RATE, WARNING, DISPOSAL, CURE_MS]
            await self.must("market", "set_params", params, b)
        suite = self.c.genesis.suite.name
        for party, name, key in (
            (TRADER, "Simulated Steel Trading Co. (demo)", self.trader_key),
            (MILL, "Simulated Steel Works (demo)", self.mill_key),
        ):
            args = [party, name, "supplier", suite, key.public.raw]
            await self.must("parties", "register", args, self.bank)

    # -- consents -------------------------------------------------------------------------------

    def trader_consent(self, act: str, on: str, seq: int, terms: Any) -> bytes:
        return make_consent(self.trader_key, self.chain_id, TRADER, act, on, seq, terms)

    def custodian_consent(self, act: str, on: str, seq: int, terms: Any) -> bytes:
        key = self.c.keys[self.warehouse]
        return make_consent(key, self.chain_id, self.warehouse, act, on, seq, terms)

    async def pledge(self, no: str, bank: str) -> Outcome:
        """The trader and the warehouse consent; ``bank`` takes the pledge."""
        seq = self.receipt(no)["seq"]
        terms = {"bank": bank}
        holder = self.trader_consent("receipts.pledge", no, seq, terms)
        custodian = self.custodian_consent("receipts.pledge", no, seq, terms)
        return await self.call("receipts", "pledge", [no, bank, holder, custodian], bank)

    async def apply(self, loan_id: str, receipts: list[str], amount: int) -> Outcome:
        terms = {
            "bank": self.bank,
            "receipts": receipts,
            "amount": amount,
            "term_days": TERM_DAYS,
            "seller": MILL,
            "seller_account": f"{MILL}/deposit",
        }
        consent = self.trader_consent("loans.apply", loan_id, 0, terms)
        args = [loan_id, TRADER, receipts, amount, TERM_DAYS, MILL, f"{MILL}/deposit", consent]
        return await self.call("loans", "apply", args, self.bank)


def receipt_fields(
    no: str, lot: str, weight: Decimal, site: str, location: str, t: int
) -> dict[str, Any]:
    """A receipt's GB/T 30332-2024 elements for ``weight`` t of hot-rolled coil."""
    coils = max(1, int(weight / Decimal("4")))
    return {
        "no": no,
        "depositor": TRADER,
        "goods": "hot-rolled steel coil (simulated)",
        "spec": "Q235B 2.75 x 1250 mm, GB/T 3274-2017",
        "quantity": Decimal(coils),
        "unit": "coil",
        "weight": weight,
        "packaging": "bare coils, steel-strapped",
        "lot": lot,
        "site": site,
        "location": location,
        "period": {"from": t, "to": t + 90 * DAY_MS},
        "fees": {"rate": 80, "currency": "CNY"},
        "insurance": {
            "insurer": "Simulated Insurance Co.",
            "policy": f"PI-{no}",
            "amount": int(weight * 4000 * 100),
        },
        "commodity": STEEL,
    }

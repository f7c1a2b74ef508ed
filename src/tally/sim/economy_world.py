"""The synthetic economy's working state while it is generated (see tally.sim.economy).

:class:`World` holds the seeded random generator, the firms under construction
(:class:`WFirm`, mutable until they become :class:`~tally.graph.records.Firm` records), the
record lists as they grow, and the small helpers every stage uses: ids, persons, addresses,
accounts, amounts. Every random draw goes through ``World.rng`` in a fixed order and nothing
iterates a set or a hash-ordered structure, so one seed gives the same economy byte for byte
in any process.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from tally.graph.records import (
    INDUSTRIES,
    Account,
    Address,
    Bank,
    Guarantee,
    Loan,
    Note,
    Outcome,
    Person,
    Receipt,
    Role,
    Supply,
    Telemetry,
    Trade,
)

DAY = 86_400_000
AS_OF = 1_798_761_600_000
"""2027-01-01T00:00:00Z: the economy is observed at the end of 2026."""
START = AS_OF - 365 * DAY
N_CORES = 4800
N_SMES = 34_000
BANKS = 12
TRADE_BASE = {  # typical trade of a tier-1 supplier, CNY
    "pharmaceuticals": 300_000,
    "grain": 400_000,
    "warehousing_logistics": 150_000,
    "automotive": 600_000,
    "leasing": 250_000,
    "machining": 200_000,
    "bulk_commodities": 1_000_000,
    "hotels": 80_000,
}
INDUSTRY_WEIGHTS = (12, 14, 12, 16, 8, 18, 12, 8)
DEVICES = {  # devices of an SME by industry (low, high)
    "pharmaceuticals": (3, 20),
    "grain": (2, 15),
    "warehousing_logistics": (5, 30),
    "automotive": (3, 25),
    "leasing": (1, 10),
    "machining": (3, 25),
    "bulk_commodities": (2, 12),
    "hotels": (4, 16),
}
GOODS = {
    "pharmaceuticals": "active pharmaceutical ingredients",
    "grain": "wheat",
    "warehousing_logistics": "palletised consumer goods",
    "automotive": "automotive parts",
    "leasing": "construction machinery",
    "machining": "machined steel parts",
    "bulk_commodities": "electrolytic copper",
    "hotels": "linen and supplies",
}
SURNAMES = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Huang",
    "Zhou",
    "Wu",
    "Xu",
    "Sun",
    "Hu",
    "Zhu",
    "Gao",
    "Lin",
    "He",
    "Guo",
    "Ma",
    "Luo",
)
GIVEN = (
    "Wei",
    "Fang",
    "Min",
    "Jing",
    "Lei",
    "Jun",
    "Yan",
    "Tao",
    "Ping",
    "Hua",
    "Qiang",
    "Li",
    "Na",
    "Bo",
    "Xin",
    "Yu",
    "Hao",
    "Lan",
    "Kai",
    "Rui",
)
CITIES = (
    "Hangzhou",
    "Suzhou",
    "Wuxi",
    "Ningbo",
    "Qingdao",
    "Hefei",
    "Wuhan",
    "Changsha",
    "Chengdu",
    "Xiamen",
    "Jinan",
    "Zhengzhou",
)
ROADS = (
    "Jiefang",
    "Renmin",
    "Zhongshan",
    "Jianshe",
    "Heping",
    "Xinhua",
    "Changjiang",
    "Huanghe",
    "Binhai",
    "Kejiyuan",
)


@dataclass(slots=True)
class WFirm:
    """A firm while it is generated; ``tier``: 0 core, 1..4 upstream, -1 downstream dealer,
    9 a shell outside the chain; ``z`` its latent risk (higher: riskier)."""

    id: str
    kind: str
    industry: str
    tier: int
    z: float
    capital: int
    founded: int
    rating: str = ""
    roles: list[Role] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    buyers: list[str] = field(default_factory=list)
    suppliers: list[str] = field(default_factory=list)
    planted: str = ""  # shell, family, circle, broken, cycle, loop, need, distress
    no_guarantor: bool = False
    distress_chain: bool = False
    banks: list[str] = field(default_factory=list)
    sales: int = 0
    bought: int = 0
    pledges: bool = False


@dataclass
class World:
    seed: int
    scale: float
    rng: random.Random
    as_of: int = AS_OF
    banks: list[Bank] = field(default_factory=list)
    firms: list[WFirm] = field(default_factory=list)
    by_id: dict[str, WFirm] = field(default_factory=dict)
    persons: list[Person] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    supplies: list[Supply] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    loans: list[Loan] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    guarantees: list[Guarantee] = field(default_factory=list)
    telemetry: list[Telemetry] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)
    pair_trades: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    loans_of: dict[str, list[int]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    # -- sizes and ids ------------------------------------------------------------------------

    def count(self, full: float, minimum: int) -> int:
        """``full`` scaled, at least ``minimum``."""
        return max(minimum, round(full * self.scale))

    def next_id(self, prefix: str, width: int) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}{n:0{width}d}"

    # -- draws --------------------------------------------------------------------------------

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(self.rng.gauss(0.0, sigma))

    def date(self, lo: int = START, hi: int = AS_OF - DAY) -> int:
        """A time in [lo, hi), to the minute."""
        return lo + self.rng.randrange(max(1, (hi - lo) // 60_000)) * 60_000

    def industry(self) -> str:
        return self.rng.choices(INDUSTRIES, weights=INDUSTRY_WEIGHTS)[0]

    def bank(self) -> str:
        return self.rng.choice(self.banks).id

    # -- registrations ------------------------------------------------------------------------

    def person(self) -> str:
        pid = self.next_id("P", 7)
        r = self.rng
        name = f"{r.choice(SURNAMES)} {r.choice(GIVEN)}{r.choice(GIVEN).lower()} (simulated)"
        self.persons.append(Person(pid, name))
        return pid

    def address(self, kind: str = "") -> str:
        aid = self.next_id("A", 7)
        r = self.rng
        text = (
            f"No. {r.randrange(1, 999)} {r.choice(ROADS)} Road{kind}, "
            f"{r.choice(CITIES)} (simulated)"
        )
        self.addresses.append(Address(aid, text))
        return aid

    def account(self, bank: str | None = None) -> str:
        acc = f"62{self.next_id('', 14)}"
        self.accounts.append(Account(acc, bank or self.bank()))
        return acc

    def add_firm(self, f: WFirm) -> WFirm:
        self.firms.append(f)
        self.by_id[f.id] = f
        return f

    def trade(
        self,
        seller: WFirm,
        buyer: WFirm,
        amount: int,
        t: int,
        term_days: int,
        delay_days: int,
        mismatches: tuple[str, ...] = (),
    ) -> Trade:
        """A trade paid ``delay_days`` after its due date (unpaid if that is not before
        ``as_of``); books the seller's sales and the buyer's purchases."""
        due = t + term_days * DAY
        paid_t = due + delay_days * DAY
        if paid_t <= t:
            paid_t = t + DAY
        tr = Trade(
            self.next_id("T", 7),
            seller.id,
            buyer.id,
            amount,
            t,
            due,
            amount if paid_t < self.as_of else 0,
            paid_t if paid_t < self.as_of else None,
            mismatches,
        )
        self.pair_trades.setdefault((seller.id, buyer.id), []).append(len(self.trades))
        self.trades.append(tr)
        seller.sales += amount
        buyer.bought += amount
        return tr

    def loan(
        self,
        bank: str,
        borrower: WFirm,
        kind: str,
        principal: int,
        outstanding: int,
        t: int,
        state: str = "active",
        dpd: int = 0,
        coverage: float | None = None,
        receipts: tuple[str, ...] = (),
    ) -> Loan:
        term = self.rng.randrange(180, 366) * DAY
        rec = Loan(
            self.next_id("L", 7),
            bank,
            borrower.id,
            kind,
            principal,
            outstanding,
            t,
            t + term,
            state,
            dpd,
            coverage,
            receipts,
        )
        self.loans_of.setdefault(borrower.id, []).append(len(self.loans))
        self.loans.append(rec)
        return rec

    def supply(self, supplier: WFirm, buyer: WFirm) -> None:
        supplier.buyers.append(buyer.id)
        buyer.suppliers.append(supplier.id)
        since = max(supplier.founded, buyer.founded) + self.rng.randrange(30, 400) * DAY
        self.supplies.append(Supply(supplier.id, buyer.id, min(since, START)))


__all__ = [
    "AS_OF",
    "BANKS",
    "DAY",
    "DEVICES",
    "GOODS",
    "N_CORES",
    "N_SMES",
    "START",
    "TRADE_BASE",
    "WFirm",
    "World",
]

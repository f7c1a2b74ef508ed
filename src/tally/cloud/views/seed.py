"""A labelled SIMULATED dataset for the read model, at the scale the platform reports.

:func:`seed_views` writes, through :meth:`Views.bulk_load`, a made-up consortium and its
business at ``scale`` × the sizes below (the seed document's end-2021 figures: more than 4,800
core enterprises and about 34,000 upstream and downstream SMEs). Every organisation carries
``simulated=True`` and a name starting with "Simulated"; nothing here is real data.

At scale 1.0: 38,894 organisations — 12 banks, 60 warehouses (3 sites each), 20 logistics
firms, a regulator, a government portal, 4,800 core enterprises and 34,000 SMEs (tenant kind
``supplier``, tiers 1–3 under a core) across 8 industries and 8 regions; 40,000 loans in every
status of the loans contract; 60,000 warehouse receipts (the collateral of secured loans, and
free ones); ~100,000 receivable notes issued by cores and split down the tiers; ~47,000 trades
(one per financed purchase and per note family) and ~35,000 of their documents; ~22,000 credit
lines and limits; ~11,000 alerts; 5,000 applications; 2,000 blocks with ~9,000 transactions:
about 370,000 rows. Block rows are ``(BlockRow, [TxRow])``, as ``bulk_load`` takes them.

Deterministic given ``seed`` (one :class:`random.Random`; no clock: the data ends at
:data:`T_END`). Banks are unequal (weight 1/√rank), so ``bank-01`` is the largest portfolio.
The result's ``sample`` names one tenant of each kind for tests and the API benchmark.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tally.cloud.views import model as m
from tally.cloud.views.store import Views

T_END = 1_767_225_600_000
"""2026-01-01T00:00:00Z: the seeded history covers the year before it."""
DAY = 86_400_000
YEAR = 365 * DAY
INDUSTRIES = (
    "pharmaceuticals", "grain", "warehousing_logistics", "automotive", "leasing", "machining",
    "bulk_commodities", "hotels",
)  # fmt: skip
REGIONS = ("Shandong", "Jiangsu", "Zhejiang", "Guangdong", "Henan", "Sichuan", "Hebei", "Hubei")
COMMODITIES: dict[str, tuple[int, str]] = {  # name: (price in yuan per t, haircut)
    "copper": (68000, "0.85"), "aluminium": (19000, "0.85"), "rebar": (3700, "0.75"),
    "iron_ore": (800, "0.70"), "soybean": (4500, "0.75"), "corn": (2700, "0.75"),
    "cotton": (15500, "0.75"), "rubber": (13000, "0.70"),
}  # fmt: skip
SIZES = {"bank": 12, "warehouse": 60, "logistics": 20, "core": 4800, "sme": 34000,
         "loan": 40000, "receipt": 60000, "note": 100000, "application": 5000,
         "site_alert": 6000, "block": 2000}  # fmt: skip
REGULATOR = "regulator"
GOVERNMENT = "gov-portal"
LOAN_STATUS = {"active": 40, "closed": 25, "margin_call": 6, "overdue": 4, "defaulted": 2,
               "disposing": 1, "applied": 8, "approved": 5, "rejected": 9}  # fmt: skip
DISBURSED = frozenset({"active", "closed", "margin_call", "overdue", "defaulted", "disposing"})
COVERAGE = {"margin_call": (1.2, 1.3), "overdue": (1.1, 1.6), "defaulted": (0.6, 1.2),
            "disposing": (0.6, 1.2)}  # fmt: skip
PLEDGED = {"active": "pledged", "margin_call": "pledged", "overdue": "pledged",
           "defaulted": "frozen", "disposing": "frozen"}  # fmt: skip
REASONS = {"reconciled": (), "mismatch": ("invoiced_exceeds_contract",),
           "flagged": ("invoice_financed_twice",)}  # fmt: skip
FREE_RECEIPT = {"live": 60, "delivered": 20, "split": 5, "cancelled": 5}
APP_STATUS = {"submitted": 40, "approved": 30, "refused": 20, "withdrawn": 10}
SITE_ALERTS = (("sensor_offline", "warning", "a sensor stopped reporting"),
               ("tamper", "critical", "a door or seal switch opened out of hours"),
               ("weight_drop", "critical", "measured stock fell below the receipts at a location"),
               ("temperature", "info", "temperature left the commodity's band"))  # fmt: skip
CONTRACT_FNS = (("receipts", "issue"), ("receipts", "pledge"), ("loans", "apply"),
                ("loans", "disburse"), ("loans", "accrue"), ("notes", "issue"),
                ("notes", "split"), ("trades", "attest"), ("market", "set_price"))  # fmt: skip
BAD_TX = ("contract_error", "refused by the contract")
KINDS = ("org", "limit", "trade", "document", "receipt", "loan", "note", "alert",
         "application", "block")  # fmt: skip
"""The ``bulk_load`` kinds, in load order (a block row is ``(BlockRow, [TxRow])``)."""


@dataclass(frozen=True)
class SeedSummary:
    """What :func:`seed_views` wrote: rows per kind, their total, how long it took, and
    ``sample`` tenants (role → id: bank, supplier, core, warehouse, logistics, regulator,
    government) with ``sites`` (warehouse → its site ids)."""

    scale: float
    seed: int
    counts: dict[str, int]
    rows: int
    seconds: float
    sample: dict[str, str]
    sites: dict[str, tuple[str, ...]] = field(default_factory=dict)
    simulated: bool = True


def _weighted(rng: random.Random, table: dict[str, int]) -> Callable[[], str]:
    names, weights = list(table), list(table.values())
    return lambda: rng.choices(names, weights)[0]


class _Gen:
    """Makes the rows; every choice comes from ``rng``."""

    def __init__(self, scale: float, seed: int) -> None:
        self.rng, self.scale = random.Random(seed), scale
        self.rows: dict[str, list[Any]] = {k: [] for k in KINDS}
        self.orgs: dict[str, m.OrgRow] = {}
        self.sites: dict[str, tuple[str, ...]] = {}
        self.tiers: dict[str, dict[int, list[str]]] = {}
        self.live_receipts: list[m.ReceiptRow] = []
        self.live_notes: list[m.NoteRow] = []
        self.banks: list[str] = []
        self.cores: list[str] = []
        self.smes: list[str] = []
        self.pick_bank: Callable[[], str] = lambda: self.banks[0]

    def n(self, name: str, least: int = 1) -> int:
        return max(least, round(SIZES[name] * self.scale))

    def hexid(self, bits: int = 256) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def height(self) -> int:
        return self.rng.randint(1, self.n("block"))

    def money(self, median_yuan: float, sigma: float) -> int:
        yuan = max(10_000, round(self.rng.lognormvariate(math.log(median_yuan), sigma), -3))
        return int(yuan) * 100

    def org(self, oid: str, name: str, kind: str, **kw: Any) -> m.OrgRow:
        values = {"industry": None, "region": None, "core": None, "tier": None, "bank": None}
        row = m.OrgRow(oid, f"Simulated {name}", kind, simulated=True, **(values | kw))
        self.orgs[oid] = row
        self.rows["org"].append(row)
        return row

    def organisations(self) -> None:
        rng = self.rng
        banks = [self.org(f"bank-{i:02d}", f"Bank {i:02d}", "bank", region=REGIONS[i % 8])
                 for i in range(1, self.n("bank", 2) + 1)]  # fmt: skip
        self.banks = [b.id for b in banks]
        bank_w = [1 / math.sqrt(k + 1) for k in range(len(banks))]
        self.pick_bank = lambda: rng.choices(self.banks, bank_w)[0]
        for i in range(1, self.n("warehouse") + 1):
            w = self.org(f"wh-{i:02d}", f"Warehouse {i:02d}", "warehouse", region=REGIONS[i % 8])
            self.sites[w.id] = tuple(f"{w.id}-s{k}" for k in (1, 2, 3))
        for i in range(1, self.n("logistics") + 1):
            self.org(f"log-{i:02d}", f"Logistics {i:02d}", "logistics", region=REGIONS[i % 8])
        self.org(REGULATOR, "Regulator", "regulator")
        self.org(GOVERNMENT, "Government Portal", "government")
        self.cores = [
            self.org(f"core-{i:04d}", f"Core Enterprise {i:04d}", "core_enterprise",
                     industry=rng.choice(INDUSTRIES), region=rng.choice(REGIONS),
                     bank=self.pick_bank()).id
            for i in range(1, self.n("core") + 1)
        ]  # fmt: skip
        per_core = max(1, self.n("sme") // len(self.cores))
        for i in range(self.n("sme")):
            core = self.orgs[self.cores[i % len(self.cores)]]
            k = i // len(self.cores)
            tier = 1 if k < max(1, per_core * 3 // 7) else 2 if k < max(2, per_core * 6 // 7) else 3
            region = core.region if rng.random() < 0.7 else rng.choice(REGIONS)
            bank = core.bank if rng.random() < 0.6 else self.pick_bank()
            sme = self.org(f"sme-{i + 1:05d}", f"SME {i + 1:05d}", "supplier",
                           industry=core.industry, region=region, core=core.id, tier=tier,
                           bank=bank)  # fmt: skip
            self.tiers.setdefault(core.id, {}).setdefault(tier, []).append(sme.id)
            self.smes.append(sme.id)

    def limits(self) -> None:
        rng = self.rng
        for party in self.cores + self.smes[::2]:  # credit lines of cores, limits of SMEs
            core = party.startswith("core-")
            line = self.money(50_000_000 if core else 3_000_000, 0.7)
            used, at = int(line * rng.uniform(0.1, 0.9)), T_END - rng.randrange(YEAR)
            rate = f"{rng.uniform(0.025, 0.045):.4f}" if core else None
            until = T_END + rng.randint(30, 720) * DAY if core else None
            bank, kind = self.orgs[party].bank or self.banks[0], "credit" if core else "limit"
            row = (bank, party, kind, line, used, "CNY", rate, until, at, self.height())
            self.rows["limit"].append(m.LimitRow(*row))

    def trade(self, seller: str, buyer: str, bank: str | None, amount: int, at: int,
              status: str = "reconciled") -> str:  # fmt: skip
        tid = f"TR{len(self.rows['trade']) + 1:07d}"
        row = m.TradeRow(
            tid, seller, buyer, bank, status, amount, REASONS[status], at, self.height()
        )
        self.rows["trade"].append(row)
        if self.rng.random() < 0.25:
            for j, kind in enumerate(("contract", "invoice", "waybill")):
                amt = amount if kind != "waybill" else None
                no, at_ms = f"{kind[:3].upper()}-{tid}-{j}", at - (3 - j) * DAY
                doc = (self.hexid(), kind, seller, buyer, tid, no, amt, at_ms, self.height())
                self.rows["document"].append(m.DocumentRow(*doc))
        return tid

    def receipt(self, holder: str, value: int, status: str, at: int, bank: str | None = None,
                loan: str | None = None) -> m.ReceiptRow:  # fmt: skip
        rng = self.rng
        wh = rng.choice(list(self.sites))
        site = rng.choice(self.sites[wh])
        commodity = rng.choice(list(COMMODITIES))
        qty = value / 100 / COMMODITIES[commodity][0]
        no, where = f"WR{len(self.rows['receipt']) + 1:07d}", f"{site}/A{rng.randint(1, 99):02d}"
        head = (no, holder, wh, bank, site, where, commodity, f"{qty:.3f}", "t", value, status)
        row = m.ReceiptRow(*head, loan, at, at + rng.randrange(30 * DAY), self.height())
        self.rows["receipt"].append(row)
        if status == "live":
            self.live_receipts.append(row)
        return row

    def loans(self) -> None:
        rng = self.rng
        status_of = _weighted(rng, LOAN_STATUS)
        for j in range(1, self.n("loan") + 1):
            lid = f"LN{j:07d}"
            borrower = rng.choice(self.smes) if rng.random() < 0.9 else rng.choice(self.cores)
            own = self.orgs[borrower].bank
            bank = own if own is not None and rng.random() < 0.8 else self.pick_bank()
            status = status_of()
            applied = T_END - rng.randrange(YEAR)
            principal = self.money(1_500_000, 0.8)
            disbursed = due = None
            outstanding, coverage = 0, None
            if status in DISBURSED:
                disbursed = applied + int(rng.lognormvariate(math.log(72), 0.7) * 3_600_000)
                due = disbursed + rng.choice((90, 180, 365)) * DAY
                if status != "closed":
                    outstanding = int(principal * rng.uniform(0.4, 1.0)) // 100 * 100
            secured = rng.random() < 0.75
            if secured and outstanding:
                lo, hi = COVERAGE.get(status, (1.3, 2.2))
                coverage = round(rng.uniform(lo, hi), 4)
            trade = None
            if status != "applied" and rng.random() < 0.7:
                seller = rng.choice(self.smes)
                st = "reconciled" if status != "rejected" else rng.choice(("mismatch", "flagged"))
                trade = self.trade(seller, borrower, bank, principal, applied - DAY, st)
            receipts: tuple[str, ...] = ()
            if secured:
                value = int((coverage or 1.5) * (outstanding or principal) / 0.8) // 100 * 100
                st = PLEDGED.get(status) or ("delivered" if status == "closed" else "live")
                by = (bank, lid) if status in PLEDGED else (None, None)
                receipts = (self.receipt(borrower, value, st, applied - 5 * DAY, *by).no,)
            updated = max(applied, disbursed or 0) + rng.randrange(20 * DAY)
            rate = f"{rng.uniform(0.035, 0.075):.4f}"
            head = (lid, borrower, bank, principal, outstanding, rate, status, coverage, receipts)
            row = m.LoanRow(*head, trade, applied, disbursed, due, updated, self.height())
            self.rows["loan"].append(row)
            self.loan_alert(row, receipts)

    def free_receipts(self) -> None:
        status_of = _weighted(self.rng, FREE_RECEIPT)
        while len(self.rows["receipt"]) < self.n("receipt"):
            holder = self.rng.choice(self.smes if self.rng.random() < 0.85 else self.cores)
            self.receipt(holder, self.money(800_000, 0.9), status_of(),
                         T_END - self.rng.randrange(YEAR))  # fmt: skip

    def notes(self) -> None:
        rng = self.rng
        target = self.n("note")
        while len(self.rows["note"]) < target:
            core = rng.choice(self.cores)
            tiers = self.tiers.get(core, {})
            if not tiers.get(1):
                continue
            bank = self.orgs[core].bank
            holder = rng.choice(tiers[1])
            issued = T_END - rng.randrange(YEAR)
            due = issued + rng.choice((90, 120, 180)) * DAY
            amount = self.money(800_000, 0.8)
            trade = self.trade(holder, core, bank, amount, issued - DAY)
            self.note_family(core, bank, holder, amount, issued, due, trade, tiers)

    def note_family(self, core: str, bank: str | None, holder: str, amount: int, issued: int,
                    due: int, trade: str, tiers: dict[int, list[str]]) -> None:  # fmt: skip
        rng = self.rng
        rows = self.rows["note"]
        root = f"NT{len(rows) + 1:07d}"

        def leaf() -> str:
            if due < T_END:
                return "settled" if rng.random() < 0.85 else "overdue"
            return rng.choices(("live", "financed", "offered"), (60, 30, 10))[0]

        def add(nid: str, parent: str | None, who: str, amt: int, tier: int, status: str) -> None:
            at = issued + (tier - 1) * rng.randrange(1, 20) * DAY
            row = m.NoteRow(nid, root, parent, core, who, bank, amt, status, tier,
                          trade if parent is None else None, at, due,
                          at + rng.randrange(10 * DAY), self.height())  # fmt: skip
            rows.append(row)
            if status == "live":
                self.live_notes.append(row)

        def grow(nid: str, parent: str | None, who: str, amt: int, tier: int) -> None:
            nxt = tiers.get(tier + 1)
            if nxt and amt >= 2_000_000 and rng.random() < (0.55 if tier == 1 else 0.4):
                add(nid, parent, who, amt, tier, "split")
                keep = amt * rng.randint(30, 70) // 100
                grow(f"{nid}.0", nid, who, keep, tier)
                grow(f"{nid}.1", nid, rng.choice(nxt), amt - keep, tier + 1)
            else:
                add(nid, parent, who, amt, tier, leaf())

        grow(root, None, holder, amount, 1)

    def alert(self, kind: str, severity: str, owner: str, message: str, at: int,
              **kw: Any) -> None:  # fmt: skip
        acked = at < T_END - 7 * DAY and self.rng.random() < 0.6
        values = {"bank": None, "site": None, "loan": None, "receipt": None} | kw
        self.rows["alert"].append(m.AlertRow(
            id=f"AL{len(self.rows['alert']) + 1:07d}", kind=kind, severity=severity, owner=owner,
            message=message, at_ms=at, evidence=(self.hexid(),),
            acked_by=f"ops@{owner}" if acked else None,
            acked_ms=at + self.rng.randrange(DAY) if acked else None, **values))  # fmt: skip

    def loan_alert(self, loan: m.LoanRow, receipts: tuple[str, ...]) -> None:
        what = {
            "margin_call": ("coverage_warning", "warning", "coverage below the warning line"),
            "defaulted": ("coverage_disposal", "critical", "coverage below the disposal line"),
            "disposing": ("coverage_disposal", "critical", "collateral in disposal"),
            "overdue": ("loan_overdue", "warning", "repayment overdue"),
        }.get(loan.status)
        if what is None:
            return
        site = self.rows["receipt"][-1].site if receipts else None
        self.alert(what[0], what[1], loan.borrower, f"{what[2]} (loan {loan.id})",
                   loan.updated_ms, bank=loan.bank, site=site, loan=loan.id,
                   receipt=receipts[0] if receipts else None)  # fmt: skip

    def site_alerts(self) -> None:
        for _ in range(self.n("site_alert")):
            wh = self.rng.choice(list(self.sites))
            kind, severity, message = self.rng.choice(SITE_ALERTS)
            self.alert(kind, severity, wh, message, T_END - self.rng.randrange(YEAR),
                       site=self.rng.choice(self.sites[wh]))  # fmt: skip

    def applications(self) -> None:
        rng = self.rng
        status_of = _weighted(rng, APP_STATUS)
        for j in range(1, self.n("application") + 1):
            if self.live_notes and (rng.random() < 0.4 or not self.live_receipts):
                n = rng.choice(self.live_notes)
                kind, subject, who, value = "note", n.id, n.holder, n.amount_fen
            else:
                r = rng.choice(self.live_receipts)
                kind, subject, who, value = "receipt", r.no, r.holder, r.value_fen or 0
            bank = self.orgs[who].bank or self.banks[0]
            status = status_of()
            created = T_END - rng.randrange(90 * DAY)
            decided = status in ("approved", "refused")
            self.rows["application"].append(m.ApplicationRow(
                f"AP{j:07d}", who, bank, kind, subject, max(100, value * 6 // 10 // 100 * 100),
                status, created, f"op@{who}", f"credit@{bank}" if decided else None,
                created + rng.randrange(1, 5 * DAY) if decided else None,
                "coverage under the bank's initial pledge rate" if status == "refused" else None,
            ))  # fmt: skip

    def blocks(self) -> None:
        rng = self.rng
        nb = self.n("block")
        members = self.banks[:3] + list(self.sites)[:1]
        for h in range(1, nb + 1):
            txs = []
            for i in range(rng.randint(1, 8)):
                contract, fn = rng.choice(CONTRACT_FNS)
                code, why = BAD_TX if rng.random() < 0.02 else ("valid", None)
                by = rng.choice(members)
                txs.append(m.TxRow(self.hexid(), h, i, contract, fn, by, code, why))
            block = m.BlockRow(h, self.hexid(), len(txs), T_END - (nb - h) * (YEAR // nb),
                             tuple(members), self.hexid())  # fmt: skip
            self.rows["block"].append((block, txs))


def generate(scale: float = 1.0, seed: int = 7) -> tuple[dict[str, list[Any]], SeedSummary]:
    """The rows of every kind (:data:`KINDS`) and a summary (``seconds`` = 0), loading nothing."""
    if not 0 < scale <= 10:
        raise ValueError(f"scale must be in (0, 10], got {scale}")
    g = _Gen(scale, seed)
    for step in (g.organisations, g.limits, g.loans, g.free_receipts, g.notes, g.site_alerts,
                 g.applications, g.blocks):  # fmt: skip
        step()
    counts = {k: len(v) for k, v in g.rows.items()}
    counts["tx"] = sum(len(txs) for _, txs in g.rows["block"])
    sample = dict(bank=g.banks[0], supplier=g.tiers[g.cores[0]][1][0], core=g.cores[0],
                  warehouse="wh-01", logistics="log-01", regulator=REGULATOR,
                  government=GOVERNMENT)  # fmt: skip
    return g.rows, SeedSummary(scale, seed, counts, sum(counts.values()), 0.0, sample, g.sites)


def seed_views(views: Views, scale: float = 1.0, seed: int = 7) -> SeedSummary:
    """Write the simulated dataset into ``views`` (a :class:`~tally.cloud.views.store.Views`
    over a migrated, empty read model) with :meth:`bulk_load`, then ``ANALYZE`` (without
    statistics the planners misjudge the new tables); return what was written."""
    t = time.perf_counter()
    rows, summary = generate(scale, seed)
    for kind in KINDS:
        if rows[kind]:
            views.bulk_load(kind, rows[kind])
    with views.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return replace(summary, seconds=round(time.perf_counter() - t, 3))

"""A small, hand-checked read model (simulated data) used by the read-model tests.

Two banks, two core enterprises, four suppliers (three in core1's chain: s1 and s3 at tier 1,
s2 at tier 2; s4 in core2's), two warehouses (wh1 keeps sites wh1-a and wh1-b, wh2 keeps
wh2-a) and a regulator. Every number a dashboard test expects is derived by hand from the
rows below; the comments next to them say which rows count.
"""

from __future__ import annotations

from typing import Any

from tally.cloud.views import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LimitRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
    Views,
)

H = 3_600_000  # one hour in ms


def org(id: str, kind: str, *, core: str | None = None, tier: int | None = None,
        bank: str | None = None, industry: str | None = None,
        region: str | None = None) -> OrgRow:  # fmt: skip
    return OrgRow(id, f"{id} (simulated)", kind, industry, region, core, tier, bank, True)


ORGS = [
    org("bank1", "bank"),
    org("bank2", "bank"),
    org("core1", "core_enterprise", industry="machinery", region="Jiangsu"),
    org("core2", "core_enterprise", industry="food", region="Anhui"),
    org("s1", "supplier", core="core1", tier=1, bank="bank1", industry="textiles",
        region="Jiangsu"),
    org("s2", "supplier", core="core1", tier=2, bank="bank1", industry="textiles",
        region="Zhejiang"),
    org("s3", "supplier", core="core1", tier=1, bank="bank2", industry="electronics",
        region="Zhejiang"),
    org("s4", "supplier", core="core2", tier=1, bank="bank2", industry="food", region="Anhui"),
    org("wh1", "warehouse"),
    org("wh2", "warehouse"),
    org("reg", "regulator"),
]  # fmt: skip


def receipt(no: str, holder: str, custodian: str | None, bank: str | None, site: str,
            status: str, commodity: str, quantity: str, value: int | None, issued: int,
            loan: str | None = None) -> ReceiptRow:  # fmt: skip
    return ReceiptRow(no, holder, custodian, bank, site, f"{site}/bay-1", commodity, quantity,
                      "t", value, status, loan, issued, issued + 1, issued // 100)  # fmt: skip


RECEIPTS = [
    receipt("r1", "s1", "wh1", "bank1", "wh1-a", "pledged", "copper", "10.5", 1_000_000, 1000,
            "L1"),
    receipt("r2", "s1", "wh1", None, "wh1-a", "live", "copper", "4", 400_000, 2000),
    receipt("r3", "s2", "wh1", "bank1", "wh1-b", "frozen", "aluminium", "2.25", 200_000, 3000,
            "L2"),
    receipt("r4", "s3", "wh2", "bank2", "wh2-a", "pledged", "copper", "7", 700_000, 4000, "L3"),
    receipt("r5", "s4", "wh2", None, "wh2-a", "delivered", "soy", "100", None, 5000),
    receipt("r6", "s2", "wh1", None, "wh1-b", "live", "aluminium", "1.75", 150_000, 6000),
]  # fmt: skip


def loan(id: str, borrower: str, bank: str, principal: int, outstanding: int, rate: str,
         status: str, coverage: float | None, receipts: tuple[str, ...], applied: int,
         disbursed: int | None) -> LoanRow:  # fmt: skip
    return LoanRow(id, borrower, bank, principal, outstanding, rate, status, coverage, receipts,
                   None, applied, disbursed, None, applied + 5, 10)  # fmt: skip


LOANS = [
    loan("L1", "s1", "bank1", 800_000, 800_000, "0.05", "active", 1.25, ("r1",), 0, 1 * H),
    loan("L2", "s2", "bank1", 150_000, 100_000, "0.06", "margin_call", 1.1, ("r3",), 10,
         10 + 2 * H),
    loan("L3", "s3", "bank2", 500_000, 500_000, "0.04", "active", 1.6, ("r4",), 20, 20 + 10 * H),
    loan("L4", "s1", "bank1", 300_000, 0, "0.05", "closed", None, (), 30, 30 + 4 * H),
    loan("L5", "s4", "bank2", 200_000, 200_000, "0.07", "applied", None, (), 40, None),
    loan("L6", "s2", "bank1", 100_000, 100_000, "0.05", "active", None, (), 50, 50 + 3 * H),
    loan("L7", "s1", "bank1", 50_000, 50_000, "0.05", "overdue", 1.5, (), 60, 60 + 5 * H),
]  # fmt: skip


def note(id: str, root: str, parent: str | None, issuer: str, holder: str, bank: str | None,
         amount: int, status: str, tier: int, trade: str | None,
         issued: int) -> NoteRow:  # fmt: skip
    return NoteRow(id, root, parent, issuer, holder, bank, amount, status, tier, trade, issued,
                   issued + 90 * 24 * H, issued + 7, 12)  # fmt: skip


NOTES = [
    note("N1", "N1", None, "core1", "s1", None, 1_000_000, "split", 1, "T1", 100),
    note("N2", "N1", "N1", "core1", "s1", None, 600_000, "live", 1, "T1", 100),
    note("N3", "N1", "N1", "core1", "s2", "bank1", 400_000, "financed", 2, "T1", 100),
    note("N4", "N4", None, "core1", "s3", None, 250_000, "offered", 1, "T2", 200),
    note("N5", "N5", None, "core2", "s4", None, 50_000, "settled", 1, None, 300),
]  # fmt: skip

TRADES = [
    TradeRow("T1", "s1", "core1", "bank1", "reconciled", 1_000_000, (), 50, 5),
    TradeRow("T2", "s3", "core1", None, "mismatch", 250_000, ("amount differs",), None, 6),
    TradeRow("T3", "s2", "s1", None, "reconciled", 400_000, (), 70, 7),
]

DOCUMENTS = [
    DocumentRow("aa01", "invoice", "s1", "core1", "T1", "INV-1", 1_000_000, 40, 5),
    DocumentRow("aa02", "contract", "core1", "s3", "T2", "C-2", 250_000, 60, 6),
    DocumentRow("aa03", "delivery", "wh1", None, None, None, None, 70, None),
]


def alert(id: str, kind: str, severity: str, owner: str, bank: str | None, site: str | None,
          at: int, acked: tuple[str, int] | None = None) -> AlertRow:  # fmt: skip
    by, when = acked if acked else (None, None)
    return AlertRow(id, kind, severity, owner, bank, site, None, None, f"{kind} (simulated)",
                    at, ("evidence:1",), by, when)  # fmt: skip


ALERTS = [
    alert("A1", "margin_call", "warning", "s2", "bank1", "wh1-b", 1000),
    alert("A2", "disposal", "critical", "s1", "bank1", "wh1-a", 2000),
    alert("A3", "custody", "info", "s3", "bank2", "wh2-a", 3000, ("bank2/ops", 3500)),
    alert("A4", "tamper", "critical", "wh2", None, "wh2-a", 4000),
    alert("A5", "cured", "info", "s1", "bank1", None, 5000),
]  # fmt: skip

APPLICATIONS = [
    ApplicationRow("P1", "s1", "bank1", "receipt", "r2", 400_000, "submitted", 100, "s1/alice",
                   None, None, None),
    ApplicationRow("P2", "s4", "bank2", "note", "N5", 50_000, "refused", 200, "s4/bob",
                   "bank2/carol", 250, "limit exceeded"),
    ApplicationRow("P3", "s2", "bank1", "note", "N3", 300_000, "submitted", 300, "s2/dan",
                   None, None, None),
]  # fmt: skip

LIMITS = [
    LimitRow("bank1", "s1", "limit", 2_000_000, 800_000, "CNY", None, None, 10, 3),
    LimitRow("bank2", "s1", "limit", 500_000, 600_000, "CNY", None, None, 11, 3),
    LimitRow("bank1", "core1", "credit", 10_000_000, 1_000_000, "CNY", "0.035", 99_999, 12, 3),
]


def block(height: int, txs: int = 2) -> tuple[BlockRow, list[TxRow]]:
    b = BlockRow(height, f"{height:064x}", txs, 1000 * height, ("bank1", "bank2"), f"{height:02x}")
    return b, [
        TxRow(f"{height:032x}{i:032x}", height, i, "receipts", "issue", "bank1", "ok", None)
        for i in range(txs)
    ]


BLOCKS = [block(h) for h in range(1, 6)]

KIND_ROWS: dict[str, list[Any]] = {
    "org": ORGS,
    "receipt": RECEIPTS,
    "loan": LOANS,
    "note": NOTES,
    "trade": TRADES,
    "document": DOCUMENTS,
    "alert": ALERTS,
    "application": APPLICATIONS,
}
TENANTS = sorted({o.id for o in ORGS})


def load(views: Views, bulk: bool = False) -> None:
    """Write the whole dataset, row by row through the upserts or with bulk_load."""
    if bulk:
        for kind in ("org", "trade", "receipt", "loan", "note", "document", "alert",
                     "application"):  # fmt: skip
            assert views.bulk_load(kind, KIND_ROWS[kind]) == len(KIND_ROWS[kind])
        views.bulk_load("limit", LIMITS)
        views.bulk_load("block", BLOCKS)
        return
    for o in ORGS:
        views.upsert_org(o)
    for d in DOCUMENTS:  # before their trades: they take the trade's bank when it arrives
        views.upsert_document(d)
    for t in TRADES:
        views.upsert_trade(t)
    for r in RECEIPTS:
        views.upsert_receipt(r)
    for ln in LOANS:
        views.upsert_loan(ln)
    for n in NOTES:
        views.upsert_note(n)
    for a in ALERTS:
        assert views.add_alert(a)
    for p in APPLICATIONS:
        views.add_application(p)
    for lim in LIMITS:
        views.upsert_limit(lim)
    for b, txs in BLOCKS:
        views.upsert_block(b, txs)


def trade_bank(trade: str | None) -> str | None:
    return next((t.bank for t in TRADES if t.id == trade), None)

"""``tally bench fourflow``: four-flow reconciliation of 10^4 to 10^6 documents.

For each size a seeded synthetic book of trades is generated: a tiered supply chain (core
enterprises, then four tiers of suppliers, each supplier selling to one to three customers of
the tier above), and per trade a contract, one to three VAT invoices splitting it, a waybill,
a warehouse entry at the buyer, an IoT movement and a payment for about half of the invoices —
seven documents a trade on average, dated inside the contract's delivery window, quantities
within the tolerances. A share of the trades (``anomalies``, default 5 %) carries one planted
fault, spread evenly over: a short warehouse entry (``quantity``), an invoice above the contract
(``invoiced``), a late delivery (``delivery``), a payment from another party (``payer``), a
payment for a foreign invoice (``payment_invoice``), a short IoT measurement (``iot``), a wrong
buyer tax id on an invoice (``parties``), a ring of three trades among shell companies
(``circular``) and a seller sharing a bank account with its buyer (``related_party``).

Documents are synthetic views (:mod:`tally.finance.fourflow`), unsigned: the benchmark measures
the reconciliation, not COSE signing (``tally bench verify`` and ``edge`` measure signatures).

Timed, per size: the documents arriving one by one in a seeded random order into a
:class:`~tally.finance.fourflow.Reconciler` (every party's KYC record loaded first), which is
asked to judge its marked trades after every ``batch`` documents — a trade is judged again each
time one of its documents arrives once it has every required kind. Reported: the cost per
trade (``per_trade_us`` = time ÷ trades) and trades per second; ``judged_per_trade`` (how many
times a trade was judged); ``report_us``, the deterministic CBOR report and its hash for one
trade (median of a sample). ``flatness`` is the largest ``per_trade_us`` over the smallest
(the goal is within 2×). ``detected`` compares the final verdicts with the planted faults:
precision and recall over trades, and whether each faulty trade failed exactly its rule.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tally.bench.common import emit, machine, median, note, rounded
from tally.crypto import INTL, cbor
from tally.finance.circular import KycRecord
from tally.finance.fourflow import (
    ContractView,
    DocView,
    InvoiceView,
    IotView,
    PaymentView,
    Reconciler,
    WarehouseView,
    WaybillView,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
GOAL_FLATNESS = 2.0
TIER_SHARES = (1, 9, 20, 30, 40)  # % of the parties in tier 0 (core) .. tier 4
FAULTS = ("quantity", "invoiced", "delivery", "payer", "payment_invoice", "iot", "parties",
          "circular", "related_party")  # fmt: skip
CARRIERS, WAREHOUSES = 40, 80


def _tax(i: int) -> str:
    return f"91{i:016d}"


@dataclass
class Book:
    """A generated book: the documents in arrival order, KYC records, the planted faults."""

    docs: list[DocView] = field(default_factory=list)
    kyc: list[KycRecord] = field(default_factory=list)
    planted: dict[str, str] = field(default_factory=dict)  # trade -> the rule it breaks
    trades: int = 0


class _Gen:
    def __init__(self, documents: int, seed: int, anomalies: float) -> None:
        self.rng = random.Random(seed)
        self.book = Book()
        self.anomalies = anomalies
        n_parties = max(50, documents // 28)
        self.tiers: list[list[str]] = []
        k = 0
        for share in TIER_SHARES:
            tier = [f"p{k + i:07d}" for i in range(max(2, n_parties * share // 100))]
            k += len(tier)
            self.tiers.append(tier)
        self.customers: dict[str, list[str]] = {}
        for up, tier in zip(self.tiers, self.tiers[1:], strict=False):
            for p in tier:
                self.customers[p] = self.rng.sample(up, self.rng.randint(1, min(3, len(up))))
        self.suppliers = [p for tier in self.tiers[1:] for p in tier]
        self.taxes = {p: _tax(i) for i, p in enumerate(p for t in self.tiers for p in t)}
        self.kyc_of: dict[str, KycRecord] = {}
        for i, p in enumerate(self.taxes):
            self._kyc(p, f"id{i:09d}", f"account {i:012d}")
        self.n_invoice = 0

    def _kyc(self, party: str, person: str, account: str) -> None:
        rec = KycRecord(party, (person,), (f"No. {party} Road",), (account,))
        self.book.kyc.append(rec)
        self.kyc_of[party] = rec

    def trade(self, seller: str, buyer: str, fault: str | None) -> None:
        rng, book = self.rng, self.book
        tid = f"T{book.trades:07d}"
        book.trades += 1
        if fault is not None:
            book.planted[tid] = fault
        t0 = T0 + rng.randrange(300) * DAY
        start, end = t0 + 2 * DAY, t0 + 32 * DAY
        q = rng.randint(20, 500)
        price = rng.randint(300_000, 6_000_000)
        amount, quantity = q * price, Decimal(q)
        st, bt = self.taxes.get(seller, _tax(10**9 + book.trades)), self.taxes[buyer]
        docs = book.docs
        docs.append(ContractView(f"C{tid}", buyer, tid, t0, seller, buyer, st, bt, quantity,
                                 "t", amount, "CNY", start, end))  # fmt: skip
        k = rng.randint(1, 3) if q >= 3 else 1
        cuts = sorted(rng.sample(range(1, q), k - 1)) if k > 1 else []
        bounds = [0, *cuts, q]
        invoices = []
        for j in range(k):
            qj = bounds[j + 1] - bounds[j]
            net = qj * price + (amount // 20 if fault == "invoiced" and j == 0 else 0)
            total = net + net * 13 // 100  # 13 % VAT
            self.n_invoice += 1
            number = f"{self.n_invoice:020d}"
            btax = "91" + "9" * 16 if fault == "parties" and j == 0 else bt
            inv = InvoiceView(f"I{number}", seller, tid, t0 + DAY, number, seller, buyer, st,
                              btax, f"C{tid}", Decimal(qj), "t", net, total, "CNY")  # fmt: skip
            invoices.append(inv)
        docs.extend(invoices)
        delivered = start + rng.randrange(25) * DAY
        if fault == "delivery":
            delivered = end + 2 * DAY
        carrier = f"carrier-{rng.randrange(CARRIERS):03d}"
        docs.append(WaybillView(f"W{tid}", carrier, tid, start, f"WB{tid}", carrier, seller,
                                buyer, quantity, "t", delivered))  # fmt: skip
        wh = f"wh-{rng.randrange(WAREHOUSES):03d}"
        received = quantity - quantity * rng.randrange(3) / 1000  # up to 0.2 % short
        if fault == "quantity":
            received = quantity * Decimal("0.9")
        arrive = min(delivered, end) if fault == "delivery" else delivered
        docs.append(WarehouseView(f"R{tid}", wh, tid, arrive, "warehouse_in", f"IN{tid}", wh,
                                  buyer, received, "t", arrive))  # fmt: skip
        measured = quantity + quantity * rng.randrange(-3, 4) / 1000  # within 0.3 %
        if fault == "iot":
            measured = quantity * Decimal("0.97")
        docs.append(IotView(f"M{tid}", wh, tid, arrive, measured, "t", rng.randint(2, 6)))
        paid = [i for i in invoices if rng.random() < 0.5]
        if fault in ("payer", "payment_invoice") and not paid:
            paid = invoices[:1]
        for n, inv in enumerate(paid):
            payer_ = f"p{rng.randrange(10**6):07d}x" if fault == "payer" and n == 0 else buyer
            ref = "99999999" if fault == "payment_invoice" and n == 0 else inv.number
            docs.append(PaymentView(f"P{inv.number}", payer_, tid, t0 + 20 * DAY,
                                    f"BR{inv.number}", payer_, seller, inv.total // 2, "CNY",
                                    ref))  # fmt: skip

    def ordinary(self, fault: str | None) -> None:
        seller = self.rng.choice(self.suppliers)
        buyer = self.rng.choice(self.customers[seller])
        if fault == "related_party":  # a shell seller sharing the buyer's bank account
            seller = f"shell-{self.book.trades:07d}"
            self._kyc(seller, f"shell-id-{self.book.trades}", self.kyc_of[buyer].accounts[0])
        self.trade(seller, buyer, fault)

    def ring(self) -> None:
        names = [f"ring-{self.book.trades:07d}-{i}" for i in range(3)]
        for i, p in enumerate(names):
            self.taxes[p] = _tax(2 * 10**9 + self.book.trades * 3 + i)
            self._kyc(p, f"ring-id-{p}", f"ring-account-{p}")
        for i in range(3):
            self.trade(names[i], names[(i + 1) % 3], "circular")


def generate(documents: int, seed: int = 1, anomalies: float = 0.05) -> Book:
    """A book of about ``documents`` documents (see the module docstring), shuffled."""
    g = _Gen(documents, seed, anomalies)
    n = 0
    while len(g.book.docs) < documents:
        if g.rng.random() < anomalies:
            fault = FAULTS[n % len(FAULTS)]
            n += 1
            g.ring() if fault == "circular" else g.ordinary(fault)
        else:
            g.ordinary(None)
    g.rng.shuffle(g.book.docs)
    return g.book


def feed(book: Book, batch: int) -> tuple[Reconciler, float, int]:
    """Every KYC record, then the documents in order, judging after every ``batch``; the
    reconciler, the seconds the documents took and how many judgements were made."""
    rec = Reconciler()
    for r in book.kyc:
        rec.put_kyc(r)
    judged = 0
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        for i, doc in enumerate(book.docs, 1):
            rec.add(doc)
            if i % batch == 0:
                judged += len(rec.judge())
        judged += len(rec.judge())
        elapsed = time.perf_counter() - t
    finally:
        gc.enable()
    return rec, elapsed, judged


def detected(book: Book, rec: Reconciler) -> dict[str, Any]:
    """The final verdicts against the planted faults."""
    results = rec.results()
    bad = {t for t, r in results.items() if r.status != "reconciled"}
    planted = set(book.planted)
    tp = len(bad & planted)
    exact = sum(1 for t in planted if t in results and results[t].failed() == (book.planted[t],))
    by_rule = {f: {"planted": 0, "found": 0} for f in FAULTS}
    for t, f in book.planted.items():
        by_rule[f]["planted"] += 1
        by_rule[f]["found"] += int(t in bad)
    return {
        "trades_judged": len(results),
        "pending": book.trades - len(results),
        "planted": len(planted),
        "found": len(bad),
        "true_positive": tp,
        "false_positive": len(bad - planted),
        "false_negative": len(planted - bad),
        "precision": round(tp / len(bad), 4) if bad else 1.0,
        "recall": round(tp / len(planted), 4) if planted else 1.0,
        "exact_rule": exact,
        "by_rule": by_rule,
    }


def report_us(rec: Reconciler, sample: int, seed: int) -> float:
    """Median µs to encode one trade's report and hash it."""
    results = rec.results()
    trades = sorted(results)
    picks = random.Random(seed).sample(trades, min(sample, len(trades)))
    times = []
    for t in picks:
        r = results[t]
        s = time.perf_counter()
        INTL.hash(cbor.encode(r.report()))
        times.append(time.perf_counter() - s)
    return round(median(times) * 1e6, 2)


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    batch: int = 100,
    anomalies: float = 0.05,
    seed: int = 1,
    json_only: bool = True,
) -> dict[str, Any]:
    """Measure each size (documents); the detection of the planted faults over all sizes."""
    if not sizes or min(sizes) < 100:
        raise ValueError(f"sizes {sizes!r} must be document counts >= 100")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    if not 0 <= anomalies <= 0.5:
        raise ValueError(f"anomalies must be a share in [0, 0.5], got {anomalies!r}")
    result: dict[str, Any] = {"benchmark": "fourflow", "sizes": []}
    found: dict[str, Any] = {}
    for n in sizes:
        note(json_only, f"fourflow bench: generating {n} documents")
        gc.disable()
        try:
            t = time.perf_counter()
            book = generate(n, seed, anomalies)
            built = time.perf_counter() - t
        finally:
            gc.enable()
        note(json_only, f"fourflow bench: reconciling {book.trades} trades")
        rec, elapsed, judged = feed(book, batch)
        det = detected(book, rec)
        found[str(n)] = det
        result["sizes"].append({
            "documents": len(book.docs),
            "trades": book.trades,
            "per_trade_us": round(elapsed / book.trades * 1e6, 2),
            "trades_per_s": rounded(book.trades / elapsed),
            "judged_per_trade": round(judged / book.trades, 2),
            "report_us": report_us(rec, 500, seed),
            "feed_s": round(elapsed, 3),
            "build_s": round(built, 3),
        })  # fmt: skip
        del book, rec
        gc.collect()
    per = [r["per_trade_us"] for r in result["sizes"]]
    result["flatness"] = round(max(per) / min(per), 3) if min(per) > 0 else 0.0
    result["goal_flatness"] = GOAL_FLATNESS
    result["goal_met"] = result["flatness"] <= GOAL_FLATNESS
    total = {k: sum(d[k] for d in found.values()) for k in
             ("planted", "found", "true_positive", "false_positive", "false_negative",
              "exact_rule", "pending")}  # fmt: skip
    tp = total["true_positive"]
    total["precision"] = round(tp / total["found"], 4) if total["found"] else 1.0
    total["recall"] = round(tp / total["planted"], 4) if total["planted"] else 1.0
    result["detected"] = {**total, "by_size": found}
    result["params"] = {
        "batch": batch, "anomalies": anomalies, "seed": seed, "faults": list(FAULTS),
        "documents": "synthetic views, unsigned",
        "tolerances": "defaults (quantity and IoT 0.5 %, amount 0, no delivery grace)",
    }  # fmt: skip
    result["machine"] = machine()
    return result


def run_fourflow_bench(sizes: tuple[int, ...], json_only: bool) -> int:
    """The ``tally bench fourflow`` command."""
    r = run(sizes, json_only=json_only)
    lines = [
        f"{s['documents']} documents, {s['trades']} trades: {s['per_trade_us']} µs per trade, "
        f"{s['trades_per_s']} trades/s"
        for s in r["sizes"]
    ]
    d = r["detected"]
    lines.append(
        f"flatness {r['flatness']} (goal <= {GOAL_FLATNESS}: "
        f"{'met' if r['goal_met'] else 'NOT met'}); planted faults: precision {d['precision']}, "
        f"recall {d['recall']}, {d['exact_rule']} of {d['planted']} failed exactly their rule"
    )
    return emit(r, json_only, lines)

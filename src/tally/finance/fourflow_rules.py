"""The four-flow matching rules, their tolerances and the check each one reports.

Each rule reads one trade's documents (:class:`tally.finance.fourflow.TradeDocs`), compares
figures against the contract with a tolerance from :class:`Tolerances`, and returns a
:class:`Check`: the rule's name, whether it holds, the figures it compared, the tolerance it
allowed and one sentence a credit officer can read. The rules, in the order they are
reported (docs/finance-fourflow.md gives each one's exact comparison):

=================  ================================================================================
``documents``      the required kinds are present, one contract, no number twice, every invoice
                   and order names the trade's contract
``parties``        seller, buyer and their tax ids agree across contract, invoices, waybills and
                   warehouse entries; each of those is signed by its issuer
``currency``       invoices and payments are in the contract's currency
``invoiced``       Σ invoice amounts before tax (or, with ``contract_tax`` "included", Σ totals)
                   <= contract amount + ``amount`` tolerance
``quantity``       invoiced ≈ shipped ≈ received (≈ dispatched): max − min <= ``quantity`` × max,
                   none above the contract quantity × (1 + ``quantity``), all in the contract's unit
``delivery``       every waybill delivery and warehouse entry inside the contract's delivery window
                   (plus ``delivery_grace_ms``)
``payer``          every payment is from the contract's buyer to its seller
``payment_invoice`` every payment names an invoice of the trade
``iot``            Σ IoT-measured quantity ≈ Σ waybill quantity: |measured − shipped| <=
                   ``iot`` × max; every movement carries readings, in the contract's unit
``circular``       no recent circular trade through seller → buyer (:mod:`tally.finance.circular`)
``related_party``  seller and buyer share no person, address or bank account
=================  ================================================================================

A rule that needs the contract fails when there is none. All arithmetic is exact: money in
integer minor units, quantities and tolerances as Decimal (60 digits, no rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any

from tally.finance.circular import Related
from tally.finance.interest import DAY_MS, OFFSET_MS, date_of, day

if TYPE_CHECKING:
    from tally.finance import fourflow as ff

RULES = ("documents", "parties", "currency", "invoiced", "quantity", "delivery", "payer",
         "payment_invoice", "iot", "circular", "related_party")  # fmt: skip
FLAG_RULES = frozenset({"circular", "related_party"})
"""Rules whose failure makes a trade ``flagged`` (a sign of fake trade) rather than
``mismatch`` (documents that do not agree)."""
KINDS = ("contract", "order", "invoice", "waybill", "warehouse_in", "warehouse_out",
         "iot_movement", "payment")  # fmt: skip
NAMES = {"contract": "contract", "order": "order", "invoice": "invoice", "waybill": "waybill",
         "warehouse_in": "warehouse entry", "warehouse_out": "warehouse exit",
         "iot_movement": "IoT movement", "payment": "payment"}  # fmt: skip
REQUIRED = ("contract", "invoice", "waybill", "warehouse_in", "iot_movement")
MAX_LISTED = 3
_X = Context(prec=60)


@dataclass(frozen=True)
class Tolerances:
    """How far the flows may disagree. Defaults: quantities and IoT within 0.5 %, invoices not
    a fen above the contract, deliveries strictly inside the contract window; a trade needs a
    contract, an invoice, a waybill, a warehouse entry and an IoT movement; the contract's
    amount is before VAT (``contract_tax`` "excluded": price × quantity, like an invoice's
    amount), or "included" (a tax-inclusive contract price, compared with invoice totals)."""

    quantity: Decimal = Decimal("0.005")
    iot: Decimal = Decimal("0.005")
    amount: int = 0
    delivery_grace_ms: int = 0
    required: tuple[str, ...] = REQUIRED
    contract_tax: str = "excluded"

    def __post_init__(self) -> None:
        for name in ("quantity", "iot"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite() or not 0 <= v < 1:
                raise ValueError(f"tolerance {name} must be a Decimal in [0, 1), got {v!r}")
        for name in ("amount", "delivery_grace_ms"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"tolerance {name} must be an integer >= 0, got {v!r}")
        if self.contract_tax not in ("excluded", "included"):
            raise ValueError(
                "tolerance contract_tax must be 'excluded' or 'included', got "
                f"{self.contract_tax!r}"
            )
        r = self.required
        if not isinstance(r, tuple) or "contract" not in r or any(k not in KINDS for k in r):
            raise ValueError(
                "tolerance required must be a tuple of document kinds including 'contract' "
                f"(kinds: {', '.join(KINDS)}), got {r!r}"
            )

    def as_map(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "iot": self.iot, "amount": self.amount,
                "delivery_grace_ms": self.delivery_grace_ms, "required": list(self.required),
                "contract_tax": self.contract_tax}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Check:
    """One rule's verdict on one trade: ``figures`` are the numbers compared (ints are minor
    units or ms, Decimals quantities), ``tolerance`` what was allowed, ``detail`` the sentence."""

    rule: str
    ok: bool
    figures: dict[str, Any]
    tolerance: Decimal | int | None
    detail: str

    def as_map(self) -> dict[str, Any]:
        return {"rule": self.rule, "ok": self.ok, "figures": self.figures,
                "tolerance": self.tolerance, "detail": self.detail}  # fmt: skip


# -- wording ------------------------------------------------------------------------------------


def money(minor: int, currency: str) -> str:
    """``CNY 1,130,000.00`` (two minor digits)."""
    q, r = divmod(abs(minor), 100)
    return f"{currency} {'-' if minor < 0 else ''}{q:,}.{r:02d}"


def qty(q: Decimal, unit: str) -> str:
    return f"{q.normalize(_X):f} {unit}"


def pct(tol: Decimal) -> str:
    return f"{(tol * 100).normalize(_X):f} %"


def when(ms: int) -> str:
    """Beijing date and time, ``2026-03-01 08:00``."""
    minutes = (ms + OFFSET_MS) % DAY_MS // 60_000
    return f"{date_of(day(ms))} {minutes // 60:02d}:{minutes % 60:02d}"


def listing(items: Sequence[str]) -> str:
    more = len(items) - MAX_LISTED
    return "; ".join(items[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _total(xs: Iterable[Decimal]) -> Decimal:
    s = Decimal(0)
    for x in xs:
        s = _X.add(s, x)
    return s


def _verdict(
    rule: str, figures: dict[str, Any], tol: Decimal | int | None, problems: list[str],
    ok_text: str, fail_text: str,
) -> Check:  # fmt: skip
    figures["problems"] = problems
    if problems:
        return Check(rule, False, figures, tol, f"{fail_text}: {listing(problems)}.")
    return Check(rule, True, figures, tol, ok_text)


def _no_contract(rule: str, tolerance: Decimal | int | None = None) -> Check:
    return Check(rule, False, {}, tolerance, "Cannot be checked: the trade has no contract.")


# -- the rules ----------------------------------------------------------------------------------


def documents(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    counts = d.counts()
    problems: list[str] = []
    missing = [NAMES[k] for k in tol.required if counts[k] == 0]
    if missing:
        problems.append("missing " + ", ".join(missing))
    if counts["contract"] > 1:
        problems.append(f"{counts['contract']} contracts ({', '.join(x.no for x in d.contracts)})")
    for docs in (d.invoices, d.waybills, d.warehouse_in, d.warehouse_out, d.payments):
        numbers = [x.number for x in docs]
        problems += [f"{NAMES[docs[0].kind]} {n} appears twice" for n in sorted(set(numbers))
                     if numbers.count(n) > 1]  # fmt: skip
    if c is not None:
        refs = [(f"invoice {x.number}", x.contract) for x in d.invoices]
        refs += [(f"order {x.no}", x.contract) for x in d.orders]
        problems += [f"{w} names contract {r}, not {c.no}" for w, r in refs if r != c.no]
    parts = ", ".join(plural(counts[k], NAMES[k]) for k in KINDS if counts[k])
    ok_text = f"Documents complete: {parts}" + (f"; each invoice names {c.no}." if c else ".")
    figures: dict[str, Any] = {**counts, "required": list(tol.required)}
    return _verdict("documents", figures, None, problems, ok_text, "Documents")


def parties(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("parties")
    problems: list[str] = []

    def same(what: str, field: str, got: str, want: str) -> None:
        if got != want:
            problems.append(f"{what} names {field} {got}, the contract {want}")

    same(f"contract {c.no}", "signer", c.by, c.buyer)
    for i in d.invoices:
        for field, got, want in (("seller", i.seller, c.seller), ("buyer", i.buyer, c.buyer),
                                 ("seller tax id", i.seller_tax_id, c.seller_tax_id),
                                 ("buyer tax id", i.buyer_tax_id, c.buyer_tax_id),
                                 ("signer", i.by, c.seller)):  # fmt: skip
            same(f"invoice {i.number}", field, got, want)
    for b in d.waybills:
        same(f"waybill {b.number}", "shipper", b.shipper, c.seller)
        same(f"waybill {b.number}", "consignee", b.consignee, c.buyer)
        if b.by != b.carrier:
            problems.append(f"waybill {b.number} is signed by {b.by}, not its carrier {b.carrier}")
    stock = [(s, c.buyer) for s in d.warehouse_in] + [(s, c.seller) for s in d.warehouse_out]
    for s, want in stock:
        same(f"{NAMES[s.kind]} {s.number}", "depositor", s.depositor, want)
        if s.by != s.warehouse:
            problems.append(f"{NAMES[s.kind]} {s.number} is signed by {s.by}, not {s.warehouse}")
    n = 1 + len(d.invoices) + len(d.waybills) + len(stock)
    figures = {"seller": c.seller, "buyer": c.buyer, "seller_tax_id": c.seller_tax_id,
               "buyer_tax_id": c.buyer_tax_id, "documents": n}  # fmt: skip
    ok_text = (f"Seller {c.seller} ({c.seller_tax_id}) and buyer {c.buyer} ({c.buyer_tax_id}) "
               f"are the same on all {n} documents, each signed by its issuer.")  # fmt: skip
    return _verdict("parties", figures, None, problems, ok_text, "Parties disagree")


def currency(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("currency")
    cur = c.currency
    problems = [f"invoice {i.number} is in {i.currency}" for i in d.invoices if i.currency != cur]
    problems += [f"payment {p.number} is in {p.currency}" for p in d.payments if p.currency != cur]
    ok_text = f"Contract, invoices and payments are all in {cur}."
    fail_text = f"Currencies differ from the contract's {cur}"
    return _verdict("currency", {"currency": cur}, None, problems, ok_text, fail_text)


def invoiced(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("invoiced", tol.amount)
    net, gross = sum(i.amount for i in d.invoices), sum(i.total for i in d.invoices)
    cur = c.currency
    compared, allowed = (net if tol.contract_tax == "excluded" else gross), c.amount + tol.amount
    figures = {"invoiced": compared, "net": net, "total": gross, "contract": c.amount,
               "contract_tax": tol.contract_tax, "allowed": allowed}  # fmt: skip
    basis = "before tax" if tol.contract_tax == "excluded" else "with tax"
    if compared <= allowed:
        text = (f"{plural(len(d.invoices), 'invoice')} total {money(compared, cur)} {basis} "
                f"({money(gross, cur)} with tax), within the contract amount "
                f"{money(c.amount, cur)}.")  # fmt: skip
        return Check("invoiced", True, figures, tol.amount, text)
    text = (f"Invoices total {money(compared, cur)} {basis}, {money(compared - c.amount, cur)} "
            f"above the contract amount {money(c.amount, cur)} "
            f"(tolerance {money(tol.amount, cur)}).")  # fmt: skip
    return Check("invoiced", False, figures, tol.amount, text)


def quantity(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("quantity", tol.quantity)
    u = c.unit
    docs: list[ff.InvoiceView | ff.WaybillView | ff.WarehouseView] = [*d.invoices, *d.waybills]
    docs += [*d.warehouse_in, *d.warehouse_out]
    problems = [f"{NAMES[x.kind]} {x.number} is in {x.unit}" for x in docs if x.unit != u]
    flows = {"invoiced": _total(x.quantity for x in d.invoices),
             "shipped": _total(x.quantity for x in d.waybills),
             "received": _total(x.quantity for x in d.warehouse_in)}  # fmt: skip
    if d.warehouse_out:
        flows["dispatched"] = _total(x.quantity for x in d.warehouse_out)
    hi_name, lo_name = max(flows, key=flows.__getitem__), min(flows, key=flows.__getitem__)
    hi, lo = flows[hi_name], flows[lo_name]
    spread, allowed = _X.subtract(hi, lo), _X.multiply(tol.quantity, hi)
    cap = _X.multiply(c.quantity, _X.add(1, tol.quantity))
    if spread > allowed:
        problems.append(f"{hi_name} {qty(hi, u)} and {lo_name} {qty(lo, u)} differ by "
                        f"{qty(spread, u)}, more than {pct(tol.quantity)} "
                        f"({qty(allowed, u)})")  # fmt: skip
    if hi > cap:
        problems.append(f"{hi_name} {qty(hi, u)} exceeds the contract's {qty(c.quantity, u)} "
                        f"by more than {pct(tol.quantity)}")  # fmt: skip
    figures = {**flows, "contract": c.quantity, "unit": u, "spread": spread, "allowed": allowed,
               "cap": cap}  # fmt: skip
    said = ", ".join(f"{k} {qty(v, u)}" for k, v in flows.items())
    ok_text = (f"Quantities agree within {pct(tol.quantity)}: {said} (spread {qty(spread, u)}, "
               f"allowed {qty(allowed, u)}; contract {qty(c.quantity, u)}).")  # fmt: skip
    return _verdict("quantity", figures, tol.quantity, problems, ok_text, "Quantities disagree")


def delivery(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    g = tol.delivery_grace_ms
    if c is None:
        return _no_contract("delivery", g)
    start, end = c.delivery_from, c.delivery_to + g
    dates = [(f"waybill {b.number} delivered", b.delivered) for b in d.waybills]
    dates += [(f"warehouse entry {s.number} received", s.at) for s in d.warehouse_in]
    problems = [f"{w} {when(t)}, before the window opened" for w, t in dates if t < start]
    problems += [f"{w} {when(t)}, after the window closed {when(end)}" for w, t in dates if t > end]
    ts = [t for _, t in dates]
    figures = {"from": c.delivery_from, "to": c.delivery_to, "grace_ms": g,
               "earliest": min(ts, default=None), "latest": max(ts, default=None)}  # fmt: skip
    window = f"{when(c.delivery_from)} – {when(c.delivery_to)}"
    ok_text = (f"Goods delivered {when(min(ts))} – {when(max(ts))}, inside the contract window "
               f"{window}." if ts else "No delivery recorded yet.")  # fmt: skip
    fail_text = f"Delivery outside the contract window {window}"
    return _verdict("delivery", figures, g, problems, ok_text, fail_text)


def payer(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("payer")
    problems = [f"payment {p.number} is from {p.payer}" for p in d.payments if p.payer != c.buyer]
    problems += [f"payment {p.number} is to {p.payee}" for p in d.payments if p.payee != c.seller]
    figures = {"buyer": c.buyer, "seller": c.seller, "payments": len(d.payments)}
    n = len(d.payments)
    who = "The payment is" if n == 1 else f"All {n} payments are"
    ok_text = f"{who} from buyer {c.buyer} to seller {c.seller}." if n else "No payment yet."
    fail_text = f"Payments not from buyer {c.buyer} to seller {c.seller}"
    return _verdict("payer", figures, None, problems, ok_text, fail_text)


def payment_invoice(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    numbers = {i.number for i in d.invoices}
    problems = [f"payment {p.number} names invoice {p.invoice}, not one of this trade"
                for p in d.payments if p.invoice not in numbers]  # fmt: skip
    figures = {"invoices": sorted(numbers), "payments": len(d.payments)}
    ok_text = f"Every payment ({len(d.payments)}) names an invoice of this trade."
    return _verdict("payment_invoice", figures, None, problems, ok_text, "Payments elsewhere")


def iot(d: ff.TradeDocs, c: ff.ContractView | None, tol: Tolerances) -> Check:
    if c is None:
        return _no_contract("iot", tol.iot)
    if not d.iot and "iot_movement" not in tol.required:
        return Check("iot", True, {"movements": 0}, tol.iot, "No IoT movement required.")
    u = c.unit
    measured = _total(m.quantity for m in d.iot)
    shipped = _total(b.quantity for b in d.waybills)
    diff = abs(_X.subtract(measured, shipped))
    allowed = _X.multiply(tol.iot, max(measured, shipped))
    problems = [f"movement {m.no} is in {m.unit}" for m in d.iot if m.unit != u]
    problems += [f"movement {m.no} has no readings" for m in d.iot if m.readings < 1]
    if diff > allowed:
        problems.append(f"devices measured {qty(measured, u)}, the waybills say "
                        f"{qty(shipped, u)}: {qty(diff, u)} apart, more than {pct(tol.iot)} "
                        f"({qty(allowed, u)})")  # fmt: skip
    readings = sum(m.readings for m in d.iot)
    figures = {"measured": measured, "shipped": shipped, "difference": diff, "allowed": allowed,
               "movements": len(d.iot), "readings": readings}  # fmt: skip
    ok_text = (f"Devices measured {qty(measured, u)} ({plural(readings, 'proven reading')}), "
               f"within {pct(tol.iot)} of the {qty(shipped, u)} on the waybills.")  # fmt: skip
    return _verdict("iot", figures, tol.iot, problems, ok_text, "IoT does not match the waybills")


def circular(rel: Related) -> Check:
    days = rel.window_ms // DAY_MS
    figures: dict[str, Any] = {"max_len": rel.max_len, "window_ms": rel.window_ms}
    if rel.cycle is None:
        return Check("circular", True, figures, None,
                     f"No circular trade: no chain of trades of up to {rel.max_len} parties "
                     f"within {days} days leads from the buyer back to the seller.")  # fmt: skip
    cyc = rel.cycle
    figures |= {"cycle": list(cyc.parties), "trades": list(cyc.trades)}
    return Check("circular", False, figures, None,
                 f"Circular trade: {cyc.text()} (trades {', '.join(cyc.trades)}), "
                 f"{len(cyc.parties)} parties within {days} days.")  # fmt: skip


def related_party(rel: Related, seller: str, buyer: str) -> Check:
    figures = {"links": [[x.kind, x.value] for x in rel.links]}
    if not rel.links:
        text = "Seller and buyer share no person, address or bank account on file."
        return Check("related_party", True, figures, None, text)
    if rel.links[0].kind == "same_party":
        text = f"Seller and buyer are the same party {seller}."
        return Check("related_party", False, figures, None, text)
    kinds = [x.kind for x in rel.links]
    shared = ", ".join(plural(kinds.count(k), "bank account" if k == "account" else k)
                       for k in dict.fromkeys(kinds))  # fmt: skip
    text = f"Seller {seller} and buyer {buyer} are related: they share {shared} on file."
    return Check("related_party", False, figures, None, text)


FLOW_RULES = (documents, parties, currency, invoiced, quantity, delivery, payer, payment_invoice,
              iot)  # fmt: skip
"""The rules over the documents, in report order (then ``circular``, ``related_party``)."""

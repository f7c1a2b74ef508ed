"""The synthetic economy's flows: trades, notes, loans with receipts, guarantees.

* **Trades** — one to three a year per supply relation, sized by industry and tier
  (lognormal); paid after a 30/60/90-day term with a delay that grows with the buyer's latent
  risk (the distressed core pays 40–150 days late); the seller's documents fail a four-flow
  rule with a probability that grows with its risk.
* **Notes** — a core enterprise issues a note to about half of its tier-1 suppliers
  against one of their trades (sometimes two): confirmed by one of its banks 70 % of the time;
  a live note is passed on to the holder's own supplier 30 % of the time and financed by a
  bank 35 % of the time; notes due before ``as_of`` are settled — or overdue, the distressed
  core's of the last quarter (it issues to every supplier, the first note of each overdue).
  Planted financing needs hold live, confirmed, unfinanced notes.
* **Loans** — most SMEs (fewer in deeper tiers; not the planted financing needs) and every
  core borrow; receipt loans in goods industries are secured by 1–3 warehouse receipts kept by
  a logistics core, with a coverage that falls with risk (below 1.3: margin call); days past
  due grow with risk; the distressed core's loans are overdue.
* **Guarantees** — about 30 % of SME loans (10 % of cores') are guaranteed by one of the
  borrower's buyers or a firm of its industry. Background guarantees follow one random
  ranking of all firms (guarantor before debtor), so they close no circle; planted circle
  members and shells guarantee nobody in the background.
"""

from __future__ import annotations

import math

from tally.graph.records import Guarantee, Note, Receipt
from tally.sim.economy_world import AS_OF, DAY, GOODS, TRADE_BASE, WFirm, World

RULES = ("quantity", "invoiced", "delivery", "payer", "iot")
GOODS_INDUSTRIES = ("pharmaceuticals", "grain", "automotive", "machining", "bulk_commodities")
LOAN_SHARE = {1: 0.65, 2: 0.55, 3: 0.45, 4: 0.35, -1: 0.5, 9: 0.8}


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _delay(w: World, buyer: WFirm) -> int:
    r = w.rng
    if buyer.planted == "distress":
        return r.randrange(40, 150)
    if buyer.kind == "core":
        return int(r.gauss(0, 4))
    return max(-10, int(r.gauss(2 + 10 * buyer.z, 8)))


def trades(w: World) -> None:
    r = w.rng
    for sup in list(w.supplies):
        s, b = w.by_id[sup.supplier], w.by_id[sup.buyer]
        if "family_arm" in (s.planted, b.planted):
            continue
        base = TRADE_BASE[s.industry] * 0.6 ** max(0, s.tier - 1) * (1.5 if s.kind == "core" else 1)
        for _ in range(1 + (r.random() < 0.55) + (r.random() < 0.25)):
            amount = int(w.lognormal(base, 0.6)) * 100
            bad = (r.choice(RULES),) if r.random() < _sigmoid(-3.6 + 0.9 * s.z) else ()
            t = w.date(hi=AS_OF - 60_000)
            w.trade(s, b, amount, t, r.choice((30, 60, 90)), _delay(w, b), bad)


def notes(w: World) -> None:
    r = w.rng
    for core in [f for f in w.firms if f.kind == "core"]:
        for sid in core.suppliers:
            s = w.by_id[sid]
            need = s.planted == "need"
            idx = w.pair_trades.get((sid, core.id))
            distress = core.planted == "distress"
            if not idx or (not need and not distress and r.random() > 0.5):
                continue
            for k in range(1 + (r.random() < 0.3)):
                tr = w.trades[r.choice(idx)]
                amount = max(1, int(tr.amount * r.uniform(0.5, 1.0)))
                if need:
                    issued = w.date(AS_OF - 80 * DAY, AS_OF - 2 * DAY)
                else:
                    issued = min(tr.t + r.randrange(0, 10) * DAY, AS_OF - DAY)
                due = issued + r.randrange(90, 181) * DAY
                if distress and k == 0:  # its first note to each supplier is unpaid
                    due = AS_OF - r.randrange(1, 60) * DAY
                    issued = due - 120 * DAY
                confirmed = r.choice(core.banks) if need or r.random() < 0.7 else ""
                if due <= AS_OF:
                    late = core.planted == "distress" and due > AS_OF - 90 * DAY
                    state = "overdue" if late else "settled"
                else:
                    state = "live"
                endorsers: tuple[str, ...] = ()
                holder, financed = sid, ""
                if state == "live" and not need:
                    if s.suppliers and r.random() < 0.3:
                        holder, endorsers = r.choice(s.suppliers), (sid,)
                    if r.random() < 0.35:
                        financed, state = confirmed or w.bank(), "financed"
                w.notes.append(
                    Note(
                        w.next_id("N", 7),
                        core.id,
                        holder,
                        amount,
                        issued,
                        due,
                        tr.id,
                        state,
                        confirmed,
                        financed,
                        endorsers,
                    )
                )


def _sme_loan(w: World, f: WFirm, custodians: list[WFirm]) -> None:
    r = w.rng
    bank = w.bank()
    if f.planted == "shell":
        principal = int(w.lognormal(3_000_000, 0.5)) * 100
    else:
        principal = (
            int(w.lognormal(TRADE_BASE[f.industry] * 2 * 0.7 ** max(0, f.tier - 1), 0.6)) * 100
        )
    outstanding = int(principal * r.uniform(0.2, 1.0))
    dpd = r.randrange(1, 91) if r.random() < _sigmoid(-3.0 + 1.2 * f.z) else 0
    state = "overdue" if dpd > 30 else "active"
    t = w.date()
    if f.industry in GOODS_INDUSTRIES and f.tier != 9 and r.random() < 0.35:
        coverage = round(min(2.5, max(0.8, r.gauss(1.55 - 0.12 * f.z, 0.12))), 3)
        if coverage < 1.3 and state == "active":
            state = "margin_call"
        ids = tuple(w.next_id("R", 7) for _ in range(1 + r.randrange(3)))
        loan = w.loan(bank, f, "receipt", principal, outstanding, t, state, dpd, coverage, ids)
        value = int(outstanding * coverage / 0.8)
        for rid in ids:
            w.receipts.append(
                Receipt(
                    rid,
                    f.id,
                    r.choice(custodians).id,
                    GOODS[f.industry],
                    value // len(ids),
                    t,
                    bank,
                    loan.id,
                )
            )
        f.pledges = True
        return
    kind = "note" if f.tier == 1 and r.random() < 0.1 else "working"
    w.loan(bank, f, kind, principal, outstanding, t, state, dpd)


def loans(w: World) -> None:
    r = w.rng
    custodians = [f for f in w.firms if f.kind == "core" and f.industry == "warehousing_logistics"]
    for f in w.firms:
        if f.planted == "need":
            continue
        if f.kind == "core":
            for _ in range(1 + r.randrange(3)):
                principal = int(f.capital * r.uniform(0.05, 0.3))
                outstanding = int(principal * r.uniform(0.3, 1.0))
                distress = f.planted == "distress"
                w.loan(
                    r.choice(f.banks),
                    f,
                    "working",
                    principal,
                    outstanding,
                    w.date(),
                    "overdue" if distress else "active",
                    r.randrange(45, 120) if distress else 0,
                )
            continue
        share = 0.9 if f.planted in ("circle", "broken") else LOAN_SHARE[f.tier]
        if r.random() < share:
            for _ in range(1 + (r.random() < 0.25)):
                _sme_loan(w, f, custodians)


def guarantees(w: World) -> None:
    """Background guarantees (see the module docstring)."""
    r = w.rng
    order = list(range(len(w.firms)))
    r.shuffle(order)
    rank = {f.id: order[i] for i, f in enumerate(w.firms)}
    by_industry: dict[str, list[WFirm]] = {}
    for f in w.firms:
        by_industry.setdefault(f.industry, []).append(f)
    for loan in list(w.loans):
        d = w.by_id[loan.borrower]
        if d.planted == "shell" or r.random() >= (0.3 if d.kind == "sme" else 0.1):
            continue
        for _ in range(4):
            if d.buyers and r.random() < 0.5:
                g = w.by_id[r.choice(d.buyers)]
            else:
                g = r.choice(by_industry[d.industry])
            if g is d or g.no_guarantor or g.planted == "shell" or rank[g.id] > rank[d.id]:
                continue
            t = min(loan.t + r.randrange(0, 5) * DAY, AS_OF - 2 * DAY)
            amount = int(loan.principal * r.uniform(0.3, 1.0))
            w.guarantees.append(
                Guarantee(
                    w.next_id("G", 6), g.id, d.id, loan.bank, loan.id, amount, t, r.random() < 0.9
                )
            )
            break


__all__ = ["guarantees", "loans", "notes", "trades"]

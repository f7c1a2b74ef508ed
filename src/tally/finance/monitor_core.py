"""The collateral monitor's core: its indexes, the incremental bookkeeping and the state machine.

:class:`MonitorCore` holds the state of :class:`tally.finance.monitor.CollateralMonitor` (which
adds the operations that change it) and answers ``recompute`` (a full recount, for audits and
tests) and ``check_release``. Indexes: ``_by_commodity`` (commodity → loans holding it, so a tick
touches only those), ``_locs`` ((site, location) → :class:`~tally.finance.monitor_state.Location`
→ holdings → loans), ``_lots`` ((site, lot) → holdings) and ``_receipts`` (receipt → holding).

Bookkeeping: :meth:`MonitorCore._refresh` recounts the verified weight of the holdings at one
location and adds each change to its loan's per-commodity sum; the loans it moved are collected
with their coverage before the change (a ``touched`` map) and :meth:`MonitorCore._settle`
recomputes their coverage and runs :meth:`MonitorCore._transition`.

State machine (per loan): ``ok`` → ``margin_call`` below the warning line; ``margin_call`` →
``ok`` (``cured``) at or above it; ``ok``/``margin_call`` → ``disposal`` below the disposal line,
or when :meth:`MonitorCore._clock` reaches an uncured call's deadline. Disposal hands out the
intents ``receipts.freeze`` (each receipt), ``warehouse.stop_outbound`` (each location, with the
lots) and ``loans.default``.
"""

from __future__ import annotations

import heapq
from decimal import Decimal

from tally.finance.coverage import Line, coverage
from tally.finance.monitor_model import (
    DISPOSAL,
    MARGIN_CALL,
    OK,
    Alert,
    CommodityParams,
    Intent,
    MonitorError,
    PledgedReceipt,
    Ref,
    Result,
    WeightReading,
    check_int,
    check_receipt,
    check_weight,
)
from tally.finance.monitor_state import ZERO, Holding, LoanState, Location, verified
from tally.finance.prices import PriceTick

Touched = dict[str, tuple[LoanState, Decimal | None]]
"""Loans whose verified weight moved, with their coverage before the move."""


class MonitorCore:
    def __init__(self) -> None:
        self.now = 0
        self.drop_threshold = Decimal("0.2")
        self._params: dict[str, CommodityParams] = {}
        self._prices: dict[str, PriceTick] = {}
        self._loans: dict[str, LoanState] = {}
        self._by_commodity: dict[str, dict[str, LoanState]] = {}
        self._locs: dict[tuple[str, str], Location] = {}
        self._devices: dict[str, tuple[str, str]] = {}
        self._receipts: dict[str, Holding] = {}
        self._lots: dict[tuple[str, str], dict[str, Holding]] = {}
        self._deadlines: list[tuple[int, str]] = []

    # -- coverage ----------------------------------------------------------------------------

    def _coverage_of(
        self, ls: LoanState, vw: dict[str, Decimal], unmeasured: int
    ) -> Decimal | None:
        if unmeasured:
            return None
        lines: list[Line] = []
        for c, w in vw.items():
            if w:
                tick = self._prices.get(c)
                if tick is None:
                    return None
                lines.append(Line(w, tick.price, self._params[c].haircut))
        return coverage(lines, ls.cash_margin, ls.principal)

    def _coverage(self, ls: LoanState) -> Decimal | None:
        return self._coverage_of(ls, ls.vw, ls.unmeasured)

    # -- audit and release checks ---------------------------------------------------------

    def recompute(self, loan_id: str) -> tuple[dict[str, Decimal], Decimal | None]:
        """Verified weight per commodity and coverage counted afresh from the raw state."""
        ls = self._loan(loan_id)
        vw: dict[str, Decimal] = {}
        unmeasured = 0
        for h in ls.holdings.values():
            measured, claims, healthy = h.loc.recount()
            unmeasured += measured is None
            v = verified(h.weight, measured, claims, healthy)
            vw[h.commodity] = vw.get(h.commodity, ZERO) + v
        return vw, self._coverage_of(ls, vw, unmeasured)

    def check_release(self, loan_id: str, no: str, weight: Decimal) -> str | None:
        """Why releasing ``weight`` t of receipt ``no`` must be refused, or ``None``: under a
        margin call or in disposal, or when coverage after the goods leave would be below the
        warning line."""
        ls = self._loan(loan_id)
        if ls.state == MARGIN_CALL:
            return f"loan {loan_id} is under a margin call: releases are blocked"
        if ls.state == DISPOSAL:
            return f"loan {loan_id} is in disposal: releases are blocked"
        h = ls.holdings.get(no)
        if h is None:
            return f"receipt {no} does not secure loan {loan_id}"
        check_weight(weight, f"release of {no}: weight")
        if weight > h.weight:
            return f"releasing {weight} t of {no} exceeds its {h.weight} t"
        loc = h.loc
        measured = None if loc.measured is None else loc.measured - weight
        vw = dict(ls.vw)
        for o in loc.holdings.values():
            if o.loan is ls:
                w = o.weight - weight if o is h else o.weight
                v = verified(w, measured, loc.claims - weight, loc.healthy)
                vw[o.commodity] += v - o.verified
        cov = self._coverage_of(ls, vw, ls.unmeasured)
        line = self._params[ls.commodity].warning
        if cov is not None and cov < line:
            return (
                f"releasing {weight} t of {no} would bring coverage of {loan_id} to {cov}, "
                f"below the warning line {line}"
            )
        return None

    # -- time and transitions ----------------------------------------------------------------

    def _clock(self, t: int) -> Result:
        """Move the clock to ``t`` (never back); uncured calls due by then go to disposal."""
        check_int(t, "time t", minimum=-(2**62))
        out = Result()
        self.now = max(self.now, t)
        while self._deadlines and self._deadlines[0][0] <= self.now:
            deadline, loan_id = heapq.heappop(self._deadlines)
            ls = self._loans.get(loan_id)
            if ls is not None and ls.state == MARGIN_CALL and ls.deadline == deadline:
                self._dispose(ls, ls.coverage, ls.coverage, (), "the cure period ended", out)
        return out

    def _settle(self, touched: Touched, cause: tuple[Ref, ...], out: Result) -> None:
        for ls, before in touched.values():
            after = ls.coverage = self._coverage(ls)
            self._transition(ls, before, after, cause, out)

    def _transition(
        self,
        ls: LoanState,
        before: Decimal | None,
        after: Decimal | None,
        cause: tuple[Ref, ...],
        out: Result,
    ) -> None:
        if ls.state == DISPOSAL or after is None:
            return
        p = self._params[ls.commodity]
        t = self.now
        if after < p.disposal:
            self._dispose(ls, before, after, cause, "coverage is below the disposal line", out)
        elif ls.state == OK and after < p.warning:
            ls.state, ls.call_t, ls.call_evidence = MARGIN_CALL, t, cause
            ls.deadline = t + p.cure_ms
            heapq.heappush(self._deadlines, (ls.deadline, ls.id))
            detail = {"warning": p.warning, "disposal": p.disposal, "deadline": ls.deadline}
            out.alerts.append(
                Alert("margin_call", ls.id, "warning", t, before, after, cause, detail)
            )
            out.intents.append(Intent("loans.margin_call", ls.id, {"id": ls.id, "coverage": after}))
        elif ls.state == MARGIN_CALL and after >= p.warning:
            detail = {"warning": p.warning, "called_at": ls.call_t, "deadline": ls.deadline}
            ls.state, ls.call_t, ls.deadline, ls.call_evidence = OK, None, None, ()
            out.alerts.append(Alert("cured", ls.id, "info", t, before, after, cause, detail))

    def _dispose(
        self,
        ls: LoanState,
        before: Decimal | None,
        after: Decimal | None,
        cause: tuple[Ref, ...],
        reason: str,
        out: Result,
    ) -> None:
        p = self._params[ls.commodity]
        evidence = cause
        if ls.state == MARGIN_CALL:
            call = Ref("margin_call", f"{ls.id}/{ls.call_t}")
            evidence = (*cause, call, *(r for r in ls.call_evidence if r not in cause))
        ls.state, ls.deadline = DISPOSAL, None
        detail = {"reason": reason, "disposal": p.disposal, "warning": p.warning}
        alert = Alert("disposal", ls.id, "critical", self.now, before, after, evidence, detail)
        out.alerts.append(alert)
        why = f"loan {ls.id}: {reason}"
        lots: dict[Location, list[str]] = {}
        for h in ls.holdings.values():
            out.intents.append(Intent("receipts.freeze", h.no, {"no": h.no, "reason": why}))
            lots.setdefault(h.loc, []).append(h.lot)
        for loc, names in lots.items():
            args = {"site": loc.site, "location": loc.location, "lots": names, "loan": ls.id}
            out.intents.append(Intent("warehouse.stop_outbound", loc.key, args))
        out.intents.append(Intent("loans.default", ls.id, {"id": ls.id}))

    def _removal_alerts(
        self,
        loans: dict[str, LoanState],
        evidence: tuple[Ref, ...],
        detail: dict[str, object],
        touched: Touched,
        out: Result,
    ) -> None:
        for ls in loans.values():
            before = touched[ls.id][1] if ls.id in touched else ls.coverage
            after = self._coverage(ls)
            alert = Alert(
                "unauthorised_removal",
                ls.id,
                "critical",
                self.now,
                before,
                after,
                evidence,
                dict(detail),
            )
            out.alerts.append(alert)

    def _drop(
        self, loc: Location, f: WeightReading
    ) -> tuple[tuple[Ref, ...], dict[str, object]] | None:
        """Move the device's level; judge a drop against the release orders valid at ``f.t``."""
        level = loc.levels.get(f.dev)
        if level is None:
            loc.levels[f.dev] = (f.weight, f.ref)
            return None
        if abs(f.weight - level[0]) <= self.drop_threshold:
            return None
        loc.levels[f.dev] = (f.weight, f.ref)
        if f.weight > level[0] or not loc.holdings:
            return None
        drop = need = level[0] - f.weight
        used: list[Ref] = []
        for rel in sorted(loc.releases.values(), key=lambda r: (r.order.valid_from, r.order.id)):
            o = rel.order
            if need > 0 and rel.remaining > 0 and o.valid_from <= f.t <= o.valid_to:
                take = min(need, rel.remaining)
                rel.remaining -= take
                need -= take
                used.append(Ref("release", o.id))
        if need <= self.drop_threshold:
            return None
        detail: dict[str, object] = {
            "location": loc.key,
            "device": f.dev,
            "drop_t": drop,
            "explained_release_t": drop - need,
            "unexplained_t": need,
        }
        return (level[1], f.ref, *used), detail

    # -- holdings ----------------------------------------------------------------------------

    def _refresh(self, loc: Location, touched: Touched) -> None:
        """Recount the verified weight of every holding at ``loc``; note the loans it moved."""
        measured, claims, healthy = loc.measured, loc.claims, loc.healthy
        for h in loc.holdings.values():
            v = verified(h.weight, measured, claims, healthy)
            if v != h.verified:
                ls = h.loan
                if ls.id not in touched:
                    touched[ls.id] = (ls, ls.coverage)
                ls.vw[h.commodity] = ls.vw.get(h.commodity, ZERO) + (v - h.verified)
                h.verified = v

    def _attach(
        self, ls: LoanState, receipts: tuple[PledgedReceipt, ...], touched: Touched
    ) -> None:
        locs: dict[tuple[str, str], Location] = {}
        for r in receipts:
            commodity = r.commodity or ls.commodity
            loc = self._loc((r.site, r.location))
            h = Holding(ls, r.no, r.lot, commodity, r.weight, loc)
            ls.holdings[r.no] = h
            ls.vw.setdefault(commodity, ZERO)
            loc.holdings[(ls.id, r.no)] = h
            loc.claims += r.weight
            ls.unmeasured += loc.measured is None
            self._receipts[r.no] = h
            self._lots.setdefault((r.site, r.lot), {})[r.no] = h
            self._by_commodity.setdefault(commodity, {})[ls.id] = ls
            locs[(r.site, r.location)] = loc
        for loc in locs.values():
            self._refresh(loc, touched)

    def _detach(self, h: Holding) -> None:
        ls, loc = h.loan, h.loc
        ls.vw[h.commodity] -= h.verified
        h.verified = ZERO
        del ls.holdings[h.no]
        del loc.holdings[(ls.id, h.no)]
        loc.claims -= h.weight
        ls.unmeasured -= loc.measured is None
        del self._receipts[h.no]
        lots = self._lots[(loc.site, h.lot)]
        del lots[h.no]
        if not lots:
            del self._lots[(loc.site, h.lot)]

    def _loc(self, key: tuple[str, str]) -> Location:
        loc = self._locs.get(key)
        if loc is None:
            loc = self._locs[key] = Location(*key)
        return loc

    def _loan(self, loan_id: str) -> LoanState:
        ls = self._loans.get(loan_id)
        if ls is None:
            raise MonitorError(f"loan {loan_id} is not monitored")
        return ls

    def _check_params(self, commodity: str, where: str) -> None:
        if commodity not in self._params:
            raise MonitorError(f"{where}: no lending parameters for commodity {commodity}")

    def _check_new_receipts(
        self, loan_id: str, commodity: str, receipts: tuple[PledgedReceipt, ...]
    ) -> None:
        seen: set[str] = set()
        for r in receipts:
            check_receipt(r, f"loan {loan_id}")
            if r.no in seen:
                raise MonitorError(f"loan {loan_id}: receipt {r.no} is listed twice")
            seen.add(r.no)
            held = self._receipts.get(r.no)
            if held is not None:
                raise MonitorError(
                    f"loan {loan_id}: receipt {r.no} already secures loan {held.loan.id}"
                )
            self._check_params(r.commodity or commodity, f"loan {loan_id}: receipt {r.no}")

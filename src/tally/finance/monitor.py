"""The bank's live collateral monitor: coverage per loan, margin calls, removals (off chain).

:class:`CollateralMonitor` is pure and deterministic: no clock (every input carries its time in
ms and the monitor's time never goes back), no randomness, no ledger access; the same inputs
in the same order give the same alerts and intents. Types are in
:mod:`tally.finance.monitor_model`, state and arithmetic in :mod:`tally.finance.monitor_state`,
bookkeeping and the state machine in :mod:`tally.finance.monitor_core`, and the mapping from
what the edge signs to facts in :mod:`tally.finance.monitor_edge`. ``docs/finance-monitor.md``
describes it all.

Coverage of a loan = (Σ IoT-verified weight × price × haircut + cash margin) ÷ outstanding
principal (:func:`tally.finance.coverage.coverage`), kept incrementally: a price tick costs
O(loans holding that commodity), a fact about a location O(holdings there).

Per loan: ``ok`` → ``margin_call`` (below the warning line: alert, intent ``loans.margin_call``,
deadline = now + cure_ms, :meth:`CollateralMonitor.check_release` refuses) → ``ok`` when coverage
is back at or above the warning line (``cured``: a top-up of goods or cash, or prices or sensors
recovering), or → ``disposal`` below the disposal line or at the deadline (``t >= deadline``)
still uncured. ``disposal`` is final until the loan is removed.

Unauthorised removal (critical, at once) at a location holding pledged goods: a load cell's
level drops by more than ``drop_threshold`` beyond what the release orders valid then still
cover; an RFID out-scan of a lot no release order valid then names (once per lot and location
per ``scan_window_ms``); or the edge's ``unexplained_weight_drop`` event for the location.

Facts about unknown devices or places without pledged goods change no coverage and raise no
alert. A reading older than the device's latest, a device condition older than the latest of
its kind and a price tick older than the commodity's latest are ignored. Bad input raises
:class:`~tally.finance.monitor_model.MonitorError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tally.finance.monitor_core import MonitorCore, Touched
from tally.finance.monitor_model import (
    CONDITIONS,
    OK,
    Alert,
    CommodityParams,
    DeviceCondition,
    Loan,
    MonitorError,
    OutScan,
    PledgedReceipt,
    Ref,
    Removal,
    Result,
    WeightReading,
    check_int,
    check_loan,
    check_name,
    check_order,
    check_params,
    check_weight,
)
from tally.finance.monitor_state import ZERO, LoanState, Release
from tally.finance.orders import ReleaseOrder
from tally.finance.prices import PriceTick

Fact = WeightReading | OutScan | DeviceCondition | Removal | PriceTick


class CollateralMonitor(MonitorCore):
    """Live coverage of the loans of one ``bank``, money in ``currency`` minor units."""

    def __init__(
        self,
        bank: str,
        *,
        currency: str = "CNY",
        drop_threshold: Decimal = Decimal("0.2"),
        scan_window_ms: int = 900_000,
        release_retention_ms: int = 86_400_000,
    ) -> None:
        super().__init__()
        self.bank = check_name(bank, "bank")
        self.currency = currency
        self.drop_threshold = check_weight(drop_threshold, "drop_threshold", positive=False)
        self.scan_window_ms = check_int(scan_window_ms, "scan_window_ms")
        self.release_retention_ms = check_int(release_retention_ms, "release_retention_ms")

    # -- reading the state -------------------------------------------------------------------

    def loan_ids(self) -> list[str]:
        return list(self._loans)

    def loans_holding(self, commodity: str) -> int:
        """How many loans a tick of ``commodity`` touches."""
        return len(self._by_commodity.get(commodity, {}))

    def coverage(self, loan_id: str) -> Decimal | None:
        return self._loan(loan_id).coverage

    def state(self, loan_id: str) -> str:
        return self._loan(loan_id).state

    def deadline(self, loan_id: str) -> int | None:
        return self._loan(loan_id).deadline

    def holdings(self, loan_id: str) -> dict[str, Decimal]:
        """The receipts securing a loan and their weight (t)."""
        return {no: h.weight for no, h in self._loan(loan_id).holdings.items()}

    def verified_weight(self, loan_id: str) -> dict[str, Decimal]:
        """The loan's verified weight per commodity (commodities it no longer holds show 0)."""
        return dict(self._loan(loan_id).vw)

    # -- configuration -----------------------------------------------------------------------

    def set_params(self, commodity: str, params: CommodityParams, t: int) -> Result:
        check_name(commodity, "commodity")
        check_params(commodity, params)
        out = self._clock(t)
        self._params[commodity] = params
        touched: Touched = {}
        for ls in self._by_commodity.get(commodity, {}).values():
            touched[ls.id] = (ls, ls.coverage)
        self._settle(touched, (Ref("params", commodity),), out)
        return out

    def add_device(self, dev: str, site: str, location: str) -> None:
        """Place a device (load cell, door switch, gate, …) at a location: its health then
        decides whether the goods there count as verified."""
        check_name(dev, "device")
        key = (
            check_name(site, f"device {dev}: site"),
            check_name(location, f"device {dev}: location"),
        )
        old = self._devices.get(dev)
        if old is not None and old != key:
            raise MonitorError(f"device {dev} is already placed at {old[0]}/{old[1]}")
        self._devices[dev] = key
        self._loc(key).status.setdefault(dev, {})

    def authorise_release(self, order: ReleaseOrder) -> None:
        """An authorised outbound movement (a release order read from the chain)."""
        check_order(order)
        loc = self._loc((order.site, order.location))
        old = loc.releases.get(order.id)
        if old is not None:
            if old.order != order:
                raise MonitorError(f"release order {order.id} was already given with other terms")
            return
        horizon = self.now - self.release_retention_ms
        for rid in [r for r, rel in loc.releases.items() if rel.order.valid_to < horizon]:
            del loc.releases[rid]
        loc.releases[order.id] = Release(order, order.weight)

    def revoke_release(self, ref: str) -> bool:
        """Withdraw an authorised release (its receipt was frozen, outbound stopped): it
        explains no later drop. False when no location holds an order ``ref``."""
        return any(loc.releases.pop(ref, None) is not None for loc in self._locs.values())

    def set_other_claims(self, site: str, location: str, weight: Decimal, t: int) -> Result:
        """Weight of the live receipts at a location that secure no monitored loan (from
        ``rloc/``): they share the measured stock with the pledged goods."""
        check_name(site, "site")
        check_name(location, f"site {site}: location")
        check_weight(weight, f"other claims at {site}/{location}", positive=False)
        out = self._clock(t)
        loc = self._loc((site, location))
        loc.claims += weight - loc.other
        loc.other = weight
        touched: Touched = {}
        self._refresh(loc, touched)
        self._settle(touched, (Ref("claims", loc.key),), out)
        return out

    # -- loans -------------------------------------------------------------------------------

    def add_loan(self, loan: Loan, t: int) -> Result:
        check_loan(loan)
        if loan.bank != self.bank:
            raise MonitorError(f"loan {loan.id} is lent by {loan.bank}, not by {self.bank}")
        if loan.id in self._loans:
            raise MonitorError(f"loan {loan.id} is already monitored")
        self._check_params(loan.commodity, f"loan {loan.id}")
        self._check_new_receipts(loan.id, loan.commodity, loan.receipts)
        out = self._clock(t)
        ls = LoanState(
            loan.id, loan.bank, loan.borrower, loan.commodity, loan.principal, loan.cash_margin
        )
        self._loans[ls.id] = ls
        self._by_commodity.setdefault(ls.commodity, {})[ls.id] = ls
        touched: Touched = {ls.id: (ls, None)}
        self._attach(ls, loan.receipts, touched)
        self._settle(touched, (Ref("loan", ls.id),), out)
        return out

    def remove_loan(self, loan_id: str, t: int) -> Result:
        """Stop monitoring a loan (closed or disposed of); its receipts leave the locations."""
        ls = self._loan(loan_id)
        out = self._clock(t)
        locs = {h.loc.key: h.loc for h in ls.holdings.values()}
        for h in list(ls.holdings.values()):
            self._detach(h)
        del self._loans[loan_id]
        for idx in self._by_commodity.values():
            idx.pop(loan_id, None)
        touched: Touched = {}
        for loc in locs.values():
            self._refresh(loc, touched)
        self._settle(touched, (Ref("loan", loan_id),), out)
        return out

    def top_up(self, loan_id: str, receipts: Iterable[PledgedReceipt], t: int, ref: Ref) -> Result:
        """More receipts now secure the loan (``ref``: the chain's top_up)."""
        ls = self._loan(loan_id)
        rs = tuple(receipts)
        self._check_new_receipts(loan_id, ls.commodity, rs)
        out = self._clock(t)
        touched: Touched = {ls.id: (ls, ls.coverage)}
        self._attach(ls, rs, touched)
        self._settle(touched, (ref,), out)
        return out

    def add_cash_margin(self, loan_id: str, amount: int, t: int, ref: Ref) -> Result:
        ls = self._loan(loan_id)
        check_int(amount, f"loan {loan_id}: cash margin top-up", minimum=1)
        out = self._clock(t)
        before = ls.coverage
        ls.cash_margin += amount
        self._settle({ls.id: (ls, before)}, (ref,), out)
        return out

    def set_principal(self, loan_id: str, principal: int, t: int, ref: Ref) -> Result:
        """The outstanding principal after a repayment (``ref``: its posting)."""
        ls = self._loan(loan_id)
        check_int(principal, f"loan {loan_id}: principal")
        out = self._clock(t)
        before = ls.coverage
        ls.principal = principal
        self._settle({ls.id: (ls, before)}, (ref,), out)
        return out

    def release_receipt(self, loan_id: str, no: str, weight: Decimal, t: int, ref: Ref) -> Result:
        """``weight`` t of receipt ``no`` no longer secures the loan (released on chain)."""
        ls = self._loan(loan_id)
        h = ls.holdings.get(no)
        if h is None:
            raise MonitorError(f"receipt {no} does not secure loan {loan_id}")
        check_weight(weight, f"release of {no}: weight")
        if weight > h.weight:
            raise MonitorError(f"release of {no}: {weight} t exceeds its {h.weight} t")
        out = self._clock(t)
        touched: Touched = {ls.id: (ls, ls.coverage)}
        if weight == h.weight:
            self._detach(h)
        else:
            h.weight -= weight
            h.loc.claims -= weight
        self._refresh(h.loc, touched)
        self._settle(touched, (ref,), out)
        return out

    # -- facts -------------------------------------------------------------------------------

    def apply(self, fact: Fact) -> Result:
        """Take one price tick or location fact; return the alerts and intents it caused."""
        if isinstance(fact, PriceTick):
            return self.apply_price(fact)
        if isinstance(fact, WeightReading):
            return self._weight(fact)
        if isinstance(fact, OutScan):
            return self._scan(fact)
        if isinstance(fact, DeviceCondition):
            return self._condition(fact)
        if isinstance(fact, Removal):
            return self._removal(fact)
        raise MonitorError(f"unknown fact {type(fact).__name__}")

    def apply_price(self, tick: PriceTick) -> Result:
        if tick.currency != self.currency:
            raise MonitorError(
                f"price of {tick.commodity} is in {tick.currency}, loans are in {self.currency}"
            )
        prev = self._prices.get(tick.commodity)
        if prev is not None and tick.t_ms < prev.t_ms:
            return Result()
        out = self._clock(tick.t_ms)
        self._prices[tick.commodity] = tick
        cause = (Ref("price", tick.ref_id),)
        for ls in self._by_commodity.get(tick.commodity, {}).values():
            before = ls.coverage
            after = ls.coverage = self._coverage(ls)
            if after is not None and (ls.state != OK or after < self._params[ls.commodity].warning):
                self._transition(ls, before, after, cause, out)
        return out

    def advance(self, t: int) -> Result:
        """Let time pass to ``t``: margin calls whose cure period ended go to disposal."""
        return self._clock(t)

    def _weight(self, f: WeightReading) -> Result:
        check_name(f.dev, "device")
        if not isinstance(f.weight, Decimal) or not f.weight.is_finite():
            raise MonitorError(f"reading of {f.dev}: weight {f.weight!r} must be a finite Decimal")
        site = check_name(f.site, f"reading of {f.dev}: site")
        key = (site, check_name(f.location, f"reading of {f.dev}: location"))
        placed = self._devices.get(f.dev)
        if placed is not None and placed != key:
            raise MonitorError(
                f"reading of {f.dev} names {f.site}/{f.location}, "
                f"the device is at {placed[0]}/{placed[1]}"
            )
        loc = self._locs.get(key)
        prev = loc.weights.get(f.dev) if loc else None
        if prev is not None and f.t <= prev[0]:
            return Result()
        out = self._clock(f.t)
        self._devices[f.dev] = key
        loc = self._loc(key)
        loc.status.setdefault(f.dev, {})
        loc.weights[f.dev] = (f.t, f.weight, f.ref)
        touched: Touched = {}
        if loc.measured is None:
            for h in loc.holdings.values():
                h.loan.unmeasured -= 1
                touched.setdefault(h.loan.id, (h.loan, h.loan.coverage))
        loc.measured = (loc.measured or ZERO) - (prev[1] if prev else ZERO) + f.weight
        removal = self._drop(loc, f)
        self._refresh(loc, touched)
        if removal is not None:
            self._removal_alerts(loc.loans(), removal[0], removal[1], touched, out)
        self._settle(touched, (f.ref,), out)
        return out

    def _scan(self, f: OutScan) -> Result:
        check_name(f.site, f"out-scan of {f.dev}: site")
        holders: dict[str, LoanState] = {}
        loc = None if f.location is None else self._locs.get((f.site, f.location))
        if f.lot is not None:
            for h in self._lots.get((f.site, f.lot), {}).values():
                if loc is None or h.loc is loc:
                    loc = h.loc
                    holders.setdefault(h.loan.id, h.loan)
        if loc is None or not loc.holdings:
            return Result()
        out = self._clock(f.t)
        for rel in loc.releases.values():
            o = rel.order
            if o.valid_from <= f.t <= o.valid_to and (o.lot == f.lot or o.id == f.release):
                return out
        lot = f.lot or ""
        last = loc.scans.get(lot)
        if last is not None and 0 <= f.t - last <= self.scan_window_ms:
            return out
        loc.scans[lot] = f.t
        detail: dict[str, object] = {"location": loc.key, "device": f.dev, "lot": f.lot}
        self._removal_alerts(holders or loc.loans(), (f.ref,), detail, {}, out)
        return out

    def _removal(self, f: Removal) -> Result:
        loc = self._locs.get((f.site, f.location))
        if loc is None or not loc.holdings:
            return Result()
        out = self._clock(f.t)
        detail: dict[str, object] = {
            "location": loc.key,
            "drop_t": f.drop,
            "unexplained_t": f.unexplained,
            "source": "edge",
        }
        self._removal_alerts(loc.loans(), f.evidence, detail, {}, out)
        return out

    def _condition(self, f: DeviceCondition) -> Result:
        if f.condition not in CONDITIONS:
            raise MonitorError(
                f"device {f.dev}: unknown condition {f.condition!r} (one of {sorted(CONDITIONS)})"
            )
        key = self._devices.get(f.dev)
        if key is None:
            return Result()
        out = self._clock(f.t)
        loc = self._loc(key)
        flag, bad = CONDITIONS[f.condition]
        was = loc.healthy
        if not loc.set_flag(f.dev, flag, f.t, bad) or loc.healthy == was:
            return out
        touched: Touched = {ls.id: (ls, ls.coverage) for ls in loc.loans().values()}
        self._refresh(loc, touched)
        kind = "collateral_verified" if loc.healthy else "collateral_unverified"
        sev = "info" if loc.healthy else "warning"
        for ls, before in touched.values():
            after = self._coverage(ls)
            detail = {"location": loc.key, "device": f.dev, "condition": f.condition}
            out.alerts.append(Alert(kind, ls.id, sev, self.now, before, after, f.evidence, detail))
        self._settle(touched, f.evidence, out)
        return out

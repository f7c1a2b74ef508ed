"""What the collateral monitor takes in and hands out (see :mod:`tally.finance.monitor`).

In: a bank's per-commodity lending parameters (:class:`CommodityParams`, as ``params/<bank>/<c>``
on chain), its open loans (:class:`Loan` with their :class:`PledgedReceipt`), price ticks
(:class:`tally.finance.prices.PriceTick`), release orders
(:class:`tally.finance.orders.ReleaseOrder`, ``relord/<site>/<id>`` on chain) and *facts* about
storage locations, mapped from what the edge signs (:mod:`tally.finance.monitor_edge`):

* :class:`WeightReading` — a load cell's stock of a location (a device-signed reading);
* :class:`OutScan` — an RFID gate saw a lot leave;
* :class:`DeviceCondition` — a device went offline/online, was tampered with or cleared after
  inspection, fell out of calibration or was calibrated;
* :class:`Removal` — the edge's own verdict that a weight drop at a location is unexplained.

Out: :class:`Alert` (kind, loan, severity, time, coverage before and after, and ``evidence``:
the :class:`Ref` of each price tick, edge event and reading that caused it) and :class:`Intent`
(an action the bank should take, with the arguments of the ledger function it names).

Quantities are :class:`~decimal.Decimal` tonnes (the commodity's unit), money is integer minor
units (fen); inputs are checked by :func:`check_loan`, :func:`check_params` and
:func:`check_order`, which raise :class:`MonitorError` naming the field, value and rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tally.finance.orders import ReleaseOrder

OK = "ok"
MARGIN_CALL = "margin_call"
DISPOSAL = "disposal"
STATES = (OK, MARGIN_CALL, DISPOSAL)

ALERT_KINDS = (
    "margin_call",
    "cured",
    "disposal",
    "unauthorised_removal",
    "collateral_unverified",
    "collateral_verified",
)

CONDITIONS: dict[str, tuple[str, bool]] = {
    "offline": ("online", True),
    "online": ("online", False),
    "tamper": ("tamper", True),
    "tamper_cleared": ("tamper", False),
    "uncalibrated": ("calibration", True),
    "calibrated": ("calibration", False),
}
"""condition -> (flag it sets, whether the device is then unhealthy)."""


class MonitorError(ValueError):
    """Bad input to the monitor; the message says which field, value and rule. Nothing changed."""


@dataclass(frozen=True)
class Ref:
    """A reference to evidence: ``kind`` (``price``, ``event``, ``reading``, ``release``,
    ``device``, ``loan``, ``margin_call``, ``params``, ``claims``, …), an ``id`` and, for
    signed objects, their suite hash."""

    kind: str
    id: str
    hash: bytes = b""


@dataclass(frozen=True)
class CommodityParams:
    """A bank's lending parameters for one commodity.

    ``haircut`` is the fraction of market value counted as collateral (0.8 counts 80 %);
    ``warning`` and ``disposal`` are coverage lines (e.g. 1.3 and 1.2); ``cure_ms`` the cure
    period of a margin call.
    """

    haircut: Decimal
    pledge_rate: Decimal
    warning: Decimal
    disposal: Decimal
    cure_ms: int


@dataclass(frozen=True)
class PledgedReceipt:
    """A receipt securing a loan: where its goods are and how much (``weight``, t).
    ``commodity`` defaults to the loan's."""

    no: str
    site: str
    location: str
    lot: str
    weight: Decimal
    commodity: str | None = None


@dataclass(frozen=True)
class Loan:
    id: str
    bank: str
    borrower: str
    principal: int
    cash_margin: int
    commodity: str
    receipts: tuple[PledgedReceipt, ...]


@dataclass(frozen=True)
class WeightReading:
    site: str
    location: str
    dev: str
    weight: Decimal
    t: int
    ref: Ref


@dataclass(frozen=True)
class OutScan:
    """A lot seen leaving through an RFID gate; ``location`` when the gate names it."""

    site: str
    lot: str | None
    t: int
    dev: str
    ref: Ref
    location: str | None = None
    release: str | None = None


@dataclass(frozen=True)
class DeviceCondition:
    dev: str
    condition: str
    t: int
    evidence: tuple[Ref, ...]


@dataclass(frozen=True)
class Removal:
    """The edge judged a weight drop at ``site``/``location`` unexplained (plausibility)."""

    site: str
    location: str
    t: int
    drop: Decimal
    unexplained: Decimal
    evidence: tuple[Ref, ...]


@dataclass(frozen=True)
class Alert:
    kind: str
    loan: str
    severity: str
    t: int
    coverage_before: Decimal | None
    coverage_after: Decimal | None
    evidence: tuple[Ref, ...]
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Intent:
    """An action for the bank: ``action`` names a ledger function (``contract.function``) or,
    for ``warehouse.*``, an order to the custodian; ``args`` are that function's arguments."""

    action: str
    target: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    alerts: list[Alert] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)

    def extend(self, other: Result) -> None:
        self.alerts.extend(other.alerts)
        self.intents.extend(other.intents)

    def kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]


# -- checks -------------------------------------------------------------------------------------


def check_name(v: object, what: str) -> str:
    if not isinstance(v, str) or not v or "/" in v:
        raise MonitorError(f"{what} {v!r} must be non-empty text without '/'")
    return v


def check_weight(v: object, what: str, *, positive: bool = True) -> Decimal:
    if not isinstance(v, Decimal) or not v.is_finite() or v < 0 or (positive and v == 0):
        rule = "a positive" if positive else "a non-negative"
        raise MonitorError(f"{what} {v!r} must be {rule} finite Decimal")
    return v


def check_int(v: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise MonitorError(f"{what} {v!r} must be an integer >= {minimum}")
    return v


def check_params(commodity: str, p: CommodityParams) -> None:
    where = f"params of {commodity}:"
    for name in ("haircut", "pledge_rate", "warning", "disposal"):
        check_weight(getattr(p, name), f"{where} {name}")
    if p.haircut > 1:
        raise MonitorError(f"{where} haircut {p.haircut} must be at most 1")
    if p.pledge_rate > 1:
        raise MonitorError(f"{where} pledge_rate {p.pledge_rate} must be at most 1")
    if p.warning <= p.disposal:
        raise MonitorError(
            f"{where} warning line {p.warning} must be above the disposal line {p.disposal}"
        )
    check_int(p.cure_ms, f"{where} cure_ms", minimum=1)


def check_receipt(r: PledgedReceipt, where: str) -> None:
    check_name(r.no, f"{where}: receipt number")
    w = f"{where}: receipt {r.no}"
    check_name(r.site, f"{w}: site")
    check_name(r.location, f"{w}: location")
    check_name(r.lot, f"{w}: lot")
    check_weight(r.weight, f"{w}: weight")
    if r.commodity is not None:
        check_name(r.commodity, f"{w}: commodity")


def check_loan(loan: Loan) -> None:
    check_name(loan.id, "loan id")
    where = f"loan {loan.id}"
    check_name(loan.bank, f"{where}: bank")
    check_name(loan.borrower, f"{where}: borrower")
    check_name(loan.commodity, f"{where}: commodity")
    check_int(loan.principal, f"{where}: principal")
    check_int(loan.cash_margin, f"{where}: cash_margin")
    seen: set[str] = set()
    for r in loan.receipts:
        check_receipt(r, where)
        if r.no in seen:
            raise MonitorError(f"{where}: receipt {r.no} is listed twice")
        seen.add(r.no)


def check_order(o: ReleaseOrder) -> None:
    check_name(o.id, "release order id")
    where = f"release order {o.id}"
    check_name(o.site, f"{where}: site")
    check_name(o.location, f"{where}: location")
    check_weight(o.weight, f"{where}: weight")
    if o.valid_to < o.valid_from:
        raise MonitorError(f"{where}: valid_to {o.valid_to} is before valid_from {o.valid_from}")

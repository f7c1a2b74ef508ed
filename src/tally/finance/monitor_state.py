"""The collateral monitor's state: storage locations, pledged holdings, loans, and the arithmetic.

A :class:`Location` (``site``/``location``) keeps each load cell's latest weight, each
device's health flags (``online``, ``tamper``, ``calibration``, newest fact wins), the release
orders authorised there and the *holdings* (pledged receipts of monitored loans) stored there.
It caches what the coverage needs, updated by differences: ``measured`` (Σ of the load cells'
latest weights), ``claims`` (Σ of the holdings' weights plus the weight of other live receipts
at the location) and ``n_bad`` (devices with a raised flag).

Verified weight of a holding (:func:`verified`): 0 when a device of the location is unhealthy
or nothing was measured; else ``min(weight, weight × measured / claims)``, rounded down to
1e-6 t. Because every verified weight is on that grid, per-loan sums kept by adding
differences are exactly the sums a full recount gives.

A loan with goods at a location never measured yet (``measured`` is ``None``, unlike a
location whose sensors are unhealthy) has an unknown coverage (``None``), as has one whose
verified goods have no price yet: the state machine waits rather than calling margins on
collateral it has not seen. ``LoanState.unmeasured`` counts such holdings.

Coverage itself is :func:`tally.finance.coverage.coverage` (the formula the contracts use) over
one line per commodity: the loan's verified weight of it, its price and its haircut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

from tally.finance.monitor_model import OK, Ref
from tally.finance.orders import ReleaseOrder

CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
GRAM = Decimal("0.000001")
ZERO = Decimal(0)


def verified(weight: Decimal, measured: Decimal | None, claims: Decimal, healthy: bool) -> Decimal:
    """The IoT-verified part of ``weight`` stored at a location (see the module text)."""
    if not healthy or measured is None or measured <= 0 or claims <= 0:
        return ZERO
    if measured >= claims:
        return weight
    share = CTX.divide(CTX.multiply(weight, measured), claims)
    return min(weight, share.quantize(GRAM, rounding=ROUND_DOWN, context=CTX))


class Holding:
    """A pledged receipt of a monitored loan, and its current verified weight."""

    __slots__ = ("commodity", "loan", "loc", "lot", "no", "verified", "weight")

    def __init__(
        self, loan: LoanState, no: str, lot: str, commodity: str, weight: Decimal, loc: Location
    ) -> None:
        self.loan = loan
        self.no = no
        self.lot = lot
        self.commodity = commodity
        self.weight = weight
        self.loc = loc
        self.verified = ZERO


@dataclass
class Release:
    order: ReleaseOrder
    remaining: Decimal


class Location:
    __slots__ = (
        "claims",
        "holdings",
        "key",
        "levels",
        "location",
        "measured",
        "n_bad",
        "other",
        "releases",
        "scans",
        "site",
        "status",
        "weights",
    )

    def __init__(self, site: str, location: str) -> None:
        self.site = site
        self.location = location
        self.key = f"{site}/{location}"
        self.weights: dict[str, tuple[int, Decimal, Ref]] = {}
        self.levels: dict[str, tuple[Decimal, Ref]] = {}
        self.status: dict[str, dict[str, tuple[int, bool]]] = {}
        self.holdings: dict[tuple[str, str], Holding] = {}
        self.releases: dict[str, Release] = {}
        self.scans: dict[str, int] = {}
        self.measured: Decimal | None = None
        self.claims = ZERO
        self.other = ZERO
        self.n_bad = 0

    @property
    def healthy(self) -> bool:
        return self.n_bad == 0

    def loans(self) -> dict[str, LoanState]:
        """The monitored loans with goods here, in the order their holdings arrived."""
        out: dict[str, LoanState] = {}
        for h in self.holdings.values():
            out.setdefault(h.loan.id, h.loan)
        return out

    def set_flag(self, dev: str, flag: str, t: int, bad: bool) -> bool:
        """Record a device condition unless an older one; return whether it was recorded."""
        flags = self.status.setdefault(dev, {})
        prev = flags.get(flag)
        if prev is not None and t < prev[0]:
            return False
        was_bad = any(b for _, b in flags.values())
        flags[flag] = (t, bad)
        now_bad = any(b for _, b in flags.values())
        self.n_bad += int(now_bad) - int(was_bad)
        return True

    def recount(self) -> tuple[Decimal | None, Decimal, bool]:
        """``(measured, claims, healthy)`` counted afresh from the raw state (for audits)."""
        measured = None
        for _, w, _ in self.weights.values():
            measured = w if measured is None else CTX.add(measured, w)
        claims = self.other
        for h in self.holdings.values():
            claims = CTX.add(claims, h.weight)
        healthy = not any(b for flags in self.status.values() for _, b in flags.values())
        return measured, claims, healthy


@dataclass(eq=False)
class LoanState:
    id: str
    bank: str
    borrower: str
    commodity: str
    principal: int
    cash_margin: int
    holdings: dict[str, Holding] = field(default_factory=dict)
    vw: dict[str, Decimal] = field(default_factory=dict)
    unmeasured: int = 0
    state: str = OK
    coverage: Decimal | None = None
    call_t: int | None = None
    deadline: int | None = None
    call_evidence: tuple[Ref, ...] = ()

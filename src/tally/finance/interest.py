"""Business days and interest: the day count of loans (ACT/360) in exact decimal arithmetic.

Days. A loan counts Beijing business dates (UTC+8), numbered from 1970-01-01::

    day(t_ms) = (t_ms + 8 h) // 86 400 000

so day 19 675 is 2023-11-14 from 00:00 to 24:00 Beijing time. :func:`day_start` is the
first millisecond of a day and :func:`date_of` its calendar date.

Interest (ACT/360). Interest accrues once per actual calendar day that has ended while the
principal was outstanding: a loan disbursed on day ``s`` and repaid on day ``r`` carries
``r - s`` days of interest (the first day counts, the last does not). One day's interest on
principal ``P`` (integer minor units, fen) at annual rate ``R`` (a decimal fraction,
``Decimal("0.0435")`` for 4.35 %) is::

    daily(P, R) = P × R / 360, rounded half up to 10⁻¹⁰ fen (ACCRUAL_QUANTUM)

``P × R`` is exact; dividing by 360 does not terminate in decimal when the quotient keeps a
factor 3, so the daily amount is fixed at ten decimal places of a fen, the same on every
peer. Accrual over ``n`` days at a constant principal is ``n × daily(P, R)``: exactly the
sum of ``n`` daily accruals, with no further rounding. The accrued interest is kept in that
form (a Decimal of fen) and rounded to whole fen, half up, only when it is paid
(:func:`to_minor`); a payment goes to that rounded interest first, then to principal
(:func:`allocate`).

Worked example (checked by the tests and shown in docs/finance-loans.md): 1 000 000.00 CNY
(``P = 100 000 000`` fen) at 4.35 % a year, disbursed 2024-03-01 and repaid 2024-03-31::

    daily    = 100 000 000 × 0.0435 / 360 = 12 083.3333333333 fen
    30 days  = 362 499.999999999 fen
    paid     = to_minor(362 499.999999999) = 362 500 fen = 3 625.00 CNY

All arithmetic runs in :data:`EXACT`, a decimal context that raises on any rounding it was
not asked for, so no step depends on the caller's decimal context.
"""

from __future__ import annotations

import datetime as _dt
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)

DAY_MS = 86_400_000
"""Milliseconds in a day."""

OFFSET_MS = 8 * 3_600_000
"""Beijing time (UTC+8) ahead of UTC, in milliseconds: business dates are Beijing dates."""

YEAR_BASIS = 360
"""ACT/360: a year's interest is spread over 360 days; actual days are counted."""

ACCRUAL_QUANTUM = Decimal("1E-10")
"""One day's interest is rounded (half up) to this many fen."""

EXACT = Context(
    prec=60,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded],
)
"""A context for exact arithmetic: 60 digits, and any rounding raises (``Inexact``)."""

_QUANTIZE = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])

_EPOCH = _dt.date(1970, 1, 1)


def day(t_ms: int) -> int:
    """The Beijing business date of the instant ``t_ms`` (ms since the Unix epoch), as a day
    number (days since 1970-01-01)."""
    return (t_ms + OFFSET_MS) // DAY_MS


def day_start(d: int) -> int:
    """The first millisecond (UTC epoch ms) of business day ``d``."""
    return d * DAY_MS - OFFSET_MS


def date_of(d: int) -> str:
    """Business day ``d`` as an ISO date, ``"2024-03-01"``."""
    return (_EPOCH + _dt.timedelta(days=d)).isoformat()


def daily(principal: int, rate: Decimal) -> Decimal:
    """One day's interest in fen on ``principal`` fen at annual ``rate`` (ACT/360), rounded
    half up to :data:`ACCRUAL_QUANTUM`."""
    numerator = EXACT.multiply(Decimal(principal), rate)
    return _QUANTIZE.divide(numerator, Decimal(YEAR_BASIS)).quantize(
        ACCRUAL_QUANTUM, rounding=ROUND_HALF_UP, context=_QUANTIZE
    )


def accrue(principal: int, rate: Decimal, days: int) -> Decimal:
    """Interest in fen for ``days`` whole days at a constant ``principal`` and ``rate``:
    ``days × daily(principal, rate)`` (exactly the sum of the daily accruals)."""
    if days < 0:
        raise ValueError(f"cannot accrue over {days} days")
    return EXACT.multiply(Decimal(days), daily(principal, rate))


def add(a: Decimal, b: Decimal) -> Decimal:
    """``a + b`` exactly (raises ``Inexact`` rather than round)."""
    return EXACT.add(a, b)


def to_minor(amount: Decimal) -> int:
    """``amount`` (fen, a Decimal) rounded to whole fen, half up (0.5 fen rounds away from
    zero): how accrued interest is paid."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_QUANTIZE))


def owed(interest: Decimal, principal: int) -> int:
    """What settles a loan now, in fen: the accrued interest rounded half up, plus the
    principal."""
    return to_minor(interest) + principal


def allocate(interest: Decimal, principal: int, amount: int) -> tuple[int, int, Decimal]:
    """Apply a payment of ``amount`` fen (at most :func:`owed`) to the rounded interest
    first, then to principal: ``(to interest, to principal, interest left)``. The interest
    left is the exact remainder, or 0 when the rounded-up payment covered it all (a
    remainder under half a fen stays, and is settled by rounding when the loan closes)."""
    if not 0 <= amount <= owed(interest, principal):
        raise ValueError(f"payment {amount} is not within 0..{owed(interest, principal)} owed")
    to_interest = min(amount, to_minor(interest))
    left = max(EXACT.subtract(interest, Decimal(to_interest)), Decimal(0))
    return to_interest, amount - to_interest, left


__all__ = [
    "ACCRUAL_QUANTUM",
    "DAY_MS",
    "EXACT",
    "OFFSET_MS",
    "YEAR_BASIS",
    "accrue",
    "add",
    "allocate",
    "daily",
    "date_of",
    "day",
    "day_start",
    "owed",
    "to_minor",
]

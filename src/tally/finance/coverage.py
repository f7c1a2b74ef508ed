"""Collateral coverage of a loan: the formula the contracts enforce and the monitor watches.

Pure functions of numbers, with no ledger or I/O, so that the ``loans`` contract, the receipts
contract's release check and the bank's off-chain monitor compute exactly the same thing.

Units: weights in the commodity's unit (t), prices in CNY per unit, haircuts and pledge rates
as decimal fractions, money (principal, cash margin, limits) in integer fen.
:data:`MINOR_PER_UNIT` converts CNY to fen.

* Market value of collateral (what a loan is approved against)::

      value = Σ weight × price × 100                                   (fen, exact)
      max_loan(pledge_rate, value) = ⌊pledge_rate × value⌋             (fen)

* Coverage of a loan (what the warning and disposal lines apply to)::

      coverage = (Σ weight × price × haircut × 100 + cash_margin) / principal

  None when nothing is outstanding (principal 0). :func:`coverage` truncates the quotient
  to :data:`COVERAGE_PLACES` decimal places (towards zero, so a coverage below a line never
  shows as on it); :func:`below` compares against a line exactly, without division.

* Pro-rata release: repaying ``paid`` of ``principal`` frees ``weight × paid / principal``
  of each receipt, rounded down to :data:`WEIGHT_QUANTUM` (1 kg), so what stays pledged
  never falls below the exact proportion and coverage after the release is never lower
  than before (:func:`pro_rata`).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import (
    ROUND_DOWN,
    ROUND_FLOOR,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)
from typing import NamedTuple

MINOR_PER_UNIT = 100
"""Fen per yuan (CNY): prices are per unit in CNY, money is in fen."""

COVERAGE_PLACES = Decimal("0.000001")
"""Coverage is reported to six decimal places (truncated)."""

WEIGHT_QUANTUM = Decimal("0.001")
"""Released weights are rounded down to this (1 kg when the unit is t)."""

_EXACT = Context(
    prec=60,
    rounding=ROUND_DOWN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded],
)
_ROUND = Context(prec=60, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero, Overflow])


class Line(NamedTuple):
    """One piece of collateral: ``weight`` units at ``price`` CNY per unit, counted at
    ``haircut`` (a fraction in (0, 1]) of its market value."""

    weight: Decimal
    price: Decimal
    haircut: Decimal


def market_value(items: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """Σ weight × price of ``(weight, price)`` pairs, in fen (exact)."""
    total = Decimal(0)
    for weight, price in items:
        total = _EXACT.add(total, _EXACT.multiply(weight, price))
    return _EXACT.multiply(total, Decimal(MINOR_PER_UNIT))


def covered_value(lines: Iterable[Line | tuple[Decimal, Decimal, Decimal]]) -> Decimal:
    """Σ weight × price × haircut of ``lines``, in fen (exact)."""
    total = Decimal(0)
    for weight, price, haircut in lines:
        total = _EXACT.add(total, _EXACT.multiply(_EXACT.multiply(weight, price), haircut))
    return _EXACT.multiply(total, Decimal(MINOR_PER_UNIT))


def coverage(
    lines: Iterable[Line | tuple[Decimal, Decimal, Decimal]], cash_margin: int, principal: int
) -> Decimal | None:
    """``(covered_value(lines) + cash_margin) / principal`` truncated to
    :data:`COVERAGE_PLACES`; None when ``principal`` is 0."""
    if principal < 0 or cash_margin < 0:
        raise ValueError(f"principal {principal} and cash margin {cash_margin} must be >= 0")
    if principal == 0:
        return None
    total = _EXACT.add(covered_value(lines), Decimal(cash_margin))
    return _ROUND.divide(total, Decimal(principal)).quantize(
        COVERAGE_PLACES, rounding=ROUND_DOWN, context=_ROUND
    )


def below(
    lines: Iterable[Line | tuple[Decimal, Decimal, Decimal]],
    cash_margin: int,
    principal: int,
    line: Decimal,
) -> bool:
    """Whether the exact coverage is below ``line`` (False when ``principal`` is 0)."""
    if principal == 0:
        return False
    total = _EXACT.add(covered_value(lines), Decimal(cash_margin))
    return total < _EXACT.multiply(line, Decimal(principal))


def max_loan(pledge_rate: Decimal, value: Decimal) -> int:
    """The largest loan, in whole fen, that ``value`` fen of collateral supports at
    ``pledge_rate``: ⌊pledge_rate × value⌋."""
    return int(_EXACT.multiply(pledge_rate, value).to_integral_value(ROUND_FLOOR, _ROUND))


def pro_rata(weight: Decimal, paid: int, principal: int) -> Decimal:
    """The weight of a receipt of ``weight`` that repaying ``paid`` of ``principal`` frees:
    ``weight × paid / principal`` rounded down to :data:`WEIGHT_QUANTUM` (all of it when
    ``paid == principal``)."""
    if not 0 <= paid <= principal or principal == 0:
        raise ValueError(f"paid {paid} must be within 0..principal {principal} (> 0)")
    if paid == principal:
        return weight
    exact = _ROUND.divide(_EXACT.multiply(weight, Decimal(paid)), Decimal(principal))
    return exact.quantize(WEIGHT_QUANTUM, rounding=ROUND_DOWN, context=_ROUND)


__all__ = [
    "COVERAGE_PLACES",
    "MINOR_PER_UNIT",
    "WEIGHT_QUANTUM",
    "Line",
    "below",
    "coverage",
    "covered_value",
    "market_value",
    "max_loan",
    "pro_rata",
]

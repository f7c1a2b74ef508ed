"""Business days and ACT/360 interest (tally.finance.interest), and the worked example that
docs/finance-loans.md shows."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.finance.interest import (
    ACCRUAL_QUANTUM,
    DAY_MS,
    accrue,
    allocate,
    daily,
    date_of,
    day,
    day_start,
    owed,
    to_minor,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "finance-loans.md"


def utc_ms(year: int, month: int, day_: int, hour: int) -> int:
    return int(dt.datetime(year, month, day_, hour, tzinfo=dt.UTC).timestamp() * 1000)


def test_a_business_day_is_a_beijing_date() -> None:
    d = (dt.date(2024, 3, 1) - dt.date(1970, 1, 1)).days
    assert d == 19_783
    midnight_beijing = utc_ms(2024, 2, 29, 16)  # 2024-03-01 00:00 at UTC+8
    assert day(midnight_beijing) == d
    assert day(midnight_beijing - 1) == d - 1  # 23:59:59.999 the evening before
    assert day(midnight_beijing + DAY_MS - 1) == d
    assert day(midnight_beijing + DAY_MS) == d + 1
    assert day_start(d) == midnight_beijing
    assert date_of(d) == "2024-03-01"
    assert day(0) == 0 and date_of(0) == "1970-01-01"  # 08:00 Beijing on the epoch


def test_the_worked_example() -> None:
    """1 000 000.00 CNY at 4.35 % for the 30 days from 2024-03-01 to 2024-03-31."""
    p, r = 100_000_000, Decimal("0.0435")
    assert daily(p, r) == Decimal("12083.3333333333")
    days = (dt.date(2024, 3, 31) - dt.date(2024, 3, 1)).days
    assert days == 30
    assert accrue(p, r, days) == Decimal("362499.999999999")
    assert to_minor(accrue(p, r, days)) == 362_500


def test_the_docs_show_the_worked_example() -> None:
    text = DOC.read_text()
    assert "ACT/360" in text
    for shown in ("12 083.3333333333", "362 499.999999999", "362 500", "3 625.00 CNY"):
        assert shown in text, shown


def test_daily_interest_rounds_half_up_at_the_quantum() -> None:
    # 1 fen at 0.000000018 a year: 0.00000000005 fen a day, exactly half a quantum: up
    assert daily(1, Decimal("0.000000018")) == ACCRUAL_QUANTUM
    # 0.000000017 gives 0.0000000000472…: down
    assert daily(1, Decimal("0.000000017")) == Decimal(0)
    assert daily(360, Decimal("0.05")) == Decimal("0.05")  # exact: no rounding at all
    assert daily(0, Decimal("0.05")) == 0


def test_to_minor_rounds_half_up() -> None:
    assert to_minor(Decimal("0.5")) == 1
    assert to_minor(Decimal("2.5")) == 3  # half-even would give 2
    assert to_minor(Decimal("2.4999999999")) == 2
    assert to_minor(Decimal("362499.999999999")) == 362_500
    assert to_minor(Decimal(0)) == 0


def test_accrual_ignores_the_callers_decimal_context() -> None:
    expected = accrue(100_000_000, Decimal("0.0435"), 30)
    with localcontext() as c:
        c.prec = 5
        c.rounding = ROUND_DOWN
        assert accrue(100_000_000, Decimal("0.0435"), 30) == expected
        assert to_minor(Decimal("2.5")) == 3


def test_accrual_over_negative_days_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot accrue over -1 days"):
        accrue(100, Decimal("0.05"), -1)


rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.36"), places=4)
principals = st.integers(min_value=0, max_value=10**13)


@given(principals, rates, st.integers(min_value=0, max_value=3660))
def test_accrual_over_n_days_is_the_sum_of_daily_accruals(p: int, r: Decimal, n: int) -> None:
    total = Decimal(0)
    for _ in range(n):
        total += daily(p, r)
    assert accrue(p, r, n) == total
    # and within half a quantum a day of the exact ACT/360 amount
    with localcontext() as c:
        c.prec = 60
        exact = Decimal(p) * r * n / 360
    assert abs(accrue(p, r, n) - exact) <= ACCRUAL_QUANTUM / 2 * n + Decimal("1E-20")


@given(principals, rates, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_accrual_in_steps_equals_accrual_at_once(p: int, r: Decimal, steps: list[int]) -> None:
    stepped = sum((accrue(p, r, n) for n in steps), Decimal(0))
    assert stepped == accrue(p, r, sum(steps))


def test_a_payment_goes_to_rounded_interest_first() -> None:
    interest = Decimal("362499.999999999")
    assert owed(interest, 100_000_000) == 100_362_500
    assert allocate(interest, 100_000_000, 100_000) == (100_000, 0, Decimal("262499.999999999"))
    assert allocate(interest, 100_000_000, 362_500) == (362_500, 0, Decimal(0))
    assert allocate(interest, 100_000_000, 1_362_500) == (362_500, 1_000_000, Decimal(0))
    assert allocate(Decimal("0.4"), 10, 3) == (0, 3, Decimal("0.4"))  # 0.4 fen rounds to 0
    assert allocate(Decimal("2.6"), 10, 3) == (3, 0, Decimal(0))  # 2.6 fen paid as 3
    with pytest.raises(ValueError, match=r"payment 100362501 is not within 0\.\.100362500 owed"):
        allocate(interest, 100_000_000, 100_362_501)

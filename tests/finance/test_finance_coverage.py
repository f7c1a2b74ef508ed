"""The coverage formula (tally.finance.coverage): values, coverage, the exact line test, the
approval limit and pro-rata release."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.finance.coverage import (
    COVERAGE_PLACES,
    WEIGHT_QUANTUM,
    Line,
    below,
    coverage,
    covered_value,
    market_value,
    max_loan,
    pro_rata,
)

D = Decimal


def test_values_are_in_fen() -> None:
    assert market_value([(D(100), D(70000))]) == D(700_000_000)  # 7 000 000.00 CNY
    assert covered_value([Line(D(100), D(70000), D("0.9"))]) == D(630_000_000)
    assert market_value([]) == 0 and covered_value([]) == 0


def test_coverage_of_a_loan() -> None:
    lines = [Line(D(100), D(70000), D("0.9")), Line(D("0.5"), D(70000), D("0.9"))]
    # (630 000 000 + 3 150 000 + 10 000 000) / 300 000 000
    assert coverage(lines, 10_000_000, 300_000_000) == D("2.143833")
    assert coverage(lines, 0, 0) is None
    assert coverage([], 0, 1) == 0


def test_coverage_is_truncated_never_rounded_up() -> None:
    assert coverage([(D(1), D(1), D(1))], 0, 300) == D("0.333333")
    assert coverage([(D(2), D(1), D(1))], 0, 300) == D("0.666666")
    assert coverage([(D(2), D(1), D(1))], 0, 300).as_tuple().exponent == -6  # type: ignore[union-attr]


def test_below_compares_exactly() -> None:
    lines = [Line(D(13), D(100), D(1))]  # 130 000 fen
    assert not below(lines, 0, 100_000, D("1.3"))  # exactly on the line is not below
    assert below(lines, 0, 100_001, D("1.3"))  # 1.29998… is
    assert coverage(lines, 0, 100_001) == D("1.299987")
    assert below(lines, 1, 100_001, D("1.3"))  # 130 001 < 130 001.3
    assert not below(lines, 2, 100_001, D("1.3"))  # two fen of cash margin lift it back
    assert not below([], 0, 0, D("1.3"))  # nothing outstanding


def test_max_loan_floors_to_whole_fen() -> None:
    assert max_loan(D("0.6"), D(700_000_000)) == 420_000_000
    assert max_loan(D("0.7"), D("1000.99")) == 700  # 700.693
    assert max_loan(D(1), D("0.5")) == 0


def test_pro_rata_rounds_the_release_down_to_a_kilogram() -> None:
    assert pro_rata(D(100), 30, 100) == D(30)
    assert pro_rata(D(100), 1, 3) == D("33.333")
    assert pro_rata(D("0.0005"), 1, 2) == 0
    assert pro_rata(D("100.123456"), 7, 7) == D("100.123456")  # all of it, unrounded
    with pytest.raises(ValueError, match=r"paid 8 must be within 0\.\.principal 7"):
        pro_rata(D(1), 8, 7)
    with pytest.raises(ValueError):
        pro_rata(D(1), 0, 0)


def test_coverage_ignores_the_callers_decimal_context() -> None:
    lines = [Line(D("123.456789"), D("70123.45"), D("0.9"))]
    expected = coverage(lines, 12_345, 300_000_001)
    with localcontext() as c:
        c.prec = 4
        c.rounding = ROUND_UP
        assert coverage(lines, 12_345, 300_000_001) == expected


def test_negative_money_is_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        coverage([], -1, 100)


weights = st.decimals(min_value=D("0.001"), max_value=D(100_000), places=3)
prices = st.decimals(min_value=D("0.01"), max_value=D(1_000_000), places=2)
haircuts = st.decimals(min_value=D("0.01"), max_value=D(1), places=2)


@given(
    st.lists(weights, min_size=1, max_size=5),
    prices,
    haircuts,
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=2, max_value=10**13),
    st.data(),
)
def test_pro_rata_release_keeps_coverage(
    ws: list[Decimal],
    price: Decimal,
    haircut: Decimal,
    cash: int,
    principal: int,
    data: st.DataObject,
) -> None:
    """Releasing each receipt's pro-rata share while repaying ``paid`` of ``principal`` (and
    keeping the cash margin) never lowers the coverage, and rounding keeps back less than
    a kilogram per receipt."""
    paid = data.draw(st.integers(min_value=1, max_value=principal - 1))
    rest = principal - paid
    before = [Line(w, price, haircut) for w in ws]
    after = [Line(w - pro_rata(w, paid, principal), price, haircut) for w in ws]
    c0, c1 = coverage(before, cash, principal), coverage(after, cash, rest)
    assert c0 is not None and c1 is not None
    assert c1 >= c0
    with localcontext() as c:
        c.prec = 80
        exact0 = (covered_value(before) + cash) / principal
        exact1 = (covered_value(after) + cash) / rest
        # goods only (no cash margin): the proportion is kept up to the rounding of weights
        goods0 = covered_value(before) / principal
        goods1 = covered_value(after) / rest
        slack = len(ws) * WEIGHT_QUANTUM * price * haircut * 100 / rest
    assert exact1 >= exact0
    assert goods0 <= goods1 <= goods0 + slack
    assert c1 - c0 <= exact1 - exact0 + COVERAGE_PLACES


@given(st.lists(weights, min_size=1, max_size=4), st.lists(st.integers(1, 10**6), max_size=6))
def test_repayments_release_exactly_the_pledged_weight(
    ws: list[Decimal], payments: list[int]
) -> None:
    """Partial repayments release pro rata, the last releases the rest: the released weights
    add up to the pledged weight exactly."""
    principal = sum(payments) + 1
    held = list(ws)
    released = [D(0)] * len(ws)
    for paid in [*payments, 1]:
        for k, w in enumerate(held):
            r = pro_rata(w, paid, principal)
            held[k] -= r
            released[k] += r
        principal -= paid
    assert principal == 0
    assert held == [0] * len(ws)
    assert released == ws

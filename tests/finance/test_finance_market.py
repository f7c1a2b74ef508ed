"""The ``market`` contract: commodities, prices and lending parameters, each refusal precise
and changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loans_harness import PARAMS, LoanChain

from tally.finance.keys import commodity_key, params_key, price_key

D = Decimal


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LoanChain]:
    c = LoanChain(tmp_path)
    c.ok("market", "set_commodity", "copper", "t", D("0.01"), creator="reg")
    yield c
    c.close()


def params(**kw: Any) -> tuple[Any, ...]:
    p = {**PARAMS, **kw}
    return ("copper", p["haircut"], p["pledge_rate"], p["warning"], p["disposal"], p["cure_ms"])


def test_a_commodity_price_and_parameters(chain: LoanChain) -> None:
    assert chain.get(commodity_key("copper")) == {"unit": "t", "tolerance": D("0.01")}
    chain.ok("market", "set_commodity", "zinc", "t", 0, creator="bank")  # a bank may too
    assert chain.get(commodity_key("zinc")) == {"unit": "t", "tolerance": 0}
    t = chain.t
    r = chain.ok("market", "set_price", "copper", D("70000.50"), "CNY", creator="bank2")
    price = {"price": D("70000.5"), "currency": "CNY", "t": t, "by": "bank2"}
    assert chain.get(price_key("copper")) == price
    assert r == {"commodity": "copper", **price}
    chain.ok("market", "set_params", *params())
    assert chain.get(params_key("bank", "copper")) == PARAMS
    assert chain.get(params_key("bank2", "copper")) is None  # each bank its own
    # a new price replaces the old one; new parameters replace the bank's
    chain.ok("market", "set_price", "copper", D(69000), "CNY")
    assert chain.get(price_key("copper"))["price"] == 69000
    chain.ok("market", "set_params", *params(pledge_rate=D("0.5")))
    assert chain.get(params_key("bank", "copper"))["pledge_rate"] == D("0.5")


def test_the_edge_values_are_accepted(chain: LoanChain) -> None:
    # haircut and pledge rate of 1; pledge_rate × warning == haircut; disposal of 1
    chain.ok("market", "set_params", *params(haircut=1, pledge_rate=D("0.5"), warning=2,
                                             disposal=1, cure_ms=1))  # fmt: skip
    assert chain.get(params_key("bank", "copper"))["warning"] == 2


COMMODITY_REFUSALS = [
    (("cu/1", "t", D(0)), "set_commodity: name must not contain '/', got 'cu/1'"),
    (("", "t", D(0)), "set_commodity: name must be non-empty text, got str ''"),
    (("x" * 65, "t", D(0)), "set_commodity: name must be at most 64 characters, got 65"),
    (("zinc", " ", D(0)), "set_commodity: unit must be non-empty text, got str ' '"),
    (("zinc", "t" * 17, D(0)), "set_commodity: unit must be at most 16 characters, got 17"),
    (("zinc", "t", D(1)), "set_commodity: tolerance must be in [0, 1), got 1"),
    (("zinc", "t", D("-0.1")), "set_commodity: tolerance must be in [0, 1), got -0.1"),
    (("zinc", "t", "0.01"), "set_commodity: tolerance must be a decimal, got str '0.01'"),
    (("zinc", "t", D("0.0000001")),
     "set_commodity: tolerance must have at most 6 decimal places, got 0.0000001"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "error"), COMMODITY_REFUSALS)
def test_set_commodity_refusals(chain: LoanChain, args: tuple[Any, ...], error: str) -> None:
    assert chain.refused("market", "set_commodity", *args) == error


def test_only_banks_and_regulators_set_commodities(chain: LoanChain) -> None:
    assert chain.refused("market", "set_commodity", "zinc", "t", D(0), creator="wh") == (
        "set_commodity: 'wh' is not a member with role bank or regulator"
    )


PRICE_REFUSALS = [
    (("copper", D(0), "CNY"), "set_price: price must be > 0, got 0"),
    (("copper", D(-5), "CNY"), "set_price: price must be > 0, got -5"),
    (("copper", None, "CNY"), "set_price: price must be a decimal, got NoneType None"),
    (("copper", D("1E12"), "CNY"),
     "set_price: price must be below 1000000000000, got 1000000000000"),
    (("copper", D("1.0000001"), "CNY"),
     "set_price: price must have at most 6 decimal places, got 1.0000001"),
    (("copper", D(70000), "USD"), "set_price: currency must be 'CNY', got str 'USD'"),
    (("zinc", D(70000), "CNY"), "set_price: commodity 'zinc' does not exist"),
    (("a/b", D(70000), "CNY"), "set_price: commodity must not contain '/', got 'a/b'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "error"), PRICE_REFUSALS)
def test_set_price_refusals(chain: LoanChain, args: tuple[Any, ...], error: str) -> None:
    assert chain.refused("market", "set_price", *args) == error


def test_only_banks_set_prices_and_parameters(chain: LoanChain) -> None:
    no = "is not a member with role bank"
    assert chain.refused("market", "set_price", "copper", D(1), "CNY", creator="reg") == (
        f"set_price: 'reg' {no}"
    )
    assert chain.refused("market", "set_params", *params(), creator="wh") == (
        f"set_params: 'wh' {no}"
    )


PARAM_REFUSALS = [
    ({"haircut": D(0)}, "set_params: haircut must be in (0, 1], got 0"),
    ({"haircut": D("1.01")}, "set_params: haircut must be in (0, 1], got 1.01"),
    ({"pledge_rate": D(0)}, "set_params: pledge_rate must be in (0, 1], got 0"),
    ({"pledge_rate": D("1.5")}, "set_params: pledge_rate must be in (0, 1], got 1.5"),
    ({"warning": D(1)}, "set_params: warning must be > 1, got 1"),
    ({"disposal": D("0.99")}, "set_params: disposal must be >= 1, got 0.99"),
    ({"disposal": D("1.3")}, "set_params: disposal 1.3 must be below the warning line 1.3"),
    ({"disposal": D("1.4")}, "set_params: disposal 1.4 must be below the warning line 1.3"),
    ({"pledge_rate": D("0.7")},
     "set_params: pledge_rate 0.7 × warning 1.3 = 0.91 exceeds haircut 0.9: a loan at the "
     "full pledge rate would start below the warning line"),
    ({"cure_ms": 0}, "set_params: cure_ms must be an integer >= 1, got 0"),
    ({"cure_ms": True}, "set_params: cure_ms must be an integer >= 1, got bool True"),
    ({"haircut": "0.9"}, "set_params: haircut must be a decimal, got str '0.9'"),
    ({"warning": b"1.3"}, "set_params: warning must be a decimal, got bytes b'1.3'"),
]  # fmt: skip


@pytest.mark.parametrize(("kw", "error"), PARAM_REFUSALS)
def test_set_params_refusals(chain: LoanChain, kw: dict[str, Any], error: str) -> None:
    assert chain.refused("market", "set_params", *params(**kw)) == error


def test_parameters_need_the_commodity(chain: LoanChain) -> None:
    assert chain.refused("market", "set_params", "zinc", *params()[1:]) == (
        "set_params: commodity 'zinc' does not exist"
    )


def test_market_arguments_are_counted(chain: LoanChain) -> None:
    assert chain.refused("market", "set_price", "copper", D(1)) == (
        "bad arguments: set_price takes 3, got 2"
    )

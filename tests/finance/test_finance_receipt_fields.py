"""GB/T 30332-2024 receipt elements: every field's rule, each broken rule refused with the
field, the rule and the value, both by validate_fields and by receipts.issue (which then
changes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import DAY, T0, FinanceChain, fields
from hypothesis import given
from hypothesis import strategies as st

from tally.finance.receipt import (
    FIELDS,
    ReceiptFieldError,
    check_no,
    expired,
    iso,
    new_receipt,
    validate_fields,
)

BAD: list[tuple[str, Any, str]] = [
    ("no", "", "must be non-empty text, got str ''"),
    ("no", "W/1", "must not contain '/', got 'W/1'"),
    ("no", "W" * 65, "must be at most 64 characters, got 65"),
    ("no", "W\n1", "must not contain control characters, got 'W\\n1'"),
    ("no", 7, "must be non-empty text, got int 7"),
    ("depositor", None, "must be non-empty text, got NoneType None"),
    ("goods", "  ", "must be non-empty text, got str '  '"),
    ("spec", "x" * 257, "must be at most 256 characters, got 257"),
    ("quantity", Decimal("0"), "must be a positive Decimal, got 0"),
    ("quantity", 5, "must be a positive Decimal, got int 5"),
    ("unit", "", "must be non-empty text, got str ''"),
    ("weight", Decimal("-1.5"), "must be a positive Decimal, got -1.5"),
    ("weight", Decimal("0"), "must be a positive Decimal, got 0"),
    ("weight", "40", "must be a positive Decimal, got str '40'"),
    ("weight", 40.0, "must be a positive Decimal, got float 40.0"),
    ("weight", Decimal("NaN"), "must be a positive Decimal, got Decimal Decimal('NaN')"),
    ("weight", Decimal("1.0000001"), "must have at most 6 decimal places, got 1.0000001"),
    ("weight", Decimal("1E+12"), "must be below 1000000000000, got 1000000000000"),
    ("packaging", 3, "must be non-empty text, got int 3"),
    ("lot", "a/b", "must not contain '/', got 'a/b'"),
    ("site", "", "must be non-empty text, got str ''"),
    ("location", "A/1", "must not contain '/', got 'A/1'"),
    ("period", {"from": T0}, "must be a map of exactly from, to, got dict {'from': 1700000000000}"),
    ("period", {"from": T0, "to": T0}, f"must end after it starts, got from {T0} to {T0}"),
    ("fees", {"rate": -1, "currency": "CNY"}, ""),
    ("fees", {"rate": 1, "currency": "cny"}, ""),
    ("insurance", {"insurer": "PICC", "policy": "P", "amount": 0}, ""),
    ("insurance", {"insurer": "", "policy": "P", "amount": 1}, ""),
    ("commodity", "cu/1", "must not contain '/', got 'cu/1'"),
]  # fmt: skip
"""(field, bad value, reason); reasons of nested fields are in NESTED."""

NESTED = {
    ("fees", "rate"): ("fees.rate", "must be an integer >= 0, got int -1"),
    ("fees", "currency"): ("fees.currency", "must be an ISO 4217 code like 'CNY', got str 'cny'"),
    ("insurance", "amount"): ("insurance.amount", "must be an integer >= 1, got int 0"),
    ("insurance", "insurer"): ("insurance.insurer", "must be non-empty text, got str ''"),
    ("period", "to"): ("period.to", "must be an integer >= 0, got bool True"),
}


def _expect(name: str, value: Any, reason: str) -> tuple[str, str]:
    if reason:
        return name, reason
    bad_key = {
        "fees": "rate" if value.get("rate", 0) == -1 else "currency",
        "insurance": "amount" if value.get("amount") == 0 else "insurer",
    }[name]
    return NESTED[(name, bad_key)]


def test_valid_fields_pass_unchanged() -> None:
    f = fields()
    assert validate_fields(f) == f
    assert validate_fields({**f, "insurance": None})["insurance"] is None


@pytest.mark.parametrize(
    ("name", "value", "reason"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_each_rule_is_refused_precisely(name: str, value: Any, reason: str) -> None:  # fmt: skip
    field, why = _expect(name, value, reason)
    with pytest.raises(ReceiptFieldError) as err:
        validate_fields({**fields(), name: value})
    assert (err.value.field, err.value.reason) == (field, why)
    assert str(err.value) == f"receipt field {field!r}: {why}"


def test_a_boolean_is_not_a_time() -> None:
    with pytest.raises(ReceiptFieldError) as err:
        validate_fields({**fields(), "period": {"from": 0, "to": True}})
    assert str(err.value) == "receipt field 'period.to': must be an integer >= 0, got bool True"


def test_missing_and_unknown_fields() -> None:
    f = fields()
    for name in FIELDS:
        partial = {k: v for k, v in f.items() if k != name}
        with pytest.raises(ReceiptFieldError) as err:
            validate_fields(partial)
        assert str(err.value) == f"receipt field {name!r}: missing"
    with pytest.raises(ReceiptFieldError) as err:
        validate_fields({**f, "holder": "x"})
    assert str(err.value) == f"receipt field 'holder': unknown (the fields are {', '.join(FIELDS)})"
    with pytest.raises(ReceiptFieldError) as err:
        validate_fields([1])
    assert str(err.value) == "receipt field '*': the fields must be a map, got list [1]"


@given(
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("999999999999"), places=6,
                allow_nan=False, allow_infinity=False)
)  # fmt: skip
def test_any_positive_weight_of_six_places_is_accepted(w: Decimal) -> None:
    assert validate_fields({**fields(), "weight": w})["weight"] == w


@given(st.text(min_size=1, max_size=64).filter(lambda s: "/" not in s and s.isprintable()))
def test_receipt_numbers(no: str) -> None:
    assert check_no(no) == no


def test_new_receipt_record_and_expiry() -> None:
    f = validate_fields(fields())
    rec = new_receipt(f, "wh", T0 + 5, [b"h" * 32])
    assert rec == {
        "v": 1, **f, "custodian": "wh", "issued": T0 + 5, "holder": "sme-1", "state": "live",
        "pledgee": None, "loan": None, "frozen": None, "parent": None, "children": [],
        "evidence": [b"h" * 32], "seq": 0,
        "endorsements": [{"t": T0 + 5, "act": "receipts.issue", "by": "wh", "to": "sme-1"}],
    }  # fmt: skip
    end = f["period"]["to"]
    assert not expired(rec, end) and expired(rec, end + 1)
    assert iso(end) == "2023-12-14T22:13:20.000Z" and iso(T0 + 5) == "2023-11-14T22:13:20.005Z"


# -- through the contract ------------------------------------------------------------------------


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[FinanceChain]:
    c = FinanceChain(tmp_path / "state.sqlite")
    yield c
    c.close()


ENCODABLE = [
    b
    for b in BAD
    if not isinstance(b[1], float) and not (isinstance(b[1], Decimal) and b[1].is_nan())
]
"""The bad values a proposal can carry (floats and NaN have no deterministic CBOR)."""


@pytest.mark.parametrize(
    ("name", "value", "reason"), ENCODABLE, ids=[f"{b[0]}-{i}" for i, b in enumerate(ENCODABLE)]
)
def test_issue_refuses_a_bad_field_and_changes_nothing(
    chain: FinanceChain, name: str, value: Any, reason: str
) -> None:
    field, why = _expect(name, value, reason)
    ev = chain.stock_evidence("100", "A1")
    assert chain.refused("receipts", "issue", {**fields(), name: value}, ev, creator="wh") == (
        f"receipt field {field!r}: {why}"
    )


def test_issue_refuses_a_period_already_over(chain: FinanceChain) -> None:
    ev = chain.stock_evidence("100", "A1")
    f = fields(period={"from": T0 - 2 * DAY, "to": T0 - DAY})
    err = chain.refused("receipts", "issue", f, ev, creator="wh")
    assert err == (
        f"receipt field 'period': ends at {iso(T0 - DAY)}, before the issue at {iso(chain.t)}"
    )

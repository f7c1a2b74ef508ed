"""The ``credit`` contract: credit lines for core enterprises and limits for parties, every
refusal precise and changing nothing; and how notes use and give back a line."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_finance_notes_harness import DAY, DAY0, T0, NoteChain, digest

from tally.finance.contracts.credit import amount_text
from tally.finance.keys import limit_key
from tally.finance.receipt import iso

D = Decimal
YEAR = 365 * DAY


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[NoteChain]:
    c = NoteChain(tmp_path)
    yield c
    c.close()


def test_a_bank_grants_a_core_enterprise_a_line(chain: NoteChain) -> None:
    out = chain.ok("credit", "grant", "core", 5_000_000_00, "CNY", D("0.036"), T0 + YEAR)
    t = chain.t - 1
    assert out == {"bank": "bank", "core": "core", "limit": 5_000_000_00, "used": 0,
                   "currency": "CNY", "discount_rate": D("0.036"), "expires": T0 + YEAR,
                   "t": t}  # fmt: skip
    assert chain.line() == {"limit": 5_000_000_00, "used": 0, "currency": "CNY",
                            "discount_rate": D("0.036"), "expires": T0 + YEAR,
                            "t": t}  # fmt: skip
    # another bank's line for the same core enterprise is its own
    chain.ok("credit", "grant", "core", 1_00, "CNY", D("0.05"), T0 + YEAR, creator="bank2")
    assert chain.line("bank2")["limit"] == 1_00
    assert chain.line()["limit"] == 5_000_000_00


def test_granting_again_keeps_what_is_used(chain: NoteChain) -> None:
    chain.grant(limit=1_000_000_00)
    chain.trade("T1")
    chain.live("N1", 600_000_00)
    chain.ok("notes", "confirm", "N1")
    out = chain.ok("credit", "grant", "core", 700_000_00, "CNY", D("0.04"), T0 + YEAR)
    assert (out["limit"], out["used"], out["discount_rate"]) == (700_000_00, 600_000_00, D("0.04"))
    assert chain.refused("credit", "grant", "core", 599_999_99, "CNY", D("0.04"), T0 + YEAR) == (
        "credit.grant: limit 599999.99 CNY is below what the credit line for 'core' already "
        "uses: 600000.00 CNY"
    )
    assert chain.refused("credit", "grant", "core", 700_000_00, "USD", D("0.04"), T0 + YEAR) == (
        "credit.grant: the credit line for 'core' is in CNY and 600000.00 CNY of it is used; it "
        "cannot change to USD"
    )
    # the note settled, the line is free again and may change currency
    chain.at_day(DAY0 + 90)
    chain.ok("notes", "settle", "N1", digest("posting"), creator="core")
    assert chain.line()["used"] == 0
    assert chain.ok("credit", "grant", "core", 0, "USD", D("0.04"), T0 + YEAR)["used"] == 0


@pytest.mark.parametrize(
    ("args", "creator", "error"),
    [
        (("core", 1, "CNY", D("0.03"), None), "core",
         "credit.grant: 'core' is not a member with role bank"),
        (("wh", 1, "CNY", D("0.03"), None), "bank",
         "credit.grant: 'wh' is not a member with role core_enterprise"),
        (("sup-1", 1, "CNY", D("0.03"), None), "bank",
         "credit.grant: 'sup-1' is not a member with role core_enterprise"),
        (("core", -1, "CNY", D("0.03"), None), "bank",
         "credit.grant: limit must be an integer >= 0, got -1"),
        (("core", 10**15 + 1, "CNY", D("0.03"), None), "bank",
         "credit.grant: limit must be at most 1000000000000000, got 1000000000000001"),
        (("core", 1, "cny", D("0.03"), None), "bank",
         "credit.grant: currency must be three capital letters (ISO 4217), got str 'cny'"),
        (("core", 1, "CNY", D(0), None), "bank",
         "credit.grant: discount_rate must be in (0, 1) (annual, e.g. 0.035), got 0"),
        (("core", 1, "CNY", D(1), None), "bank",
         "credit.grant: discount_rate must be in (0, 1) (annual, e.g. 0.035), got 1"),
        (("core", 1, "CNY", D("0.0312345"), None), "bank",
         "credit.grant: discount_rate must have at most 6 decimal places, got 0.0312345"),
        (("core", 1, "CNY", "0.03", None), "bank",
         "credit.grant: discount_rate must be a decimal, got str '0.03'"),
    ],
)  # fmt: skip
def test_grant_refusals(chain: NoteChain, args: tuple[Any, ...], creator: str, error: str) -> None:
    core, limit, currency, rate, _ = args
    got = chain.refused("credit", "grant", core, limit, currency, rate, T0 + YEAR,
                        creator=creator)  # fmt: skip
    assert got == error


def test_a_line_must_expire_after_the_grant(chain: NoteChain) -> None:
    t = chain.t
    assert chain.refused("credit", "grant", "core", 1, "CNY", D("0.03"), t) == (
        f"credit.grant: expires {iso(t)} is not after the proposal time {iso(t)}"
    )


def test_a_bank_sets_a_party_limit(chain: NoteChain) -> None:
    out = chain.ok("credit", "set_limit", "sup-2", 300_000_00, "CNY")
    assert out == {"bank": "bank", "party": "sup-2", "limit": 300_000_00, "used": 0,
                   "currency": "CNY", "t": chain.t - 1}  # fmt: skip
    assert chain.get(limit_key("bank", "sup-2"))["limit"] == 300_000_00
    chain.ok("credit", "set_limit", "sup-2", 0, "CNY")
    assert chain.get(limit_key("bank", "sup-2"))["limit"] == 0
    assert chain.refused("credit", "set_limit", "sup-9", 1, "CNY") == (
        "credit.set_limit: 'sup-9' is neither a registered party nor a member"
    )
    assert chain.refused("credit", "set_limit", "sup-2", 1, "CNY", creator="core") == (
        "credit.set_limit: 'core' is not a member with role bank"
    )
    assert chain.refused("credit", "set_limit", "sup-2", 1, "yuan") == (
        "credit.set_limit: currency must be three capital letters (ISO 4217), got str 'yuan'"
    )


def test_amounts_show_in_minor_units() -> None:
    assert amount_text(123456, "CNY") == "1234.56 CNY"
    assert amount_text(5, "USD") == "0.05 USD"
    assert amount_text(-101, "CNY") == "-1.01 CNY"

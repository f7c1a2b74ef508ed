"""A loan's collateral as the contracts see it, and the release check of pledged receipts.

The collateral of loan ``L`` is every receipt in state ``pledged`` or ``frozen`` whose
``loan`` is ``L``, found from the loan's ``receipts`` list: a receipt that was split (a
partial release by the receipts contract, a pro-rata release on repayment) is followed to
its children, so the loan's list may name a parent whose pledged remainder is a child.

Its value uses the commodity's current price (``price/<commodity>``) and the lending bank's
parameters (``params/<bank>/<commodity>``); the formula is :mod:`tally.finance.coverage`.

:func:`check_release` is what ``receipts.release`` calls before the pledgee bank frees part
or all of a receipt securing a loan. Refusals:

* ``loan L does not exist``;
* ``loan L is under a margin call: releases are blocked``;
* ``loan L is overdue: releases are blocked`` (likewise ``defaulted``, ``disposing``);
* ``releasing W t of N would bring coverage of L to C, below the warning line X``.

A loan with nothing outstanding (applied, approved, closed, rejected) has no coverage and
blocks nothing here; ``loans.disburse`` checks the collateral again before money moves.

The ``loans`` contract also links receipts to a loan here (:func:`link`, :func:`unlink`),
checks the approval limit (:func:`check_limit`: ``amount <= ⌊pledge_rate × market
value⌋``) and releases collateral on repayment or disposal (:func:`release_all`,
:func:`release_pro_rata`, through :func:`tally.finance.contracts.receipt_ops.release_weight`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.finance import coverage as cov
from tally.finance.contracts import receipt_ops as ops
from tally.finance.keys import loan_key, params_key, price_key, receipt_key
from tally.finance.receipt import expired, iso
from tally.ledger.contract import Context, ContractError

SECURING_STATES = ("pledged", "frozen")
"""Receipt states in which a receipt secures its loan."""

BLOCKED = ("margin_call", "overdue", "defaulted", "disposing")
"""Loan states in which no collateral may be released by the pledgee."""


def num(d: Decimal) -> str:
    """A decimal as refusals show it, without exponent or trailing zeros: ``1.25``."""
    n = d.normalize()
    return f"{n:f}" if n != 0 else "0"


def money(minor: int | Decimal) -> str:
    """Fen as CNY with (at least) two decimals: ``123456`` → ``1234.56 CNY``; a fraction of
    a fen shows in full: ``Decimal("0.5")`` → ``0.005 CNY``."""
    d = Decimal(minor).scaleb(-2).normalize()
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    return f"{d:.2f} CNY" if exp >= -2 else f"{d:f} CNY"


@dataclass(frozen=True)
class Collateral:
    """What secures a loan now: the receipts (``rcpt/`` records, in walk order), the price
    and the bank's parameters for the loan's commodity."""

    receipts: tuple[dict[str, Any], ...]
    price: Decimal
    params: dict[str, Any]

    def lines(self, less: Mapping[str, Decimal] | None = None) -> list[cov.Line]:
        """Coverage lines, with ``less[no]`` taken off receipt ``no``'s weight."""
        out: list[cov.Line] = []
        for r in self.receipts:
            weight = r["weight"] - (less or {}).get(r["no"], Decimal(0))
            out.append(cov.Line(weight, self.price, self.params["haircut"]))
        return out

    @property
    def weight(self) -> Decimal:
        return sum((r["weight"] for r in self.receipts), Decimal(0))

    def market_value(self) -> Decimal:
        """Σ weight × price in fen (no haircut)."""
        return cov.market_value((r["weight"], self.price) for r in self.receipts)


def securing(ctx: Context, loan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The receipts securing ``loan`` now (see the module docstring), each once."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    todo = list(reversed(loan["receipts"]))
    while todo:
        no = todo.pop()
        if no in seen:
            continue
        seen.add(no)
        r = ctx.get(receipt_key(no))
        if r is None:
            continue
        if r["state"] == "split":
            todo.extend(reversed(r["children"]))
        elif r["state"] in SECURING_STATES and r.get("loan") == loan["id"]:
            out.append(dict(r))
    return out


def price_of(ctx: Context, commodity: str) -> Decimal:
    """The current CNY price of ``commodity``; refuse if none is set."""
    p = ctx.get(price_key(commodity))
    if p is None:
        raise ContractError(f"commodity {commodity!r} has no price")
    if p["currency"] != "CNY":
        raise ContractError(f"commodity {commodity!r} is priced in {p['currency']}, not CNY")
    price: Decimal = p["price"]
    return price


def params_of(ctx: Context, bank: str, commodity: str) -> dict[str, Any]:
    """Bank ``bank``'s lending parameters for ``commodity``; refuse if it set none."""
    p = ctx.get(params_key(bank, commodity))
    if p is None:
        raise ContractError(f"bank {bank!r} has no lending parameters for {commodity!r}")
    return dict(p)


def collateral(ctx: Context, loan: Mapping[str, Any]) -> Collateral:
    """The loan's collateral now, priced."""
    return Collateral(
        tuple(securing(ctx, loan)),
        price_of(ctx, loan["commodity"]),
        params_of(ctx, loan["bank"], loan["commodity"]),
    )


def loan_coverage(
    ctx: Context, loan: Mapping[str, Any], *, less: Mapping[str, Decimal] | None = None
) -> Decimal | None:
    """The loan's coverage now (None when nothing is outstanding), with ``less[no]`` of
    receipt ``no`` taken away."""
    if loan["principal"] == 0:
        return None
    c = collateral(ctx, loan)
    return cov.coverage(c.lines(less), loan["cash_margin"], loan["principal"])


def below_line(
    ctx: Context,
    loan: Mapping[str, Any],
    line: str,
    *,
    less: Mapping[str, Decimal] | None = None,
) -> bool:
    """Whether the loan's exact coverage is below its ``line`` ("warning" or "disposal")."""
    if loan["principal"] == 0:
        return False
    c = collateral(ctx, loan)
    return cov.below(c.lines(less), loan["cash_margin"], loan["principal"], c.params[line])


def check_release(ctx: Context, loan_id: str, no: str, weight: Decimal) -> None:
    """Refuse (ContractError) releasing ``weight`` of receipt ``no`` that secures loan
    ``loan_id``, when the loan blocks releases or the release would bring its coverage
    below the warning line."""
    loan = ctx.get(loan_key(loan_id))
    if loan is None:
        raise ContractError(f"loan {loan_id} does not exist")
    state = loan["state"]
    if state == "margin_call":
        raise ContractError(f"loan {loan_id} is under a margin call: releases are blocked")
    if state in BLOCKED:
        raise ContractError(f"loan {loan_id} is {state}: releases are blocked")
    if loan["principal"] == 0:
        return
    c = collateral(ctx, loan)
    lines = c.lines({no: weight})
    warning: Decimal = c.params["warning"]
    if cov.below(lines, loan["cash_margin"], loan["principal"], warning):
        after = cov.coverage(lines, loan["cash_margin"], loan["principal"])
        assert after is not None
        raise ContractError(
            f"releasing {num(weight)} t of {no} would bring coverage of {loan_id} to "
            f"{num(after)}, below the warning line {num(warning)}"
        )


# -- linking and releasing collateral (the loans contract) ------------------------------------


def loan_receipt(ctx: Context, fn: str, loan: dict[str, Any], no: str) -> dict[str, Any]:
    """Receipt ``no`` held by the borrower, unexpired, of the loan's commodity."""
    rec = ctx.get(receipt_key(no))
    if rec is None:
        raise ContractError(f"{fn}: receipt {no} does not exist")
    if rec["holder"] != loan["borrower"]:
        raise ContractError(
            f"{fn}: receipt {no} is held by {rec['holder']!r}, not the borrower "
            f"{loan['borrower']!r}"
        )
    if expired(rec, ctx.time):
        raise ContractError(f"{fn}: receipt {no} expired at {iso(rec['period']['to'])}")
    if loan["commodity"] is not None and rec["commodity"] != loan["commodity"]:
        raise ContractError(
            f"{fn}: receipt {no} is {rec['commodity']!r}, the loan is {loan['commodity']!r}"
        )
    return dict(rec)


def require_pledged_here(fn: str, loan: dict[str, Any], rec: dict[str, Any]) -> None:
    """Refuse unless ``rec`` is pledged to the loan's bank and secures no other loan."""
    no, bank = rec["no"], loan["bank"]
    if rec["state"] != "pledged":
        raise ContractError(f"{fn}: receipt {no} is {rec['state']}, not pledged to {bank!r}")
    if rec["pledgee"] != bank:
        raise ContractError(f"{fn}: receipt {no} is pledged to {rec['pledgee']!r}, not {bank!r}")
    if rec["loan"] is not None:
        raise ContractError(f"{fn}: receipt {no} already secures loan {rec['loan']}")


def link(ctx: Context, fn: str, loan: dict[str, Any], nos: list[str]) -> None:
    """Make the (checked) receipts ``nos`` secure the loan."""
    for no in nos:
        rec = loan_receipt(ctx, fn, loan, no)
        require_pledged_here(fn, loan, rec)
        ops.set_state(ctx, rec, "pledged", f"loans.{fn}", loan["bank"], loan=loan["id"])


def unlink(ctx: Context, fn: str, loan: dict[str, Any]) -> None:
    """Free the loan's receipts of the loan (they stay pledged to the bank)."""
    for rec in securing(ctx, loan):
        ops.set_state(ctx, rec, rec["state"], f"loans.{fn}", loan["bank"], loan=None)


def check_limit(ctx: Context, fn: str, loan: dict[str, Any]) -> None:
    c = collateral(ctx, loan)
    value = c.market_value()
    limit = cov.max_loan(c.params["pledge_rate"], value)
    if loan["amount"] > limit:
        raise ContractError(
            f"{fn}: amount {money(loan['amount'])} of loan {loan['id']} exceeds pledge rate "
            f"{num(c.params['pledge_rate'])} × collateral value {money(value)} = "
            f"{money(limit)} ({num(c.weight)} t × {num(c.price)} CNY/t)"
        )


def release_all(ctx: Context, loan: dict[str, Any], kind: str, act: str) -> list[str]:
    """Release every receipt securing the loan in full (kind "release" or "disposal");
    return the receipt numbers released."""
    out: list[str] = []
    for rec in securing(ctx, loan):
        if held_by_another(ctx, rec):
            # another's freeze (a regulator's) holds the goods: the pledge ends, the freeze stays
            frozen = {**rec["frozen"], "was": "live"}
            ops.set_state(
                ctx, rec, "frozen", act, ctx.creator, pledgee=None, loan=None, frozen=frozen
            )
            continue
        w = rec["weight"]
        out.extend(ops.release_weight(ctx, rec["no"], w, kind=kind, loan=loan["id"], act=act))
    return out


def held_by_another(ctx: Context, rec: Mapping[str, Any]) -> bool:
    """Whether ``rec`` is frozen by someone other than the creator (a regulator): then no
    repayment, release or disposal of the creator moves its goods."""
    frozen = rec.get("frozen")
    return frozen is not None and frozen["by"] != ctx.creator


def release_pro_rata(
    ctx: Context, loan: dict[str, Any], paid: int, before: int, act: str = "loans.repay"
) -> dict[str, Any]:
    """Release collateral in proportion to principal repaid, unless the loan's coverage
    after it would be below the warning line."""
    c = collateral(ctx, loan)
    less = {
        r["no"]: cov.pro_rata(r["weight"], paid, before)
        for r in c.receipts
        if not held_by_another(ctx, r)
    }
    less = {no: w for no, w in less.items() if w > 0}
    if not less:
        return {"released": [], "held": None}
    lines = c.lines(less)
    if cov.below(lines, loan["cash_margin"], loan["principal"], c.params["warning"]):
        after = cov.coverage(lines, loan["cash_margin"], loan["principal"])
        held = (
            f"coverage would be {num(after or Decimal(0))}, below the warning line "
            f"{num(c.params['warning'])}"
        )
        return {"released": [], "held": held}
    released: list[str] = []
    for no, w in sorted(less.items()):
        released.append(ops.release_weight(ctx, no, w, kind="release", loan=loan["id"], act=act)[0])
    loan["receipts"] = [r["no"] for r in securing(ctx, loan)]
    return {"released": released, "held": None}


__all__ = [
    "BLOCKED",
    "SECURING_STATES",
    "Collateral",
    "below_line",
    "check_limit",
    "check_release",
    "collateral",
    "held_by_another",
    "link",
    "loan_coverage",
    "loan_receipt",
    "money",
    "num",
    "params_of",
    "price_of",
    "release_all",
    "release_pro_rata",
    "require_pledged_here",
    "securing",
    "unlink",
]

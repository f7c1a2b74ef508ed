"""The ``market`` contract: commodities, their prices and each bank's lending parameters.

Functions (proposal ``fn`` and ``args``), who may call them:

=============================================================  ================================
``set_commodity(name, unit, tolerance)``                       a member with role bank or
                                                               regulator
``set_price(commodity, price, currency)``                      a member with role bank (the
                                                               price oracle is a bank for now)
``set_params(commodity, haircut, pledge_rate, warning,         a member with role bank, for
disposal, cure_ms)``                                           itself
=============================================================  ================================

State keys (:mod:`tally.finance.keys`)::

    commodity/<name>          {"unit": tstr, "tolerance": Decimal}
    price/<commodity>         {"price": Decimal (CNY per unit), "currency": tstr, "t": int,
                               "by": org}
    params/<bank>/<commodity> {"haircut": Decimal, "pledge_rate": Decimal, "warning": Decimal,
                               "disposal": Decimal, "cure_ms": int}

Rules (each refusal names the function, the argument, the rule and the value given):

* ``name``/``commodity``: non-empty text without "/" or control characters, at most 64
  characters; prices and parameters need the commodity to exist;
* ``unit``: non-empty text, at most 16 characters; ``tolerance``: a decimal in [0, 1) — the
  fraction of measured stock kept back from receipts (measurement uncertainty);
* ``price``: a decimal > 0 with at most 6 decimal places, below 10^12; ``currency``: "CNY"
  (loans are in CNY);
* ``haircut`` in (0, 1]: the fraction of market value counted in coverage;
* ``pledge_rate`` in (0, 1]: the largest loan as a fraction of market value;
* ``warning`` > 1: the coverage line below which a margin call may be made;
* ``disposal`` >= 1 and < ``warning``: the line below which the loan may be defaulted;
* ``pledge_rate × warning <= haircut``: a loan at the full pledge rate starts at or above
  the warning line;
* ``cure_ms``: an integer > 0, the time a borrower has to cure a margin call.

Decimals are ``Decimal`` (an integer is taken as one); a float is refused. Rates and lines
have at most 6 decimal places.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.finance.keys import commodity_key, params_key, price_key
from tally.ledger.contract import Context, Contract, ContractError, function
from tally.ledger.contracts.membership import current_member

MAX_ID = 64
MAX_UNIT = 16
MAX_PLACES = 6
LIMIT = Decimal(10) ** 12
CURRENCY = "CNY"
"""The currency of prices and loans."""


# -- argument checks shared by the finance contracts of this package ---------------------------


def shown(value: Any) -> str:
    """A value as a refusal quotes it: decimals plainly, anything else with its type."""
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value:f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{type(value).__name__} {value!r}"


def ident(fn: str, name: str, value: Any) -> str:
    """Non-empty text without "/" or control characters, at most 64 characters."""
    if not isinstance(value, str) or not value:
        raise ContractError(f"{fn}: {name} must be non-empty text, got {shown(value)}")
    if "/" in value:
        raise ContractError(f"{fn}: {name} must not contain '/', got {value!r}")
    if len(value) > MAX_ID:
        raise ContractError(f"{fn}: {name} must be at most {MAX_ID} characters, got {len(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ContractError(f"{fn}: {name} must not contain control characters, got {value!r}")
    return value


def text(fn: str, name: str, value: Any, limit: int = 256) -> str:
    """Non-empty (not blank) text of at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{fn}: {name} must be non-empty text, got {shown(value)}")
    if len(value) > limit:
        raise ContractError(f"{fn}: {name} must be at most {limit} characters, got {len(value)}")
    return value


def decimal(fn: str, name: str, value: Any) -> Decimal:
    """A finite decimal (an int is taken as one) with at most 6 decimal places, |x| < 10^12."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ContractError(f"{fn}: {name} must be a decimal, got {shown(value)}")
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    if -exp > MAX_PLACES:
        raise ContractError(
            f"{fn}: {name} must have at most {MAX_PLACES} decimal places, got {value:f}"
        )
    if abs(value) >= LIMIT:
        raise ContractError(f"{fn}: {name} must be below {LIMIT:f}, got {value:f}")
    return value


def integer(fn: str, name: str, value: Any, least: int) -> int:
    """An integer (not a bool) >= ``least``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ContractError(f"{fn}: {name} must be an integer >= {least}, got {shown(value)}")
    return value


def has_role(ctx: Context, org: str, role: str) -> bool:
    """Whether member ``org`` currently holds ``role``."""
    rec = current_member(ctx, org)
    return rec is not None and role in rec.member.roles


def require_role(ctx: Context, fn: str, *roles: str) -> None:
    """Refuse unless the proposal's creator holds one of ``roles``."""
    if not any(has_role(ctx, ctx.creator, r) for r in roles):
        need = " or ".join(roles)
        raise ContractError(f"{fn}: {ctx.creator!r} is not a member with role {need}")


def _range(fn: str, name: str, value: Any, low: Decimal, high: Decimal, rule: str) -> Decimal:
    d = decimal(fn, name, value)
    low_ok = d >= low if rule[0] == "[" else d > low
    high_ok = d <= high if rule[-1] == "]" else d < high
    if not (low_ok and high_ok):
        raise ContractError(f"{fn}: {name} must be in {rule}, got {d:f}")
    return d


def commodity_of(ctx: Context, fn: str, value: Any) -> dict[str, Any]:
    """The ``commodity/<name>`` record of an existing commodity."""
    name = ident(fn, "commodity", value)
    rec = ctx.get(commodity_key(name))
    if rec is None:
        raise ContractError(f"{fn}: commodity {name!r} does not exist")
    return dict(rec)


class Market(Contract):
    """Commodities, prices and lending parameters (see the module docstring)."""

    name = "market"

    @function
    def set_commodity(self, ctx: Context, name: Any, unit: Any, tolerance: Any) -> dict[str, Any]:
        fn = "set_commodity"
        require_role(ctx, fn, "bank", "regulator")
        who = ident(fn, "name", name)
        value = {
            "unit": text(fn, "unit", unit, MAX_UNIT),
            "tolerance": _range(fn, "tolerance", tolerance, Decimal(0), Decimal(1), "[0, 1)"),
        }
        ctx.put(commodity_key(who), value)
        return {"commodity": who, **value}

    @function
    def set_price(self, ctx: Context, commodity: Any, price: Any, currency: Any) -> dict[str, Any]:
        fn = "set_price"
        require_role(ctx, fn, "bank")
        name = ident(fn, "commodity", commodity)
        p = decimal(fn, "price", price)
        if p <= 0:
            raise ContractError(f"{fn}: price must be > 0, got {p:f}")
        if currency != CURRENCY:
            raise ContractError(f"{fn}: currency must be {CURRENCY!r}, got {shown(currency)}")
        commodity_of(ctx, fn, name)
        value = {"price": p, "currency": CURRENCY, "t": ctx.time, "by": ctx.creator}
        ctx.put(price_key(name), value)
        return {"commodity": name, **value}

    @function
    def set_params(
        self,
        ctx: Context,
        commodity: Any,
        haircut: Any,
        pledge_rate: Any,
        warning: Any,
        disposal: Any,
        cure_ms: Any,
    ) -> dict[str, Any]:
        fn = "set_params"
        require_role(ctx, fn, "bank")
        name = ident(fn, "commodity", commodity)
        h = _range(fn, "haircut", haircut, Decimal(0), Decimal(1), "(0, 1]")
        p = _range(fn, "pledge_rate", pledge_rate, Decimal(0), Decimal(1), "(0, 1]")
        w = decimal(fn, "warning", warning)
        if w <= 1:
            raise ContractError(f"{fn}: warning must be > 1, got {w:f}")
        d = decimal(fn, "disposal", disposal)
        if d < 1:
            raise ContractError(f"{fn}: disposal must be >= 1, got {d:f}")
        if d >= w:
            raise ContractError(f"{fn}: disposal {d:f} must be below the warning line {w:f}")
        if p * w > h:
            raise ContractError(
                f"{fn}: pledge_rate {p:f} × warning {w:f} = {p * w:f} exceeds haircut {h:f}: "
                f"a loan at the full pledge rate would start below the warning line"
            )
        cure = integer(fn, "cure_ms", cure_ms, 1)
        commodity_of(ctx, fn, name)
        value = {"haircut": h, "pledge_rate": p, "warning": w, "disposal": d, "cure_ms": cure}
        ctx.put(params_key(ctx.creator, name), value)
        return {"bank": ctx.creator, "commodity": name, **value}

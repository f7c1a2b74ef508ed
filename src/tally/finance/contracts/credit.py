"""The ``credit`` contract: banks' credit lines for core enterprises and limits for parties.

A bank grants a core enterprise (a consortium member with role ``core_enterprise``) a credit
line; confirming (保兑) a receivable note of that core enterprise uses the line by the note's
amount, and settling the confirmed note gives it back (contract ``notes``, through
:func:`consume` and :func:`restore`). The line also fixes the annual discount rate at which
the bank finances the core enterprise's notes.

=====================================================  ======================================
function                                               creator
=====================================================  ======================================
``grant(core, limit, currency, discount_rate,          a member with role bank (the line is
expires)``                                             ``credit/<creator>/<core>``)
``set_limit(party, limit, currency)``                  a member with role bank (the limit is
                                                       ``limit/<creator>/<party>``)
=====================================================  ======================================

State keys (:mod:`tally.finance.keys`)::

    credit/<bank>/<core>  {"limit": int, "used": int, "currency": tstr,
                           "discount_rate": Decimal (annual), "expires": int (ms), "t": int}
    limit/<bank>/<party>  {"limit": int, "used": int, "currency": tstr, "t": int}

Rules: ``limit`` an integer of minor units in [0, 10^15]; ``currency`` three capital letters
(ISO 4217); ``discount_rate`` a decimal in (0, 1) with at most 6 places; ``expires`` a time
(ms) after the proposal. Granting again replaces limit, rate and expiry and keeps ``used``: a
new limit below what is used, or another currency while anything is used, is refused.
``limit/`` is the interface for limits from a party's objective credit: the bank records it;
no contract consumes it yet.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.finance.contracts.market import decimal, ident, integer, require_role, shown
from tally.finance.contracts.parties import has_role, known_party
from tally.finance.keys import credit_key, limit_key
from tally.finance.receipt import iso
from tally.ledger.contract import Context, Contract, ContractError, function

MAX_LIMIT = 10**15
"""The largest credit line in minor units (10 trillion CNY)."""


def amount_text(minor: int, currency: str) -> str:
    """Minor units as refusals show them: ``123456`` → ``1234.56 CNY``."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d} {currency}"


def currency_of(fn: str, value: Any) -> str:
    """Three capital ASCII letters (an ISO 4217 code)."""
    if not isinstance(value, str) or len(value) != 3 or not all("A" <= c <= "Z" for c in value):
        raise ContractError(
            f"{fn}: currency must be three capital letters (ISO 4217), got {shown(value)}"
        )
    return value


def _limit(fn: str, value: Any) -> int:
    n = integer(fn, "limit", value, 0)
    if n > MAX_LIMIT:
        raise ContractError(f"{fn}: limit must be at most {MAX_LIMIT}, got {n}")
    return n


def _keep_used(
    fn: str, current: Any, limit: int, currency: str, what: str
) -> int:  # the used part of a replaced line or limit
    if current is None:
        return 0
    used = int(current["used"])
    if limit < used:
        raise ContractError(
            f"{fn}: limit {amount_text(limit, currency)} is below what {what} already uses: "
            f"{amount_text(used, current['currency'])}"
        )
    was = current["currency"]
    if used > 0 and currency != was:
        raise ContractError(
            f"{fn}: {what} is in {was} and {amount_text(used, was)} of it is used; it cannot "
            f"change to {currency}"
        )
    return used


def line(ctx: Context, bank: str, core: str, what: str) -> dict[str, Any]:
    """The credit line ``credit/<bank>/<core>``, unexpired; refuse otherwise."""
    rec = ctx.get(credit_key(bank, core))
    if rec is None:
        raise ContractError(f"{what}: {bank!r} has granted {core!r} no credit line")
    if ctx.time >= rec["expires"]:
        raise ContractError(
            f"{what}: the credit line of {bank!r} for {core!r} expired at {iso(rec['expires'])}"
        )
    return dict(rec)


def consume(ctx: Context, bank: str, core: str, amount: int, what: str) -> dict[str, Any]:
    """Use ``amount`` of ``bank``'s credit line for ``core``; refuse, with the numbers, if the
    line does not exist, has expired or has less than ``amount`` available. Returns the line
    after."""
    rec = line(ctx, bank, core, what)
    cur = rec["currency"]
    available = rec["limit"] - rec["used"]
    if amount > available:
        raise ContractError(
            f"{what}: {amount_text(amount, cur)} exceeds the credit line of {bank!r} for "
            f"{core!r}: limit {amount_text(rec['limit'], cur)}, used "
            f"{amount_text(rec['used'], cur)}, available {amount_text(available, cur)}"
        )
    rec["used"] += amount
    ctx.put(credit_key(bank, core), rec)
    return rec


def restore(ctx: Context, bank: str, core: str, amount: int) -> dict[str, Any]:
    """Give ``amount`` back to ``bank``'s credit line for ``core`` (an expired line too: what
    it covered is paid). Returns the line after."""
    rec = ctx.get(credit_key(bank, core))
    if rec is None:  # cannot happen: a line is never deleted once used
        raise ContractError(f"{bank!r} has granted {core!r} no credit line to restore")
    rec = dict(rec)
    if amount > rec["used"]:  # cannot happen: restored only what a confirmation consumed
        raise ContractError(
            f"restoring {amount} to the credit line of {bank!r} for {core!r}: only "
            f"{rec['used']} is used"
        )
    rec["used"] -= amount
    ctx.put(credit_key(bank, core), rec)
    return rec


class Credit(Contract):
    """Credit lines and party limits (see the module docstring)."""

    name = "credit"

    @function
    def grant(
        self, ctx: Context, core: Any, limit: Any, currency: Any, discount_rate: Any, expires: Any
    ) -> dict[str, Any]:
        fn = "credit.grant"
        require_role(ctx, fn, "bank")
        who = ident(fn, "core", core)
        if not has_role(ctx, who, "core_enterprise"):
            raise ContractError(f"{fn}: {who!r} is not a member with role core_enterprise")
        amount = _limit(fn, limit)
        cur = currency_of(fn, currency)
        rate = decimal(fn, "discount_rate", discount_rate)
        if not Decimal(0) < rate < Decimal(1):
            raise ContractError(
                f"{fn}: discount_rate must be in (0, 1) (annual, e.g. 0.035), got {rate:f}"
            )
        until = integer(fn, "expires", expires, 0)
        if until <= ctx.time:
            raise ContractError(
                f"{fn}: expires {iso(until)} is not after the proposal time {iso(ctx.time)}"
            )
        current = ctx.get(credit_key(ctx.creator, who))
        used = _keep_used(fn, current, amount, cur, f"the credit line for {who!r}")
        rec = {"limit": amount, "used": used, "currency": cur, "discount_rate": rate,
               "expires": until, "t": ctx.time}  # fmt: skip
        ctx.put(credit_key(ctx.creator, who), rec)
        return {"bank": ctx.creator, "core": who, **rec}

    @function
    def set_limit(self, ctx: Context, party: Any, limit: Any, currency: Any) -> dict[str, Any]:
        fn = "credit.set_limit"
        require_role(ctx, fn, "bank")
        who = known_party(ctx, ident(fn, "party", party), fn)
        amount = _limit(fn, limit)
        cur = currency_of(fn, currency)
        current = ctx.get(limit_key(ctx.creator, who))
        used = _keep_used(fn, current, amount, cur, f"the limit of {who!r}")
        rec = {"limit": amount, "used": used, "currency": cur, "t": ctx.time}
        ctx.put(limit_key(ctx.creator, who), rec)
        return {"bank": ctx.creator, "party": who, **rec}


__all__ = ["MAX_LIMIT", "Credit", "amount_text", "consume", "currency_of", "line", "restore"]

"""The finance contracts a peer runs and the genesis endorsement policies that govern them.

Merge :func:`default_policies` into a consortium's genesis policies (beside the system
contracts' of :func:`tally.ledger.bootstrap.default_policies`) and register
:func:`finance_contracts` with every peer::

    policies = {**bootstrap.default_policies(members), **default_policies(members)}
    registry = Registry(*system_contracts(), *finance_contracts())

Policies (text form of :mod:`tally.ledger.policy`):

* ``parties.*``: ``role:bank`` — a bank vouches for its customers (KYC);
* ``market.*``: ``role:bank`` — prices and lending parameters are the banks';
* ``receipts.*``: ``AND(role:warehouse, role:bank)`` — goods are the warehouse's word,
  pledges the bank's;
* ``loans.*``: ``AND(role:bank, OR(role:warehouse, role:regulator))`` — a second,
  independent party witnesses every loan transition;
* ``trades.*``: ``AND(role:bank, OR(role:warehouse, role:regulator, role:core_enterprise))``
  — anchored documents and reconciled trades are a bank's word, witnessed by another party;
* ``credit.*``: ``role:bank`` — credit lines and limits are the banks' own;
* ``notes.*``: ``AND(role:bank, OR(role:core_enterprise, role:warehouse, role:regulator))``
  — a bank and a second party (the core enterprise's own peer where it runs one) execute
  every note transition.

The endorsement policy says which peers must execute a proposal; who may act (the creator)
and which parties must consent are checked by the contracts themselves. Both must hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tally.ledger.contract import Contract

FINANCE_CONTRACTS = ("parties", "market", "receipts", "loans", "trades", "credit", "notes")


def _role(name: str) -> list[Any]:
    return ["role", name]


def default_policies(members: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The genesis policies of the finance contracts, in CBOR form.

    ``members`` maps each org to its roles; raise ValueError, naming the missing roles, if
    no member could satisfy a policy (no bank; neither a warehouse nor a regulator; no
    warehouse)."""
    held = {r for roles in members.values() for r in roles}
    need = {
        "a bank": {"bank"},
        "a warehouse": {"warehouse"},
        "a warehouse or a regulator": {"warehouse", "regulator"},
    }
    for what, roles in need.items():
        if not roles & held:
            raise ValueError(
                f"finance policies need {what} among the members "
                f"(roles held: {', '.join(sorted(held)) or 'none'})"
            )
    return {
        "parties.*": _role("bank"),
        "market.*": _role("bank"),
        "receipts.*": ["and", _role("warehouse"), _role("bank")],
        "loans.*": ["and", _role("bank"), ["or", _role("warehouse"), _role("regulator")]],
        "trades.*": [
            "and",
            _role("bank"),
            ["or", _role("warehouse"), _role("regulator"), _role("core_enterprise")],
        ],
        "credit.*": _role("bank"),
        "notes.*": [
            "and",
            _role("bank"),
            ["or", _role("core_enterprise"), _role("warehouse"), _role("regulator")],
        ],
    }


def finance_contracts() -> list[Contract]:
    """A fresh instance of each finance contract, in the order of :data:`FINANCE_CONTRACTS`."""
    from tally.finance.contracts.credit import Credit
    from tally.finance.contracts.loans import Loans
    from tally.finance.contracts.market import Market
    from tally.finance.contracts.notes import Notes
    from tally.finance.contracts.parties import Parties
    from tally.finance.contracts.receipts import Receipts
    from tally.finance.contracts.trades import Trades

    return [Parties(), Market(), Receipts(), Loans(), Trades(), Credit(), Notes()]


__all__ = ["FINANCE_CONTRACTS", "default_policies", "finance_contracts"]

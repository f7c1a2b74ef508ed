"""Graph records from the finance contracts' state, so the graph follows the ledger.

:func:`record_from_state` maps one committed state entry (key and decoded value, as a peer
or the cloud's state reader sees it) to the graph record it means, or ``None`` when the key
is not one the graph follows or the entry is not yet a fact the graph keeps:

=====================  ===========================================================
key                    record
=====================  ===========================================================
``note/<id>`` (§35)    :class:`~tally.graph.records.Note`: issuer, holder, amount,
                       issued, due, trade, state, the confirming bank, the financing
                       bank (``financed.bank``), endorsers
``loan/<id>`` (§31)    :class:`~tally.graph.records.Loan` of kind ``receipt`` once
                       disbursed (states ``applied``, ``approved`` and ``rejected`` give
                       ``None``): principal = ``amount``, outstanding = ``principal``,
                       ``start`` and ``maturity`` (business days) as ms, ``disposing`` as
                       ``defaulted``, the coverage of an open margin call, receipts
``trade/<id>`` (§34)   :class:`~tally.graph.records.Trade`: amount = ``invoiced``, paid,
                       the reconciliation's ``reasons`` as mismatches (the payment date is
                       not on chain: ``due`` and ``paid_t`` take the attestation time)
``rcpt/<no>`` (§27)    :class:`~tally.graph.records.Receipt`: holder, custodian, goods,
                       pledgee and loan (the value is 0: the chain keeps quantities)
=====================  ===========================================================

Feeding every committed write to :meth:`Graph.add <tally.graph.store.Graph.add>` keeps the
graph current: a later version of a key replaces the record. Registrations (persons,
addresses, accounts, industry) and guarantees come from the bank's own files, not the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tally.finance.keys import LOAN, NOTE, RCPT, TRADE
from tally.graph.records import Loan, Note, Receipt, Trade

DAY = 86_400_000
BEIJING = 8 * 3_600_000
LOAN_STATES = {
    "active": "active",
    "margin_call": "margin_call",
    "overdue": "overdue",
    "defaulted": "defaulted",
    "disposing": "defaulted",
    "closed": "closed",
}


def _ms(business_day: Any) -> int:
    """A business day (days since 1970-01-01, Beijing time) as ms at its start."""
    return max(0, int(business_day) * DAY - BEIJING) if business_day is not None else 0


def record_from_state(key: str, value: Mapping[str, Any] | None) -> Any:
    """The graph record of a state entry, or ``None`` (see the module docstring)."""
    if value is None:
        return None
    v = value
    if key.startswith(NOTE):
        financed = v.get("financed") or {}
        return Note(
            v["id"],
            v["issuer"],
            v["holder"],
            int(v["amount"]),
            int(v["issued"]),
            int(v["due"]),
            v["trade"],
            v["state"],
            v.get("confirmed") or "",
            financed.get("bank", ""),
            tuple(v.get("endorsers", ())),
        )
    if key.startswith(LOAN):
        state = LOAN_STATES.get(v["state"])
        if state is None:
            return None
        call = v.get("margin_call") or {}
        coverage = float(call["coverage"]) if "coverage" in call else None
        return Loan(
            v["id"],
            v["bank"],
            v["borrower"],
            "receipt",
            int(v["amount"]),
            int(v["principal"]),
            _ms(v.get("start")),
            _ms(v.get("maturity")),
            state,
            0,
            coverage,
            tuple(v.get("receipts", ())),
        )
    if key.startswith(TRADE):
        t = int(v["t"])
        paid = int(v["paid"])
        return Trade(
            v["id"],
            v["seller"],
            v["buyer"],
            int(v["invoiced"]),
            t,
            t,
            paid,
            t if paid else None,
            tuple(v.get("reasons", ())),
        )
    if key.startswith(RCPT):
        return Receipt(
            v["no"],
            v["holder"],
            v["custodian"],
            v["goods"],
            0,
            int(v["issued"]),
            v.get("pledgee") or "",
            v.get("loan") or "",
        )
    return None


__all__ = ["record_from_state"]

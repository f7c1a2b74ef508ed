"""Builders of small, hand-checked graphs for the graph tests (holds no tests itself).

Times are ms; ``T0`` is 2026-01-01 and ``AS_OF`` a year later, as in the synthetic economy.
"""

from __future__ import annotations

from typing import Any

from tally.graph.records import Firm, Guarantee, Loan, Note, Role, Telemetry, Trade
from tally.graph.store import Graph

DAY = 86_400_000
T0 = 1_767_225_600_000
AS_OF = T0 + 365 * DAY


def firm(
    fid: str,
    kind: str = "sme",
    *,
    persons: tuple[tuple[str, str], ...] = (),
    addresses: tuple[str, ...] = (),
    accounts: tuple[str, ...] = (),
    capital: int = 10**9,
    founded: int = T0 - 3000 * DAY,
    rating: str = "",
    industry: str = "machining",
) -> Firm:
    roles = tuple(Role(p, r, 10_000 if r == "shareholder" else 0) for p, r in persons)
    return Firm(
        fid,
        f"{fid} (simulated)",
        kind,
        industry,
        capital,
        founded,
        rating,
        roles,
        addresses,
        accounts,
    )


def trade(tid: str, seller: str, buyer: str, amount: int = 1000, t: int = T0, **kw: Any) -> Trade:
    return Trade(tid, seller, buyer, amount, t, t + 30 * DAY, **kw)


def loan(lid: str, bank: str, borrower: str, outstanding: int, **kw: Any) -> Loan:
    kw.setdefault("kind", "working")
    return Loan(
        lid,
        bank,
        borrower,
        principal=max(outstanding, 1),
        outstanding=outstanding,
        t=T0,
        due=T0 + 300 * DAY,
        **kw,
    )


def guarantee(
    gid: str,
    guarantor: str,
    debtor: str,
    amount: int = 100,
    *,
    bank: str = "B1",
    loan_id: str = "",
    t: int = T0,
    active: bool = True,
) -> Guarantee:
    return Guarantee(gid, guarantor, debtor, bank, loan_id or f"L-{gid}", amount, t, active)


def note(nid: str, issuer: str, holder: str, amount: int, **kw: Any) -> Note:
    kw.setdefault("state", "live")
    return Note(nid, issuer, holder, amount, T0, AS_OF + 30 * DAY, "T-x", **kw)


def telemetry(
    fid: str,
    electricity: tuple[int, ...],
    inventory: tuple[int, ...] = (),
    devices: int = 4,
    online: int = 4,
    **kw: Any,
) -> Telemetry:
    return Telemetry(
        fid, AS_OF, devices, online, electricity=electricity, inventory=inventory, **kw
    )


def graph(*records: object) -> Graph:
    g = Graph()
    g.add_all(records)
    return g


def rising(start: int = 1000, step: float = 0.03) -> tuple[int, ...]:
    """Twelve monthly values growing by ``step`` a month."""
    return tuple(round(start * (1 + step) ** m) for m in range(12))

"""The knowledge graph of the API tests' SIMULATED world (:mod:`apiworld`): records among its
tenants and a few firms that are no tenant, with an oracle of which banks each firm is a
customer of — stated here by hand, independently of the service's rules.

Per side ``x`` in ``a``/``b`` (symmetric): core ``core-x`` (AAA) buys from ``sup-x`` (tier 1),
which buys from ``gx1`` (tier 2); ``sup-x`` and ``gx1`` guarantee each other's loans at
``bank-x`` (a guarantee circle); ``gx2`` holds a live note of ``core-x`` confirmed by
``bank-x`` and has rising production and steady stock (a financing need); person ``PX``
directs ``sup-x`` and ``gx1``; ``sup-x``'s devices are dark (the brief says so). ``gx3``
trades with ``sup-x`` and banks nowhere (nobody but the regulator reads it).
"""

from __future__ import annotations

from typing import Any

from tally.cloud.graphsvc import GraphService
from tally.graph.records import (
    Account,
    Bank,
    Firm,
    Guarantee,
    Loan,
    Note,
    Person,
    Role,
    Supply,
    Telemetry,
    Trade,
)

T0 = 1_767_225_600_000
DAY = 86_400_000
M = 100_000_000  # 1,000,000 CNY in fen
CUSTOMERS: dict[str, set[str]] = {
    **{f"{f}-{x}": {f"bank-{x}"} for f in ("core", "sup") for x in "ab"},
    **{f"g{x}{n}": {f"bank-{x}"} for x in "ab" for n in (1, 2)},
    "ga3": set(),
    "gb3": set(),
}
"""Graph firm → the banks it is a customer of (account, loan, note or guarantee)."""
FIRMS = sorted(CUSTOMERS)
CORES = ["core-a", "core-b"]
BANKS = ["bank-a", "bank-b"]


def readers(firm: str) -> set[str]:
    """The tenants that may read ``firm``'s graph data: itself, its banks (the regulators
    are added by the caller's oracle)."""
    return {firm} | CUSTOMERS[firm]


def records(x: str) -> list[Any]:
    bank, core, sup, g1, g2, g3 = (f"bank-{x}", f"core-{x}", f"sup-{x}", f"g{x}1", f"g{x}2",
                                   f"g{x}3")  # fmt: skip
    person = f"P{x.upper()}"
    rising = tuple(int(10_000 * 1.03**m) for m in range(12))
    steady = tuple(5 * M for _ in range(12))
    return [
        Bank(bank, f"Simulated {bank}"),
        Person(person, f"Simulated person {x}"),
        Account(f"AC-{core}", bank), Account(f"AC-{sup}", bank), Account(f"AC-{g1}", bank),
        Firm(core, f"Simulated {core}", "core", "machining", 500 * M, T0 - 3650 * DAY, "AAA",
             (), (), (f"AC-{core}",)),
        Firm(sup, f"Simulated {sup}", "sme", "machining", 10 * M, T0 - 2000 * DAY, "",
             (Role(person, "legal_rep"),), (), (f"AC-{sup}",)),
        Firm(g1, f"Simulated {g1}", "sme", "machining", 5 * M, T0 - 1500 * DAY, "",
             (Role(person, "director"),), (), (f"AC-{g1}",)),
        Firm(g2, f"Simulated {g2}", "sme", "machining", 8 * M, T0 - 1800 * DAY),
        Firm(g3, f"Simulated {g3}", "sme", "machining", 3 * M, T0 - 900 * DAY),
        Supply(sup, core, T0 - 400 * DAY), Supply(g1, sup, T0 - 300 * DAY),
        Supply(g2, core, T0 - 200 * DAY),
        Trade(f"GT-{x}1", g3, sup, 2 * M, T0 - 30 * DAY, T0, 2 * M, T0 - DAY),
        Loan(f"GL-{x}1", bank, sup, "working", 6 * M, 5 * M, T0 - 90 * DAY, T0 + 90 * DAY,
             "active", 0),
        Loan(f"GL-{x}2", bank, g1, "working", 4 * M, 4 * M, T0 - 90 * DAY, T0 + 90 * DAY,
             "active", 0),
        Guarantee(f"GG-{x}1", sup, g1, bank, f"GL-{x}2", 3 * M, T0 - 60 * DAY, True),
        Guarantee(f"GG-{x}2", g1, sup, bank, f"GL-{x}1", 3 * M, T0 - DAY // 2, True),
        Note(f"GN-{x}1", core, g2, 2 * M, T0 - 30 * DAY, T0 + 3 * DAY, "", "live", bank),
        Telemetry(g2, T0, 4, 4, None, rising, steady),
        Telemetry(sup, T0, 3, 1, T0 - 2 * DAY, rising, steady),
    ]  # fmt: skip


def graph_service() -> GraphService:
    """The graph of the world (labelled simulated)."""
    svc = GraphService(simulated=True)
    for x in "ab":
        for rec in records(x):
            svc.graph.add(rec)
    return svc

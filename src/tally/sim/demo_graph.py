"""``tally demo``'s knowledge graph: a small synthetic economy around the demo's tenants.

:func:`demo_graph` generates a labelled synthetic economy (:func:`tally.sim.economy.generate`,
scale :data:`SCALE`, seed :data:`SEED`) into ``<data dir>/economy`` and loads it into a
:class:`~tally.cloud.graphsvc.GraphService` with some of its ids renamed to the demo's
tenants, so the console's graph pages show the economy from the demo's logins:

* the economy's bank with the most guarantee circles (then loans) becomes the demo's bank
  (:data:`ORG_BANK`), so its console has circles to show;
* the economy's strong core enterprise with the most tier-1 suppliers (among that bank's
  customers, when any is) becomes the demo's core enterprise (:data:`ORG_CORE`), a tier-1
  supplier of it (the bank's customer if one is) the demo's tier-1 firm (``TIER1``) and a
  tier-2 supplier of that firm the demo's tier-2 firm (``TIER2``).

Every other platform organisation of the demo is registered as it is (its profile's bank:
the demo's bank), and the chain's records join as the projector follows it
(:meth:`GraphService.follow <tally.cloud.graphsvc.GraphService.follow>`). Everything in the
graph is simulated and labelled so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tally.cloud.graphsvc import GraphService
from tally.graph.queries import supplier_tiers
from tally.graph.signals import strong_cores
from tally.sim.economy import generate
from tally.sim.economy_io import write_economy
from tally.sim.orgs import ORG_BANK, ORG_CORE
from tally.sim.receivables_story import TIER1, TIER2

SCALE = 0.01
SEED = 7


def aliases(directory: Path) -> dict[str, str]:
    """Economy id → demo tenant (see the module docstring): the core and its suppliers are
    chosen among the bank's customers when it has such, so the bank reads them."""
    svc = GraphService()
    svc.load_economy(directory)
    g = svc.graph
    out: dict[str, str] = {}
    loans = Counter(loan.bank for loan in g.loans.values())
    circled = Counter(b for c in svc.circles() for b in svc.circle_banks(c))
    counts = circled or loans
    bank = max(sorted(counts), key=lambda b: (counts[b], loans[b])) if counts else ""
    if bank:
        out[bank] = ORG_BANK

    def ours(firm: str) -> bool:
        return bank in svc.banks_of(firm)

    best: tuple[bool, int, str, dict[int, list[str]]] | None = None
    for core in sorted(strong_cores(g)):
        tiers = supplier_tiers(g, core, 2)
        key = (ours(core), len(tiers.get(1, [])), core, tiers)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is not None and best[1]:
        _, _, core, tiers = best
        out[core] = ORG_CORE
        tier1 = sorted(tiers[1], key=lambda f: (not ours(f), f))[0]
        out[tier1] = TIER1
        upstream = sorted({e.src for e in g.in_edges("supplies", tier1)} & set(tiers.get(2, [])))
        if upstream:
            out[sorted(upstream, key=lambda f: (not ours(f), f))[0]] = TIER2
    return out


def demo_graph(
    directory: Path, orgs: dict[str, tuple[str, str]], scale: float = SCALE, seed: int = SEED
) -> tuple[GraphService, dict[str, str]]:
    """Generate the economy into ``directory``, load it renamed, register ``orgs`` (tenant →
    (kind, industry)); the service and the renaming."""
    write_economy(generate(scale, seed), directory)
    names = aliases(directory)
    svc = GraphService(simulated=True)
    svc.load_economy(directory, names)
    for org, (kind, industry) in orgs.items():
        bank = None if kind in ("bank", "regulator", "government") else ORG_BANK
        svc.register(org, kind, f"Simulated {org} (demo)", industry=industry, bank=bank)
    return svc, names


__all__ = ["SCALE", "SEED", "aliases", "demo_graph"]

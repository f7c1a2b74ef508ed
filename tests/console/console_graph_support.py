"""The knowledge graph of the console tests: a small SIMULATED economy (scale 0.01, seed 7)
whose busiest bank is the console world's ``bank-1``, whose largest strong core is
``core-1`` and whose first tier-1 supplier of it is ``sup-1``."""

from __future__ import annotations

from pathlib import Path

from tally.cloud.graphsvc import GraphService
from tally.sim.demo_graph import aliases
from tally.sim.economy import generate
from tally.sim.economy_io import write_economy
from tally.sim.orgs import ORG_BANK, ORG_CORE
from tally.sim.receivables_story import TIER1

AS_TENANT = {ORG_BANK: "bank-1", ORG_CORE: "core-1", TIER1: "sup-1"}


def console_graph(directory: Path) -> GraphService:
    """The economy written to ``directory`` and loaded with the console world's tenants."""
    write_economy(generate(0.01, 7), directory)
    names = {k: AS_TENANT[v] for k, v in aliases(directory).items() if v in AS_TENANT}
    svc = GraphService()
    svc.load_economy(directory, names)
    return svc

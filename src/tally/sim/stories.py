"""The demo's two finance stories, placed on the simulated site: where each one's goods sit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tally.device.sim import Incident, Site
from tally.device.sim.incidents import DEVICE_UNPLUGGED, GOODS_REMOVED_AT_NIGHT
from tally.ledger.consortium import Consortium
from tally.sim.finance_chain import FinanceChain
from tally.sim.finance_purchase import Sealing
from tally.sim.finance_story import FinanceStory
from tally.sim.orgs import ORG_BANK, ORG_BANK_B, ORG_CORE, ORG_LOGISTICS, ORG_WAREHOUSE
from tally.sim.receivables_story import ReceivablesStory


def finance_story(
    consortium: Consortium,
    site: Site,
    incidents: Sequence[Incident],
    clock: Callable[[], int],
    data_dir: Path,
    seed: int,
    sealing: Sealing | None = None,
) -> FinanceStory:
    """The financing story, at the location where the goods go missing at night."""
    theft = next(i for i in incidents if i.kind == GOODS_REMOVED_AT_NIGHT)
    return FinanceStory(
        consortium,
        site,
        theft.param("location") or "",
        clock,
        data_dir,
        bank=ORG_BANK,
        bank_b=ORG_BANK_B,
        warehouse=ORG_WAREHOUSE,
        logistics=ORG_LOGISTICS,
        seed=seed,
        removal_at=theft.at_ms,
        sealing=sealing,
    )


def receivables_story(
    consortium: Consortium,
    chain: FinanceChain,
    site: Site,
    incidents: Sequence[Incident],
    clock: Callable[[], int],
    data_dir: Path,
    sealing: Sealing | None = None,
) -> ReceivablesStory:
    """The receivables story, at a storage bay of its own (not the one goods go missing
    from, not one whose load cell gets unplugged, not the yard)."""
    busy = {i.param("location") for i in incidents if i.kind == GOODS_REMOVED_AT_NIGHT}
    dark = {i.device_id for i in incidents if i.kind == DEVICE_UNPLUGGED}
    bays = sorted(
        loc
        for loc, dev in site.locations.items()
        if loc not in busy and dev not in dark and site.devices[dev].profile == "load_cell"
    )
    return ReceivablesStory(
        consortium,
        site,
        bays[0],
        clock,
        data_dir,
        bank=ORG_BANK,
        core=ORG_CORE,
        warehouse=ORG_WAREHOUSE,
        logistics=ORG_LOGISTICS,
        chain=chain,
        sealing=sealing,
    )

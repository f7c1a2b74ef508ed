"""The demo's consortium ledger: its members and policies, the registrations it records at
start, waiting for the cloud's anchors at the end, and what the report says about it.

The members are the demo's organisations with the same root keys as the trust file, so the
genesis members' keys are exactly the trust anchors a verifier pins. Registrations and
anchors need the endorsement of any two members; a checkpoint is final with four of six
signatures; membership changes need four.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.cloud.anchoring import ConsortiumLink
from tally.cloud.server import CloudService
from tally.crypto import SigningKey
from tally.finance.policies import default_policies as finance_policies
from tally.finance.policies import finance_contracts
from tally.ledger.consortium import Consortium
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Ordering
from tally.sim.accounting import percentile, reading_to_checkpoint_s

CHECKPOINT_QUORUM = 4
"""A strict majority of the demo's six members."""
ORDERING = Ordering("solo", 100, 20)
"""Blocks of up to 100 transactions, cut 20 ms after the first pending one."""


def demo_policies(orgs: Sequence[str]) -> dict[str, str]:
    """Registrations and anchors need any two members; membership changes four (the
    finance contracts' policies are :func:`tally.finance.policies.default_policies`)."""
    every = ", ".join(f"org:{o}" for o in orgs)
    return {
        "anchoring.*": f"2-OF({every})",
        "registry.*": f"2-OF({every})",
        "membership.*": f"4-OF({every})",
    }


@dataclass
class ChainOutcome:
    """What the ledger did in one run."""

    registrations: int = 0
    registrations_refused: list[str] = field(default_factory=list)
    anchors_drained: bool = False


async def create_consortium(
    directory: Path,
    suite: str,
    roles: Mapping[str, str],
    org_keys: Mapping[str, SigningKey],
    clock: Callable[[], int] | None = None,
) -> Consortium:
    """A peer per organisation of ``roles`` (org -> its role, keyed by ``org_keys``), a solo
    orderer, the system contracts and the finance contracts, in ``directory``. ``clock``
    (ms) stamps proposals and blocks: the demo's simulated time, so that release orders and
    the edge's readings share one time line."""
    orgs = sorted(roles)
    return await Consortium.create(
        directory,
        members=[(o, [roles[o]]) for o in orgs],
        policies={
            **demo_policies(orgs),
            **finance_policies({o: [roles[o]] for o in orgs}),
        },
        quorum=CHECKPOINT_QUORUM,
        suite=suite,
        ordering=ORDERING,
        contracts=Registry(*system_contracts(), *finance_contracts()),
        name="tally-demo",
        keys=org_keys,
        clock=clock,
    )


async def register_on_chain(
    link: ConsortiumLink, registrations: Mapping[str, bytes]
) -> ChainOutcome:
    """Record every signed registration (edge, cloud, devices) with the registry contract,
    all at once; the chain then says which keys are genuine."""
    regs = list(registrations.items())
    results = await asyncio.gather(*(link.register(data) for _, data in regs))
    out = ChainOutcome()
    for (subject, _), r in zip(regs, results, strict=True):
        if r.valid:
            out.registrations += 1
        else:
            out.registrations_refused.append(f"{subject}: {r.code} {r.reason}")
    return out


async def drain_anchors(cloud: CloudService, deadline_s: float) -> bool:
    """Wait until every stored batch is anchored or refused on the ledger (False when the
    deadline passes first)."""
    if cloud.anchorer is not None:
        cloud.anchorer.notify()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        counts = await asyncio.to_thread(cloud.storage.anchor_counts)
        if not counts.get("none") and not counts.get("pending"):
            return True
        await asyncio.sleep(0.1)
    return False


def chain_report(
    cloud: CloudService, link: ConsortiumLink, chain: ChainOutcome, sent_at_ms: Mapping[bytes, int]
) -> dict[str, Any]:
    """The report's ledger keys. ``reading_to_checkpoint_*_s``: wall seconds from a reading's
    send to the final checkpoint covering its batch's anchor (nearest-rank percentiles)."""
    counts = cloud.storage.anchor_counts()
    latencies = reading_to_checkpoint_s(cloud.storage, sent_at_ms)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    anchorer = cloud.anchorer
    genesis = link.consortium.genesis
    return {
        "consortium": {
            "members": sorted(genesis.members),
            "checkpoint_quorum": genesis.checkpoint_quorum,
            "chain": genesis.chain.hex(),
            "anchoring_policy": demo_policies(sorted(genesis.members))["anchoring.*"],
            "cloud_org": link.org,
        },
        "registrations_on_chain": chain.registrations,
        "registrations_refused": chain.registrations_refused,
        "batches_stored": sum(counts.values()),
        "batches_anchored": counts.get("anchored", 0),
        "batches_refused": counts.get("refused", 0),
        "anchor_refusals": list(anchorer.stats.refusals[:10]) if anchorer else [],
        "anchor_retries": anchorer.stats.retries if anchorer else 0,
        "anchors_drained": chain.anchors_drained,
        "checkpoints_final": link.checkpoints_final(),
        "reading_to_checkpoint_p50_s": None if p50 is None else round(p50, 3),
        "reading_to_checkpoint_p95_s": None if p95 is None else round(p95, 3),
        "reading_to_checkpoint_n": len(latencies),
    }

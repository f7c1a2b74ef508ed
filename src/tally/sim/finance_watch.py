"""What the bank and the warehouse read from the cloud during the demo's finance story: proven
readings for a receipt's evidence, and the stream of readings and edge events that feeds the
bank's collateral monitor."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tally.cloud.storage.api import ItemQuery, ItemRecord, Storage
from tally.device.envelope import Reading, parse_envelope
from tally.finance.evidence import from_bundle
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_edge import facts_from_envelope, facts_from_signed_event
from tally.finance.monitor_model import Result
from tally.ledger.contracts.keys import batch_key

Anchored = Callable[[str, int], bool]
"""Whether batch ``ctr`` of ``edge`` is anchored on the chain."""


def find_reading(
    storage: Storage,
    device: str,
    after_ms: int,
    anchored: Anchored,
    accept: Callable[[Reading], bool],
) -> ItemRecord | None:
    """The newest stored reading of ``device`` taken at or after ``after_ms`` that
    ``accept`` takes and whose batch is anchored (None if there is none yet)."""
    page = storage.items(ItemQuery(kinds=("reading",), device=device, t_from=after_ms, limit=500))
    for item in reversed(page.items):
        if not anchored(item.edge, item.batch_ctr):
            continue
        _, reading = parse_envelope(item.cose)
        if accept(reading):
            return item
    return None


def chain_has_batch(state_get: Callable[[str], Any]) -> Anchored:
    def anchored(edge: str, ctr: int) -> bool:
        return state_get(batch_key(edge, ctr)) is not None

    return anchored


async def evidence_of(client: httpx.AsyncClient, item: ItemRecord) -> tuple[dict[str, Any], bytes]:
    """The proven-reading evidence of a stored item, and its proof bundle (from the cloud)."""
    resp = await client.get(f"/v1/proofs/items/{item.hash.hex()}")
    resp.raise_for_status()
    return from_bundle(resp.content), resp.content


class MonitorFeed:
    """Feeds every new stored reading and edge event of one site to the bank's monitor."""

    def __init__(self, storage: Storage, site: str, monitor: CollateralMonitor) -> None:
        self.storage = storage
        self.site = site
        self.monitor = monitor
        self.after: tuple[int, int] | None = None
        self.events: dict[bytes, ItemRecord] = {}
        """Edge events fed so far, by hash (the alerts' evidence names them)."""
        self.errors: list[str] = []

    async def poll(self) -> Result:
        """Everything stored since the last poll, in (t, id) order, through the monitor."""
        out = Result()
        while True:
            q = ItemQuery(kinds=("reading", "event"), site=self.site, after=self.after, limit=500)
            page = await asyncio.to_thread(self.storage.items, q)
            for item in page.items:
                self.after = (item.t, item.id)
                out.extend(self._feed(item))
            if len(page.items) < q.limit:
                return out

    def _feed(self, item: ItemRecord) -> Result:
        out = Result()
        try:
            if item.kind == "event":
                self.events[item.hash] = item
                facts: list[Any] = facts_from_signed_event(item.cose)
            else:
                facts = facts_from_envelope(self.site, item.cose)
            for fact in facts:
                out.extend(self.monitor.apply(fact))
        except ValueError as exc:  # a fact the monitor cannot take is noted, not fatal
            self.errors.append(f"{item.kind} {item.hash.hex()[:16]}: {exc}")
        return out

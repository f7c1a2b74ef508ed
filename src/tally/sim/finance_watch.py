"""What the bank and the warehouse read from the cloud during the demo's finance story: proven
readings for a receipt's evidence, and the stream of readings and edge events that feeds the
bank's collateral monitor; and where the monitor's alerts go (:class:`AlertSink`: the cloud's
read model, its live stream and its metrics, through an :class:`AlertFeed`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from tally.cloud.storage.api import ItemQuery, ItemRecord, Storage
from tally.cloud.views.alertfeed import AlertFeed
from tally.device.envelope import Reading, parse_envelope
from tally.finance.evidence import from_bundle
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_edge import facts_from_envelope, facts_from_signed_event
from tally.finance.monitor_model import Result
from tally.ledger.contracts.keys import batch_key

log = logging.getLogger(__name__)

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


LOOKBACK_MS = 30 * 60_000
"""How far back (site time) each poll looks: items reach the cloud out of time order (a
batch from an edge that was cut off, a device with a skewed clock), so the feed re-reads a
window and skips what it has fed before."""


class MonitorFeed:
    """Feeds the new stored readings of the watched devices, and the edge events, of one site
    to the bank's monitor, each once, in time order."""

    def __init__(
        self,
        storage: Storage,
        site: str,
        monitor: CollateralMonitor,
        devices: list[str],
        lookback_ms: int = LOOKBACK_MS,
    ) -> None:
        self.storage = storage
        self.site = site
        self.monitor = monitor
        self.devices = devices
        self.lookback_ms = lookback_ms
        self.fed: dict[bytes, int] = {}
        """Hashes of the items fed so far (with their time, to forget them later)."""
        self.errors: list[str] = []

    def _window(self, t_from: int) -> list[ItemRecord]:
        queries = [ItemQuery(kinds=("event",), site=self.site, t_from=t_from, limit=500)]
        queries += [
            ItemQuery(kinds=("reading",), device=d, t_from=t_from, limit=500) for d in self.devices
        ]
        out: list[ItemRecord] = []
        for q in queries:
            while True:
                page = self.storage.items(q)
                out.extend(page.items)
                if len(page.items) < q.limit:
                    break
                last = page.items[-1]
                q = ItemQuery(q.kinds, q.device, q.site, t_from=t_from, limit=q.limit,
                              after=(last.t, last.id))  # fmt: skip
        return out

    async def poll(self, now: int) -> Result:
        """Everything stored in the window before ``now`` not fed yet, through the monitor."""
        t_from = now - self.lookback_ms
        items = await asyncio.to_thread(self._window, t_from)
        out = Result()
        for item in sorted(items, key=lambda i: (i.t, i.id)):
            if item.hash not in self.fed:
                self.fed[item.hash] = item.t
                out.extend(self._feed(item))
        self.fed = {h: t for h, t in self.fed.items() if t >= t_from}
        return out

    def _feed(self, item: ItemRecord) -> Result:
        out = Result()
        try:
            if item.kind == "event":
                facts: list[Any] = facts_from_signed_event(item.cose)
            else:
                facts = facts_from_envelope(self.site, item.cose)
            for fact in facts:
                out.extend(self.monitor.apply(fact))
        except ValueError as exc:  # a fact the monitor cannot take is noted, not fatal
            self.errors.append(f"{item.kind} {item.hash.hex()[:16]}: {exc}")
        return out


class AlertSink:
    """What the story calls with the monitor's alerts (``FinanceStory.on_alerts``): each is
    stored, counted and published once through ``feed``, owned by ``owner`` (the borrower),
    for ``bank``, at ``site``. An alert the feed refuses is logged and counted in
    :attr:`errors`; the story goes on."""

    def __init__(self, feed: AlertFeed, *, owner: str, bank: str, site: str) -> None:
        self.feed = feed
        self.owner, self.bank, self.site = owner, bank, site
        self.errors: list[str] = []

    def __call__(self, alerts: Sequence[Any]) -> None:
        for a in alerts:
            try:
                self.feed.publish(a, owner=self.owner, bank=self.bank, site=self.site)
            except Exception as exc:
                self.errors.append(f"{a.kind} on {a.loan}: {exc}")
                log.warning("alert %s on %s not stored: %s", a.kind, a.loan, exc)

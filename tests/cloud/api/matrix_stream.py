"""A stand-in for the live event hub in the access matrix: it replays a fixed list of
events (one per row of the world, and the hub's own ``gap``) and ends, so that an in-process
client reads the whole stream. The stream's behaviour with the real
:class:`~tally.cloud.live.EventHub` is tested in ``test_api_stream.py``."""

from __future__ import annotations

import dataclasses
from typing import Any

from tally.cloud.live import GAP, LiveEvent


class ReplaySubscription:
    def __init__(self, events: list[LiveEvent]) -> None:
        self.events = list(events)

    async def next(self, timeout: float | None = None) -> LiveEvent | None:
        return self.events.pop(0) if self.events else None

    @property
    def closed(self) -> bool:
        return not self.events

    def pending(self) -> int:
        return len(self.events)

    def close(self) -> None:
        self.events.clear()


class ReplayHub:
    def __init__(self) -> None:
        self.events: list[LiveEvent] = []
        self.asked: list[int | None] = []
        self.published: list[LiveEvent] = []

    def fill(self, w: Any) -> None:
        """An event about every row of the world (as the projector and the API publish)."""
        views, n = w.views, 0
        rows: list[tuple[str, Any]] = []
        for kind, lister in (("receipt", views.list_receipts), ("loan", views.list_loans),
                             ("note", views.list_notes), ("alert", views.list_alerts),
                             ("application", views.list_applications)):  # fmt: skip
            from tally.cloud.views.model import Scope

            rows += [(kind, r) for r in lister(Scope("any", everything=True), limit=200).items]
        for kind, row in rows:
            n += 1
            data = dataclasses.asdict(row)
            self.events.append(LiveEvent(n, kind, data, views.resource(kind, row)))
        for b in views.list_blocks(200).items:
            n += 1
            self.events.append(LiveEvent(n, "block", {"height": b.height}, None))
        self.events.append(LiveEvent(n, GAP, {"after": 0, "resumes_at": 1}, None))

    def publish(self, kind: str, data: Any, resource: Any) -> LiveEvent:
        """Events published while the matrix runs are kept, not replayed."""
        event = LiveEvent(len(self.published) + 1, kind, dict(data), resource)
        self.published.append(event)
        return event

    def subscribe(self, last_id: int | None = None) -> ReplaySubscription:
        self.asked.append(last_id)
        return ReplaySubscription([e for e in self.events if last_id is None or e.id > last_id])

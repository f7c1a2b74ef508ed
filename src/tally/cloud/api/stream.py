"""``GET /v1/stream``: live events as Server-Sent Events (``text/event-stream``).

Each event of the cloud's :class:`~tally.cloud.live.EventHub` the caller may read is sent
as ``id: <n>``, ``event: <kind>`` and ``data: <JSON>`` lines: ``alert``, ``block``,
``coverage``, ``receipt``, ``loan``, ``note``, ``application``. An event about a row is
shown when :func:`tally.cloud.authz.decide` lets the caller read that row; an event about
the consortium as a whole (a block) when it lets the caller read the consortium's chain
(members and the regulator). The hub's own ``gap`` (events were missed: reload) and
``overflow`` (the client fell behind; the stream ends, reconnect with the last id) go to
everyone. A comment line ``: keep-alive`` comes every :data:`KEEPALIVE_S` seconds of quiet.

Reconnect with ``Last-Event-ID`` (the header browsers send) or ``?last_id=`` to get the
events after it that the hub still holds. The caller is authorised when the stream opens.
Without a hub the endpoint answers 503.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from tally.cloud import authz
from tally.cloud.api.deps import Reader
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import MAX_INT
from tally.cloud.api.routing import JsonRoute
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import BadRequest, CloudError
from tally.cloud.identity import Principal
from tally.cloud.live import GAP, OVERFLOW, LiveEvent
from tally.cloud.views.access import CONSORTIUM

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

KEEPALIVE_S = 15.0
RETRY_MS = 3000
EVENT_STREAM = "text/event-stream"


class EventStream(StreamingResponse):
    media_type = EVENT_STREAM


class LiveUnavailable(CloudError):
    """Raised when the stream is asked for and this cloud publishes no live events."""

    code = "live_unavailable"
    title = "Live events unavailable"
    status = 503


def shown(p: Principal, event: LiveEvent, chain: bool) -> bool:
    """Whether ``p`` sees ``event`` (``chain``: it may read the consortium's chain)."""
    if event.kind in (GAP, OVERFLOW):
        return True
    if event.resource is None:
        return chain
    return authz.decide(p, "read", event.resource).allowed


def frame(event: LiveEvent) -> str:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["stream"])

    @r.get(
        "/v1/stream",
        response_class=EventStream,
        responses={
            200: {"description": "the event stream",
                  "content": {EVENT_STREAM: {"schema": {"type": "string"}}}},
            **problems(400, 401, 503),
        },
    )  # fmt: skip
    def stream(
        who: Reader,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", max_length=20, pattern=r"^[0-9]+$")
        ] = None,
        last_id: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
    ) -> Any:
        """Live events the caller may read (Server-Sent Events)."""
        hub = ctx.hub
        if hub is None:
            raise LiveUnavailable("this cloud publishes no live events")
        if last_event_id is not None and int(last_event_id) > MAX_INT:
            raise BadRequest(f"Last-Event-ID must be at most {MAX_INT}")
        after = last_id if last_id is not None else (
            int(last_event_id) if last_event_id is not None else None
        )  # fmt: skip
        p = who.principal
        chain = authz.decide(p, "read", ResourceRef("chain", CONSORTIUM)).allowed
        sub = hub.subscribe(after)

        async def events() -> AsyncIterator[str]:
            try:
                yield f"retry: {RETRY_MS}\n\n"
                while True:
                    event = await sub.next(KEEPALIVE_S)
                    if event is None:
                        if sub.closed and not sub.pending():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    if shown(p, event, chain):
                        yield frame(event)
            finally:
                sub.close()

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return EventStream(events(), headers=headers)

    return r

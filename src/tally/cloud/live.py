"""Live events: what changed in the read model, pushed to whoever watches (the console's
stream, ``GET /v1/stream``).

An :class:`EventHub` numbers every published :class:`LiveEvent` (ids 1, 2, 3, … per hub, in
publication order), keeps the last ``history`` of them and hands each to every open
:class:`Subscription`. Kinds: ``block`` (a block was projected), ``receipt``, ``loan``,
``note`` (a row of that kind changed), ``coverage`` (a loan's collateral coverage changed),
``alert`` (the monitor raised one), ``application`` (a financing application was made or
decided); the hub itself adds ``overflow`` and ``gap`` (below). ``data`` is a JSON-able map;
``resource`` is the authorisation resource of the row the event is about
(:func:`tally.cloud.views.access.resource_of`), or None when every member may see it (the
hub's own events). Whoever serves the stream filters each event with
``authz.decide(principal, "read", event.resource)``: the hub knows nobody.

Threads: :meth:`EventHub.publish` may be called from any thread (the projector runs in a
worker thread). The event is appended, under the hub's lock, to each subscription's own
buffer, in id order; the subscription's task is then woken with ``call_soon_threadsafe`` on
the event loop the subscription was bound to (the loop that first waited on it). Nothing a
publisher does waits for a subscriber.

Limits: a subscription holds at most ``queue`` events not yet taken. One that falls further
behind is closed: it gets what it holds, then a final ``overflow`` event (``data``:
``{"resume_after": <id of the last event it holds>, "dropped_from": <first id it missed>}``,
``id`` = ``resume_after``), and ends. Its owner subscribes again with
``last_id=resume_after`` and gets the rest from the history, as far as the history reaches
(a replay is held whole, even beyond ``queue``: the next event published then overflows a
subscription that has not taken enough of it).
When the history no longer holds everything after ``last_id`` (or ``last_id`` is from
another hub, greater than any id published here), the subscription starts with a ``gap``
event (``data``: ``{"after": last_id, "resumes_at": <first id replayed, or null>}``) so that
the watcher knows to reload what it shows.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tally.cloud.authz import ResourceRef

KINDS = ("alert", "block", "coverage", "receipt", "loan", "note", "application")
"""What the platform publishes."""
OVERFLOW = "overflow"
GAP = "gap"


@dataclass(frozen=True)
class LiveEvent:
    """One published change: ``id`` (per hub, increasing), ``kind``, JSON-able ``data`` and
    the authz ``resource`` it is about (None: any member may see it)."""

    id: int
    kind: str
    data: dict[str, Any]
    resource: ResourceRef | None


class Subscription:
    """An async iterator of :class:`LiveEvent`; see the module text. Close it with
    :meth:`close` (or use it as an async context manager)."""

    def __init__(self, hub: EventHub, queue: int) -> None:
        self._hub = hub
        self._queue = queue
        self._buffer: deque[LiveEvent] = deque()
        self._closed = False
        """No more events will be added (overflowed, closed, or the hub closed)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self.overflowed = False

    # -- the hub's side (called with the hub's lock held) ------------------------------------

    def _offer(self, event: LiveEvent) -> None:
        if self._closed:
            return
        if len(self._buffer) >= self._queue:
            last = self._buffer[-1].id if self._buffer else event.id - 1
            data = {"resume_after": last, "dropped_from": event.id}
            self._buffer.append(LiveEvent(last, OVERFLOW, data, None))
            self._closed = True
            self.overflowed = True
            self._hub._drop(self)
        else:
            self._buffer.append(event)
        self._notify()

    def _end(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        loop = self._loop
        if loop is None:
            return  # nobody waits yet: the first wait looks at the buffer
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: nobody will ever wait again
            self._closed = True

    # -- the subscriber's side ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once nothing more will come (events still held are delivered first)."""
        return self._closed

    def pending(self) -> int:
        """How many events are held, not yet taken."""
        with self._hub._lock:
            return len(self._buffer)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LiveEvent:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            with self._hub._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._closed:
                    raise StopAsyncIteration
            await self._wake.wait()

    async def next(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event, or None when none comes within ``timeout`` seconds or the
        subscription has ended."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (TimeoutError, StopAsyncIteration):
            return None

    def close(self) -> None:
        """Stop receiving; events still held are dropped."""
        with self._hub._lock:
            self._hub._drop(self)
            self._buffer.clear()
            self._end()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventHub:
    """Numbers, keeps and fans out live events; see the module text.

    ``history``: how many recent events are kept for replay (``subscribe(last_id=…)``);
    ``queue``: how many events a subscription may hold before it is closed with ``overflow``.
    """

    def __init__(self, history: int = 1000, queue: int = 256) -> None:
        if history < 0 or queue < 1:
            raise ValueError(f"history {history} must be >= 0 and queue {queue} >= 1")
        self.history = history
        self.queue = queue
        self._lock = threading.Lock()
        self._events: deque[LiveEvent] = deque(maxlen=history)
        self._last = 0
        self._subs: set[Subscription] = set()
        self._closed = False
        self.published: dict[str, int] = {}
        """Events published so far, by kind."""

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        with self._lock:
            return self._last

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(
        self, kind: str, data: Mapping[str, Any], resource: ResourceRef | None
    ) -> LiveEvent:
        """Number ``data`` as the next event of ``kind``, keep it and hand it to every
        subscription (see the module text); never blocks on a subscriber."""
        if not isinstance(kind, str) or not kind or kind in (OVERFLOW, GAP):
            raise ValueError(f"event kind must be non-empty text other than overflow/gap, "
                             f"got {kind!r}")  # fmt: skip
        if resource is not None and not isinstance(resource, ResourceRef):
            raise TypeError(
                f"resource must be a ResourceRef or None, got {type(resource).__name__}"
            )
        body = dict(data)
        with self._lock:
            self._last += 1
            event = LiveEvent(self._last, kind, body, resource)
            self._events.append(event)
            self.published[kind] = self.published.get(kind, 0) + 1
            for sub in list(self._subs):
                sub._offer(event)
        return event

    def subscribe(self, last_id: int | None = None) -> Subscription:
        """A new subscription: with ``last_id``, the kept events after it come first (and a
        ``gap`` event when some are no longer kept); then every event published from now."""
        sub = Subscription(self, self.queue)
        with self._lock:
            if self._closed:
                sub._end()
                return sub
            if last_id is not None:
                foreign = last_id > self._last  # an id this hub never gave: replay all
                replay = [e for e in self._events if foreign or e.id > last_id]
                oldest = self._events[0].id if self._events else self._last + 1
                if foreign or oldest > last_id + 1:
                    first = replay[0].id if replay else None
                    gap = {"after": last_id, "resumes_at": first}
                    at = first - 1 if first is not None else self._last
                    sub._buffer.append(LiveEvent(at, GAP, gap, None))
                sub._buffer.extend(replay)
            self._subs.add(sub)
        return sub

    def close(self) -> None:
        """End every subscription (after what they hold); later subscriptions end at once."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, set()
            for sub in subs:
                sub._end()

    def _drop(self, sub: Subscription) -> None:
        """Forget ``sub`` (the caller holds the lock)."""
        self._subs.discard(sub)

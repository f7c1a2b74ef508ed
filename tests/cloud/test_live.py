"""The live event hub: numbering, fan-out, replay after a given id, gaps, overflow of a slow
subscriber, publishing from worker threads, closing, and the refusals of bad input."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tally.cloud.authz import ResourceRef
from tally.cloud.live import GAP, OVERFLOW, EventHub, LiveEvent, Subscription

LOAN = ResourceRef("loan", "sme-1", bank="bank")


async def take(sub: Subscription, n: int, timeout: float = 5.0) -> list[LiveEvent]:
    out = []
    for _ in range(n):
        e = await sub.next(timeout)
        assert e is not None, f"only {len(out)} of {n} events came"
        out.append(e)
    return out


async def test_every_subscriber_gets_every_event_in_order_with_its_resource() -> None:
    hub = EventHub()
    a, b = hub.subscribe(), hub.subscribe()
    first = hub.publish("loan", {"id": "LN-1", "coverage": 1.4}, LOAN)
    second = hub.publish("block", {"height": 7}, None)
    assert (first.id, second.id) == (1, 2) and hub.last_id == 2
    for sub in (a, b):
        got = await take(sub, 2)
        assert [(e.id, e.kind, e.resource) for e in got] == [(1, "loan", LOAN), (2, "block", None)]
        assert got[0].data == {"id": "LN-1", "coverage": 1.4}
        assert await sub.next(0.05) is None  # nothing more
    assert hub.published == {"loan": 1, "block": 1}
    a.close()
    assert hub.subscribers() == 1


async def test_published_data_is_copied() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    data = {"height": 1}
    hub.publish("block", data, None)
    data["height"] = 99
    (got,) = await take(sub, 1)
    assert got.data == {"height": 1}


async def test_replay_after_a_last_id_then_live_events() -> None:
    hub = EventHub(history=10)
    for h in range(1, 6):
        hub.publish("block", {"height": h}, None)
    sub = hub.subscribe(last_id=3)
    hub.publish("block", {"height": 6}, None)
    got = await take(sub, 3)
    assert [e.id for e in got] == [4, 5, 6]
    assert all(e.kind == "block" for e in got)
    # up to date: no gap, nothing replayed
    sub2 = hub.subscribe(last_id=6)
    assert await sub2.next(0.05) is None


async def test_a_gap_is_announced_when_the_history_no_longer_reaches() -> None:
    hub = EventHub(history=3)
    for h in range(1, 11):
        hub.publish("block", {"height": h}, None)
    sub = hub.subscribe(last_id=2)
    gap, *rest = await take(sub, 4)
    assert gap.kind == GAP and gap.resource is None
    assert gap.data == {"after": 2, "resumes_at": 8}
    assert gap.id == 7
    assert [e.id for e in rest] == [8, 9, 10]
    # an id this hub never gave (another process's): a gap, then everything kept
    foreign = hub.subscribe(last_id=500)
    gap, *rest = await take(foreign, 4)
    assert gap.kind == GAP and gap.data == {"after": 500, "resumes_at": 8}
    assert [e.id for e in rest] == [8, 9, 10]


async def test_a_slow_subscriber_is_closed_with_overflow_and_can_resume() -> None:
    hub = EventHub(history=100, queue=3)
    slow = hub.subscribe()
    fast = hub.subscribe()
    for h in range(1, 7):
        hub.publish("block", {"height": h}, None)
        assert (await take(fast, 1))[0].id == h  # the fast one keeps up
    assert slow.closed and slow.overflowed
    assert hub.subscribers() == 1  # the slow one is gone; publishing never waited for it
    got = await take(slow, 4)
    assert [e.id for e in got[:3]] == [1, 2, 3]
    over = got[3]
    assert over.kind == OVERFLOW and over.resource is None
    assert over.data == {"resume_after": 3, "dropped_from": 4} and over.id == 3
    assert await slow.next(0.05) is None  # it has ended
    again = hub.subscribe(last_id=over.data["resume_after"])
    assert [e.id for e in await take(again, 3)] == [4, 5, 6]


async def test_events_published_from_worker_threads_all_arrive_in_id_order() -> None:
    hub = EventHub(history=0, queue=10_000)
    sub = hub.subscribe()
    threads = [
        threading.Thread(
            target=lambda n=n: [hub.publish("receipt", {"t": n, "i": i}, None) for i in range(250)]
        )
        for n in range(4)
    ]
    got: list[LiveEvent] = []

    async def consume() -> None:
        while len(got) < 1000:
            e = await sub.next(10.0)
            assert e is not None, f"stalled after {len(got)} events"
            got.append(e)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer waits first: every event must wake it
    for t in threads:
        t.start()
    await asyncio.wait_for(task, 30)
    for t in threads:
        t.join()
    assert [e.id for e in got] == list(range(1, 1001))
    for n in range(4):
        assert [e.data["i"] for e in got if e.data["t"] == n] == list(range(250))


async def test_closing_the_hub_ends_subscriptions_after_what_they_hold() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    hub.publish("alert", {"id": "al-1"}, ResourceRef("alert", "sme-1"))
    hub.close()
    assert [e.kind for e in await take(sub, 1)] == ["alert"]
    assert await sub.next(1.0) is None
    late = hub.subscribe()
    assert late.closed and await late.next(1.0) is None


async def test_a_closed_subscription_gets_nothing_more() -> None:
    hub = EventHub()
    async with hub.subscribe() as sub:
        hub.publish("note", {"id": "N-1"}, None)
    assert sub.closed and sub.pending() == 0
    hub.publish("note", {"id": "N-2"}, None)
    assert await sub.next(0.05) is None
    assert hub.subscribers() == 0


async def test_async_for_ends_when_the_hub_closes() -> None:
    hub = EventHub()
    sub = hub.subscribe()

    async def collect() -> list[int]:
        return [e.id async for e in sub]

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)
    hub.publish("block", {}, None)
    hub.publish("block", {}, None)
    hub.close()
    assert await asyncio.wait_for(task, 5) == [1, 2]


def test_bad_input_is_refused() -> None:
    hub = EventHub()
    for kind in ("", OVERFLOW, GAP, 3):
        with pytest.raises(ValueError, match="event kind must be non-empty text"):
            hub.publish(kind, {}, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="resource must be a ResourceRef or None, got dict"):
        hub.publish("loan", {}, {"kind": "loan"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue 0 >= 1"):
        EventHub(queue=0)
    with pytest.raises(ValueError, match="history -1 must be >= 0"):
        EventHub(history=-1)
    assert hub.last_id == 0

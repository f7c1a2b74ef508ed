"""``GET /v1/stream`` on a real server (a free port): live events as Server-Sent Events,
each shown only to callers the policy lets read its row, the consortium's blocks to its
members, replay after ``Last-Event-ID``, keep-alive comments, and a clear 503 without a hub
(SIMULATED world of :mod:`apiworld`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from apiworld import ApiWorld, Clock, build, problem, username

from tally.cloud.api import stream as stream_module
from tally.cloud.live import EventHub
from tally.cloud.server import CloudServer

DEADLINE_S = 10.0


@dataclass
class Served:
    world: ApiWorld
    hub: EventHub
    url: str

    def token(self, role: str, tenant: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.world.tokens[username(role, tenant)]}"}


@dataclass
class Events:
    """What one open stream has received so far."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, done: Callable[[Events], bool]) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while not done(self):
                self.changed.clear()
                await self.changed.wait()

    def kinds(self) -> list[str]:
        return [f["event"] for f in self.frames]


@pytest.fixture
async def served(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[Served]:
    hub = EventHub()
    world = build(tmp_path, hub=hub, clock=Clock(), settings={"port": free_port()})
    server = CloudServer(world.app, world.app.state.cloud.settings)
    port = await server.start()
    try:
        yield Served(world, hub, f"http://127.0.0.1:{port}")
    finally:
        hub.close()  # every open stream ends
        await server.stop()
        world.close()


@asynccontextmanager
async def watching(s: Served, headers: dict[str, str]) -> AsyncIterator[Events]:
    got = Events()

    async def read(r: httpx.Response) -> None:
        frame: dict[str, Any] = {}
        async for line in r.aiter_lines():
            if line.startswith(":"):
                got.comments.append(line)
            elif line == "" and frame:
                if "event" in frame:  # not the opening "retry:"
                    got.frames.append(frame)
                frame = {}
            elif ": " in line:
                name, value = line.split(": ", 1)
                frame[name] = json.loads(value) if name == "data" else value
            got.changed.set()

    async with (
        httpx.AsyncClient(base_url=s.url) as c,
        c.stream("GET", "/v1/stream", headers=headers) as r,
    ):
        assert r.status_code == 200
        got.headers = dict(r.headers)  # subscribed: the handler ran before answering
        task = asyncio.create_task(read(r))
        try:
            yield got
        finally:
            task.cancel()


async def test_each_watcher_sees_what_it_may_read(served: Served) -> None:
    s = served
    async with (
        watching(s, s.token("viewer", "bank-a")) as bank_a,
        watching(s, s.token("viewer", "bank-b")) as bank_b,
        watching(s, s.token("viewer", "sup-a")) as sup_a,
    ):
        async with httpx.AsyncClient(base_url=s.url) as c:
            body = {"bank": "bank-a", "subject_kind": "receipt", "subject": "R-a1",
                    "amount_fen": 1000}  # fmt: skip
            # R-a1 backs P-a2: withdrawn, it is free to back a new application
            s.world.views.decide_application("P-a2", "withdrawn", "operator@sup-a", 1, None)
            r = await c.post("/v1/applications", json=body, headers=s.token("operator", "sup-a"))
            assert r.status_code == 201, r.text
        s.hub.publish("block", {"height": 3}, None)  # the consortium's: members see it
        await bank_a.until(lambda g: g.kinds() == ["application", "block"])
        await bank_b.until(lambda g: g.kinds() == ["block"])
        await sup_a.until(lambda g: g.kinds() == ["application"])
        assert bank_a.frames[0]["data"]["subject"] == "R-a1"
        assert int(bank_a.frames[1]["id"]) == int(bank_a.frames[0]["id"]) + 1
        assert bank_a.headers["content-type"].startswith("text/event-stream")
        assert bank_a.headers["cache-control"] == "no-store"
        s.hub.publish("block", {"height": 4}, None)
        await bank_b.until(lambda g: len(g.frames) == 2)
        assert sup_a.kinds() == ["application"]  # suppliers are not consortium members


async def test_a_watcher_resumes_after_its_last_event(served: Served) -> None:
    s = served
    first = s.hub.publish("block", {"height": 1}, None)
    s.hub.publish("block", {"height": 2}, None)
    s.hub.publish("block", {"height": 3}, None)
    headers = {**s.token("viewer", "log-a"), "Last-Event-ID": str(first.id)}
    async with watching(s, headers) as got:
        await got.until(lambda g: len(g.frames) == 2)
        assert [f["data"]["height"] for f in got.frames] == [2, 3]
    async with httpx.AsyncClient(base_url=s.url) as c:
        r = await c.get("/v1/stream", headers={**headers, "Last-Event-ID": "x1"})
    problem(r, 400, "bad_request")


async def test_a_quiet_stream_sends_keep_alive_comments(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "KEEPALIVE_S", 0.05)
    async with watching(served, served.token("viewer", "wh-a")) as got:
        await got.until(lambda g: ": keep-alive" in g.comments)
        assert got.frames == []


async def test_without_a_hub_the_stream_is_503(tmp_path: Path) -> None:
    world = build(tmp_path, clock=Clock())
    transport = httpx.ASGITransport(app=world.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
            headers = {"authorization": f"Bearer {world.tokens['viewer@bank-a']}"}
            r = await c.get("/v1/stream", headers=headers)
        problem(r, 503, "live_unavailable", "this cloud publishes no live events")
    finally:
        world.close()

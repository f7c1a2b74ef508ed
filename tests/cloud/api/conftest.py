"""Fixtures of the platform API's tests: the SIMULATED world of :mod:`apiworld` on SQLite
with a clock the test moves, and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from apiworld import Api, Clock, build

from tally.cloud.live import EventHub


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = Clock()
    hub = EventHub()
    world = build(tmp_path, hub=hub, clock=clock)
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as client:
        yield Api(world, hub, clock, client)
    world.close()

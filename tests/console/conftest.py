"""Fixtures of the console tests: the console world (:mod:`console_world`) on SQLite, an
in-process client, and a logged-in client per user."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cloud"))

from cloud_factory import make_world
from console_client import Login, csrf_of
from console_world import PW, ConsoleWorld, make_console_app

from tally.cloud.storage import open_storage

BASE = "https://cloud.test"


@pytest.fixture
def cworld(tmp_path: Path) -> ConsoleWorld:
    storage = open_storage(f"sqlite:///{tmp_path / 'cloud.db'}")
    storage.migrate()
    return make_console_app(make_world(), storage, tmp_path)


@pytest.fixture
async def client(cworld: ConsoleWorld) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cworld.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c
    cworld.storage.close()


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    """Log ``username`` in through the console's form; returns the POST's response."""

    async def do(username: str, password: str = PW, tenant: str = "") -> httpx.Response:
        page = await client.get("/console/login")
        assert page.status_code == 200, page.text
        form = {"username": username, "password": password, "tenant": tenant,
                "csrf": csrf_of(page.text), "next": ""}  # fmt: skip
        return await client.post("/console/login", data=form)

    return do

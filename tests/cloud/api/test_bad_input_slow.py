"""Slow clients against a real server on a free port, through a raw socket: a request
whose body never finishes is cut off after ``body_timeout_s``, one whose header never
finishes is answered 408 after ``header_timeout_s``, and a header over ``max_header_bytes`` is
answered 431 at once (:class:`tally.cloud.server.GuardedH11`). Every wait has a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from cloud_factory import World
from test_bad_input import make_app

from tally.cloud.server import CloudServer
from tally.cloud.storage.api import Storage

TIMEOUT = 1.0
"""``header_timeout_s`` and ``body_timeout_s`` of the server under test."""


@pytest.fixture
async def port(
    world: World, sqlite_storage: Storage, tmp_path: Path, free_port: Callable[[], int]
) -> AsyncIterator[int]:
    """The port of a running cloud server (uvicorn, as :class:`CloudServer` runs it)."""
    cloud = make_app(world, sqlite_storage, tmp_path, port=free_port(),
                     body_timeout_s=TIMEOUT, header_timeout_s=TIMEOUT)  # fmt: skip
    server = CloudServer(cloud.app, cloud.app.state.cloud.settings)
    bound = await server.start()
    try:
        yield bound
    finally:
        await server.stop()


async def _until_closed(reader: asyncio.StreamReader, deadline_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    loop = asyncio.get_running_loop()
    start, end = loop.time(), loop.time() + deadline_s
    data = b""
    while True:
        left = end - loop.time()
        assert left > 0, f"the server kept the connection open for {deadline_s} s: {data!r}"
        chunk = await asyncio.wait_for(reader.read(65536), left)
        if not chunk:
            return data, loop.time() - start
        data += chunk


async def _raw(port: int, sent: bytes, deadline_s: float) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        return await _until_closed(reader, deadline_s)
    finally:
        writer.close()


def _problem(data: bytes, status: int, title: str, code: str, detail: str) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), data
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b"connection: close" in head.lower(), head
    got = json.loads(body)
    want = {"type": f"urn:tally:problem:{code}", "title": title, "status": status,
            "detail": detail}  # fmt: skip
    assert got == want, got


async def test_a_body_that_never_finishes_is_cut_off(port: int) -> None:
    head = (b"POST /v1/session HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: 100\r\n\r\n")  # fmt: skip
    data, took = await _raw(port, head + b'{"username": "op@sme', TIMEOUT + 10)
    assert data == b""  # the handler was still reading the body: closed, nothing to answer
    assert TIMEOUT * 0.9 <= took < TIMEOUT + 5, took
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        assert (await c.get("/v1/ping")).status_code == 200  # the server serves on


async def test_a_header_that_never_finishes_is_408(port: int) -> None:
    data, took = await _raw(port, b"GET /v1/ping HTTP/1.1\r\nhost: 127.", TIMEOUT + 10)
    detail = f"the request header did not arrive within {TIMEOUT:g} s"
    _problem(data, 408, "Request Timeout", "request_timeout", detail)
    assert TIMEOUT * 0.9 <= took < TIMEOUT + 5, took


async def test_a_header_too_large_is_431(port: int) -> None:
    big = b"GET /v1/ping HTTP/1.1\r\nhost: 127.0.0.1\r\nx-pad: " + b"a" * (20 << 10)
    data, took = await _raw(port, big + b"\r\n\r\n", TIMEOUT + 10)
    detail = f"the request header is larger than {16 << 10} bytes"
    _problem(data, 431, "Request Header Fields Too Large", "header_too_large", detail)
    assert took < TIMEOUT  # refused at once, not by the timer

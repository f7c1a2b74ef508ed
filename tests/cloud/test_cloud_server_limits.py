"""The cloud's HTTP listener refuses slow and oversized requests cleanly, on a real uvicorn
server over raw TCP: a header that never finishes (408 and closed within ``header_timeout_s``,
also when it trickles in), a connection that sends nothing, a header larger than
``max_header_bytes`` (431), a body that stalls (closed after ``body_timeout_s``), an idle
kept-alive connection (closed after ``keep_alive_s``) and more connections than
``max_connections`` (503)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cloud_factory import World

from tally.cloud.config import CloudSettings
from tally.cloud.server import CloudService, build_service

HEALTH = b"GET /v1/health HTTP/1.1\r\nHost: cloud\r\n"


@asynccontextmanager
async def serving(world: World, tmp: Path, **kw: object) -> AsyncIterator[CloudService]:
    settings: CloudSettings = world.settings(str(tmp), **kw)
    service = build_service(settings, world.identity, world.trust)
    await service.server.start()
    try:
        yield service
    finally:
        await service.stop()


async def connect(service: CloudService) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", service.server.port)


async def read_all(reader: asyncio.StreamReader, deadline_s: float) -> bytes:
    """Everything until the server closes the connection (fails after ``deadline_s``)."""
    out = b""
    async with asyncio.timeout(deadline_s):
        while chunk := await reader.read(65536):
            out += chunk
    return out


def problem(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b"connection: close" in head.lower(), head
    return status, json.loads(body)


async def test_a_header_that_never_finishes_is_answered_408_and_closed(
    world: World, tmp_path: Path
) -> None:
    async with serving(world, tmp_path, header_timeout_s=0.5) as service:
        reader, writer = await connect(service)
        t0 = time.monotonic()
        writer.write(HEALTH)  # no blank line: the header never ends
        await writer.drain()
        raw = await read_all(reader, 5)
        took = time.monotonic() - t0
        writer.close()
        status, body = problem(raw)
        assert status == 408 and body["type"] == "urn:tally:problem:request_timeout"
        assert body["detail"] == "the request header did not arrive within 0.5 s"
        assert 0.4 <= took < 3, took


async def test_a_trickling_header_gets_no_more_time(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, header_timeout_s=0.6) as service:
        reader, writer = await connect(service)
        t0 = time.monotonic()
        closed_at = None
        for byte in HEALTH + b"X-Pad: " + b"a" * 100:  # a byte every 50 ms: 7 s worth
            writer.write(bytes([byte]))
            try:
                got = await asyncio.wait_for(reader.read(65536), 0.05)
            except TimeoutError:
                continue
            closed_at = time.monotonic() - t0
            assert got.startswith(b"HTTP/1.1 408 ")
            break
        writer.close()
        assert closed_at is not None and closed_at < 2.5, closed_at


async def test_a_connection_that_sends_nothing_is_closed(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, header_timeout_s=0.5) as service:
        reader, writer = await connect(service)
        raw = await read_all(reader, 5)
        writer.close()
        assert problem(raw)[0] == 408


async def test_an_oversized_header_is_answered_431(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, max_header_bytes=4096) as service:
        reader, writer = await connect(service)
        writer.write(HEALTH + b"X-Pad: " + b"a" * 8000 + b"\r\n\r\n")
        await writer.drain()
        raw = await read_all(reader, 5)
        writer.close()
        status, body = problem(raw)
        assert status == 431 and body["type"] == "urn:tally:problem:header_too_large"
        assert body["detail"] == "the request header is larger than 4096 bytes"
        # also when it never ends: the limit is not a wait for more
        reader, writer = await connect(service)
        writer.write(HEALTH + b"X-Pad: " + b"a" * 8000)
        raw = await read_all(reader, 5)
        writer.close()
        assert problem(raw)[0] == 431
        # a small header with a large body in the same packet is not a large header
        reader, writer = await connect(service)
        head = b"POST /v1/batches HTTP/1.1\r\nHost: cloud\r\nContent-Type: text/plain\r\n"
        writer.write(head + b"Content-Length: 20000\r\nConnection: close\r\n\r\n" + b"x" * 20000)
        raw = await read_all(reader, 5)
        writer.close()
        assert problem(raw)[0] == 415  # the app's answer: it got the whole request
        # a header within the limit is served
        reader, writer = await connect(service)
        writer.write(HEALTH + b"X-Pad: " + b"a" * 3000 + b"\r\nConnection: close\r\n\r\n")
        raw = await read_all(reader, 5)
        writer.close()
        assert raw.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in raw


async def test_a_stalled_body_is_cut_off(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, body_timeout_s=0.5) as service:
        reader, writer = await connect(service)
        t0 = time.monotonic()
        writer.write(
            b"POST /v1/batches HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/cbor\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x00" * 10
        )
        await writer.drain()
        raw = await read_all(reader, 5)
        took = time.monotonic() - t0
        writer.close()
        assert b"200 OK" not in raw
        assert 0.4 <= took < 3, took


async def test_an_idle_kept_alive_connection_is_closed(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, keep_alive_s=1) as service:
        reader, writer = await connect(service)
        writer.write(HEALTH + b"\r\n")
        t0 = time.monotonic()
        raw = await read_all(reader, 5)  # the answer, then the close after the keep-alive
        writer.close()
        assert raw.startswith(b"HTTP/1.1 200 ") and 0.8 <= time.monotonic() - t0 < 3.5


async def test_connections_beyond_the_limit_get_503(world: World, tmp_path: Path) -> None:
    async with serving(world, tmp_path, max_connections=2, header_timeout_s=30) as service:
        idle = [await connect(service) for _ in range(2)]

        async def health() -> bytes:
            reader, writer = await connect(service)
            writer.write(HEALTH + b"Connection: close\r\n\r\n")
            try:
                return await read_all(reader, 5)
            finally:
                writer.close()

        assert (await health()).startswith(b"HTTP/1.1 503 ")
        for _, w in idle:
            w.close()
        await wait_for(lambda: len(service.server._server.server_state.connections) == 0)
        assert (await health()).startswith(b"HTTP/1.1 200 ")


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_header_bytes", 100), ("header_timeout_s", 0), ("keep_alive_s", 0),
     ("max_connections", 0), ("body_timeout_s", -1)],
)  # fmt: skip
def test_limits_out_of_range_are_refused(world: World, key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        world.settings(**{key: value})

"""The uplink against a real HTTP(S) server that checks each upload and signs receipts, with a
TCP proxy in between that can cut the link or swallow the answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from test_edge_helpers import CLOUD, EDGE, T0, Clock, World, make_pipeline, make_world, temp

from tally.crypto import parse_sign1
from tally.edge import formats as EF
from tally.edge.batcher import Batcher
from tally.edge.outbox import Outbox
from tally.edge.uplink import Uplink
from tally.merkle import Hasher, root


@dataclass
class Cloud:
    """Stores uploads once per (edge, ctr); answers with a signed receipt."""

    world: World
    refuse_ctrs: set[int] = field(default_factory=set)
    stored: dict[int, list[bytes]] = field(default_factory=dict)
    requests: int = 0
    dups: int = 0

    async def batches(self, request: Request) -> Response:
        self.requests += 1
        assert request.headers["content-type"] == "application/cbor"
        header, items = EF.decode_upload(await request.body())
        msg = parse_sign1(header, content_type="application/tally.batch+cbor")
        msg.verify(self.world.edge_key.public)
        h = EF.decode_batch_header(msg.payload)
        hasher = Hasher.for_name("sha256")
        if h.root != root(hasher, [hasher.hash_leaf(i) for i in items]) or h.n != len(items):
            return _problem(422, "root mismatch")
        if h.ctr in self.refuse_ctrs:
            return _problem(403, "edge not enrolled")
        dup = h.ctr in self.stored
        if dup:
            self.dups += 1
        else:
            self.stored[h.ctr] = items
        k = self.world.cloud_key
        rc = EF.Receipt(CLOUD, h.edge, h.ctr, k.suite.hash(header), len(items), T0, dup)
        body = EF.sign_object(k, "application/tally.receipt+cbor", CLOUD, rc.to_cbor())
        return Response(body, media_type="application/cose")


def _problem(status: int, title: str) -> Response:
    body = json.dumps({"type": "about:blank", "title": title, "status": status})
    return Response(body, status_code=status, media_type="application/problem+json")


def _free_socket() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@dataclass
class Server:
    port: int
    cloud: Cloud


def _serve(cloud: Cloud, **ssl: Any) -> Iterator[Server]:
    app = Starlette(routes=[Route("/v1/batches", cloud.batches, methods=["POST"])])
    sock = _free_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **ssl)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: server.started)
        yield Server(sock.getsockname()[1], cloud)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


async def _until(cond: Callable[[], bool], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Proxy:
    """A TCP forwarder: ``ok`` forwards, ``cut`` drops every connection at once,
    ``swallow`` forwards requests but never returns the answers."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.mode = "ok"
        self.swallowed = 0
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        self.mode = "cut"
        for w in list(self._conns):
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        swallow = self.mode == "swallow"
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._conns.update((writer, uw))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, drop: bool) -> None:
            try:
                while data := await r.read(65536):
                    if drop:
                        self.swallowed += 1
                        break
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, uw, False), pipe(ur, writer, swallow))
        self._conns.difference_update((writer, uw))

    async def close(self) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
def cloud_server() -> Iterator[Server]:
    yield from _serve(Cloud(make_world()))


def _uplink(w: World, ob: Outbox, reg: Any, url: str, clock: Clock, **kw: Any) -> Uplink:
    return Uplink(
        ob, reg, EDGE, w.edge_key.suite, url, clock=clock, backoff_ms=10, backoff_cap_ms=100, **kw
    )


@pytest.fixture
async def proxy(cloud_server: Server) -> AsyncIterator[tuple[Proxy, int]]:
    p = Proxy(cloud_server.port)
    port = await p.start()
    yield p, port
    await p.close()


async def _running(up: Uplink) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(up.run(stop))


async def _stop(stop: asyncio.Event, task: Awaitable[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_link_cut_and_restored_everything_arrives_exactly_once(
    tmp_path: Path, cloud_server: Server, proxy: tuple[Proxy, int]
) -> None:
    w = cloud_server.cloud.world
    prx, port = proxy
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    batcher = Batcher(ob, w.signer(), max_items=10)
    dev = w.device("dev-1")
    sent: list[bytes] = []

    def produce(n: int) -> None:
        envs = [dev.next(T0, temp("3")) for _ in range(n)]
        sent.extend(envs)
        p.ingest_many(envs)
        batcher.seal(clock.now)

    prx.cut()
    produce(25)
    up = _uplink(w, ob, p.registry, f"http://127.0.0.1:{port}", clock)
    stop, task = await _running(up)
    await _until(lambda: up.failures >= 3)
    assert len(ob.batches()) == 3 and cloud_server.cloud.requests == 0
    # the link comes back, but the answers are lost: the cloud stores, the edge keeps
    prx.mode = "swallow"
    await _until(lambda: prx.swallowed >= 1 and cloud_server.cloud.requests >= 1)
    assert len(ob.batches()) == 3
    produce(12)
    prx.mode = "ok"
    up.wake()
    await _until(lambda: ob.depth()["items"] == 0)
    await _stop(stop, task)
    stored = [
        i for ctr in sorted(cloud_server.cloud.stored) for i in cloud_server.cloud.stored[ctr]
    ]
    readings = [i for i in stored if parse_sign1(i).content_type.endswith("reading+cbor")]
    assert readings == sent  # each exactly once, in order
    assert cloud_server.cloud.dups >= 1  # a retried batch was receipted as a duplicate
    assert sorted(cloud_server.cloud.stored) == list(range(5))
    assert ob.counters()["batches_acked"] == 5
    assert ob.receipt(4) is not None


async def test_refused_batch_is_kept_and_not_retried_hot(
    tmp_path: Path, cloud_server: Server
) -> None:
    w = cloud_server.cloud.world
    cloud_server.cloud.refuse_ctrs = {0}
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    batcher = Batcher(ob, w.signer())
    dev = w.device("dev-1")
    p.ingest(dev.next(T0))
    batcher.seal(clock.now)
    p.ingest(dev.next(T0))
    batcher.seal(clock.now)
    up = _uplink(w, ob, p.registry, f"http://127.0.0.1:{cloud_server.port}", clock)
    stop, task = await _running(up)
    await _until(lambda: ob.counters().get("batches_acked") == 1)
    for _ in range(3):
        up.wake()
        await asyncio.sleep(0)
    await _until(lambda: cloud_server.cloud.requests >= 2)
    await _stop(stop, task)
    (b,) = ob.batches()
    assert (b.ctr, b.state, b.attempts) == (0, "refused", 1)
    assert b.reason == "HTTP 403: edge not enrolled"
    assert ob.next_batch(clock.now) is None  # not due before refused_retry_ms
    assert ob.next_batch(clock.now + 300_000) is not None


def _make_tls(d: Path) -> tuple[Path, Path, Path]:
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test ca"))
        .issuer_name(name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = d / "ca.pem", d / "server.pem", d / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


async def test_https_with_a_ca_file(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = _make_tls(tmp_path)
    w = make_world()
    gen = _serve(Cloud(w), ssl_certfile=str(cert_file), ssl_keyfile=str(key_file))
    server = next(gen)
    try:
        clock = Clock()
        p, ob = make_pipeline(w, tmp_path / "o.db", clock)
        p.ingest(w.device("dev-2").next(T0))
        Batcher(ob, w.signer()).seal(clock.now)
        url = f"https://127.0.0.1:{server.port}"
        # without the CA the server is not trusted: nothing is deleted
        untrusted = _uplink(w, ob, p.registry, url, clock)
        stop, task = await _running(untrusted)
        await _until(lambda: untrusted.failures >= 1)
        await _stop(stop, task)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.last_error
        assert ob.depth()["batches"] == 1
        up = _uplink(w, ob, p.registry, url, clock, ca_file=ca_file)
        stop, task = await _running(up)
        await _until(lambda: ob.depth()["batches"] == 0)
        await _stop(stop, task)
        assert list(server.cloud.stored) == [0]
    finally:
        next(gen, None)

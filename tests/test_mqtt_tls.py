"""MQTT over TLS, with client certificates, on two real brokers: the embedded amqtt broker
listening with :class:`tally.mqtt.BrokerTls`, and a Mosquitto started for the test on a free
port with a TLS listener and ``require_certificate true`` (its configuration written to the
test's directory; stopped at the end). The edge's subscriber presenting its certificate
receives what a device presenting its own publishes; a client without a certificate, with
another CA's, or without TLS gets nothing.

Certificates come from a CA made for the test. Without the ``mosquitto`` binary the Mosquitto
tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from amqtt.broker import Broker

from services import service_unavailable
from tally.crypto import SigningKey
from tally.crypto.tlsconf import LocalPki, X509Error, make_local_pki
from tally.device.broker import EmbeddedBroker, OpenAccessAuthPlugin, _drop_connections
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.publish import uplink_topic
from tally.edge.adapters import MqttSubscriber
from tally.mqtt import BrokerTls, broker_class, broker_listener, tls_context

DEADLINE = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_local_pki(tmp_path / "tls", "site CA", servers=["broker"],
                          clients=["edge", "device"], valid_days=2)  # fmt: skip


@pytest.fixture
def stranger(tmp_path: Path) -> LocalPki:
    return make_local_pki(tmp_path / "other", "someone else's CA", clients=["device"])


def client_ctx(pki: LocalPki, who: str | None, ca: LocalPki | None = None) -> ssl.SSLContext:
    """Trusts ``ca`` (default: ``pki``), presents ``pki``'s client ``who`` (none: no cert)."""
    files = (None, None) if who is None else pki.pair(pki.clients[who])
    ctx = tls_context((ca or pki).ca_file, *files)
    assert ctx is not None
    return ctx


def envelope(n: int = 0) -> bytes:
    signer = DeviceSigner("dev-1", SigningKey.generate("intl"), fw=b"\x01" * 32)
    return signer.next(1_700_000_000_000 + n, (Measurement("weight", Decimal("1.5"), "t"),))


async def until(cond: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not cond():
            await asyncio.sleep(0.01)
    assert cond(), what


async def round_trip(port: int, pki: LocalPki, version: str) -> None:
    """The edge's subscriber (with its certificate) receives a device's envelope."""
    site = f"t{uuid.uuid4().hex[:8]}"
    got: list[tuple[bytes, str]] = []
    edge, edge_key = pki.pair(pki.clients["edge"])
    sub = MqttSubscriber("127.0.0.1", port, f"gw-{site}", lambda d, s: got.append((d, s)),
                         site=site, version=version, tls_ca=str(pki.ca_file),
                         tls_cert=str(edge), tls_key=str(edge_key))  # fmt: skip
    assert sub.target == f"mqtts://127.0.0.1:{port}"
    env = envelope()
    async with sub:
        await sub.wait_ready(DEADLINE)
        v = aiomqtt.ProtocolVersion.V5 if version == "5" else aiomqtt.ProtocolVersion.V311
        async with aiomqtt.Client("127.0.0.1", port, protocol=v,
                                  tls_context=client_ctx(pki, "device")) as device:  # fmt: skip
            await device.publish(uplink_topic(site, "dev-1"), env, qos=1)
        await until(lambda: len(got) == 1, "the envelope arrived")
    assert got == [(env, f"mqtt:{uplink_topic(site, 'dev-1')}")]


async def refused(port: int, tls: ssl.SSLContext | None) -> None:
    """The broker lets the client publish nothing (it resets the connection; the client
    then waits out its CONNACK timeout, 2 s)."""
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, tls_context=tls, timeout=2) as c:
                await c.publish("tally/x/dev-1/up", b"\xd2", qos=1)


# -- the embedded broker ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def amqtt_broker(
    pki: LocalPki, port: int, broker_type: type[Any] | None = None
) -> AsyncIterator[int]:
    """An amqtt broker on ``port`` with a TLS listener whose client CA is ``pki``'s, of
    :func:`tally.mqtt.broker_class` unless ``broker_type`` says otherwise."""
    cert, key = pki.pair(pki.servers["broker"])
    listener = broker_listener("127.0.0.1", port, BrokerTls(cert, key, pki.ca_file))
    plugin = f"{OpenAccessAuthPlugin.__module__}.{OpenAccessAuthPlugin.__name__}"
    broker = (broker_type or broker_class())(
        {"listeners": {"default": listener}, "plugins": {plugin: {}}}
    )
    await broker.start()
    try:
        yield port
    finally:
        await _drop_connections(broker)
        await broker.shutdown()


@pytest.fixture
async def amqtt_tls(pki: LocalPki, free_port: Callable[[], int]) -> AsyncIterator[int]:
    """tally's :class:`~tally.device.broker.EmbeddedBroker` with a mutual-TLS listener."""
    cert, key = pki.pair(pki.servers["broker"])
    async with EmbeddedBroker(port=free_port(), tls=BrokerTls(cert, key, pki.ca_file)) as b:
        yield b.port


async def test_the_embedded_broker_over_mutual_tls(
    amqtt_tls: int, pki: LocalPki, stranger: LocalPki
) -> None:
    await round_trip(amqtt_tls, pki, "3.1.1")
    await refused(amqtt_tls, client_ctx(pki, None))  # amqtt alone would let it in
    await refused(amqtt_tls, client_ctx(stranger, "device", ca=pki))
    await refused(amqtt_tls, None)  # plain MQTT


async def test_amqtt_alone_lets_a_client_without_certificate_in(
    pki: LocalPki, free_port: Callable[[], int]
) -> None:
    """Why :func:`tally.mqtt.broker_class` exists: amqtt's own TLS listener only asks."""
    async with amqtt_broker(pki, free_port(), Broker) as port, asyncio.timeout(DEADLINE):
        tls = client_ctx(pki, None)
        async with aiomqtt.Client("127.0.0.1", port, tls_context=tls, timeout=2) as c:
            await c.publish("tally/x/dev-1/up", b"\xd2", qos=1)  # got in


def test_the_broker_listener_settings(pki: LocalPki) -> None:
    assert broker_listener("127.0.0.1", 1) == {"type": "tcp", "bind": "127.0.0.1:1"}
    cert, key = pki.pair(pki.servers["broker"])
    got: dict[str, Any] = broker_listener("::1", 8883, BrokerTls(cert, key))
    assert got["ssl"] is True and "cafile" not in got and got["certfile"] == str(cert)
    client, client_key = pki.pair(pki.clients["edge"])
    with pytest.raises(X509Error, match=r"edge\.pem \('edge'\) is a client certificate"):
        broker_listener("127.0.0.1", 8883, BrokerTls(client, client_key))
    assert tls_context(None) is None and tls_context("") is None
    with pytest.raises(X509Error, match="needs both its certificate file and its key file"):
        tls_context(str(pki.ca_file), str(client))


# -- Mosquitto --------------------------------------------------------------------------


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        service_unavailable("mosquitto", "no mosquitto binary on PATH or in /usr/sbin")
    assert found is not None
    return found


@pytest.fixture
def mosquitto_tls(tmp_path: Path, pki: LocalPki, free_port: Callable[[], int]) -> Iterator[int]:
    """A Mosquitto with one TLS listener requiring client certificates, on a free port."""
    binary = mosquitto_binary()
    port = free_port()
    cert, key = pki.pair(pki.servers["broker"])
    log = tmp_path / "mosquitto.log"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"
        "per_listener_settings false\nallow_anonymous true\npersistence false\n"
        f"log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\n"
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki.ca_file}\ncertfile {cert}\nkeyfile {key}\n"
        "require_certificate true\ntls_version tlsv1.2\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_listening(proc, port, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        if proc.poll() is not None:
            text = log.read_text() if log.exists() else ""
            pytest.fail(f"mosquitto exited with {proc.returncode}: {text[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"mosquitto not listening on {port} within {DEADLINE} s")
            time.sleep(0.02)


@pytest.mark.mosquitto
@pytest.mark.parametrize("version", ["3.1.1", "5"])
async def test_mosquitto_requiring_certificates(
    mosquitto_tls: int, pki: LocalPki, stranger: LocalPki, version: str
) -> None:
    await round_trip(mosquitto_tls, pki, version)
    await refused(mosquitto_tls, client_ctx(pki, None))
    await refused(mosquitto_tls, client_ctx(stranger, "device", ca=pki))
    await refused(mosquitto_tls, None)

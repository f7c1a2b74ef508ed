"""MQTT round trips: device publisher -> broker -> edge subscriber, on real brokers.

Mosquitto (127.0.0.1:1883, MQTT 3.1.1 and 5) and the embedded amqtt broker (3.1.1). Every
run uses its own site id, so parallel runs on the shared Mosquitto never mix.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import aiomqtt
import pytest
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY

from tally.crypto import SigningKey
from tally.device.broker import EmbeddedBroker
from tally.device.envelope import DeviceSigner, Measurement, parse_envelope
from tally.device.publish import MqttPublisher, uplink_topic
from tally.edge.adapters import MqttSubscriber

MOSQUITTO = ("127.0.0.1", 1883)


def mosquitto_or_skip() -> None:
    try:
        with socket.create_connection(MOSQUITTO, timeout=1):
            return
    except OSError as exc:
        msg = f"Mosquitto not reachable at {MOSQUITTO[0]}:{MOSQUITTO[1]}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.01)


def envelopes(dev: str, n: int) -> list[bytes]:
    signer = DeviceSigner(dev, SigningKey.generate("intl"), fw=b"\x01" * 32)
    return [
        signer.next(
            1_700_000_000_000 + i * 1000,
            (Measurement("temperature", Decimal("21.50") + i, "Cel"),),
            (("sim", "1"),),
        )
        for i in range(n)
    ]


class Inbox:
    """The gateway's entry point stand-in: records what it is given."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, str]] = []

    def __call__(self, data: bytes, source: str) -> None:
        self.items.append((data, source))

    @property
    def payloads(self) -> list[bytes]:
        return [d for d, _ in self.items]


async def purge_session(port: int, client_id: str, version: str) -> None:
    """Remove a persistent session from the broker (clean connect, then disconnect)."""
    v5 = version == "5"
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_session=None if v5 else True,
        clean_start=True if v5 else MQTT_CLEAN_START_FIRST_ONLY,
    ):
        pass


@pytest.fixture
def site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.mark.mosquitto
@pytest.mark.parametrize("version", ["3.1.1", "5"])
async def test_round_trip_through_mosquitto(site: str, version: str) -> None:
    mosquitto_or_skip()
    inbox = Inbox()
    gw = f"gw-{site}-{version}"
    sub = MqttSubscriber(*MOSQUITTO, gw, inbox, site=site, version=version, session_expiry_s=60)
    try:
        async with sub:
            await sub.wait_ready(5)
            envs = {f"dev-{k}": envelopes(f"dev-{k}", 5) for k in range(3)}
            async with MqttPublisher(*MOSQUITTO, version=version, client_id="") as pub:
                for dev, items in envs.items():
                    for env in items:
                        await pub.publish(site, dev, env)
            await wait_until(lambda: len(inbox.items) == 15, what="15 envelopes")
            for dev, items in envs.items():
                got = [d for d, s in inbox.items if s == f"mqtt:{uplink_topic(site, dev)}"]
                assert got == items  # per-device order kept, bytes unchanged
            _, reading = parse_envelope(inbox.payloads[0])
            assert reading.dev == "dev-0" and reading.ctr == 0
            assert sub.stats.refused == 0 and sub.stats.delivered == 15
    finally:
        await purge_session(MOSQUITTO[1], gw, version)


@pytest.mark.mosquitto
@pytest.mark.parametrize("version", ["3.1.1", "5"])
async def test_persistent_session_on_mosquitto_keeps_messages_sent_while_away(
    site: str, version: str
) -> None:
    mosquitto_or_skip()
    inbox = Inbox()
    gw = f"gw-{site}-{version}"
    try:
        async with MqttSubscriber(
            *MOSQUITTO, gw, inbox, site=site, version=version, session_expiry_s=60
        ) as sub:
            await sub.wait_ready(5)
        envs = envelopes("dev-away", 7)
        async with MqttPublisher(*MOSQUITTO, version=version) as pub:
            for env in envs:
                await pub.publish(site, "dev-away", env)
        assert inbox.items == []
        async with MqttSubscriber(
            *MOSQUITTO, gw, inbox, site=site, version=version, session_expiry_s=60
        ) as sub:
            await wait_until(lambda: len(inbox.items) >= 7, what="queued envelopes")
            await sub.wait_ready(5)
            await asyncio.sleep(0)  # let any duplicate already on the socket arrive
        assert inbox.payloads == envs
    finally:
        await purge_session(MOSQUITTO[1], gw, version)


@pytest.mark.mosquitto
async def test_bulk_publish_many_devices_over_one_connection(site: str) -> None:
    mosquitto_or_skip()
    inbox = Inbox()
    gw = f"gw-{site}-bulk"
    n_dev, per_dev = 200, 2
    items = [
        (site, f"d{k:04d}", env) for k in range(n_dev) for env in envelopes(f"d{k:04d}", per_dev)
    ]
    try:
        async with MqttSubscriber(*MOSQUITTO, gw, inbox, site=site, version="5") as sub:
            await sub.wait_ready(5)
            async with MqttPublisher(*MOSQUITTO, version="5") as pub:
                done = await pub.publish_many(items, window=64)
                assert done == len(items) and pub.connects == 1
            await wait_until(lambda: len(inbox.items) == len(items), timeout=10, what="bulk")
        assert sorted(inbox.payloads) == sorted(env for _, _, env in items)
    finally:
        await purge_session(MOSQUITTO[1], gw, "5")


async def test_round_trip_through_embedded_broker(site: str, amqtt_broker: EmbeddedBroker) -> None:
    assert amqtt_broker.port not in (0, 1883)
    inbox = Inbox()
    async with MqttSubscriber(
        "127.0.0.1", amqtt_broker.port, f"gw-{site}", inbox, site=site
    ) as sub:
        await sub.wait_ready(5)
        envs = envelopes("dev-1", 10)
        async with MqttPublisher("127.0.0.1", amqtt_broker.port, "3.1.1", "pub-1") as pub:
            for env in envs:
                await pub.publish(site, "dev-1", env)
        await wait_until(lambda: len(inbox.items) == 10, what="10 envelopes")
    assert inbox.payloads == envs
    assert {s for _, s in inbox.items} == {f"mqtt:tally/{site}/dev-1/up"}


async def test_embedded_broker_refuses_mqtt5_with_clear_error(
    site: str, amqtt_broker: EmbeddedBroker
) -> None:
    inbox = Inbox()
    sub = MqttSubscriber(
        "127.0.0.1",
        amqtt_broker.port,
        f"gw-{site}",
        inbox,
        site=site,
        version="5",
        timeout=0.5,
        backoff_min=0.05,
        backoff_max=0.1,
    )
    # amqtt 0.12 speaks 3.1.1 only; an MQTT 5 CONNECT with properties gets no answer at all,
    # so the subscriber gives up after its timeout, counts the failure and tries again.
    async with sub:
        await wait_until(lambda: sub.connect_failures >= 2, what="failed connects")
        assert not sub.connected and sub.connects == 0
        assert sub.last_error


async def test_subscriber_reconnects_after_broker_restart_and_gets_messages_sent_while_away(
    site: str,
) -> None:
    inbox = Inbox()
    async with EmbeddedBroker() as broker:
        sub = MqttSubscriber(
            "127.0.0.1",
            broker.port,
            f"gw-{site}",
            inbox,
            site=site,
            backoff_min=1.0,
            backoff_max=2.0,
        )
        async with sub:
            await sub.wait_ready(5)
            before = envelopes("dev-a", 3)
            async with MqttPublisher("127.0.0.1", broker.port, "3.1.1") as pub:
                for env in before:
                    await pub.publish(site, "dev-a", env)
            await wait_until(lambda: len(inbox.items) == 3, what="first 3")

            await broker.stop()
            await wait_until(lambda: not sub.connected, what="subscriber to notice")
            await broker.start()
            away = envelopes("dev-b", 5)
            async with MqttPublisher("127.0.0.1", broker.port, "3.1.1") as pub:
                for env in away:
                    await pub.publish(site, "dev-b", env)
            # the subscriber was still backing off: these 5 wait in its session
            assert sub.connects == 1 and len(inbox.items) == 3

            await wait_until(lambda: sub.connects == 2, timeout=10, what="reconnect")
            after = envelopes("dev-c", 4)
            async with MqttPublisher("127.0.0.1", broker.port, "3.1.1") as pub:
                for env in after:
                    await pub.publish(site, "dev-c", env)
            await wait_until(lambda: len(inbox.items) >= 12, what="all 12")
            await asyncio.sleep(0.05)  # a duplicate would arrive right behind
    assert sorted(inbox.payloads) == sorted(before + away + after)
    assert len(inbox.items) == 12 and sub.connect_failures >= 1


async def test_bad_frames_never_stop_the_subscriber(
    site: str, amqtt_broker: EmbeddedBroker
) -> None:
    seen: list[bytes] = []

    def picky(data: bytes, source: str) -> None:
        if data == b"boom":
            raise RuntimeError("the gateway should never raise, but this one does")
        seen.append(data)

    sub = MqttSubscriber(
        "127.0.0.1",
        amqtt_broker.port,
        f"gw-{site}",
        picky,
        topic_filter=f"tally/{site}/#",
        max_bytes=1024,
    )
    good = envelopes("dev-1", 1)[0]
    async with sub:
        await sub.wait_ready(5)
        async with aiomqtt.Client("127.0.0.1", amqtt_broker.port) as raw:
            await raw.publish(f"tally/{site}/dev-1/up", b"\x00" * 2048, qos=1)  # oversized
            await raw.publish(f"tally/{site}/dev-1/down", good, qos=1)  # wrong topic
            await raw.publish(f"tally/{site}/dev-1/up", b"", qos=1)  # empty
            await raw.publish(f"tally/{site}/dev-1/up", b"boom", qos=1)  # callback raises
            await raw.publish(f"tally/{site}/dev-1/up", b"garbage", qos=1)  # gateway judges
            await raw.publish(f"tally/{site}/dev-1/up", good, qos=1)
        await wait_until(lambda: len(seen) == 2, what="garbage and good")
    assert seen == [b"garbage", good]
    assert sub.stats.refused == 3 and sub.stats.callback_errors == 1
    assert sub.connects == 1  # never reconnected: nothing crashed

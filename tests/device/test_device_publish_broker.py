"""The embedded amqtt broker: free port, never 1883, persistent sessions across a restart."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from tally.device.broker import BrokerStartError, EmbeddedBroker


async def drain(client: aiomqtt.Client, n: int, timeout: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(timeout):
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            got.append(msg.payload)
            if len(got) == n:
                break
    return got


def test_port_1883_is_never_taken() -> None:
    with pytest.raises(BrokerStartError, match="1883"):
        EmbeddedBroker(port=1883)


async def test_port_is_known_only_after_start() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(RuntimeError, match="not started"):
        _ = broker.port
    async with broker:
        assert broker.port not in (0, 1883) and broker.running
    assert not broker.running


async def test_persistent_session_and_queued_messages_survive_a_restart() -> None:
    topic = f"tally/s{uuid.uuid4().hex[:8]}/dev/up"
    async with EmbeddedBroker() as broker:
        port = broker.port
        async with aiomqtt.Client("127.0.0.1", port, identifier="gw", clean_session=False) as c:
            await c.subscribe(topic, qos=1)
        async with aiomqtt.Client("127.0.0.1", port) as pub:
            await pub.publish(topic, b"queued-before", qos=1)
        await broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, timeout=1):
                pass
        await broker.start()
        assert broker.port == port and broker.starts == 2
        async with aiomqtt.Client("127.0.0.1", port) as pub:
            await pub.publish(topic, b"queued-after", qos=1)
        async with aiomqtt.Client("127.0.0.1", port, identifier="gw", clean_session=False) as c:
            assert await drain(c, 2) == [b"queued-before", b"queued-after"]
        # a clean session forgets: nothing is queued for it
        async with aiomqtt.Client("127.0.0.1", port, identifier="gw", clean_session=True):
            pass
        async with aiomqtt.Client("127.0.0.1", port) as pub:
            await pub.publish(topic, b"lost", qos=1)
        async with aiomqtt.Client("127.0.0.1", port, identifier="gw", clean_session=False) as c:
            with pytest.raises(TimeoutError):
                await drain(c, 1, timeout=0.3)

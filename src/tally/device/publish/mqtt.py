"""MQTT publisher: sends signed envelopes to ``tally/{site}/{device}/up`` with QoS 1.

Works with MQTT 3.1.1 and MQTT 5 brokers (Mosquitto, the embedded amqtt broker for 3.1.1,
NATS' MQTT gateway). One :class:`MqttPublisher` holds one connection; it connects on first
use and reconnects with exponential backoff when the connection breaks, retrying the
envelope that failed (delivery is at least once; the edge drops duplicates by counter).

:meth:`MqttPublisher.publish_many` pipelines many envelopes through the one connection,
so a simulator can speak for a thousand devices without a thousand sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY

from tally.device.publish.errors import PublishUnreachable
from tally.device.publish.wire import uplink_topic
from tally.mqtt import QOS, mqtt_protocol, tls_context

log = logging.getLogger(__name__)


class MqttPublisher:
    """Publishes envelopes over one MQTT connection (QoS 1, not retained).

    ``version`` is ``"3.1.1"`` or ``"5"``; ``client_id`` empty means a random one;
    ``tls_ca`` a CA file to verify the broker with (TLS is used when it is given).
    ``timeout`` bounds the wait for one PUBACK; ``retry_deadline`` how long one publish
    keeps reconnecting before :class:`PublishUnreachable`; ``max_inflight`` how many QoS 1
    messages may await their PUBACK at once (keep it at or below the broker's limit:
    Mosquitto's default is 20).
    """

    def __init__(
        self,
        host: str,
        port: int,
        version: str | int = "3.1.1",
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
        *,
        keepalive: int = 30,
        timeout: float = 10.0,
        retry_deadline: float = 30.0,
        max_inflight: int = 20,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.protocol = mqtt_protocol(version)
        self.client_id = client_id or f"tally-pub-{uuid.uuid4().hex[:12]}"
        self._username = username
        self._password = password
        self._tls = tls_context(tls_ca)
        self._keepalive = keepalive
        self._timeout = timeout
        self._retry_deadline = retry_deadline
        self._max_inflight = max_inflight
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        """Successful connections so far (1 + reconnects)."""
        self.published = 0
        """Envelopes acknowledged by the broker."""

    @property
    def target(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> MqttPublisher:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect now (publishing connects by itself); raise PublishUnreachable on failure."""
        loop = asyncio.get_running_loop()
        await self._ensure(loop.time() + self._retry_deadline)

    async def close(self) -> None:
        """Disconnect; a later publish connects again."""
        async with self._lock:
            await self._drop_locked()

    async def publish(self, site: str, device: str, payload: bytes) -> None:
        """Publish one envelope to ``tally/{site}/{device}/up`` and wait for its PUBACK.

        Reconnects and retries until ``retry_deadline``; raises :class:`PublishUnreachable`
        after it, and :class:`~tally.device.publish.wire.TopicError` for a bad id.
        """
        topic = uplink_topic(site, device)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_deadline
        delay = self._backoff_min
        while True:
            client = await self._ensure(deadline)
            try:
                await client.publish(topic, payload, qos=QOS, timeout=self._timeout)
            except aiomqtt.MqttError as exc:
                log.warning("publish to %s on %s failed: %s", topic, self.target, exc)
                await self._drop(client)
                if loop.time() + delay > deadline:
                    raise PublishUnreachable("mqtt", self.target, str(exc)) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            self.published += 1
            return

    async def publish_many(self, items: Iterable[tuple[str, str, bytes]], window: int = 256) -> int:
        """Publish ``(site, device, payload)`` items, up to ``window`` awaiting PUBACK at once.

        Returns how many were acknowledged; raises the first error after all others
        settled (each item is retried as in :meth:`publish`).
        """
        sem = asyncio.Semaphore(window)
        errors: list[BaseException] = []
        done = 0

        async def one(site: str, device: str, payload: bytes) -> None:
            nonlocal done
            try:
                await self.publish(site, device, payload)
                done += 1
            except Exception as exc:
                errors.append(exc)
            finally:
                sem.release()

        async with asyncio.TaskGroup() as tg:
            for site, device, payload in items:
                await sem.acquire()
                if errors:
                    sem.release()
                    break
                tg.create_task(one(site, device, payload))
        if errors:
            raise errors[0]
        return done

    async def _ensure(self, deadline: float) -> aiomqtt.Client:
        client = self._client
        if client is not None:
            return client
        loop = asyncio.get_running_loop()
        delay = self._backoff_min
        async with self._lock:
            for attempt in itertools.count():
                if self._client is not None:
                    return self._client
                try:
                    return await self._connect_locked()
                except aiomqtt.MqttError as exc:
                    if loop.time() + delay > deadline:
                        raise PublishUnreachable("mqtt", self.target, str(exc)) from exc
                    log.info("connect to %s failed (attempt %d): %s", self.target, attempt, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect_locked(self) -> aiomqtt.Client:
        v5 = self.protocol == aiomqtt.ProtocolVersion.V5
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            protocol=self.protocol,
            clean_session=None if v5 else True,
            clean_start=True if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=self._keepalive,
            timeout=self._timeout,
            max_inflight_messages=self._max_inflight,
            tls_context=self._tls,
        )
        client.pending_calls_threshold = 1 << 30  # bulk mode keeps many calls pending
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(client)
        self._client, self._stack = client, stack
        self.connects += 1
        return client

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is client:
                await self._drop_locked()

    async def _drop_locked(self) -> None:
        stack, self._client, self._stack = self._stack, None, None
        if stack is not None:
            try:
                await asyncio.wait_for(stack.aclose(), self._timeout)
            except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
                log.debug("closing connection to %s: %s", self.target, exc)

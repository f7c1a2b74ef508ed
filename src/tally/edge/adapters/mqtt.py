"""MQTT subscriber: receives envelopes from ``tally/{site}/+/up`` and hands them on.

Any MQTT 3.1.1 or 5 broker will do (Mosquitto, the embedded amqtt broker for 3.1.1, NATS'
MQTT gateway). The subscriber keeps a persistent session under a fixed client id
(3.1.1: ``clean_session = False``; 5: ``clean_start = False`` with a session expiry), so
QoS 1 envelopes published while it is disconnected are queued by the broker and delivered
when it returns. After a lost connection it reconnects with exponential backoff (with
jitter) and subscribes again, which is harmless when the broker kept the session and
needed when it did not.

A message is acknowledged by the client library when it has been received, before the
callback runs; the callback runs synchronously and does not block for I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY

from tally.device.publish.wire import MAX_ENVELOPE_BYTES, parse_uplink_topic, uplink_filter
from tally.edge.adapters.base import AdapterStats, OnEnvelope, deliver, size_problem
from tally.mqtt import mqtt_protocol, session_properties, tls_context

log = logging.getLogger(__name__)


class SubscribeRefused(RuntimeError):
    """Raised (and retried) when the broker refuses the subscription; carries its answer."""

    def __init__(self, topic_filter: str, answer: object) -> None:
        self.topic_filter = topic_filter
        self.answer = answer
        super().__init__(f"broker refused subscription to {topic_filter!r}: {answer!r}")


class MqttSubscriber:
    """Subscribes with QoS 1 and calls ``on_envelope(payload, "mqtt:" + topic)``.

    Give ``site`` (subscribes to ``tally/{site}/+/up``) or an explicit ``topic_filter``.
    ``client_id`` must be fixed and unique per gateway: the broker keeps the session under
    it. ``session_expiry_s`` is how long an MQTT 5 broker keeps the session while the
    gateway is away; ``timeout`` bounds the wait for CONNACK and SUBACK. Messages on topics
    that are not uplink topics, empty ones and ones over ``max_bytes`` are refused (counted
    in :attr:`stats`). ``tls_ca`` turns TLS on and checks the broker against that CA;
    ``tls_cert``/``tls_key`` are the client certificate for a broker that requires one (TLS
    with the system's CAs when given without ``tls_ca``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        on_envelope: OnEnvelope,
        *,
        site: str | None = None,
        topic_filter: str | None = None,
        version: str | int = "3.1.1",
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        max_bytes: int = MAX_ENVELOPE_BYTES,
        session_expiry_s: int = 7 * 24 * 3600,
        keepalive: int = 30,
        timeout: float = 10.0,
        backoff_min: float = 0.1,
        backoff_max: float = 10.0,
    ) -> None:
        if not client_id:
            raise ValueError("a persistent session needs a fixed, non-empty client id")
        if topic_filter is None:
            if site is None:
                raise ValueError("give site or topic_filter")
            topic_filter = uplink_filter(site)
        self.host = host
        self.port = port
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.protocol = mqtt_protocol(version)
        self.max_bytes = max_bytes
        self.stats = AdapterStats()
        self.connects = 0
        """Connections that ended in an active subscription."""
        self.connect_failures = 0
        self.last_error = ""
        self._on_envelope = on_envelope
        self._username = username
        self._password = password
        self._tls = tls_context(tls_ca, tls_cert, tls_key)
        self._session_expiry_s = session_expiry_s
        self._keepalive = keepalive
        self._timeout = timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def target(self) -> str:
        return f"{'mqtt' if self._tls is None else 'mqtts'}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """Connected and subscribed right now."""
        return self._ready.is_set()

    async def __aenter__(self) -> MqttSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the connection loop in the background (it connects as soon as it can)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"mqtt-sub {self.client_id}")

    async def stop(self) -> None:
        """Disconnect (the broker keeps the session) and end the loop."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.clear()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until connected and subscribed; raise TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    def _client(self) -> aiomqtt.Client:
        v5 = self.protocol == aiomqtt.ProtocolVersion.V5
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            protocol=self.protocol,
            clean_session=None if v5 else False,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=session_properties(self._session_expiry_s) if v5 else None,
            keepalive=self._keepalive,
            timeout=self._timeout,
            tls_context=self._tls,
        )

    async def _run(self) -> None:
        delay = self._backoff_min
        while True:
            try:
                async with self._client() as client:
                    await self._subscribe(client)
                    self.connects += 1
                    self._ready.set()
                    delay = self._backoff_min
                    log.info("subscribed to %s on %s", self.topic_filter, self.target)
                    async for message in client.messages:
                        self._handle(message)
            except (aiomqtt.MqttError, SubscribeRefused, OSError) as exc:
                self.connect_failures += 1
                self.last_error = str(exc) or repr(exc)
                log.warning("MQTT connection to %s lost: %s", self.target, self.last_error)
            except Exception as exc:  # keep the adapter alive whatever the library raises
                self.connect_failures += 1
                self.last_error = repr(exc)
                log.exception("MQTT subscriber for %s failed", self.target)
            finally:
                self._ready.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff_max)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        granted = await client.subscribe(self.topic_filter, qos=1)
        for code in granted:
            failed = code.is_failure if hasattr(code, "is_failure") else code not in (0, 1, 2)
            if failed:
                raise SubscribeRefused(self.topic_filter, code)

    def _handle(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        source = f"mqtt:{topic}"
        try:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                self.stats.refuse(source, f"payload of type {type(payload).__name__}")
                return
            if parse_uplink_topic(topic) is None:
                self.stats.refuse(source, "not an uplink topic tally/{site}/{device}/up")
                return
            problem = size_problem(len(payload), self.max_bytes)
            if problem is not None:
                self.stats.refuse(source, problem)
                return
            deliver(self._on_envelope, bytes(payload), source, self.stats)
        except Exception:  # never let one message end the subscription
            self.stats.callback_errors += 1
            log.exception("handling a message from %s failed", source)

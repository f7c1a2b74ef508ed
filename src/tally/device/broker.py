"""An MQTT 3.1.1 broker inside the process, for ``tally demo`` (amqtt).

Production sites run Mosquitto (or any MQTT 3.1.1/5 broker); the embedded broker lets the
demo run in one process. It listens on ``host`` (127.0.0.1 by default) and a free port,
lets any client connect, and keeps persistent sessions:

* a client connecting with ``clean_session = False`` keeps its subscriptions, and QoS 1/2
  messages published while it is away are queued for it;
* :meth:`EmbeddedBroker.stop` followed by :meth:`EmbeddedBroker.start` keeps those sessions,
  their subscriptions and queued messages in memory, and listens on the same port again, as a
  broker with persistence would after a restart.

Limits of amqtt 0.12: MQTT 3.1.1 only (an MQTT 5 CONNECT is refused with "unacceptable
protocol version"); its stock anonymous-access plugin marks every session anonymous, and
amqtt neither queues for nor keeps anonymous sessions, so this broker uses its own
open-access plugin (:class:`OpenAccessAuthPlugin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker, BrokerContext, RetainedApplicationMessage
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from tally.mqtt import BrokerTls, broker_class, broker_listener

log = logging.getLogger(__name__)

RESERVED_PORTS = frozenset({1883})
"""Ports the embedded broker never takes: 1883 belongs to the site's real broker."""


class BrokerStartError(RuntimeError):
    """Raised when the embedded broker cannot listen on ``host``:``port``."""

    def __init__(self, host: str, port: int, detail: str) -> None:
        self.host = host
        self.port = port
        super().__init__(f"embedded MQTT broker cannot listen on {host}:{port}: {detail}")


class OpenAccessAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Lets every client in without marking its session anonymous (so sessions persist)."""

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Session) -> bool | None:
        return True


@dataclass
class _SavedSession:
    subscriptions: list[tuple[str, int]]
    queued: list[RetainedApplicationMessage]


class EmbeddedBroker:
    """Start and stop an in-process amqtt broker; use as ``async with EmbeddedBroker() as b``.

    ``port`` 0 picks a free port, known as :attr:`port` once started; 1883 is refused. With
    ``tls`` (:class:`tally.mqtt.BrokerTls`) the listener speaks MQTT over TLS, and requires
    client certificates from its ``client_ca_file`` when one is given.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: BrokerTls | None = None
    ) -> None:
        if port in RESERVED_PORTS:
            raise BrokerStartError(host, port, "port reserved for the site's broker")
        self.host = host
        self._port = port
        self._tls = tls
        self._broker: Broker | None = None
        self._saved: dict[str, _SavedSession] = {}
        self.starts = 0

    @property
    def port(self) -> int:
        """The listening port (the one picked when constructed with 0)."""
        if self._port == 0:
            raise RuntimeError("the embedded broker has not started yet")
        return self._port

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen and restore the sessions kept by the previous :meth:`stop`."""
        if self._broker is not None:
            return
        config: dict[str, Any] = {
            "listeners": {
                "default": broker_listener(self.host, self._port, self._tls),
            },
            "plugins": {f"{__name__}.OpenAccessAuthPlugin": {}},
        }
        broker = broker_class()(config) if self._tls is not None else Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerStartError(self.host, self._port, str(exc)) from exc
        self._broker = broker
        if self._port == 0:
            self._port = _bound_port(broker)
        await self._restore(broker)
        self.starts += 1
        log.info("embedded MQTT broker listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Stop listening and drop every connection; persistent sessions are kept."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        self._saved = _snapshot(broker)
        await _drop_connections(broker)
        await broker.shutdown()
        log.info("embedded MQTT broker on %s:%d stopped", self.host, self._port)

    async def _restore(self, broker: Broker) -> None:
        saved, self._saved = self._saved, {}
        ctx = BrokerContext(broker)
        for client_id, s in saved.items():
            await ctx.add_subscription(client_id, None, None)
            session = ctx.get_session(client_id)
            if session is None:  # pragma: no cover - add_subscription creates it
                continue
            session.clean_session = False
            for topic_filter, qos in s.subscriptions:
                await ctx.add_subscription(client_id, topic_filter, qos)
            for msg in s.queued:
                await session.retained_messages.put(msg)


async def _drop_connections(broker: Broker, timeout: float = 5.0) -> None:
    """Close every client connection and wait until amqtt has seen each one go.

    amqtt 0.12's ``shutdown`` can hang waiting for a connected client's reader task after
    QoS 1 traffic; closing the connections first lets each reader end by itself.
    """
    for session, handler in list(broker.sessions.values()):
        writer = getattr(handler, "writer", None)
        if writer is not None and session.transitions.is_connected():
            with contextlib.suppress(OSError):  # already gone
                await writer.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(s.transitions.is_connected() for s, _ in broker.sessions.values()):
        if loop.time() > deadline:
            log.warning("clients still connected when the embedded broker stops")
            break
        await asyncio.sleep(0.01)


def _bound_port(broker: Broker) -> int:
    # amqtt keeps its listening servers in ``_servers``; there is no public accessor.
    for server in getattr(broker, "_servers", {}).values():
        instance = getattr(server, "instance", None)
        for sock in getattr(instance, "sockets", ()) or ():
            return int(sock.getsockname()[1])
    raise BrokerStartError("?", 0, "cannot find the port the broker bound")


def _snapshot(broker: Broker) -> dict[str, _SavedSession]:
    """Subscriptions and queued messages of every persistent session of ``broker``."""
    saved: dict[str, _SavedSession] = {}
    for topic_filter, subs in broker.subscriptions.items():
        for session, qos in subs:
            if session.clean_session is False and session.client_id:
                entry = saved.setdefault(session.client_id, _SavedSession([], []))
                entry.subscriptions.append((topic_filter, qos))
    for client_id, entry in saved.items():
        pair = broker.sessions.get(client_id)
        if pair is None:
            continue
        queue: asyncio.Queue[RetainedApplicationMessage] = pair[0].retained_messages
        while not queue.empty():
            entry.queued.append(queue.get_nowait())
    return saved

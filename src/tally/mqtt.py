"""MQTT settings shared by device publishers, edge subscribers and the embedded broker.

Client TLS: :func:`tls_context` gives the context of a client that checks the broker against a
CA file (else the system's CAs) and, for a broker that requires client certificates
(Mosquitto's ``require_certificate true``), presents one; ``None`` means plain TCP.

Broker TLS: the embedded amqtt broker (``tally.device.broker``) listens with TLS when given a
:class:`BrokerTls`: :func:`broker_listener` is its listener configuration and
:func:`broker_class` the broker class to start with it. amqtt itself asks a client for a
certificate but lets one without in (``CERT_OPTIONAL``); the class returned here serves with
tally's server context instead (:func:`tally.crypto.x509ca.server_context`: TLS 1.2 or later,
the certificate checked at start, and with ``client_ca_file`` a client certificate of that CA
required: mutual TLS).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tally.crypto.tlsconf import client_tls, server_tls

MqttVersion = Literal["3.1.1", "5"]
QOS = 1


def mqtt_protocol(version: str | int) -> aiomqtt.ProtocolVersion:
    """The protocol of ``version``: ``"3.1.1"``/``"311"``/``4`` or ``"5"``/``5``.

    Raises ValueError for anything else (MQTT 3.1 is not supported).
    """
    v = str(version).strip().lower()
    if v in ("3.1.1", "311", "4", "v3.1.1", "v311"):
        return aiomqtt.ProtocolVersion.V311
    if v in ("5", "5.0", "v5"):
        return aiomqtt.ProtocolVersion.V5
    raise ValueError(f"unsupported MQTT version {version!r}: use '3.1.1' or '5'")


def tls_context(
    ca_file: str | Path | None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file`` and presenting ``cert_file``/``key_file``
    when given (both or neither), or ``None`` for plain TCP when none is given (an empty
    name counts as none). Raises
    :class:`~tally.crypto.x509ca.X509Error` for an unreadable or unfit file."""
    return client_tls(*(Path(f) if f else None for f in (ca_file, cert_file, key_file)))


def session_properties(expiry_s: int) -> Properties:
    """MQTT 5 CONNECT properties asking the broker to keep the session ``expiry_s`` seconds."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_s
    return props


@dataclass(frozen=True)
class BrokerTls:
    """The embedded broker's TLS: its server certificate and key, and the CA whose client
    certificates it requires (None: any client may connect over TLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The listener's context (refuses an unfit certificate with an X509Error)."""
        ctx = server_tls(self.cert_file, self.key_file, self.client_ca_file)
        assert ctx is not None
        return ctx


def broker_listener(host: str, port: int, tls: BrokerTls | None = None) -> dict[str, Any]:
    """The amqtt listener configuration for ``host``:``port``, with TLS when ``tls``."""
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}"}
    if tls is not None:
        tls.context()  # refuse an unfit certificate here, naming it
        listener |= {"ssl": True, "certfile": str(tls.cert_file), "keyfile": str(tls.key_file)}
        if tls.client_ca_file is not None:
            listener["cafile"] = str(tls.client_ca_file)
    return listener


def broker_class() -> type[Any]:
    """amqtt's ``Broker`` serving TLS listeners with tally's server context (module
    docstring); imported on first use."""
    from amqtt.broker import Broker

    class TlsBroker(Broker):  # type: ignore[misc]
        @staticmethod
        def _create_ssl_context(listener: Any) -> ssl.SSLContext:
            ca = listener.get("cafile") if "cafile" in listener else None
            return BrokerTls(Path(listener["certfile"]), Path(listener["keyfile"]),
                             None if ca is None else Path(ca)).context()  # fmt: skip

    return TlsBroker

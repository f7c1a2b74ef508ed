"""MQTT client settings shared by device publishers and edge subscribers."""

from __future__ import annotations

import ssl
from typing import Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file``, or ``None`` for plain TCP."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def session_properties(expiry_s: int) -> Properties:
    """MQTT 5 CONNECT properties asking the broker to keep the session ``expiry_s`` seconds."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_s
    return props

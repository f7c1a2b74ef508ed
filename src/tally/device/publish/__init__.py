"""Device-side publishers: send signed envelopes to the site's edge gateway.

Each publisher takes the COSE_Sign1 bytes a :class:`~tally.device.envelope.DeviceSigner`
produced and delivers them unchanged; see :mod:`tally.device.publish.wire` for the topic
scheme, paths and media types. All share :class:`Publisher`'s shape, so a simulator can
switch transports.
"""

from __future__ import annotations

from typing import Protocol

from tally.device.publish.coap import CoapPublisher
from tally.device.publish.errors import PublishError, PublishRejected, PublishUnreachable
from tally.device.publish.http import HttpPublisher
from tally.device.publish.mqtt import MqttPublisher
from tally.device.publish.wire import (
    TopicError,
    parse_uplink_topic,
    uplink_filter,
    uplink_topic,
)
from tally.mqtt import MqttVersion, mqtt_protocol


class Publisher(Protocol):
    """What every publisher offers."""

    async def publish(self, site: str, device: str, payload: bytes) -> None: ...

    async def close(self) -> None: ...


__all__ = [
    "CoapPublisher",
    "HttpPublisher",
    "MqttPublisher",
    "MqttVersion",
    "PublishError",
    "PublishRejected",
    "PublishUnreachable",
    "Publisher",
    "TopicError",
    "mqtt_protocol",
    "parse_uplink_topic",
    "uplink_filter",
    "uplink_topic",
]

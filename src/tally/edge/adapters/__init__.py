"""Edge adapters: MQTT, HTTP and CoAP in, Modbus meters polled; all feed the gateway.

Signed envelopes go to ``on_envelope(data, source)``; readings of meters that cannot sign
go to ``on_unsigned(device_id, t_ms, measurements, labels)``. Adapters take plain
arguments; the gateway maps its configuration to them.
"""

from __future__ import annotations

from tally.edge.adapters.base import AdapterStats, OnEnvelope, OnUnsigned
from tally.edge.adapters.coap import CoapEndpoint
from tally.edge.adapters.http import HttpEndpoint
from tally.edge.adapters.modbus import MeterStats, MeterTarget, ModbusPoller, PollFailed
from tally.edge.adapters.mqtt import MqttSubscriber, SubscribeRefused

__all__ = [
    "AdapterStats",
    "CoapEndpoint",
    "HttpEndpoint",
    "MeterStats",
    "MeterTarget",
    "ModbusPoller",
    "MqttSubscriber",
    "OnEnvelope",
    "OnUnsigned",
    "PollFailed",
    "SubscribeRefused",
]

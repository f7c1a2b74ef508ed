"""One running edge: the gateway plus the adapters its configuration turns on.

``[edge.mqtt]`` with a port subscribes to a broker, ``[edge.http]`` and ``[edge.coap]`` with
a port listen for devices, and every ``[[edge.modbus]]`` meter is polled. With ``orders_url``
set, the release orders of the site are read from the warehouse's peer and handed to the
gateway (:class:`tally.edge.orders.OrderPoller`; its stats are ``adapter_stats()["orders"]``).
``tally edge`` runs this until it is stopped; the demo runs it in-process.

TLS comes from the configuration: ``[edge.http]`` serves HTTPS with ``tls_cert_file`` and
``tls_key_file`` (mutual TLS with ``tls_client_ca_file``), the MQTT subscriber connects with
``[edge.mqtt]`` ``tls_ca_file`` (and ``tls_cert_file``/``tls_key_file`` for a broker that
requires a client certificate), and the order poller reads an ``https://`` peer with
``orders_ca_file`` (and ``orders_client_cert_file``/``orders_client_key_file``). A bad
certificate stops the edge at construction with an X509Error naming it. CoAP (UDP) and the
Modbus/TCP polls have no TLS: ``docs/transport.md`` says why.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from tally.crypto.tlsconf import client_tls, server_tls
from tally.edge.adapters import (
    CoapEndpoint,
    HttpEndpoint,
    MeterTarget,
    ModbusPoller,
    MqttSubscriber,
)
from tally.edge.config import EdgeConfig
from tally.edge.gateway import EdgeGateway
from tally.edge.orders import OrderPoller

log = logging.getLogger(__name__)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _labels(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


class EdgeService:
    """The gateway and its adapters, started and stopped together.

    ``listen_http`` / ``listen_coap`` override the configured ports (0 = any free port);
    left at None, the configuration decides (where port 0 means the adapter is off).
    """

    def __init__(
        self,
        gateway: EdgeGateway,
        *,
        listen_http: int | None = None,
        listen_coap: int | None = None,
    ) -> None:
        self.gateway = gateway
        cfg: EdgeConfig = gateway.config
        self.mqtt: MqttSubscriber | None = None
        self.http: HttpEndpoint | None = None
        self.coap: CoapEndpoint | None = None
        self.pollers: list[ModbusPoller] = []
        self.orders: OrderPoller | None = None
        if cfg.orders_url:
            self.orders = OrderPoller(
                cfg.site,
                cfg.orders_url,
                gateway.authorise_release,
                gateway.revoke_release,
                interval_ms=cfg.orders_interval_ms,
                clock=gateway.clock,
                tls=client_tls(
                    cfg.orders_ca_file, cfg.orders_client_cert_file, cfg.orders_client_key_file
                ),
            )
        on_env = gateway.on_envelope
        if cfg.mqtt.port:
            self.mqtt = MqttSubscriber(
                cfg.mqtt.host,
                cfg.mqtt.port,
                cfg.mqtt.client_id or f"tally-edge-{cfg.id}",
                on_env,
                topic_filter=cfg.mqtt.topic,
                version=cfg.mqtt.version,
                username=cfg.mqtt.username,
                password=cfg.mqtt.password,
                tls_ca=_text(cfg.mqtt.tls_ca_file),
                tls_cert=_text(cfg.mqtt.tls_cert_file),
                tls_key=_text(cfg.mqtt.tls_key_file),
            )
        http_port = cfg.http.port if listen_http is None else listen_http
        if http_port or listen_http == 0:
            h = cfg.http
            tls = server_tls(h.tls_cert_file, h.tls_key_file, h.tls_client_ca_file)
            self.http = HttpEndpoint(on_env, host=h.host, port=http_port, tls=tls)
        coap_port = cfg.coap.port if listen_coap is None else listen_coap
        if coap_port or listen_coap == 0:
            self.coap = CoapEndpoint(on_env, host=cfg.coap.host, port=coap_port)
        for m in cfg.modbus:
            if m.registers:
                log.warning("meter %s: custom registers are not polled yet", m.device)
            self.pollers.append(
                ModbusPoller(
                    [
                        MeterTarget(
                            m.device, m.host, m.port, m.unit, tuple(sorted(m.labels.items()))
                        )
                    ],
                    self._on_unsigned,
                    interval_ms=m.interval_ms,
                    timeout=m.timeout_ms / 1000,
                    register_kind=m.register_kind,
                    clock=gateway.clock,
                )
            )

    def _on_unsigned(self, device_id: str, t_ms: int, measurements: Any, labels: Any) -> None:
        try:
            self.gateway.ingest_unsigned(device_id, t_ms, measurements, labels)
        except Exception:
            self.gateway.internal_errors += 1
            log.exception("could not admit a reading of meter %s", device_id)

    async def start(self, mqtt_ready_timeout: float = 10.0) -> None:
        """Open the gateway, start its loops and every adapter."""
        self.gateway.open()
        await self.gateway.start()
        if self.http is not None:
            await self.http.start()
        if self.coap is not None:
            await self.coap.start()
        if self.mqtt is not None:
            await self.mqtt.start()
            await self.mqtt.wait_ready(mqtt_ready_timeout)
        for p in self.pollers:
            await p.start()
        if self.orders is not None:
            await self.orders.start()

    async def stop(self) -> None:
        """Stop adapters first (nothing new comes in), then the gateway (seals what is pending)."""
        if self.orders is not None:
            await self.orders.stop()
        for p in self.pollers:
            await p.stop()
        for a in (self.mqtt, self.coap, self.http):
            if a is not None:
                with contextlib.suppress(Exception):
                    await a.stop()
        await self.gateway.stop()

    def adapter_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, a in (("mqtt", self.mqtt), ("http", self.http), ("coap", self.coap)):
            if a is not None:
                out[name] = a.stats
        for p in self.pollers:
            for dev, st in p.stats.items():
                out[f"modbus:{dev}"] = st
        if self.orders is not None:
            out["orders"] = self.orders.stats()
        return out

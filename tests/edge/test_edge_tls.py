"""TLS on the edge: its HTTP listener serving HTTPS (with mutual TLS, a device without a
certificate of the CA is refused at the handshake), the order poller reading an ``https://``
peer that requires a client certificate, and the ``[edge]`` settings that turn them on, each
refused precisely when given half.

Certificates come from a CA made for the test; servers run on free ports and are stopped.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally import config
from tally.crypto import SigningKey, cbor
from tally.crypto.tlsconf import LocalPki, X509Error, client_tls, make_local_pki
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.publish import HttpPublisher
from tally.device.publish.wire import COSE_SIGN1_MEDIA_TYPE, HTTP_PATH
from tally.edge.adapters import HttpEndpoint
from tally.edge.config import EdgeConfig, load_edge_config
from tally.edge.gateway import EdgeGateway
from tally.edge.orders import OrderPoller
from tally.edge.service import EdgeService
from tally.ledger.peerhttp import HttpServer

BASE = {"id": "edge-1", "org": "wh", "site": "S"}


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_local_pki(tmp_path / "tls", "site CA", servers=["edge", "peer"],
                          clients=["device", "edge-client"], valid_days=2)  # fmt: skip


def envelope() -> bytes:
    signer = DeviceSigner("scale-1", SigningKey.generate("intl"), fw=b"\x02" * 32)
    return signer.next(1_700_000_000_000, (Measurement("weight", Decimal("1.250"), "t"),))


def tls12(ctx: ssl.SSLContext | None) -> ssl.SSLContext:
    assert ctx is not None
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def post(url: str, verify: ssl.SSLContext | bool) -> httpx.Response:
    async with httpx.AsyncClient(verify=verify, timeout=10.0) as http:
        return await http.post(f"{url}{HTTP_PATH}", content=envelope(),
                               headers={"content-type": COSE_SIGN1_MEDIA_TYPE})  # fmt: skip


def edge_service(pki: LocalPki, **extra: Any) -> EdgeService:
    cert, key = pki.pair(pki.servers["edge"])
    http = {"port": 0, "tls_cert_file": cert, "tls_key_file": key,
            "tls_client_ca_file": pki.ca_file}  # fmt: skip
    cfg = EdgeConfig.model_validate({**BASE, "http": http, **extra})
    return EdgeService(EdgeGateway(cfg), listen_http=0)


async def test_the_http_listener_serves_only_devices_with_a_certificate(pki: LocalPki) -> None:
    service = edge_service(pki)
    got: list[bytes] = []
    assert service.http is not None and service.http.tls is not None
    ep = HttpEndpoint(lambda d, s: got.append(d), port=0, tls=service.http.tls)
    async with ep:
        assert ep.url.startswith("https://127.0.0.1:")
        for verify in (client_tls(pki.ca_file), tls12(client_tls(pki.ca_file))):
            with pytest.raises(httpx.TransportError):
                await post(ep.url, verify or False)  # no client certificate
        with pytest.raises(httpx.TransportError):
            await post(ep.url.replace("https://", "http://"), False)  # plain HTTP
        assert got == [] and ep.stats.delivered == 0
        device = client_tls(pki.ca_file, *pki.pair(pki.clients["device"]))
        r = await post(ep.url, device or False)
        assert r.status_code == 202 and len(got) == 1


async def test_an_https_listener_without_client_ca_takes_any_device(pki: LocalPki) -> None:
    got: list[bytes] = []
    cert, key = pki.pair(pki.servers["edge"])
    cfg = EdgeConfig.model_validate(
        {**BASE, "http": {"port": 0, "tls_cert_file": cert, "tls_key_file": key}}
    )
    tls = EdgeService(EdgeGateway(cfg), listen_http=0).http
    assert tls is not None
    async with HttpEndpoint(lambda d, s: got.append(d), port=0, tls=tls.tls) as ep:
        pub = HttpPublisher(ep.url, verify=str(pki.ca_file))  # it checks the edge only
        async with pub:
            await pub.publish("S", "scale-1", envelope())
    assert len(got) == 1


def state_app(seen: list[str]) -> Starlette:
    """A stand-in peer: ``/v1/state`` answers an empty page at height 3."""

    async def state(request: Request) -> Response:
        seen.append(str(request.query_params.get("prefix")))
        body = cbor.encode({"height": 3, "items": [], "more": False})
        return Response(body, media_type="application/cbor")

    return Starlette(routes=[Route("/v1/state", state)])


@pytest.fixture
async def peer(pki: LocalPki) -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []
    server = HttpServer(state_app(seen), "127.0.0.1", 0, pki.server_context("peer"))
    url = await server.start()
    try:
        yield url, seen
    finally:
        await server.stop()


async def test_the_order_poller_presents_its_certificate_to_the_peer(
    pki: LocalPki, peer: tuple[str, list[str]]
) -> None:
    url, seen = peer
    cert, key = pki.pair(pki.clients["edge-client"])
    service = edge_service(pki, orders_url=url, orders_ca_file=pki.ca_file,
                           orders_client_cert_file=cert, orders_client_key_file=key)  # fmt: skip
    poller = service.orders
    assert poller is not None and poller.tls is not None
    assert await poller.poll_once() and poller.height == 3 and seen == ["relord/S/"]
    await poller.stop()

    bare = OrderPoller("S", url, lambda *a: None, lambda r: None, tls=client_tls(pki.ca_file))
    assert not await bare.poll_once()
    assert bare.error.startswith(f"{url}/v1/state?prefix=relord/S/: ") and seen == ["relord/S/"]
    system = OrderPoller("S", url, lambda *a: None, lambda r: None)  # the system's CAs only
    assert not await system.poll_once() and "CERTIFICATE_VERIFY_FAILED" in system.error


@pytest.mark.parametrize(
    ("edge", "error"),
    [
        ({"http": {"tls_cert_file": "e.pem"}},
         "http.tls_cert_file and http.tls_key_file must be given together"),
        ({"http": {"tls_client_ca_file": "ca.pem"}},
         "http.tls_client_ca_file needs http.tls_cert_file"),
        ({"mqtt": {"tls_key_file": "k.pem"}},
         "mqtt.tls_cert_file and mqtt.tls_key_file must be given together"),
        ({"orders_url": "https://p:1", "orders_client_cert_file": "c.pem"},
         "orders_client_cert_file and orders_client_key_file must be given together"),
        ({"orders_url": "http://p:1", "orders_ca_file": "ca.pem"},
         "only used with an https:// orders_url"),
        ({"coap": {"port": 5683, "tls_cert_file": "e.pem"}}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_half_given_tls_settings_are_refused(edge: dict[str, Any], error: str) -> None:
    with pytest.raises(config.ConfigError, match=error):
        load_edge_config({"edge": {**BASE, **edge}}, "site.toml")


def test_an_unfit_certificate_stops_the_edge_at_once(pki: LocalPki) -> None:
    cert, key = pki.pair(pki.clients["device"])  # a client certificate for the listener
    cfg = EdgeConfig.model_validate(
        {**BASE, "http": {"port": 0, "tls_cert_file": cert, "tls_key_file": key}}
    )
    with pytest.raises(X509Error, match=r"device\.pem \('device'\) is a client certificate"):
        EdgeService(EdgeGateway(cfg), listen_http=0)

"""Mutual TLS on the cloud listener: a real server on a free port with ``tls_client_ca_file``,
certificates made with ``tally certs``; clients without a certificate, or with one from another
CA, are refused at the handshake; the right client certificate (and the edge uplink with it)
is served."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World
from test_cloud_server import lay_out
from typer.testing import CliRunner

from tally import config
from tally.cli import app
from tally.cloud.config import load_settings
from tally.cloud.keys import load_identity
from tally.cloud.server import CloudService, build_service
from tally.crypto import parse_sign1
from tally.crypto.x509ca import X509Error, client_context
from tally.edge.config import load_edge_config
from tally.edge.outbox import Outbox
from tally.edge.registry import Registry
from tally.edge.uplink import Uplink

CBOR = "application/cbor"


def _certs(*args: str) -> None:
    r = CliRunner().invoke(app, ["certs", *args])
    assert r.exit_code == 0, r.output


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """tls/: a CA, the cloud's server certificate, an edge's client certificate; other/: a
    second CA and a client certificate of its own."""
    tls, other = tmp_path / "tls", tmp_path / "other"
    _certs("ca", str(tls), "--name", "bank TLS CA")
    server = ["--kind", "server", "--cn", "cloud", "--san", "127.0.0.1", "--san", "localhost"]
    _certs("issue", str(tls), "--ca", str(tls), *server)
    _certs("issue", str(tls), "--ca", str(tls), "--kind", "client", "--cn", "edge-1")
    _certs("ca", str(other), "--name", "someone else's CA")
    _certs("issue", str(other), "--ca", str(other), "--kind", "client", "--cn", "edge-1")
    return tmp_path


@pytest.fixture
async def service(world: World, pki: Path) -> AsyncIterator[CloudService]:
    tls = pki / "tls"
    settings = lay_out(
        world,
        pki,
        tls_cert_file=tls / "cloud.pem",
        tls_key_file=tls / "cloud-key.pem",
        tls_client_ca_file=tls / "ca.pem",
    )
    svc = build_service(settings, load_identity(settings, "test passphrase"))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def _url(svc: CloudService) -> str:
    return f"https://127.0.0.1:{svc.server.port}"


def _tls12(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """In TLS 1.3 the client finishes its handshake before the server has checked the client's
    certificate, so a refusal reaches it on its first read; in TLS 1.2 the handshake fails."""
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def _stored(svc: CloudService, ctx: ssl.SSLContext) -> list[object]:
    async with httpx.AsyncClient(verify=ctx, base_url=_url(svc)) as c:
        r = await c.get(
            "/v1/devices/d1/readings", headers={"authorization": f"Bearer {TOKENS['acme']}"}
        )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _refused(svc: CloudService, ctx: ssl.SSLContext, body: bytes) -> None:
    """Both a GET and an upload fail at the transport: no HTTP answer at all."""
    async with httpx.AsyncClient(verify=ctx, base_url=_url(svc)) as c:
        with pytest.raises(httpx.TransportError):
            await c.get("/v1/health")
        with pytest.raises(httpx.TransportError):
            await c.post("/v1/batches", content=body, headers={"content-type": CBOR})
    async with httpx.AsyncClient(verify=_tls12(ctx), base_url=_url(svc)) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/v1/health")


async def test_only_the_right_client_certificate_is_served(
    service: CloudService, world: World, pki: Path
) -> None:
    tls, other = pki / "tls", pki / "other"
    assert service.server.url.startswith("https://")
    good = client_context(tls / "ca.pem", tls / "edge-1.pem", tls / "edge-1-key.pem")
    body = world.upload("e1", [world.reading("d1", T0, "4.25")])

    await _refused(service, client_context(tls / "ca.pem"), body)  # no certificate
    stranger = client_context(tls / "ca.pem", other / "edge-1.pem", other / "edge-1-key.pem")
    await _refused(service, stranger, body)  # same name, another CA
    as_server = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    as_server.load_cert_chain(str(tls / "cloud.pem"), str(tls / "cloud-key.pem"))
    await _refused(service, as_server, body)  # the right CA, but a server certificate
    assert await _stored(service, good) == []  # nothing got through

    async with httpx.AsyncClient(verify=good, base_url=_url(service)) as c:
        r = await c.get("/v1/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        r = await c.post("/v1/batches", content=body, headers={"content-type": CBOR})
        assert r.status_code == 200
    assert len(await _stored(service, good)) == 1


async def test_plain_http_to_the_tls_port_is_not_served(service: CloudService) -> None:
    async with httpx.AsyncClient() as c:
        with pytest.raises(httpx.TransportError):
            await c.get(f"http://127.0.0.1:{service.server.port}/v1/health")


async def test_the_edge_uplink_presents_its_client_certificate(
    service: CloudService, world: World, pki: Path
) -> None:
    tls = pki / "tls"
    outbox = Outbox(pki / "outbox.sqlite")
    try:
        url = f"https://127.0.0.1:{service.server.port}"
        args = (outbox, Registry(world.trust), "e1", world.suite, url)
        bare = Uplink(*args, ca_file=tls / "ca.pem")
        async with bare.client() as c:
            with pytest.raises(httpx.TransportError):
                await c.get(f"{url}/v1/health")
        up = Uplink(
            *args,
            ca_file=tls / "ca.pem",
            client_cert_file=tls / "edge-1.pem",
            client_key_file=tls / "edge-1-key.pem",
        )
        body = world.upload("e1", [world.reading("d1", T0, "4.25")])
        async with up.client() as c:
            r = await c.post(up.url, content=body, headers={"content-type": CBOR})
        assert r.status_code == 200
        parse_sign1(r.content).verify(world.identity.key.public)
    finally:
        outbox.close()


def test_an_unfit_client_certificate_stops_the_uplink_at_once(world: World, pki: Path) -> None:
    tls = pki / "tls"
    outbox = Outbox(pki / "outbox.sqlite")
    try:
        args = (outbox, Registry(world.trust), "e1", world.suite, "https://127.0.0.1:1")
        with pytest.raises(X509Error, match=r"cloud\.pem \('cloud'\) is a server certificate"):
            Uplink(
                *args,
                client_cert_file=tls / "cloud.pem",
                client_key_file=tls / "cloud-key.pem",
            )
        with pytest.raises(X509Error, match="needs both its certificate file and its key file"):
            Uplink(*args, client_cert_file=tls / "edge-1.pem")
    finally:
        outbox.close()


def test_the_settings_name_what_is_wrong() -> None:
    base = {"org": "bank", "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}
    s = load_settings({"cloud": {**base, "tls_client_ca_file": "ca.pem"}})
    assert s.tls and s.tls_client_ca_file == Path("ca.pem")
    assert load_settings({"cloud": base}).tls_client_ca_file is None
    with pytest.raises(config.ConfigError, match="tls_client_ca_file needs tls_cert_file"):
        load_settings({"cloud": {"org": "bank", "tls_client_ca_file": "ca.pem"}})

    edge = {"id": "e1", "org": "o", "site": "s", "cloud_url": "https://cloud:8443"}
    client = {"cloud_client_cert_file": "e.pem", "cloud_client_key_file": "e-key.pem"}
    cfg = load_edge_config({"edge": {**edge, **client}})
    assert (cfg.cloud_client_cert_file, cfg.cloud_client_key_file) == (
        Path("e.pem"),
        Path("e-key.pem"),
    )
    with pytest.raises(config.ConfigError, match="must be given together"):
        load_edge_config({"edge": {**edge, "cloud_client_cert_file": "e.pem"}})
    with pytest.raises(config.ConfigError, match="must be given together"):
        load_edge_config({"edge": {**edge, "cloud_client_key_file": "e-key.pem"}})
    plain = {**edge, "cloud_url": "http://cloud:8080"}
    with pytest.raises(config.ConfigError, match="only used with an https:// cloud_url"):
        load_edge_config({"edge": {**plain, **client}})

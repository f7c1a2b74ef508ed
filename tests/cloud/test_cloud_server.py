"""The cloud as a real server: uvicorn on a free port (HTTP and HTTPS), config, keys, migrations."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tally import config
from tally.cloud.config import DEFAULT_TOKEN_SCOPES, CloudSettings, load_settings, token_digest
from tally.cloud.keys import IdentityError, load_identity
from tally.cloud.server import build_service
from tally.cloud.storage import migrate as M
from tally.cloud.storage import open_storage
from tally.cloud.storage.sql import SqlStorage
from tally.crypto import parse_sign1
from tally.crypto.keystore import save_key


def lay_out(world: World, tmp: Path, **kw: object) -> CloudSettings:
    """A cloud's files on disk: trust file, registrations dir, encrypted key file."""
    world.trust.save(tmp / "trust.cbor")
    regs = tmp / "registrations"
    regs.mkdir()
    for i, data in enumerate(world.registrations):
        (regs / f"{i:03}.cose").write_bytes(data)
    (regs / "junk.cose").write_bytes(b"not a registration")
    save_key(tmp / "cloud.key", world.identity.key, "test passphrase", scrypt_n=1 << 10)
    return world.settings(
        str(tmp),
        trust_file=tmp / "trust.cbor",
        registrations_dir=regs,
        key_file=tmp / "cloud.key",
        **kw,
    )


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "tls.crt", tmp / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_http_server_on_a_free_port(world: World, tmp_path: Path) -> None:
    settings = lay_out(world, tmp_path)
    identity = load_identity(settings, "test passphrase")
    assert identity.registration == world.registrations[0]  # the "cloud" registration
    service = build_service(settings, identity)
    port = await service.server.start()
    try:
        assert port > 0 and service.server.url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=service.server.url) as c:
            up = world.upload("e1", [world.reading("d1", T0, "4.25")])
            r = await c.post(
                "/v1/batches", content=up, headers={"content-type": "application/cbor"}
            )
            assert r.status_code == 200
            parse_sign1(r.content).verify(world.identity.key.public)
            r = await c.get(
                "/v1/devices/d1/readings", headers={"authorization": f"Bearer {TOKENS['acme']}"}
            )
            assert r.json()["items"][0]["measurements"][0]["value"] == "4.25"
    finally:
        await service.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{port}/v1/health")
    assert (tmp_path / "cloud.db").exists()


async def test_https_server(world: World, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = lay_out(world, tmp_path, tls_cert_file=cert, tls_key_file=key)
    service = build_service(settings, load_identity(settings, "test passphrase"))
    port = await service.server.start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=ctx) as c:
            r = await c.get(f"https://127.0.0.1:{port}/v1/health")
            assert r.status_code == 200 and r.json()["status"] == "ok"
    finally:
        await service.stop()


def test_settings_defaults_env_and_errors(tmp_path: Path) -> None:
    data = config.load(None, {"TALLY_CLOUD__ORG": "bank", "TALLY_CLOUD__PORT": "8443"})
    s = load_settings({**data, "data_dir": str(tmp_path)})
    assert (s.org, s.port, s.host) == ("bank", 8443, "127.0.0.1")
    assert s.database_url == f"sqlite:///{tmp_path / 'cloud.db'}"
    with pytest.raises(config.ConfigError, match=r"cloud\.port"):
        load_settings({"cloud": {"org": "b", "port": 70000}})
    with pytest.raises(config.ConfigError, match="tls_cert_file and tls_key_file"):
        load_settings({"cloud": {"org": "b", "tls_cert_file": "x.pem"}})
    with pytest.raises(config.ConfigError, match="sha256"):
        load_settings({"cloud": {"org": "b", "api_tokens": [{"sha256": "secret", "org": "b"}]}})
    tok = load_settings(
        {"cloud": {"org": "b", "api_tokens": [{"sha256": token_digest("t").upper(), "org": "b"}]}}
    ).api_tokens[0]
    assert tok.sha256 == token_digest("t") and tok.kind_hint is None
    assert tok.scopes == DEFAULT_TOKEN_SCOPES  # read-only: a configured token reads, nothing else


def test_identity_errors(world: World, tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="key_file is not configured"):
        load_identity(world.settings(str(tmp_path)), "x")
    settings = lay_out(world, tmp_path)
    (tmp_path / "registrations" / "000.cose").unlink()  # the cloud's own registration
    assert load_identity(settings, "test passphrase").registration is None


def test_migrate_module_entry_point(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert M.main([url]) == 0
    storage = open_storage(url)
    assert isinstance(storage, SqlStorage)
    assert M.current(storage.engine) == M.head()
    M.downgrade(storage.engine, "base")
    assert M.current(storage.engine) is None
    storage.close()
    assert M.main([]) == 2

"""The security foundations wired into the cloud's deployment: ``[cloud.identity]`` opens the
identity store and the audit log on the cloud database with the configured policy,
``[cloud.keys]`` a field cipher from the keyring file and ``TALLY_KEYRING_PASSPHRASE``, the audit
log is anchored on the ledger, configured bearer tokens are decided by the authorisation policy
(an "auditor" token no longer reads every organisation), and broken configurations are refused
with the key and the rule. On SQLite and PostgreSQL where a database is involved.

Simulated data: the organisations, devices and readings of cloud_factory (label ``sim = "1"``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cloud_factory import World, make_consortium

from tally import config
from tally.cloud.anchoring import ConsortiumLink
from tally.cloud.auditlog import anchored_in
from tally.cloud.config import CloudSettings, load_settings, token_digest
from tally.cloud.deployment import audit_anchor
from tally.cloud.fieldcrypt import FieldCipher, FieldRef, data_keys
from tally.cloud.identity_store import IdentityStore
from tally.cloud.keyring import LocalKeyring
from tally.cloud.server import CloudService, ServerError, build_service
from tally.crypto import GM
from tally.ledger.contracts.keys import record_key

PW = "correct horse battery"
RING_PASS = "keyring passphrase for tests"
FAST = {"enabled": True, "scrypt_log_n": 10}
DIGEST = token_digest("t-1")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    return str(request.getfixturevalue("postgres_url"))


def settings(world: World, tmp: Path, db_url: str, **kw: Any) -> CloudSettings:
    kw.setdefault("identity", FAST)
    return CloudSettings(id=world.identity.id, org="bank", data_dir=tmp, database_url=db_url, **kw)


@asynccontextmanager
async def asgi(service: CloudService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.server.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
            yield c
    finally:
        await service.stop()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def device_ids(c: httpx.AsyncClient, token: str) -> list[str]:
    r = await c.get("/v1/devices", headers=bearer(token))
    assert r.status_code == 200, r.text
    return sorted(d["id"] for d in r.json()["devices"])


async def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


# -- [cloud.identity] -------------------------------------------------------------------------


async def test_identity_store_and_audit_log_come_from_the_configuration(
    world: World, tmp_path: Path, db_url: str
) -> None:
    identity = {**FAST, "lockout_failures": 2, "session_idle_ms": 60_000}
    s = settings(world, tmp_path, db_url, identity=identity)
    service = build_service(s, world.identity, world.trust)
    store, audit = service.identities, service.audit_log
    assert isinstance(store, IdentityStore) and audit is not None
    assert store.policy.lockout_failures == 2 and store.policy.session_idle_ms == 60_000
    assert str(store.engine.url) == str(audit.engine.url) == str(sa.make_url(db_url))
    assert audit.suite.name == world.trust.suite.name
    assert type(service.views).__name__ == "Views"  # the platform API's read model
    store.create_tenant("acme", "supplier", "Acme (simulated)")
    store.create_user("acme", "alice", PW, ["operator"])
    async with asgi(service) as c:
        body = {"username": "alice", "password": "wrong password!"}
        for _ in range(2):
            assert (await c.post("/v1/session", json=body)).status_code == 401
        r = await c.post("/v1/session", json={"username": "alice", "password": PW})
        assert r.status_code == 423 and r.json()["detail"].startswith("account locked until")
    entries = audit.entries()
    assert [(e.action, e.outcome, e.detail["reason"]) for e in entries] == [
        ("session.login", "denied", "invalid_login"),
        ("session.login", "denied", "invalid_login"),
        ("session.login", "denied", "account_locked"),
    ]
    assert audit.verify().ok


def test_identity_is_on_by_default_only_over_https(world: World, tmp_path: Path) -> None:
    tls = {"tls_cert_file": tmp_path / "c.pem", "tls_key_file": tmp_path / "k.pem"}
    assert not world.settings(str(tmp_path)).identity_enabled
    assert world.settings(str(tmp_path), **tls).identity_enabled
    assert not world.settings(str(tmp_path), identity={"enabled": False}, **tls).identity_enabled
    assert world.settings(str(tmp_path), identity={"enabled": True}).identity_enabled


async def test_without_identity_nothing_is_opened(
    world: World, tmp_path: Path, db_url: str
) -> None:
    service = build_service(
        settings(world, tmp_path, db_url, identity={}), world.identity, world.trust
    )
    try:
        assert (service.identities, service.audit_log, service.views) == (None, None, None)
        assert "/v1/session" not in {getattr(r, "path", "") for r in service.server.app.routes}
    finally:
        await service.stop()


async def test_the_api_can_be_left_out(world: World, tmp_path: Path) -> None:
    s = settings(world, tmp_path, f"sqlite:///{tmp_path / 'c.db'}", api={"enabled": False})
    service = build_service(s, world.identity, world.trust)
    try:
        assert service.identities is not None and service.views is None
    finally:
        await service.stop()


async def test_an_audit_log_kept_in_another_suite_is_refused(world: World, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    await build_service(settings(world, tmp_path, url), world.identity, world.trust).stop()
    refused = r"cloud\.audit: the audit log is kept with suite 'intl', not 'gm'"
    with pytest.raises(ServerError, match=refused):
        build_service(settings(world, tmp_path, url, audit={"suite": "gm"}), world.identity,
                      world.trust)  # fmt: skip


# -- configured tokens under the authorisation policy -----------------------------------------


TOKENS = {
    "acme-auditor": {"org": "acme", "role": "auditor"},  # once read every organisation
    "reg": {"org": "reg", "kind": "regulator"},
    "old-regulator": {"org": "gov", "role": "regulator"},  # an older configuration
    "bank": {"org": "bank"},  # the identity store says: a bank
    "portal": {"org": "portal", "kind": "government"},
    "telemetry-only": {"org": "acme", "scopes": ["read:telemetry"]},
}


def token_settings(world: World, tmp: Path, db_url: str, **kw: Any) -> CloudSettings:
    tokens = [{"sha256": token_digest(t), **spec} for t, spec in TOKENS.items()]
    return settings(world, tmp, db_url, api_tokens=tokens, **kw)


async def test_configured_tokens_are_decided_by_the_policy(
    world: World, tmp_path: Path, db_url: str
) -> None:
    service = build_service(token_settings(world, tmp_path, db_url, identity=FAST), world.identity,
                            world.trust)  # fmt: skip
    world.register_all(service.storage)
    assert service.identities is not None
    service.identities.create_tenant("acme", "supplier", "Acme (simulated)")
    service.identities.create_tenant("bank", "bank", "Bank (simulated)")
    async with asgi(service) as c:
        assert await device_ids(c, "acme-auditor") == ["d1", "d2", "d3"]  # its own only
        assert await device_ids(c, "reg") == ["d1", "d2", "d3", "d9"]
        assert await device_ids(c, "old-regulator") == ["d1", "d2", "d3", "d9"]
        assert await device_ids(c, "bank") == []  # a bank reads its customers, not everyone
        r = await c.get("/v1/devices/d9/readings", headers=bearer("acme-auditor"))
        assert r.status_code == 404
        r = await c.get("/v1/devices", headers=bearer("portal"))
        assert r.status_code == 403 and r.json()["detail"].startswith("government-aggregates-only")
        r = await c.get("/v1/devices", headers=bearer("telemetry-only"))
        assert r.status_code == 403
        assert "lacks the scope 'read:devices'" in r.json()["detail"]
        r = await c.get("/v1/devices/d1/readings", headers=bearer("telemetry-only"))
        assert r.status_code == 200
        me = (await c.get("/v1/me", headers=bearer("acme-auditor"))).json()
        assert (me["via"], me["tenant"], me["tenant_kind"], me["role"]) == (
            "configured", "acme", "supplier", "auditor",
        )  # fmt: skip
        assert me["user"] is None and all(s.startswith("read:") for s in me["scopes"])


async def test_without_identity_an_auditor_token_reads_its_own_organisation_only(
    world: World, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    service = build_service(
        token_settings(world, tmp_path, url, identity={}), world.identity, world.trust
    )
    world.register_all(service.storage)
    async with asgi(service) as c:
        assert await device_ids(c, "acme-auditor") == ["d1", "d2", "d3"]
        assert await device_ids(c, "reg") == ["d1", "d2", "d3", "d9"]
        r = await c.get("/v1/devices", headers=bearer("portal"))
        assert r.status_code == 403


async def test_a_token_kind_the_identity_store_contradicts_is_refused(
    world: World, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    service = build_service(settings(world, tmp_path, url), world.identity, world.trust)
    assert service.identities is not None
    service.identities.create_tenant("acme", "supplier", "Acme (simulated)")
    await service.stop()
    bad = [{"sha256": DIGEST, "org": "acme", "kind": "bank"}]
    refused = r"cloud\.api_tokens\[0\]: kind 'bank', but tenant 'acme' of the identity store"
    with pytest.raises(ServerError, match=refused + r" is a 'supplier'"):
        build_service(settings(world, tmp_path, url, api_tokens=bad), world.identity, world.trust)


# -- [cloud.keys] -----------------------------------------------------------------------------


async def test_keys_open_a_field_cipher_on_the_cloud_database(
    world: World, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    ring = tmp_path / "keyring.bin"
    LocalKeyring.create(ring, RING_PASS, scrypt_n=1024)
    monkeypatch.setenv("TALLY_KEYRING_PASSPHRASE", RING_PASS)
    caplog.set_level(logging.DEBUG)
    s = settings(world, tmp_path, db_url, keys={"keyring_file": str(ring), "suite": "gm"})
    service = build_service(s, world.identity, world.trust)
    try:
        cipher = service.cipher
        assert isinstance(cipher, FieldCipher)
        ref = FieldRef("v_orgs", "sensitive", "acme")
        sealed = cipher.encrypt("acme", ref, b"account 6222 0000 1111")
        assert b"6222" not in sealed and cipher.decrypt("acme", ref, sealed).endswith(b"1111")
        assert cipher.key_versions("acme")[0].suite == GM.name
        with service.storage.engine.connect() as conn:  # type: ignore[attr-defined]
            assert conn.execute(sa.select(sa.func.count()).select_from(data_keys)).scalar() == 1
    finally:
        await service.stop()
    assert RING_PASS not in caplog.text


def test_broken_keys_are_refused_with_the_reason(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = tmp_path / "keyring.bin"
    LocalKeyring.create(ring, RING_PASS, scrypt_n=1024)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    s = settings(world, tmp_path, url, identity={}, keys={"keyring_file": str(ring)})
    monkeypatch.delenv("TALLY_KEYRING_PASSPHRASE", raising=False)
    with pytest.raises(config.ConfigError, match="TALLY_KEYRING_PASSPHRASE is not set"):
        build_service(s, world.identity, world.trust)
    monkeypatch.setenv("TALLY_KEYRING_PASSPHRASE", "not the passphrase")
    with pytest.raises(ServerError, match=r"cloud\.keys\.keyring_file: cannot open keyring file "
                                          r".*: wrong passphrase or altered file"):  # fmt: skip
        build_service(s, world.identity, world.trust)
    missing = settings(
        world, tmp_path, url, identity={}, keys={"keyring_file": str(tmp_path / "x")}
    )
    with pytest.raises(ServerError, match=r"cloud\.keys\.keyring_file: cannot read keyring file"):
        build_service(missing, world.identity, world.trust)


# -- broken configurations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"keys": {}}, "cloud.keys.keyring_file: Field required"),
        ({"keys": {"keyring_file": "k", "passphrase": "x"}},
         "passphrase: the keyring passphrase is read from TALLY_KEYRING_PASSPHRASE only"),
        ({"keys": {"keyring_file": "k", "suite": "rsa"}}, "cloud.keys.suite"),
        ({"identity": {"session_idle_ms": 10_000_000, "session_absolute_ms": 5_000_000}},
         "session_idle_ms (10000000) must not exceed session_absolute_ms (5000000)"),
        ({"identity": {"lockout_failures": 0}}, "cloud.identity.lockout_failures"),
        ({"identity": {"lockout": 5}}, "cloud.identity.lockout: Extra inputs are not permitted"),
        ({"audit": {"anchor_every_n": 0}}, "cloud.audit.anchor_every_n"),
        ({"api": {"enabled": "maybe"}}, "cloud.api.enabled"),
        ({"api_tokens": [{"sha256": DIGEST, "org": "a", "scopes": ["write:receipts"]}]},
         "scope 'write:receipts': a configured token only reads"),
        ({"api_tokens": [{"sha256": DIGEST, "org": "a", "scopes": ["read:nothing"]}]},
         "scope 'read:nothing' names no resource"),
        ({"api_tokens": [{"sha256": DIGEST, "org": "a", "kind": "bnak"}]},
         "kind 'bnak' is not one of bank, core_enterprise"),
        ({"api_tokens": [{"sha256": DIGEST, "org": "a"}, {"sha256": DIGEST, "org": "b"}]},
         "api_tokens[1] has the same sha256 as api_tokens[0]"),
        ({"max_header_bytes": 10}, "cloud.max_header_bytes"),
    ],
)  # fmt: skip
def test_broken_configurations_name_the_key_and_the_rule(
    section: dict[str, Any], problem: str
) -> None:
    with pytest.raises(config.ConfigError) as err:
        load_settings({"cloud": {"org": "bank", **section}}, "cloud.toml")
    assert problem in str(err.value) and "cloud.toml" in str(err.value)
    assert 'passphrase": "x' not in str(err.value) and "(got 'x')" not in str(err.value)


# -- the audit log anchored on the ledger -------------------------------------------------------


async def test_the_audit_log_is_anchored_on_the_ledger(world: World, tmp_path: Path) -> None:
    consortium = await make_consortium(world, tmp_path / "ledger")
    try:
        link = ConsortiumLink(consortium, "bank", timeout=5.0, attempts=1)
        s = settings(world, tmp_path, f"sqlite:///{tmp_path / 'c.db'}",
                     audit={"anchor_every_n": 2, "anchor_every_ms": 3_600_000})  # fmt: skip
        service = build_service(s, world.identity, world.trust, ledger=link)
        audit = service.audit_log
        assert audit is not None and service.audit_anchor is not None
        await service.start()
        try:
            async with httpx.AsyncClient(base_url=service.server.url) as c:
                body = {"username": "nobody", "password": "wrong password!"}
                assert (await c.post("/v1/session", json=body)).status_code == 401
                assert (await c.post("/v1/session", json=body)).status_code == 401
            await wait_for(lambda: audit.last_anchored() == 1)
        finally:
            await service.stop()
        state = consortium.peers["bank"].state
        head = audit.head()
        assert state.get(record_key(head.hash)) is not None
        assert audit.verify(anchored_in(state)).ok
        # an anchoring interrupted before it was recorded: the ledger has the head, the log not
        with audit.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_anchors"))
        anchor = audit_anchor(link)
        assert anchor is not None
        again = await audit.anchor_pending(anchor, force=True)
        assert again is not None and again.seq == 1 and again.tx_id is None
        assert audit.verify(anchored_in(state)).ok
    finally:
        await consortium.close()

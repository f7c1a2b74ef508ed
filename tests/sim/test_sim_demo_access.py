"""The demo's access: a CA and server certificate for 127.0.0.1, and a demo login per member
that works through the real cloud app (login, then ``GET /v1/me``), recorded in the audit log
without any password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from tally.cloud.app import create_app
from tally.cloud.config import CloudSettings
from tally.cloud.errors import BadRequest
from tally.cloud.identity import IdentityPolicy
from tally.cloud.keys import CloudIdentity
from tally.crypto import SigningKey, get_suite
from tally.crypto.x509ca import fingerprint, load_issued
from tally.device.trust import Trust
from tally.sim.demo_access import DemoAccess, TenantSpec, demo_role, make_demo_access
from tally.sim.demo_console import CONSOLE_TENANTS, EXTRA_ROLES, ROLE_LABELS, label
from tally.sim.orgs import ORG_BANK, ORG_ROLES

FAST = IdentityPolicy(scrypt_log_n=10)
EXPECTED = {
    "bank": ("bank-admin", "admin", "bank"),
    "bank-b": ("bank-b-credit-officer", "credit_officer", "bank"),
    "core": ("core-operator", "operator", "core_enterprise"),
    "warehouse": ("warehouse-operator", "operator", "warehouse"),
    "logistics": ("logistics-operator", "operator", "logistics"),
    "regulator": ("regulator-auditor", "auditor", "regulator"),
}


@pytest.fixture
def access(tmp_path: Path) -> Iterator[DemoAccess]:
    made = make_demo_access(tmp_path / "data", ORG_ROLES, ORG_BANK, policy=FAST)
    yield made
    made.close()


def app_client(access: DemoAccess, tmp_path: Path) -> httpx.AsyncClient:
    suite = get_suite("intl")
    key = SigningKey.generate(suite)
    settings = CloudSettings(id="cloud-1", org=ORG_BANK, data_dir=tmp_path / "cloud")
    app = create_app(
        settings,
        access.storage,
        Trust(suite, {ORG_BANK: key.public}),
        CloudIdentity("cloud-1", ORG_BANK, key),
        identities=access.identities,
        audit_log=access.audit_log,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1")


async def test_every_demo_login_works_and_names_its_tenant_and_role(
    access: DemoAccess, tmp_path: Path
) -> None:
    assert {x.tenant: (x.username, x.role) for x in access.logins} == {
        t: (u, r) for t, (u, r, _k) in EXPECTED.items()
    }
    assert len({x.password for x in access.logins}) == len(access.logins)
    async with app_client(access, tmp_path) as client:
        for x in access.logins:
            client.cookies.clear()
            r = await client.post(
                "/v1/session",
                json={"tenant": x.tenant, "username": x.username, "password": x.password},
            )
            assert r.status_code == 200, r.text
            me = await client.get("/v1/me")
            assert me.status_code == 200, me.text
            body = me.json()
            assert body["tenant"] == x.tenant
            assert body["user"] == x.username
            assert body["roles"] == [x.role]
            assert body["tenant_kind"] == EXPECTED[x.tenant][2]
            assert body["via"] == "session"
        client.cookies.clear()
        bank = access.logins[0]
        wrong = {"tenant": "bank-b", "username": bank.username, "password": bank.password}
        r = await client.post("/v1/session", json=wrong)
        assert r.status_code == 401 and r.json()["detail"] == "invalid username or password"
    entries = list(access.audit_log.entries())
    assert [(e.actor, e.outcome) for e in entries] == [
        *((x.username, "ok") for x in access.logins),
        (bank.username, "denied"),
    ]
    logged = repr([dict(e.detail) for e in entries])
    assert not any(x.password in logged for x in access.logins)


def test_server_certificate_is_issued_by_the_ca_for_127_0_0_1_and_localhost(
    access: DemoAccess,
) -> None:
    cert, _key = load_issued(
        access.server.cert_file, access.server.key_file, "server", access.ca.cert
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert access.client_ssl().check_hostname is True


def test_report_part_copies_the_ca_certificate_only_and_names_no_password(
    access: DemoAccess, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    part = access.report(out)
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem"]
    assert (out / "ca.pem").read_bytes() == access.ca_file.read_bytes()
    assert part["https"] is True and part["ca_file"] == "ca.pem"
    assert part["logins"] == [
        {"tenant": t, "username": u, "role": r} for t, (u, r, _k) in EXPECTED.items()
    ]
    text = json.dumps(part)
    assert not any(x.password in text for x in access.logins)


def test_a_new_run_replaces_the_earlier_ca_and_users(tmp_path: Path) -> None:
    first = make_demo_access(tmp_path, {"bank": "bank"}, "bank", policy=FAST)
    first_ca, first_pw = fingerprint(first.ca.cert), first.logins[0].password
    first.close()
    again = make_demo_access(tmp_path, {"bank": "bank"}, "bank", policy=FAST)
    try:
        assert fingerprint(again.ca.cert) != first_ca
        assert again.logins[0].password != first_pw
        assert [u.username for u in again.identities.list_users("bank")] == ["bank-admin"]
    finally:
        again.close()


def test_an_unknown_role_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(BadRequest) as err:
        make_demo_access(tmp_path, {"bank": "bank", "pirate": "privateer"}, "bank", policy=FAST)
    assert err.value.detail.startswith("tenant kind 'privateer' is not one of bank, ")
    assert list(tmp_path.iterdir()) == []


def test_demo_roles() -> None:
    assert demo_role("bank", "bank", "bank") == "admin"
    assert demo_role("bank-b", "bank", "bank") == "credit_officer"
    assert demo_role("regulator", "regulator", "bank") == "auditor"
    assert demo_role("warehouse", "warehouse", "bank") == "operator"


async def test_the_console_gets_a_login_per_role_with_the_warehouse_site(tmp_path: Path) -> None:
    made = make_demo_access(
        tmp_path / "data", ORG_ROLES, ORG_BANK, policy=FAST, extra_roles=EXTRA_ROLES,
        tenants=CONSOLE_TENANTS, sites={"warehouse": ["wh-demo"]},
    )  # fmt: skip
    try:
        assert {label(x.kind, x.role) for x in made.logins} == set(ROLE_LABELS.values())
        assert [(x.tenant, x.username, x.role) for x in made.logins if x.tenant == "bank"] == [
            ("bank", "bank-admin", "admin"),
            ("bank", "bank-credit-officer", "credit_officer"),
        ]
        assert made.identities.tenant("warehouse").sites == ("wh-demo",)
        assert made.identities.tenant("sme-steel").kind == "supplier"
        assert made.identities.tenant("gov-portal").kind == "government"
        async with app_client(made, tmp_path) as client:
            for x in made.logins:
                if x.tenant not in ("warehouse", "sme-strip-1", "gov-portal", "bank"):
                    continue
                client.cookies.clear()
                r = await client.post(
                    "/v1/session",
                    json={"tenant": x.tenant, "username": x.username, "password": x.password},
                )
                assert r.status_code == 200, r.text
                me = (await client.get("/v1/me")).json()
                assert (me["tenant"], me["tenant_kind"], me["roles"]) == (x.tenant, x.kind,
                                                                          [x.role])  # fmt: skip
                assert me.get("sites", []) == (["wh-demo"] if x.tenant == "warehouse" else [])
    finally:
        made.close()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tenants": [TenantSpec("gov", "government", "Gov", ("emperor",))]}, "role"),
        ({"tenants": [TenantSpec("bank", "bank", "Twice", ("viewer",))]}, "given twice"),
        ({"tenants": [TenantSpec("x", "supplier", "X", ("viewer", "viewer"))]}, "given twice"),
        ({"extra_roles": {"nobody": ["viewer"]}}, "'nobody', which is not a member"),
        ({"sites": {"warehouse": [" site "]}}, "site ' site ' must be 1 to 200"),
    ],
)
def test_bad_tenants_roles_and_sites_are_refused_before_anything_is_written(
    tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        make_demo_access(tmp_path, ORG_ROLES, ORG_BANK, policy=FAST, **kw)
    assert list(tmp_path.iterdir()) == []

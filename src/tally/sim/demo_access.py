"""How people reach the demo's cloud: HTTPS with a CA made per run, and a login per member.

:func:`make_demo_access` makes, under ``<data dir>/access``:

* ``tls/ca.pem`` and ``tls/ca-key.pem``, a local certificate authority
  (:mod:`tally.crypto.x509ca`), and ``tls/demo-cloud.pem`` with its key, the cloud's server
  certificate for ``127.0.0.1`` and ``localhost``. The cloud serves HTTPS with it; the edge's
  uplink and every client of the demo trust the CA and nothing else.
* ``identity.db``, an SQLite database at the cloud's newest schema holding the identity store
  (a tenant per consortium member, of the member's role) and the audit log where every login
  is recorded.
* One demo user per tenant with a password made at random for this run: ``admin`` for the
  organisation that runs the cloud, ``credit_officer`` for another bank, ``auditor`` for the
  regulator and ``operator`` for everyone else; members may get more users (``extra_roles``:
  the cloud's bank also has a credit officer), and tenants that are not members may be added
  (``tenants``: the small firms of the stories as ``supplier`` tenants, the government
  portal), each with a user per role. ``sites`` sets a tenant's sites (the warehouse's).
  Usernames are ``<tenant>-<role>`` (``_`` as ``-``). The passwords are shown once, on the
  demo's start banner; :meth:`DemoAccess.report` lists the logins without them.

An earlier run's ``access`` directory is removed first: its CA, certificate and users are
of no use to a new run.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.cloud import identity as I
from tally.cloud.auditlog import AuditLog
from tally.cloud.errors import BadRequest
from tally.cloud.identity import IdentityPolicy
from tally.cloud.identity_store import IdentityStore
from tally.cloud.storage.sqlite import SqliteStorage
from tally.crypto.x509ca import CA, Issued, client_context, issue, make_ca

ACCESS_DIR = "access"
CA_NAME = "tally demo CA"
SERVER_NAME = "demo-cloud"
SERVER_SANS = ("127.0.0.1", "localhost")
CA_DAYS = 31
CERT_DAYS = 30
"""The server certificate ends a day before its CA (an issued one may not outlast it)."""
PASSWORD_BYTES = 15
"""Random bytes of a demo password: 20 characters of URL-safe base64."""


@dataclass(frozen=True)
class TenantSpec:
    """A tenant that is not a consortium member: its id, kind, name, its users' roles (one
    user each) and its sites."""

    id: str
    kind: str
    name: str
    roles: tuple[str, ...]
    sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoLogin:
    """One demo user: its tenant, username, role, this run's password and the tenant's kind."""

    tenant: str
    username: str
    role: str
    password: str
    kind: str = ""


@dataclass
class DemoAccess:
    """The demo's CA, the cloud's certificate, the identity store, the audit log and logins."""

    ca: CA
    server: Issued
    storage: SqliteStorage
    identities: IdentityStore
    audit_log: AuditLog
    logins: tuple[DemoLogin, ...]

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_file

    def client_ssl(self) -> ssl.SSLContext:
        """A client context that trusts the demo CA (and checks the host name)."""
        return client_context(self.ca.cert_file)

    def report(self, out: Path | None) -> dict[str, Any]:
        """The report's part: copies the CA certificate (not its key) into ``out``."""
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.ca.cert_file, out / self.ca.cert_file.name)
        return {
            "https": True,
            "ca_file": self.ca.cert_file.name,
            "logins": [
                {"tenant": x.tenant, "username": x.username, "role": x.role} for x in self.logins
            ],
        }

    def close(self) -> None:
        self.storage.close()


def demo_role(org: str, kind: str, cloud_org: str) -> str:
    """The role of ``org``'s demo user (``kind``: its consortium role)."""
    if org == cloud_org:
        return "admin"
    return {"bank": "credit_officer", "regulator": "auditor"}.get(kind, "operator")


def make_demo_access(
    data_dir: Path,
    orgs: Mapping[str, str],
    cloud_org: str,
    *,
    suite: str = "intl",
    policy: IdentityPolicy | None = None,
    extra_roles: Mapping[str, Sequence[str]] | None = None,
    tenants: Sequence[TenantSpec] = (),
    sites: Mapping[str, Sequence[str]] | None = None,
) -> DemoAccess:
    """Certificates, identity store, audit log and the demo users (see the module text) under
    ``data_dir/access``: a tenant per organisation of ``orgs`` (organisation → its consortium
    role) with its demo user and a user per role of ``extra_roles[org]``, and the ``tenants``
    that are not members with a user per role; ``sites`` gives tenants their sites.

    A tenant id, kind, name, role or site the identity store would refuse, or a tenant given
    twice, raises its ``BadRequest`` before anything is written or removed."""
    extra, site_of = dict(extra_roles or {}), dict(sites or {})
    specs = [
        TenantSpec(org, kind, f"{org} (simulated)",
                   (demo_role(org, kind, cloud_org), *extra.get(org, ())),
                   tuple(site_of.get(org, ())))
        for org, kind in orgs.items()
    ]  # fmt: skip
    specs += [
        dataclasses.replace(x, sites=x.sites or tuple(site_of.get(x.id, ()))) for x in tenants
    ]
    seen: set[str] = set()
    for x in specs:  # refused before anything is written or removed
        I.check_tenant_id(x.id)
        I.check_tenant_kind(x.kind)
        I.check_name(x.name)
        I.check_roles(x.roles)
        I.check_sites(x.sites)
        if x.id in seen or len(set(x.roles)) != len(x.roles):
            raise BadRequest(f"tenant {x.id!r} is given twice, or a role of it twice")
        seen.add(x.id)
    unknown = sorted(set(extra) - set(orgs))
    if unknown:
        raise BadRequest(f"extra roles for {unknown[0]!r}, which is not a member")
    directory = Path(data_dir) / ACCESS_DIR
    if directory.exists():
        shutil.rmtree(directory)
    tls = directory / "tls"
    ca = make_ca(CA_NAME, tls, CA_DAYS)
    server = issue(ca, "server", SERVER_NAME, SERVER_SANS, tls, CERT_DAYS)
    storage = SqliteStorage(f"sqlite:///{directory / 'identity.db'}")
    try:
        storage.migrate()
        identities = IdentityStore(storage.engine, policy)
        audit_log = AuditLog(storage.engine, suite=suite)
        logins = []
        for x in specs:
            identities.create_tenant(x.id, x.kind, x.name, x.sites)
            for role in x.roles:
                username = f"{x.id}-{role.replace('_', '-')}"
                password = secrets.token_urlsafe(PASSWORD_BYTES)
                identities.create_user(x.id, username, password, [role])
                logins.append(DemoLogin(x.id, username, role, password, x.kind))
    except BaseException:
        storage.close()
        raise
    return DemoAccess(ca, server, storage, identities, audit_log, tuple(logins))

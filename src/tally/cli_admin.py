"""Administration commands of the ``tally`` command line: ``tally admin`` (tenants, users,
API tokens, the audit log and the keyring of the cloud database that ``-c`` configures) and
the deployment's files (``tally keys``, ``tally certs``, ``tally trust``).

``tally admin`` migrates the cloud database first, so it can prepare a database before the
cloud's first start. Every change is appended to the audit log (actor ``cli:<os user>``).
Secrets never come from arguments: a new user's password is asked for (or read from
``TALLY_NEW_PASSWORD``), the keyring's passphrase is ``TALLY_KEYRING_PASSPHRASE``; an issued
API token is printed once, alone on standard output, and never stored. Refusals print one line
(``tally: no tenant 'x'``) and exit with status 2; ``audit verify`` exits 1 when it finds a
problem.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tally.cloud.auditlog import AuditLog
    from tally.cloud.config import CloudSettings
    from tally.cloud.identity_store import IdentityStore
    from tally.cloud.storage import Storage

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML file; TALLY_* variables override it.")
]
SECRET_ENV = ("TALLY_KEY_PASSPHRASE", "TALLY_KEYRING_PASSPHRASE", "TALLY_NEW_PASSWORD")
NEW_PASSWORD_ENV = "TALLY_NEW_PASSWORD"
_TTL = re.compile(r"([0-9]{1,12})(ms|s|min|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}

admin_app = typer.Typer(help="The cloud's tenants, users, API tokens, audit log and keyring.")
tenant_app = typer.Typer(help="Tenants: the consortium's organisations.")
user_app = typer.Typer(help="Users of a tenant.")
token_app = typer.Typer(help="API tokens (tly_…).")
audit_app = typer.Typer(help="The audit log.")
keyring_app = typer.Typer(help="The keyring of \\[cloud.keys] (TALLY_KEYRING_PASSPHRASE).")
for _sub, _name in ((tenant_app, "tenant"), (user_app, "user"), (token_app, "token"),
                    (audit_app, "audit"), (keyring_app, "keyring")):  # fmt: skip
    admin_app.add_typer(_sub, name=_name)
keys_app = typer.Typer(help="Encrypted key files (passphrase from TALLY_KEY_PASSPHRASE).")
trust_app = typer.Typer(help="The trust file: organisations' root public keys.")
certs_app = typer.Typer(help="TLS certificates: a local CA and the certificates it issues.")


def load_config(config_file: Path | None) -> dict[str, Any]:
    """The configuration file overlaid by the environment, leaving out the secret variables."""
    from tally import config

    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    return config.load(config_file, env)


def ttl_ms(text: str) -> int:
    """``30d``, ``12h``, ``90min``/``90m``, ``3600s`` or ``500ms`` in milliseconds."""
    m = _TTL.fullmatch(text.strip())
    if m is None:
        raise typer.BadParameter(
            f"{text!r} is not a lifetime like 30d, 12h, 90min, 3600s or 500ms", param_hint="--ttl"
        )
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


@dataclass
class Admin:
    """The configured cloud database, opened for administration."""

    settings: CloudSettings
    storage: Storage
    store: IdentityStore
    audit: AuditLog

    def record(
        self, action: str, tenant: str | None, resource: tuple[str, str], **detail: Any
    ) -> None:
        """Append an administrator's change to the audit log (no secret is ever in it)."""
        self.audit.append(tenant=tenant, actor=_actor(), action=action, resource_kind=resource[0],
                          resource_id=resource[1], outcome="ok", detail=detail)  # fmt: skip


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Print a refusal as one line and exit 2."""
    from tally.cloud.auditlog import AuditLogError
    from tally.cloud.deployment import ServerError
    from tally.cloud.errors import CloudError
    from tally.config import ConfigError

    try:
        yield
    except CloudError as exc:
        print(f"tally: {exc.detail}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (AuditLogError, ConfigError, ServerError) as exc:
        print(f"tally: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def admin(config_file: Path | None) -> Iterator[Admin]:
    """Open (and migrate) the cloud database of ``config_file``'s ``[cloud]``."""
    from tally.cloud.config import load_settings
    from tally.cloud.deployment import engine_of, open_identity
    from tally.cloud.storage import open_storage
    from tally.device.trust import load_trust

    with refusals():
        settings = load_settings(load_config(config_file), str(config_file or "environment"))
        if not settings.identity_enabled:
            note = "[cloud.identity] is off here (no TLS, no enabled = true)"
            print(f"tally: note: {note}: the cloud will not use these accounts", file=sys.stderr)
        trust = settings.trust_file
        suite = load_trust(trust).suite.name if trust is not None and trust.exists() else "intl"
        storage = open_storage(settings.database_url)
        try:
            storage.migrate()
            store, audit = open_identity(settings, engine_of(storage), suite)
            yield Admin(settings, storage, store, audit)
        finally:
            storage.close()


@tenant_app.command("add")
def tenant_add(
    tenant: Annotated[str, typer.Argument(help="The tenant's id (its organisation id).")],
    kind: Annotated[str, typer.Option(help="bank, core_enterprise, supplier, warehouse, …")],
    name: Annotated[str, typer.Option(help="Its display name.")],
    site: Annotated[list[str] | None, typer.Option(help="A site of its (repeatable).")] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Add a tenant."""
    with admin(config_file) as a:
        t = a.store.create_tenant(tenant, kind, name, site or [])
        a.record("tenant.create", t.id, ("tenant", t.id), kind=t.kind, sites=list(t.sites))
    print(f"tenant {t.id}: {t.kind}, {t.name!r}, sites {', '.join(t.sites) or '-'}")


@user_app.command("add")
def user_add(
    tenant: Annotated[str, typer.Argument(help="The user's tenant.")],
    username: Annotated[str, typer.Argument(help="3 to 100 of a-z 0-9 . _ @ -")],
    role: Annotated[
        list[str], typer.Option(help="admin, operator, credit_officer, auditor, viewer")
    ],
    config_file: ConfigOpt = None,
) -> None:
    """Add a user; the password is asked for, or read from TALLY_NEW_PASSWORD."""
    password = os.environ.get(NEW_PASSWORD_ENV) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with admin(config_file) as a:
        u = a.store.create_user(tenant, username, password, role)
        a.record("user.create", u.tenant, ("user", u.username), roles=list(u.roles))
    print(f"user {u.username} of {u.tenant}: {', '.join(u.roles)}")


@user_app.command("list")
def user_list(
    tenant: Annotated[str, typer.Argument(help="The tenant.")], config_file: ConfigOpt = None
) -> None:
    """List a tenant's users: username, roles, state."""
    from tally.cloud.identity import iso_ms

    with admin(config_file) as a:
        users = a.store.list_users(tenant)
        now = a.store.clock()
    for u in users:
        locked = u.locked_until is not None and u.locked_until > now
        state = "disabled" if u.disabled else "active"
        if locked and u.locked_until is not None:
            state += f", locked until {iso_ms(u.locked_until)}"
        print(f"{u.username}\t{','.join(u.roles)}\t{state}")


@token_app.command("issue")
def token_issue(
    tenant: Annotated[str, typer.Argument(help="The token's tenant.")],
    scope: Annotated[list[str], typer.Option(help="<read|write|admin>:<resource> (repeatable).")],
    user: Annotated[str | None, typer.Option(help="Act as this user, with its roles.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime: 30d, 12h, 90min …")] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Issue an API token; print it once on standard output (its id and expiry on stderr)."""
    from tally.cloud.identity import iso_ms

    lifetime = None if ttl is None else ttl_ms(ttl)
    with admin(config_file) as a:
        new = a.store.issue_token(tenant, scope, user=user, ttl_ms=lifetime)
        i = new.info
        a.record("token.issue", i.tenant, ("api_token", i.id), user=i.user, scopes=list(i.scopes),
                 expires=iso_ms(i.expires))  # fmt: skip
    print(new.token)
    who = f" for {i.user}" if i.user else " (tenant-wide)"
    print(f"token {i.id} of {i.tenant}{who}: {', '.join(i.scopes)}; expires "
          f"{iso_ms(i.expires)}; shown only this once", file=sys.stderr)  # fmt: skip


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (SHA-256 hex).")],
    config_file: ConfigOpt = None,
) -> None:
    """Revoke an API token by its id."""
    from tally.cloud.identity import iso_ms

    with admin(config_file) as a:
        i = a.store.revoke_token(token_id.strip().lower())
        a.record("token.revoke", i.tenant, ("api_token", i.id))
    print(f"token {i.id} of {i.tenant} revoked at {iso_ms(i.revoked or 0)}")


@audit_app.command("verify")
def audit_verify(
    config_file: ConfigOpt = None,
    peer_state: Annotated[
        Path | None,
        typer.Option(help="A member peer's state database (SQLite): check the anchors there."),
    ] = None,
) -> None:
    """Check the audit log's chain, head and anchors; exit 1 when a problem is found."""
    from tally.cloud.auditlog import anchored_in
    from tally.ledger.state import SqliteState

    if peer_state is not None and not peer_state.is_file():
        raise typer.BadParameter(f"{peer_state} does not exist", param_hint="--peer-state")
    state = SqliteState(peer_state) if peer_state is not None else None
    try:
        with admin(config_file) as a:
            report = a.audit.verify(anchored_in(state) if state is not None else None)
    finally:
        if state is not None:
            state.close()
    for problem in report.problems:
        print(problem)
    verdict = "intact" if report.ok else f"broken from entry {report.broken}"
    print(f"audit log: {report.entries} entries, {report.anchors} anchors: {verdict}")
    raise typer.Exit(0 if report.ok else 1)


def _keyring_path(config_file: Path | None, path: Path | None) -> Path:
    from tally.cloud.config import load_settings

    if path is not None:
        return path
    with refusals():
        keys = load_settings(load_config(config_file), str(config_file or "environment")).keys
    if keys is None:
        raise typer.BadParameter("cloud.keys.keyring_file is not configured", param_hint="--file")
    return keys.keyring_file


@keyring_app.command("create")
def keyring_create(
    config_file: ConfigOpt = None,
    file: Annotated[Path | None, typer.Option(help="Default: \\[cloud.keys] keyring_file.")] = None,
    name: Annotated[str, typer.Option(help="The keyring's name (in its KEK ids).")] = "main",
    suite: Annotated[str, typer.Option(help="intl (AES-256-GCM) or gm (SM4-GCM).")] = "intl",
) -> None:
    """Create the keyring file (mode 0600) with its first key-encryption key."""
    from tally.cloud.config import keyring_passphrase
    from tally.cloud.keyring import LocalKeyring
    from tally.crypto import get_suite

    path = _keyring_path(config_file, file)
    with refusals():
        ring = LocalKeyring.create(path, keyring_passphrase(), name=name, suite=get_suite(suite))
    print(f"{path}: keyring {name!r} ({suite}), KEK {ring.kek_id}")


@keyring_app.command("rotate")
def keyring_rotate(config_file: ConfigOpt = None) -> None:
    """Add a KEK version and re-wrap every data key of the cloud database under it."""
    from tally.cloud.config import keyring_passphrase
    from tally.cloud.deployment import engine_of, open_cipher

    with admin(config_file) as a, refusals():
        if a.settings.keys is None:
            raise typer.BadParameter("cloud.keys.keyring_file is not configured")
        cipher = open_cipher(a.settings.keys, engine_of(a.storage), keyring_passphrase())
        ring: Any = cipher.provider
        kek = ring.rotate()
        done = cipher.rotate_kek()
        a.record("keyring.rotate", None, ("keyring", kek), rewrapped=done.rewrapped)
    print(f"KEK {kek} is current; {done.rewrapped} data keys re-wrapped under it")


# -- the deployment's files ---------------------------------------------------------------


@keys_app.command("new")
def keys_new(
    path: Annotated[Path, typer.Argument(help="Where to write the encrypted key file.")],
    suite: Annotated[str, typer.Option(help="intl or gm.")] = "intl",
) -> None:
    """Create a key pair; print the public key (hex)."""
    from tally.deploy import new_key

    pub = new_key(path, suite)
    print(f"{pub.suite.name} {pub.raw.hex()}")


@keys_app.command("show")
def keys_show(path: Annotated[Path, typer.Argument(help="An encrypted key file.")]) -> None:
    """Print a key file's public key (hex); never the private key."""
    from tally.deploy import public_key

    pub = public_key(path)
    print(f"{pub.suite.name} {pub.raw.hex()}")


@certs_app.command("ca")
def certs_ca(
    directory: Annotated[Path, typer.Argument(help="Where ca.pem and ca-key.pem go.")],
    name: Annotated[str, typer.Option(help="The CA's name (its common name).")] = "tally local CA",
    days: Annotated[int, typer.Option(help="How many days the CA is valid.")] = 3650,
) -> None:
    """Create a local certificate authority: ca.pem, and ca-key.pem (mode 0600)."""
    from tally.crypto.x509ca import fingerprint, make_ca

    ca = make_ca(name, directory, days)
    until = f"{ca.cert.not_valid_after_utc:%Y-%m-%d}"
    print(f"{ca.cert_file}: CA {ca.name!r} until {until}, sha256 {fingerprint(ca.cert)}")


@certs_app.command("issue")
def certs_issue(
    directory: Annotated[Path, typer.Argument(help="Where <cn>.pem and <cn>-key.pem go.")],
    ca: Annotated[Path, typer.Option(help="The CA's directory (ca.pem, ca-key.pem).")],
    kind: Annotated[str, typer.Option(help="server or client.")],
    cn: Annotated[str, typer.Option("--cn", help="The common name; it names the files.")],
    san: Annotated[
        list[str] | None,
        typer.Option(help="DNS name or IP address (repeatable; default: the common name)."),
    ] = None,
    days: Annotated[int, typer.Option(help="How many days the certificate is valid.")] = 365,
) -> None:
    """Issue a TLS server or client certificate signed by a local CA."""
    from tally.crypto.x509ca import fingerprint, issue, load_ca

    out = issue(load_ca(ca), kind, cn, san or [], directory, days)
    until = f"{out.cert.not_valid_after_utc:%Y-%m-%d}"
    print(f"{out.cert_file}: {kind} {cn!r} until {until}, sha256 {fingerprint(out.cert)}")


@trust_app.command("add")
def trust_add(
    trust_file: Annotated[Path, typer.Argument(help="The trust file (created if missing).")],
    org: Annotated[str, typer.Argument(help="Organisation id.")],
    key: Annotated[Path, typer.Argument(help="The organisation's root key file.")],
) -> None:
    """Add an organisation's root public key to a trust file."""
    from tally.deploy import trust_add as add

    trust = add(trust_file, org, key)
    print(f"{trust_file}: {', '.join(sorted(trust.orgs))} ({trust.suite.name})")

"""``tally admin`` through typer's CliRunner on a SQLite cloud database: tenants, users (the
password from a prompt or TALLY_NEW_PASSWORD, never an argument), API tokens printed once and
usable, revocation, the audit log of every change and its verification (also of a tampered
log), the keyring; refusals are one line with status 2. And ``tally bench api`` is wired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tally.cli import app
from tally.cloud import identity as I
from tally.cloud.auditlog import AuditLog
from tally.cloud.identity_store import IdentityStore
from tally.cloud.keyring import LocalKeyring

PW = "correct horse battery"
RING_PASS = "keyring passphrase for tests"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[cloud]\norg = "bank"\ndatabase_url = "sqlite:///{tmp_path / "cloud.db"}"\n'
        "[cloud.identity]\nenabled = true\nscrypt_log_n = 10\n"
        f'[cloud.keys]\nkeyring_file = "{tmp_path / "ring"}"\n'
    )
    return path


def tally(cfg: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [*args, "-c", str(cfg)], env=env, input=stdin)


def engine(cfg: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{cfg.parent / 'cloud.db'}")


def test_tenants_users_and_tokens(cfg: Path) -> None:
    r = tally(cfg, "admin", "tenant", "add", "wh-1", "--kind", "warehouse", "--name", "WH One",
              "--site", "s1", "--site", "s2")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stdout == "tenant wh-1: warehouse, 'WH One', sites s1, s2\n"
    roles = ("--role", "operator", "--role", "auditor")
    r = tally(cfg, "admin", "user", "add", "wh-1", "olga", *roles, env={"TALLY_NEW_PASSWORD": PW})
    assert r.exit_code == 0 and r.stdout == "user olga of wh-1: auditor, operator\n", r.output
    r = tally(cfg, "admin", "user", "add", "wh-1", "pete", "--role", "viewer",
              stdin=f"{PW}\n{PW}\n")  # the prompt, asked twice  # fmt: skip
    assert r.exit_code == 0, r.output
    assert PW not in r.stdout
    r = tally(cfg, "admin", "user", "list", "wh-1")
    assert r.exit_code == 0
    assert r.stdout == "olga\tauditor,operator\tactive\npete\tviewer\tactive\n"

    r = tally(cfg, "admin", "token", "issue", "wh-1", "--user", "olga", "--scope",
              "read:telemetry", "--scope", "read:receipts", "--ttl", "30d")  # fmt: skip
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert r.stdout == token + "\n" and token.startswith("tly_") and len(token) == 47
    token_id = I.secret_id(token)
    assert f"token {token_id} of wh-1 for olga: read:receipts, read:telemetry" in r.stderr
    assert token not in r.stderr

    store = IdentityStore(engine(cfg), I.IdentityPolicy(scrypt_log_n=10))
    who = store.authenticate_token(token)
    assert (who.tenant, who.user, who.sites) == ("wh-1", "olga", frozenset({"s1", "s2"}))
    info = store.token(token_id)
    assert info.expires - info.created == 30 * 86_400_000
    assert store.login("pete", PW).principal.roles == frozenset({"viewer"})

    r = tally(cfg, "admin", "token", "revoke", token_id)
    assert r.exit_code == 0 and r.stdout.startswith(f"token {token_id} of wh-1 revoked at ")
    with pytest.raises(I.TokenRefused, match="API token revoked at"):
        store.authenticate_token(token)

    audit = AuditLog(engine(cfg))
    assert [(e.action, e.tenant, e.resource_kind) for e in audit.entries()] == [
        ("tenant.create", "wh-1", "tenant"),
        ("user.create", "wh-1", "user"),
        ("user.create", "wh-1", "user"),
        ("token.issue", "wh-1", "api_token"),
        ("token.revoke", "wh-1", "api_token"),
    ]
    logged = json.dumps([dict(e.detail) for e in audit.entries()])
    assert token not in logged and PW not in logged
    assert all(e.actor.startswith("cli:") for e in audit.entries())
    with engine(cfg).connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM users")).all())
    assert PW not in dump and "scrypt$" in dump


def test_refusals_are_one_line_and_change_nothing(cfg: Path) -> None:
    assert tally(cfg, "admin", "tenant", "add", "b", "--kind", "bank", "--name", "B").exit_code == 0
    cases = [
        (("admin", "tenant", "add", "b", "--kind", "bank", "--name", "B"), "'b' already exists"),
        (("admin", "tenant", "add", "x", "--kind", "shop", "--name", "X"), "kind 'shop'"),
        (("admin", "user", "list", "nope"), "no tenant 'nope'"),
        (("admin", "user", "add", "b", "ann", "--role", "root"), "role 'root' is not one of"),
        (("admin", "token", "issue", "b", "--scope", "read:all!"), "scope 'read:all!' must be"),
        (("admin", "token", "revoke", "00" * 32), f"no API token with id '{'00' * 32}'"),
    ]  # fmt: skip
    for args, problem in cases:
        r = tally(cfg, *args, env={"TALLY_NEW_PASSWORD": PW})
        assert r.exit_code == 2, (args, r.output)
        assert r.stderr.startswith("tally: ") and problem in r.stderr, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    r = tally(cfg, "admin", "user", "add", "b", "ann", "--role", "viewer",
              env={"TALLY_NEW_PASSWORD": "short"})  # fmt: skip
    assert r.exit_code == 2 and "password" in r.stderr and "short" not in r.stderr
    r = tally(cfg, "admin", "token", "issue", "b", "--scope", "read:chain", "--ttl", "30 days")
    assert r.exit_code == 2 and "'30 days' is not a lifetime like 30d" in r.output
    store = IdentityStore(engine(cfg), I.IdentityPolicy(scrypt_log_n=10))
    assert store.list_users("b") == [] and store.list_tokens("b") == []
    assert [e.action for e in AuditLog(engine(cfg)).entries()] == ["tenant.create"]


def test_audit_verify_finds_a_tampered_entry(cfg: Path, tmp_path: Path) -> None:
    for t in ("a", "b", "c"):
        assert tally(cfg, "admin", "tenant", "add", t, "--kind", "bank", "--name", t).exit_code == 0
    r = tally(cfg, "admin", "audit", "verify")
    assert r.exit_code == 0 and r.stdout == "audit log: 3 entries, 0 anchors: intact\n"
    with engine(cfg).begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1"))
    r = tally(cfg, "admin", "audit", "verify")
    assert r.exit_code == 1
    assert "entry 1: the stored hash" in r.stdout and "broken from entry 1" in r.stdout
    r = tally(cfg, "admin", "audit", "verify", "--peer-state", str(tmp_path / "none.sqlite"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_keyring_create_and_rotate(cfg: Path, tmp_path: Path) -> None:
    r = tally(cfg, "admin", "keyring", "create")
    assert r.exit_code == 2 and "TALLY_KEYRING_PASSPHRASE is not set" in r.stderr
    env = {"TALLY_KEYRING_PASSPHRASE": RING_PASS}
    r = tally(cfg, "admin", "keyring", "create", env=env)
    assert (
        r.exit_code == 0
        and r.stdout == f"{tmp_path / 'ring'}: keyring 'main' (intl), KEK local:main:1\n"
    )
    assert (tmp_path / "ring").stat().st_mode & 0o777 == 0o600
    r = tally(cfg, "admin", "keyring", "create", env=env)
    assert r.exit_code == 2 and "exists; open it instead" in r.stderr
    # a data key wrapped under KEK 1, then the rotation re-wraps it under KEK 2
    from tally.cloud.fieldcrypt import FieldCipher, FieldRef

    assert tally(cfg, "admin", "audit", "verify").exit_code == 0  # migrates the database
    cipher = FieldCipher(engine(cfg), LocalKeyring.open(tmp_path / "ring", RING_PASS))
    sealed = cipher.encrypt("acme", FieldRef("t", "c", 1), b"6222 0000")
    r = tally(cfg, "admin", "keyring", "rotate", env=env)
    assert (
        r.exit_code == 0
        and r.stdout == "KEK local:main:2 is current; 1 data keys re-wrapped under it\n"
    )
    fresh = FieldCipher(engine(cfg), LocalKeyring.open(tmp_path / "ring", RING_PASS))
    assert fresh.kek_ids_in_use() == {"local:main:2"}
    assert fresh.decrypt("acme", FieldRef("t", "c", 1), sealed) == b"6222 0000"
    r = tally(cfg, "admin", "keyring", "rotate", env={"TALLY_KEYRING_PASSPHRASE": "wrong"})
    assert r.exit_code == 2 and "wrong passphrase or altered file" in r.stderr
    assert RING_PASS not in r.output


def test_secrets_in_the_environment_do_not_reach_the_configuration(cfg: Path) -> None:
    from tally.cli_admin import load_config

    env = {"TALLY_KEYRING_PASSPHRASE": RING_PASS, "TALLY_NEW_PASSWORD": PW}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.setenv("TALLY_CLOUD__PORT", "8443")
        data = load_config(cfg)
    assert data["cloud"]["port"] == 8443
    assert RING_PASS not in repr(data) and PW not in repr(data)


def test_a_configuration_without_identity_is_pointed_out(cfg: Path) -> None:
    cfg.write_text(cfg.read_text().replace("enabled = true", "enabled = false"))
    r = tally(cfg, "admin", "tenant", "add", "b", "--kind", "bank", "--name", "B")
    assert r.exit_code == 0 and "the cloud will not use these accounts" in r.stderr


def test_the_api_benchmark_is_a_command() -> None:
    r = CliRunner().invoke(app, ["bench", "api", "--help"])
    assert r.exit_code == 0
    for option in ("--scale", "--clients", "--seconds", "--json", "--database-url"):
        assert option in r.stdout

"""Identity in the database, on SQLite and PostgreSQL: migration 0003, administration,
login and lockout, sessions, API tokens. Every refusal is checked by its exact text, and
that it changed nothing it should not have."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tally.cloud import identity as I
from tally.cloud import identity_store as S
from tally.cloud.errors import BadRequest, Conflict, NotFound
from tally.cloud.storage import migrate as M
from tally.cloud.storage import open_storage
from tally.cloud.storage.sql import SqlStorage

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
PW = "correct horse battery"
FAST = I.IdentityPolicy(scrypt_log_n=10)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh database of each kind, migrated to 0003."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cloud.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    storage = open_storage(url)
    assert isinstance(storage, SqlStorage)
    M.upgrade(storage.engine, "0003")
    yield storage.engine
    storage.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: sa.Engine, clock: Clock) -> S.IdentityStore:
    s = S.IdentityStore(engine, FAST, clock)
    s.create_tenant("bank", "bank", "First Bank")
    s.create_tenant("wh", "warehouse", "Warehouse Co", sites=["wh2", "wh1"])
    s.create_user("bank", "alice", PW, ["credit_officer", "viewer"])
    return s


def dump(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every identity row, to show that a refused call changed nothing."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in S.metadata.sorted_tables
        }


def refused(exc_type: type[Exception], message: str, fn: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(exc_type) as exc:
        fn(*args, **kw)
    assert str(exc.value) == message


# -- migration ---------------------------------------------------------------------------
def _schema_diff(engine: sa.Engine) -> list[Any]:
    def mine(name: str | None, type_: str, parent: Any) -> bool:
        return type_ != "table" or name in S.TABLES

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_name": mine})
        return list(compare_metadata(ctx, S.metadata))


def test_migration_matches_the_tables_and_downgrades_cleanly(engine: sa.Engine) -> None:
    assert M.current(engine) == "0003"
    assert set(S.TABLES) <= set(sa.inspect(engine).get_table_names())
    assert _schema_diff(engine) == []
    M.downgrade(engine, "0002")
    assert M.current(engine) == "0002"
    names = set(sa.inspect(engine).get_table_names())
    assert not names & set(S.TABLES)
    assert {"batches", "items", "anchors"} <= names
    M.upgrade(engine, "0003")
    assert _schema_diff(engine) == []
    s = S.IdentityStore(engine, FAST, Clock())
    s.create_tenant("bank", "bank", "First Bank")
    s.create_user("bank", "alice", PW, ["viewer"])
    assert s.login("alice", PW).principal.user == "alice"
    M.downgrade(engine, "0002")  # with rows in every table but api_tokens
    assert not set(sa.inspect(engine).get_table_names()) & set(S.TABLES)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_tables_also_work_from_create_all(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = sa.create_engine(url)
    try:
        S.metadata.create_all(engine)
        s = S.IdentityStore(engine, FAST, Clock())
        s.create_tenant("bank", "bank", "First Bank")
        s.create_user("bank", "alice", PW, ["viewer"])
        new = s.login("alice", PW)
        assert s.authenticate_session(new.secret).user == "alice"
        tok = s.issue_token("bank", ["read:telemetry"])
        assert s.authenticate_token(tok.token).scopes == {"read:telemetry"}
    finally:
        engine.dispose()


# -- administration ----------------------------------------------------------------------
def test_tenants_and_users_round_trip(store: S.IdentityStore, clock: Clock) -> None:
    assert store.tenant("wh") == I.Tenant("wh", "warehouse", "Warehouse Co", ("wh1", "wh2"), T0)
    alice = store.user("alice")
    assert (alice.tenant, alice.roles, alice.failed, alice.disabled) == (
        "bank", ("credit_officer", "viewer"), 0, False,
    )  # fmt: skip
    clock.now += 5
    store.create_user("bank", "bob", PW + "!", ["admin"])
    assert [u.username for u in store.list_users("bank")] == ["alice", "bob"]
    assert store.user("bob").created == T0 + 5
    assert store.set_sites("wh", ["wh3"]).sites == ("wh3",)


# fmt: off
def test_bad_administration_is_refused_precisely_and_changes_nothing(
    store: S.IdentityStore, engine: sa.Engine
) -> None:
    before = dump(engine)
    refused(Conflict, "tenant 'bank' already exists", store.create_tenant, "bank", "bank", "B")
    refused(BadRequest, "tenant kind 'banc' is not one of bank, core_enterprise, supplier, "
            "warehouse, logistics, regulator, government", store.create_tenant, "b2", "banc", "B")
    refused(Conflict, "username 'alice' is taken", store.create_user, "bank", "alice", PW + "x",
            ["viewer"])
    refused(NotFound, "no tenant 'nobank'", store.create_user, "nobank", "carol", PW, ["viewer"])
    refused(BadRequest, "password must be at least 12 characters (got 6)", store.create_user,
            "bank", "carol", "secret", ["viewer"])
    refused(BadRequest, "role 'root' is not one of admin, operator, credit_officer, auditor, "
            "viewer", store.create_user, "bank", "carol", PW, ["root"])
    refused(BadRequest, "role 'root' is not one of admin, operator, credit_officer, auditor, "
            "viewer", store.set_roles, "alice", ["viewer", "root"])
    refused(NotFound, "no user 'carol'", store.set_roles, "carol", ["viewer"])
    refused(NotFound, "no user 'carol'", store.disable_user, "carol")
    refused(NotFound, "no user 'carol'", store.reset_password, "carol", PW)
    refused(BadRequest, "password must be at most 1024 characters (got 1025)",
            store.reset_password, "alice", "x" * 1025)
    refused(BadRequest, "site ' wh9' must be 1 to 200 characters without surrounding spaces",
            store.set_sites, "wh", ["wh9", " wh9"])
    assert dump(engine) == before
# fmt: on


def test_only_the_password_hash_is_stored(store: S.IdentityStore, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        stored = conn.execute(sa.select(S.users.c.password)).scalar_one()
    assert stored.startswith("scrypt$10$8$1$") and PW not in stored
    assert I.verify_password(PW, stored)


# -- login and lockout -------------------------------------------------------------------
def test_login_gives_a_session_principal(store: S.IdentityStore, engine: sa.Engine) -> None:
    new = store.login("Alice", PW)  # usernames are matched in lower case
    assert new.principal == I.Principal(
        "bank", "bank", "alice", frozenset({"credit_officer", "viewer"}), frozenset(), "session"
    )
    assert new.expires == T0 + 12 * 3_600_000
    with engine.connect() as conn:
        row = conn.execute(sa.select(S.sessions)).one()
    assert row.id == hashlib.sha256(new.secret.encode()).hexdigest()
    assert new.secret not in repr(tuple(row))
    assert (row.created, row.last_seen, row.expires, row.csrf) == (T0, T0, new.expires, new.csrf)


def test_wrong_password_and_unknown_user_get_the_same_refusal_and_work(
    store: S.IdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def spy(data: bytes, **kw: Any) -> bytes:
        calls.append((kw["n"], kw["r"], kw["p"]))
        return real(data, **kw)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    refused(I.LoginRefused, "invalid username or password", store.login, "alice", PW + "x")
    assert calls == [(1024, 8, 1)]
    refused(I.LoginRefused, "invalid username or password", store.login, "mallory", PW)
    assert calls == [(1024, 8, 1)] * 2  # the dummy hash was computed, at the same cost
    assert store.user("alice").failed == 1


def test_five_failures_lock_the_account_even_for_the_right_password(
    store: S.IdentityStore, clock: Clock, engine: sa.Engine
) -> None:
    for i in range(5):
        clock.now = T0 + i * 1000
        refused(I.LoginRefused, "invalid username or password", store.login, "alice", "guess")
    until = T0 + 4000 + 15 * MIN
    assert store.user("alice").locked_until == until
    locked = "account locked until 2025-01-01T00:15:04Z"
    clock.now = T0 + 5000
    refused(I.AccountLocked, locked, store.login, "alice", PW)  # the 6th, right password
    before = dump(engine)
    clock.now = until - 1
    refused(I.AccountLocked, locked, store.login, "alice", "guess")
    refused(I.AccountLocked, locked, store.login, "alice", PW)
    assert dump(engine) == before  # refusals while locked neither count nor extend the lock
    assert not before["sessions"]
    clock.now = until
    assert store.login("alice", PW).principal.user == "alice"
    assert (store.user("alice").failed, store.user("alice").locked_until) == (0, None)


def test_a_success_resets_the_count_and_a_lock_counts_afresh(
    store: S.IdentityStore, clock: Clock
) -> None:
    for _ in range(4):
        refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", "guess")
    store.login("alice", PW)
    for _ in range(4):
        refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", "guess")
    assert store.user("alice").locked_until is None
    refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", "guess")
    clock.now = store.user("alice").locked_until or 0
    refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", "guess")
    assert store.user("alice").failed == 1
    assert store.unlock("alice").failed == 0


def test_the_lockout_is_configurable(engine: sa.Engine, clock: Clock) -> None:
    policy = I.IdentityPolicy(scrypt_log_n=10, lockout_failures=2, lockout_ms=90_000)
    s = S.IdentityStore(engine, policy, clock)
    s.create_tenant("bank", "bank", "First Bank")
    s.create_user("bank", "alice", PW, ["viewer"])
    for _ in range(2):
        refused(I.LoginRefused, I.INVALID_LOGIN, s.login, "alice", "guess")
    refused(I.AccountLocked, "account locked until 2025-01-01T00:01:30Z", s.login, "alice", PW)


def test_concurrent_failures_lock_exactly_once(store: S.IdentityStore) -> None:
    start = threading.Barrier(8)

    def attempt(_: int) -> str:
        start.wait(timeout=30)
        try:
            store.login("alice", "guess")
        except I.LoginRefused as exc:
            return str(exc)
        return "logged in"

    with ThreadPoolExecutor(8) as pool:
        answers = sorted(pool.map(attempt, range(8)))
    locked = store.user("alice")
    assert locked.locked_until is not None and locked.failed == 0
    assert (
        answers
        == [f"account locked until {I.iso_ms(locked.locked_until)}"] * 3 + [I.INVALID_LOGIN] * 5
    )


def test_disabled_accounts_are_refused_and_lose_their_sessions(
    store: S.IdentityStore, engine: sa.Engine
) -> None:
    new = store.login("alice", PW)
    tok = store.issue_token("bank", ["read:telemetry"], user="alice")
    assert store.disable_user("alice").disabled
    refused(I.SessionRefused, "session unknown or ended", store.authenticate_session, new.secret)
    refused(I.LoginRefused, "account disabled", store.login, "alice", PW)
    refused(I.LoginRefused, "invalid username or password", store.login, "alice", "guess")
    refused(I.TokenRefused, "the API token's user 'alice' is disabled", store.authenticate_token,
            tok.token)  # fmt: skip
    refused(BadRequest, "user 'alice' is disabled", store.issue_token, "bank", ["read:x"],
            user="alice")  # fmt: skip
    store.enable_user("alice")
    assert store.authenticate_token(tok.token).user == "alice"
    assert store.login("alice", PW).principal.user == "alice"


def test_login_rehashes_when_the_parameters_changed(engine: sa.Engine, clock: Clock) -> None:
    old = S.IdentityStore(engine, FAST, clock)
    old.create_tenant("bank", "bank", "First Bank")
    old.create_user("bank", "alice", PW, ["viewer"])
    query = sa.select(S.users.c.password)
    with engine.connect() as conn:
        first = conn.execute(query).scalar_one()
    old.login("alice", PW)
    with engine.connect() as conn:
        assert conn.execute(query).scalar_one() == first  # same parameters: untouched
    new = S.IdentityStore(engine, I.IdentityPolicy(scrypt_log_n=11, scrypt_r=4), clock)
    refused(I.LoginRefused, I.INVALID_LOGIN, new.login, "alice", "guess")
    with engine.connect() as conn:
        assert conn.execute(query).scalar_one() == first  # a failure rehashes nothing
    new.login("alice", PW)
    with engine.connect() as conn:
        second = conn.execute(query).scalar_one()
    assert second.startswith("scrypt$11$4$1$") and I.verify_password(PW, second)
    assert new.login("alice", PW).principal.user == "alice"


def test_reset_password_lifts_the_lock_and_ends_sessions(store: S.IdentityStore) -> None:
    new = store.login("alice", PW)
    for _ in range(5):
        refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", "guess")
    store.reset_password("alice", "a new long passphrase")
    refused(I.SessionRefused, I.SESSION_UNKNOWN, store.authenticate_session, new.secret)
    refused(I.LoginRefused, I.INVALID_LOGIN, store.login, "alice", PW)
    assert store.login("alice", "a new long passphrase").principal.user == "alice"


# -- sessions ----------------------------------------------------------------------------
def test_idle_sessions_expire(store: S.IdentityStore, clock: Clock, engine: sa.Engine) -> None:
    new = store.login("alice", PW)
    for _ in range(3):  # activity keeps the session alive
        clock.now += 30 * MIN - 1
        assert store.authenticate_session(new.secret).user == "alice"
    last = clock.now
    clock.now += 30 * MIN
    refused(I.SessionRefused, f"session expired at {I.iso_ms(last + 30 * MIN)} after 30 min "
            "without activity", store.authenticate_session, new.secret)  # fmt: skip
    assert dump(engine)["sessions"] == []
    refused(I.SessionRefused, I.SESSION_UNKNOWN, store.authenticate_session, new.secret)


def test_sessions_end_after_twelve_hours_whatever_the_activity(
    store: S.IdentityStore, clock: Clock
) -> None:
    new = store.login("alice", PW)
    while clock.now + 20 * MIN < new.expires:
        clock.now += 20 * MIN
        store.authenticate_session(new.secret)
    clock.now = new.expires
    refused(I.SessionRefused, "session expired at 2025-01-01T12:00:00Z: sessions last at most "
            "12 h", store.authenticate_session, new.secret)  # fmt: skip


def test_forged_and_ended_sessions_are_unknown(store: S.IdentityStore) -> None:
    new = store.login("alice", PW)
    for forged in (I.new_session_secret(), "", new.secret + "x", I.secret_id(new.secret)):
        refused(I.SessionRefused, I.SESSION_UNKNOWN, store.authenticate_session, forged)
    assert store.logout(new.secret) and not store.logout(new.secret)
    refused(I.SessionRefused, I.SESSION_UNKNOWN, store.authenticate_session, new.secret)


def test_state_changing_requests_need_the_csrf_token(
    store: S.IdentityStore, clock: Clock, engine: sa.Engine
) -> None:
    new = store.login("alice", PW)
    other = store.login("alice", PW)
    clock.now += MIN
    before = dump(engine)
    refused(I.CsrfRefused, "this request needs the session's CSRF token",
            store.authenticate_session, new.secret, unsafe=True)  # fmt: skip
    refused(I.CsrfRefused, "CSRF token does not match the session",
            store.authenticate_session, new.secret, other.csrf, unsafe=True)  # fmt: skip
    assert dump(engine) == before  # a refused request is no activity
    assert store.authenticate_session(new.secret, new.csrf, unsafe=True).user == "alice"
    assert store.authenticate_session(new.secret).user == "alice"  # reads need none


def test_roles_and_sites_are_read_fresh_and_expired_sessions_purged(
    store: S.IdentityStore, clock: Clock
) -> None:
    store.create_user("wh", "walt", PW, ["operator"])
    new = store.login("walt", PW)
    assert new.principal.sites == {"wh1", "wh2"}
    store.set_roles("walt", ["admin"])
    store.set_sites("wh", ["wh3"])
    p = store.authenticate_session(new.secret)
    assert (p.tenant_kind, p.roles, p.sites) == (
        "warehouse",
        frozenset({"admin"}),
        frozenset({"wh3"}),
    )
    clock.now += 10 * MIN
    store.login("alice", PW)
    clock.now += 25 * MIN
    assert store.purge_sessions() == 1
    assert store.purge_sessions() == 0


# -- API tokens --------------------------------------------------------------------------
def test_tokens_authenticate_and_only_their_hash_is_stored(
    store: S.IdentityStore, engine: sa.Engine
) -> None:
    tenant_wide = store.issue_token("wh", ["read:telemetry", "write:receipts"], ttl_ms=MIN)
    as_alice = store.issue_token("bank", ["read:loans"], user="alice")
    assert tenant_wide.token.startswith("tly_")
    assert tenant_wide.info == I.TokenInfo(
        I.secret_id(tenant_wide.token), "wh", None, ("read:telemetry", "write:receipts"), T0,
        T0 + MIN,
    )  # fmt: skip
    assert store.authenticate_token(tenant_wide.token) == I.Principal(
        "wh", "warehouse", None, frozenset(), frozenset({"read:telemetry", "write:receipts"}),
        "token", frozenset({"wh1", "wh2"}),
    )  # fmt: skip
    p = store.authenticate_token(as_alice.token)
    assert (p.user, p.roles, p.via) == ("alice", frozenset({"credit_officer", "viewer"}), "token")
    assert as_alice.info.expires == T0 + 90 * 86_400_000
    stored = repr(dump(engine)["api_tokens"])
    assert tenant_wide.token not in stored and as_alice.token not in stored
    assert store.list_tokens("bank") == [as_alice.info]


def test_forged_expired_and_revoked_tokens_are_refused(
    store: S.IdentityStore, clock: Clock
) -> None:
    tok = store.issue_token("bank", ["read:telemetry"], ttl_ms=MIN)
    refused(I.TokenRefused, "unknown API token", store.authenticate_token, I.new_api_token())
    refused(I.TokenRefused, "unknown API token", store.authenticate_token, tok.token[:-1] + "A"
            if not tok.token.endswith("A") else tok.token[:-1] + "B")  # fmt: skip
    refused(I.TokenRefused, "an API token starts with 'tly_'", store.authenticate_token,
            tok.token[4:])  # fmt: skip
    clock.now = T0 + MIN - 1
    assert store.authenticate_token(tok.token).tenant == "bank"
    clock.now = T0 + MIN
    refused(I.TokenRefused, "API token expired at 2025-01-01T00:01:00Z", store.authenticate_token,
            tok.token)  # fmt: skip
    live = store.issue_token("bank", ["read:telemetry"])
    clock.now += 1500
    assert store.revoke_token(live.info.id).revoked == T0 + MIN + 1500
    clock.now += 1000
    assert store.revoke_token(live.info.id).revoked == T0 + MIN + 1500  # the first time stays
    refused(I.TokenRefused, "API token revoked at 2025-01-01T00:01:01.500Z",
            store.authenticate_token, live.token)  # fmt: skip


# fmt: off
def test_bad_token_requests_are_refused_precisely_and_store_nothing(
    store: S.IdentityStore, engine: sa.Engine
) -> None:
    store.create_user("wh", "walt", PW, ["operator"])
    before = dump(engine)
    refused(BadRequest, "an API token needs at least one scope, e.g. 'read:telemetry'",
            store.issue_token, "bank", [])
    refused(BadRequest, "scope 'read' must be '<read|write|admin>:<resource>' with a lower-case "
            "resource of at most 40 characters, e.g. 'read:telemetry'", store.issue_token,
            "bank", ["read"])
    refused(BadRequest, "token lifetime 0 ms must be between 1 and 31622400000 ms",
            store.issue_token, "bank", ["read:x"], ttl_ms=0)
    refused(NotFound, "no tenant 'acme'", store.issue_token, "acme", ["read:x"])
    refused(NotFound, "no user 'carol'", store.issue_token, "bank", ["read:x"], user="carol")
    refused(BadRequest, "user 'walt' belongs to tenant 'wh', not 'bank'", store.issue_token,
            "bank", ["read:x"], user="walt")
    refused(NotFound, f"no API token with id {'0' * 64!r}", store.revoke_token, "0" * 64)
    assert dump(engine) == before
# fmt: on

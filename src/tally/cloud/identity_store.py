"""Tenants, users, sessions and API tokens in the cloud database (migration 0003).

=============  ============================================================================
table          holds
=============  ============================================================================
tenants        id (the organisation), kind (a consortium role), name, sites (JSON list)
users          tenant, unique username, scrypt hash, roles (JSON list), consecutive
               failed logins, locked_until, disabled
sessions       id = SHA-256 (hex) of the cookie secret, user, created, last_seen,
               expires (absolute), csrf token
api_tokens     id = SHA-256 (hex) of the token, tenant, user (optional), scopes (JSON
               list), created, expires, revoked (time, or NULL)
=============  ============================================================================

:class:`IdentityStore` is the whole interface: login, session and token authentication
returning a :class:`~tally.cloud.identity.Principal`, and the administration of tenants and
users. Every time comes from the injected clock (ms). Bad input raises ``BadRequest`` naming
the field and rule, an unknown tenant or user ``NotFound``, a duplicate ``Conflict`` — and
none of them changes anything. Calls are synchronous and a login costs one scrypt hash
(~100 ms at the default cost): call them from a worker thread in an async server.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.cloud import identity as I
from tally.cloud.errors import BadRequest, Conflict, NotFound
from tally.cloud.identity import Clock, IdentityPolicy, Principal, TokenInfo

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sites", sa.Text(), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column(
        "tenant", sa.String(64), sa.ForeignKey("tenants.id", name="fk_users_tenant"),
        nullable=False, index=True,
    ),
    sa.Column("username", sa.String(100), nullable=False),
    sa.Column("password", sa.Text(), nullable=False),
    sa.Column("roles", sa.Text(), nullable=False),
    sa.Column("failed", sa.Integer(), nullable=False),
    sa.Column("locked_until", sa.BigInteger(), nullable=True),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.UniqueConstraint("username", name="uq_users_username"),
)  # fmt: skip

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "user", PK, sa.ForeignKey("users.id", name="fk_sessions_user"), nullable=False,
        index=True,
    ),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("last_seen", sa.BigInteger(), nullable=False),
    sa.Column("expires", sa.BigInteger(), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
)  # fmt: skip

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "tenant", sa.String(64), sa.ForeignKey("tenants.id", name="fk_api_tokens_tenant"),
        nullable=False, index=True,
    ),
    sa.Column("user", PK, sa.ForeignKey("users.id", name="fk_api_tokens_user"), nullable=True),
    sa.Column("scopes", sa.Text(), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("expires", sa.BigInteger(), nullable=False),
    sa.Column("revoked", sa.BigInteger(), nullable=True),
)  # fmt: skip

TABLES = ("tenants", "users", "sessions", "api_tokens")


def _list(value: str) -> tuple[str, ...]:
    return tuple(json.loads(value))


def _user(row: Any) -> I.User:
    return I.User(
        row.id, row.tenant, row.username, _list(row.roles), row.failed, row.locked_until,
        row.created, bool(row.disabled),
    )  # fmt: skip


_PRINCIPAL_COLS = (
    users.c.id, users.c.tenant, users.c.username, users.c.password, users.c.roles,
    users.c.failed, users.c.locked_until, users.c.disabled, tenants.c.kind, tenants.c.sites,
)  # fmt: skip
_USER_JOIN = users.join(tenants, users.c.tenant == tenants.c.id)


class IdentityStore:
    """Identity over one SQLAlchemy engine whose schema is at migration 0003 or later."""

    def __init__(
        self, engine: Engine, policy: IdentityPolicy | None = None, clock: Clock = I.wall_clock_ms
    ) -> None:
        self.engine = engine
        self.policy = policy or IdentityPolicy()
        self.clock = clock
        # An unknown username is checked against this, so it costs the same scrypt work.
        self._dummy = I.hash_password(secrets.token_urlsafe(16), self.policy.scrypt)

    # -- login and sessions --------------------------------------------------------------
    def login(self, username: str, password: str) -> I.NewSession:
        """Open a session, or raise LoginRefused / AccountLocked (nothing reveals whether
        an unknown username exists: the refusal and the hashing work are the same)."""
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*_PRINCIPAL_COLS)
                .select_from(_USER_JOIN)
                .where(users.c.username == username.lower())
            ).first()
        if row is None:
            I.verify_password(password, self._dummy)
            raise I.LoginRefused(I.INVALID_LOGIN)
        ok = I.verify_password(password, row.password)  # computed even when locked
        if row.locked_until is not None and now < row.locked_until:
            raise I.AccountLocked(row.locked_until)
        if not ok:
            until = self._failed(row.id, now)
            raise I.LoginRefused(I.INVALID_LOGIN) if until is None else I.AccountLocked(until)
        if row.disabled:
            raise I.LoginRefused(I.ACCOUNT_DISABLED)
        values: dict[str, Any] = {"failed": 0, "locked_until": None}
        if I.needs_rehash(row.password, self.policy.scrypt):
            values["password"] = I.hash_password(password, self.policy.scrypt)
        secret, csrf = I.new_session_secret(), I.new_session_secret()
        expires = now + self.policy.session_absolute_ms
        with self.engine.begin() as conn:
            unlocked = sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now)
            done = conn.execute(
                sa.update(users).where(users.c.id == row.id, unlocked).values(**values)
            )
            if done.rowcount != 1:  # locked by concurrent failures meanwhile
                until = conn.execute(
                    sa.select(users.c.locked_until).where(users.c.id == row.id)
                ).scalar_one()
                raise I.AccountLocked(until)
            conn.execute(
                sa.insert(sessions).values(
                    id=I.secret_id(secret), user=row.id, created=now, last_seen=now,
                    expires=expires, csrf=csrf,
                )
            )  # fmt: skip
        return I.NewSession(secret, csrf, self._principal(row, "session", ()), expires)

    def _failed(self, user_id: int, now: int) -> int | None:
        """Count a failure unless the account is locked; returns the lock's end if it is."""
        unlocked = sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now)
        mine = users.c.id == user_id
        with self.engine.begin() as conn:
            q = sa.update(users).where(mine, unlocked).values(failed=users.c.failed + 1)
            if conn.execute(q).rowcount != 1:  # locked by a concurrent failure meanwhile
                until: int = conn.execute(sa.select(users.c.locked_until).where(mine)).scalar_one()
                return until
            failed = conn.execute(sa.select(users.c.failed).where(mine)).scalar_one()
            if failed >= self.policy.lockout_failures:
                lock = {"failed": 0, "locked_until": now + self.policy.lockout_ms}
                conn.execute(sa.update(users).where(mine).values(**lock))
        return None

    def authenticate_session(
        self, secret: str, csrf: str | None = None, *, unsafe: bool = False
    ) -> Principal:
        """The principal of a live session, whose idle time starts again. ``unsafe`` (a
        state-changing request) also needs the session's CSRF token. Raises SessionRefused
        (the session is then ended) or CsrfRefused."""
        now, sid, p = self.clock(), I.secret_id(secret), self.policy
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(*_PRINCIPAL_COLS, sessions.c.last_seen, sessions.c.expires,
                          sessions.c.csrf)
                .select_from(_USER_JOIN.join(sessions, sessions.c.user == users.c.id))
                .where(sessions.c.id == sid)
            ).first()  # fmt: skip
            if row is None:
                raise I.SessionRefused(I.SESSION_UNKNOWN)
            reason = None
            if now >= row.expires:
                reason = (
                    f"session expired at {I.iso_ms(row.expires)}: sessions last at most "
                    f"{I.span(p.session_absolute_ms)}"
                )
            elif now >= row.last_seen + p.session_idle_ms:
                reason = (
                    f"session expired at {I.iso_ms(row.last_seen + p.session_idle_ms)} after "
                    f"{I.span(p.session_idle_ms)} without activity"
                )
            elif row.disabled:
                reason = I.ACCOUNT_DISABLED
            if reason is not None:
                conn.execute(sa.delete(sessions).where(sessions.c.id == sid))
        if reason is not None:  # raised after the commit that ended the session
            raise I.SessionRefused(reason)
        if unsafe and not csrf:
            raise I.CsrfRefused(I.CSRF_MISSING)
        if unsafe and not hmac.compare_digest(str(csrf).encode(), row.csrf.encode()):
            raise I.CsrfRefused(I.CSRF_MISMATCH)
        with self.engine.begin() as conn:
            conn.execute(sa.update(sessions).where(sessions.c.id == sid).values(last_seen=now))
        return self._principal(row, "session", ())

    def logout(self, secret: str) -> bool:
        """End a session; False when there was none."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(sessions).where(sessions.c.id == I.secret_id(secret)))
        return done.rowcount == 1

    def purge_sessions(self) -> int:
        """Delete every expired session (idle or absolute); returns how many."""
        now = self.clock()
        dead = sa.or_(
            sessions.c.expires <= now,
            sessions.c.last_seen <= now - self.policy.session_idle_ms,
        )
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(sessions).where(dead)).rowcount

    @staticmethod
    def _principal(row: Any, via: Any, scopes: Iterable[str]) -> Principal:
        return Principal(
            tenant=row.tenant, tenant_kind=row.kind, user=row.username,
            roles=frozenset(_list(row.roles)), scopes=frozenset(scopes), via=via,
            sites=frozenset(_list(row.sites)),
        )  # fmt: skip

    # -- API tokens ----------------------------------------------------------------------
    def issue_token(
        self, tenant: str, scopes: Iterable[str], *, user: str | None = None,
        ttl_ms: int | None = None,
    ) -> I.IssuedToken:  # fmt: skip
        """A new API token of ``tenant`` (acting as ``user`` when given, with its roles)."""
        scope_list = I.check_scopes(scopes)
        ttl = I.check_ttl(self.policy.token_ttl_ms if ttl_ms is None else ttl_ms, self.policy)
        now = self.clock()
        token = I.new_api_token()
        with self.engine.begin() as conn:
            self._tenant_row(conn, tenant)
            user_id = None
            if user is not None:
                u = self._user_row(conn, user)
                if u.tenant != tenant:
                    raise BadRequest(
                        f"user {user!r} belongs to tenant {u.tenant!r}, not {tenant!r}"
                    )
                if u.disabled:
                    raise BadRequest(f"user {user!r} is disabled")
                user_id = u.id
            info = TokenInfo(I.secret_id(token), tenant, user, tuple(scope_list), now, now + ttl)
            conn.execute(
                sa.insert(api_tokens).values(
                    id=info.id, tenant=tenant, user=user_id, scopes=json.dumps(scope_list),
                    created=now, expires=info.expires, revoked=None,
                )
            )  # fmt: skip
        return I.IssuedToken(token, info)

    def authenticate_token(self, token: str) -> Principal:
        """The principal of a live API token, or TokenRefused."""
        if not token.startswith(I.TOKEN_PREFIX):
            raise I.TokenRefused(I.TOKEN_MALFORMED)
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens, tenants.c.kind, tenants.c.sites)
                .select_from(api_tokens.join(tenants, api_tokens.c.tenant == tenants.c.id))
                .where(api_tokens.c.id == I.secret_id(token))
            ).first()
            if row is None:
                raise I.TokenRefused(I.TOKEN_UNKNOWN)
            u = None
            if row.user is not None:
                u = conn.execute(sa.select(users).where(users.c.id == row.user)).one()
        if row.revoked is not None:
            raise I.TokenRefused(f"API token revoked at {I.iso_ms(row.revoked)}")
        if now >= row.expires:
            raise I.TokenRefused(f"API token expired at {I.iso_ms(row.expires)}")
        if u is not None and u.disabled:
            raise I.TokenRefused(f"the API token's user {u.username!r} is disabled")
        return Principal(
            tenant=row.tenant, tenant_kind=row.kind, user=None if u is None else u.username,
            roles=frozenset(() if u is None else _list(u.roles)),
            scopes=frozenset(_list(row.scopes)), via="token", sites=frozenset(_list(row.sites)),
        )  # fmt: skip

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token by its id (revoking twice keeps the first time)."""
        now = self.clock()
        with self.engine.begin() as conn:
            self._token_row(conn, token_id)
            conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(None))
                .values(revoked=now)
            )
        return self.token(token_id)

    def token(self, token_id: str) -> TokenInfo:
        with self.engine.connect() as conn:
            return self._token_info(conn, self._token_row(conn, token_id))

    def list_tokens(self, tenant: str) -> list[TokenInfo]:
        """A tenant's tokens, oldest first (revoked and expired ones included)."""
        with self.engine.connect() as conn:
            self._tenant_row(conn, tenant)
            rows = conn.execute(
                sa.select(api_tokens)
                .where(api_tokens.c.tenant == tenant)
                .order_by(api_tokens.c.created, api_tokens.c.id)
            ).all()
            return [self._token_info(conn, r) for r in rows]

    @staticmethod
    def _token_info(conn: Connection, row: Any) -> TokenInfo:
        name = None
        if row.user is not None:
            q = sa.select(users.c.username).where(users.c.id == row.user)
            name = conn.execute(q).scalar_one()
        return TokenInfo(
            row.id, row.tenant, name, _list(row.scopes), row.created, row.expires, row.revoked
        )

    # -- administration ------------------------------------------------------------------
    def create_tenant(
        self, tenant: str, kind: str, name: str, sites: Iterable[str] = ()
    ) -> I.Tenant:
        I.check_tenant_id(tenant)
        I.check_tenant_kind(kind)
        I.check_name(name)
        site_list = I.check_sites(sites)
        now = self.clock()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant)).first():
                raise Conflict(f"tenant {tenant!r} already exists")
            conn.execute(
                sa.insert(tenants).values(
                    id=tenant, kind=kind, name=name, sites=json.dumps(site_list), created=now
                )
            )
        return I.Tenant(tenant, kind, name, tuple(site_list), now)

    def set_sites(self, tenant: str, sites: Iterable[str]) -> I.Tenant:
        site_list = I.check_sites(sites)
        with self.engine.begin() as conn:
            self._tenant_row(conn, tenant)
            q = sa.update(tenants).where(tenants.c.id == tenant)
            conn.execute(q.values(sites=json.dumps(site_list)))
        return self.tenant(tenant)

    def tenant(self, tenant: str) -> I.Tenant:
        with self.engine.connect() as conn:
            r = self._tenant_row(conn, tenant)
        return I.Tenant(r.id, r.kind, r.name, _list(r.sites), r.created)

    def create_user(
        self, tenant: str, username: str, password: str, roles: Iterable[str]
    ) -> I.User:
        I.check_username(username)
        I.check_password(password, username, self.policy)
        role_list = I.check_roles(roles)
        with self.engine.connect() as conn:
            self._tenant_row(conn, tenant)
            taken = sa.select(users.c.id).where(users.c.username == username)
            if conn.execute(taken).first():
                raise Conflict(f"username {username!r} is taken")
        hashed = I.hash_password(password, self.policy.scrypt)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(users).values(
                        tenant=tenant, username=username, password=hashed,
                        roles=json.dumps(role_list), failed=0, locked_until=None,
                        created=self.clock(), disabled=False,
                    )
                )  # fmt: skip
        except sa.exc.IntegrityError:
            raise Conflict(f"username {username!r} is taken") from None
        return self.user(username)

    def user(self, username: str) -> I.User:
        with self.engine.connect() as conn:
            return _user(self._user_row(conn, username))

    def list_users(self, tenant: str) -> list[I.User]:
        with self.engine.connect() as conn:
            self._tenant_row(conn, tenant)
            q = sa.select(users).where(users.c.tenant == tenant).order_by(users.c.username)
            return [_user(r) for r in conn.execute(q)]

    def set_roles(self, username: str, roles: Iterable[str]) -> I.User:
        """Takes effect at the user's next request (principals are read fresh each time)."""
        return self._update(username, roles=json.dumps(I.check_roles(roles)))

    def disable_user(self, username: str) -> I.User:
        """Refuse the user's logins and tokens and end their sessions."""
        return self._update(username, end_sessions=True, disabled=True)

    def enable_user(self, username: str) -> I.User:
        return self._update(username, disabled=False)

    def unlock(self, username: str) -> I.User:
        return self._update(username, failed=0, locked_until=None)

    def reset_password(self, username: str, password: str) -> I.User:
        """Set a new password, lift a lockout and end the user's sessions."""
        I.check_password(password, username, self.policy)
        self.user(username)  # NotFound before the hashing work
        hashed = I.hash_password(password, self.policy.scrypt)
        return self._update(
            username, end_sessions=True, password=hashed, failed=0, locked_until=None
        )

    def _update(self, username: str, end_sessions: bool = False, **values: Any) -> I.User:
        with self.engine.begin() as conn:
            uid = self._user_row(conn, username).id
            conn.execute(sa.update(users).where(users.c.id == uid).values(**values))
            if end_sessions:
                conn.execute(sa.delete(sessions).where(sessions.c.user == uid))
        return self.user(username)

    # -- lookups -------------------------------------------------------------------------
    @staticmethod
    def _tenant_row(conn: Connection, tenant: str) -> Any:
        row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant)).first()
        if row is None:
            raise NotFound(f"no tenant {tenant!r}")
        return row

    @staticmethod
    def _user_row(conn: Connection, username: str) -> Any:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        if row is None:
            raise NotFound(f"no user {username!r}")
        return row

    @staticmethod
    def _token_row(conn: Connection, token_id: str) -> Any:
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no API token with id {token_id!r}")
        return row

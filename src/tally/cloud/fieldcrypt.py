"""Encryption at rest of sensitive fields: per-tenant data keys and the field envelope.

Bank account numbers, ID numbers, financial statement figures and the like are stored as
*field envelopes*, never as plaintext. Each tenant has data keys (DEKs), one per version, of
its suite: AES-256-GCM (``intl``) or SM4-GCM (``gm``). A DEK is stored only wrapped under a
key-encryption key (:mod:`tally.cloud.keyring`), in the table ``data_keys`` (migration 0005):

==========  ==================================================================================
column      holds
==========  ==================================================================================
tenant      the tenant (organisation) id; with ``version`` the primary key
version     1, 2, …; new writes use the tenant's highest version
suite       ``intl`` or ``gm``: the DEK's AEAD
kek_id      the KEK it is wrapped under (``local:<keyring>:<version>``, ``pkcs11:<label>:<n>``)
wrapped     the wrapped DEK (``docs/formats.md`` §37), bound to tenant, version and suite
created     when the version was made (ms); ``retired``: when a newer one replaced it, or null
==========  ==================================================================================

Field envelope (``docs/formats.md`` §37)::

    envelope = 0x01 || key_version (uint32, big-endian) || nonce (12) || ciphertext || tag (16)
    aad      = 0x01 || key_version || CBOR ["tally.field", tenant, table, column, row]

The AAD binds the value to its tenant and to its place (:class:`FieldRef`: table, column,
row id), so a ciphertext copied to another row, column or tenant does not decrypt.

:class:`FieldCipher` encrypts and decrypts, creates a tenant's first DEK on its first write,
:meth:`FieldCipher.rotate_dek` starts a new DEK version (older versions still decrypt), and
:meth:`FieldCipher.rotate_kek` re-wraps every DEK under a new KEK without touching the data;
readers keep working during a rotation because a DEK's bytes never change, only their
wrapping, and every old KEK stays usable until the operator retires it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tally.cloud.errors import CloudError
from tally.cloud.keyring import HEADER, MAX_VERSION, NONCE_SIZE, TAG_SIZE, KeyProvider, seal
from tally.crypto import INTL, Suite, aead, cbor, get_suite
from tally.crypto.errors import DecryptionError

log = logging.getLogger(__name__)

ENVELOPE_FORMAT = 1
MAX_NAME = 200
MAX_TENANT = 64
MAX_PASSES = 100

metadata = sa.MetaData()

data_keys = sa.Table(
    "data_keys",
    metadata,
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
    sa.Column("suite", sa.String(16), nullable=False),
    sa.Column("kek_id", sa.String(200), nullable=False),
    sa.Column("wrapped", sa.LargeBinary(), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("retired", sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint("tenant", "version", name="pk_data_keys"),
    sa.Index("ix_data_keys_kek_id", "kek_id"),
)


class FieldCryptError(CloudError):
    """Raised when a field cannot be encrypted or decrypted; ``detail`` says which and why."""

    code = "field_crypt_error"
    title = "Field encryption error"


def _name(what: str, value: object, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value:
        raise FieldCryptError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise FieldCryptError(f"{what} has {len(value)} characters, more than {limit}")
    return value


def _tenant(tenant: object) -> str:
    return _name("tenant", tenant, MAX_TENANT)


def _check(tenant: object, ref: object) -> None:
    _tenant(tenant)
    if not isinstance(ref, FieldRef):
        raise FieldCryptError(f"field reference must be a FieldRef, got {ref!r}")


@dataclass(frozen=True)
class FieldRef:
    """Where a value lives: ``table``, ``column`` and the row's id (an int becomes its digits)."""

    table: str
    column: str
    row: str | int

    def __post_init__(self) -> None:
        _name("table", self.table)
        _name("column", self.column)
        if isinstance(self.row, bool) or not isinstance(self.row, (str, int)):
            raise FieldCryptError(f"row id must be a string or an integer, got {self.row!r}")
        _name("row id", str(self.row))

    def __str__(self) -> str:
        return f"{self.table}.{self.column} row {self.row}"


@dataclass(frozen=True)
class DataKeyInfo:
    """One DEK version of a tenant, without its key material."""

    tenant: str
    version: int
    suite: str
    kek_id: str
    created: int
    retired: int | None


@dataclass(frozen=True)
class Rewrapped:
    """What :meth:`FieldCipher.rotate_kek` did: how many DEKs moved to which KEK."""

    kek_id: str
    rewrapped: int


def dek_aad(tenant: str, version: int, suite: Suite) -> bytes:
    """The context a tenant's DEK is wrapped with."""
    return cbor.encode(["tally.dek", tenant, version, suite.name])


def field_aad(header: bytes, tenant: str, ref: FieldRef) -> bytes:
    return header + cbor.encode(["tally.field", tenant, ref.table, ref.column, str(ref.row)])


def seal_field(
    suite: Suite,
    dek: bytes,
    version: int,
    tenant: str,
    ref: FieldRef,
    plaintext: bytes,
    nonce: bytes,
) -> bytes:
    """The envelope of ``plaintext`` under DEK ``version`` of ``tenant`` at ``ref``."""
    header = HEADER.pack(ENVELOPE_FORMAT, version)
    return header + seal(suite, dek, nonce, plaintext, field_aad(header, tenant, ref))


def envelope_version(envelope: bytes) -> int:
    """Check an envelope's type, length and format byte; return its DEK version."""
    if not isinstance(envelope, (bytes, bytearray, memoryview)):
        raise FieldCryptError(f"field envelope must be bytes, got {type(envelope).__name__}")
    minimum = HEADER.size + NONCE_SIZE + TAG_SIZE
    if len(envelope) < minimum:
        raise FieldCryptError(
            f"field envelope has {len(envelope)} bytes, fewer than the {minimum} of "
            "header, nonce and tag"
        )
    fmt, version = HEADER.unpack_from(bytes(envelope))
    if fmt != ENVELOPE_FORMAT:
        raise FieldCryptError(f"field envelope has format byte {fmt}, want {ENVELOPE_FORMAT}")
    if version == 0:
        raise FieldCryptError("field envelope names data key version 0; versions start at 1")
    return int(version)


def wall_ms() -> int:
    return int(time.time() * 1000)


class FieldCipher:
    """Encrypts fields under per-tenant DEKs kept wrapped in ``data_keys`` on ``engine``.

    ``provider`` wraps new DEKs; ``suite`` is the suite of DEKs created from now on.
    Unwrapped DEKs are cached in memory (``cache=False`` unwraps on every use); the tenant's
    current version is re-read after ``current_ttl_ms``, so a rotation by another process is
    picked up. ``clock`` gives milliseconds.
    """

    def __init__(
        self,
        engine: Engine,
        provider: KeyProvider,
        *,
        suite: Suite = INTL,
        clock: Callable[[], int] = wall_ms,
        cache: bool = True,
        current_ttl_ms: int = 60_000,
    ) -> None:
        self._engine = engine
        self._providers: list[KeyProvider] = [provider]
        self._suite = suite
        self._clock = clock
        self._cache = cache
        self._ttl = current_ttl_ms
        self._deks: dict[tuple[str, int], tuple[Suite, bytes]] = {}
        self._current: dict[str, tuple[int, int]] = {}  # tenant -> (version, valid until)
        self._lock = threading.Lock()
        self._rotating = threading.Lock()

    def __repr__(self) -> str:
        return f"FieldCipher(kek_id={self.provider.kek_id!r}, suite={self._suite.name})"

    @property
    def provider(self) -> KeyProvider:
        return self._providers[0]

    def ensure_key(self, tenant: str) -> int:
        """Return ``tenant``'s current DEK version, creating version 1 if it has none.

        The first write of a tenant creates its DEK in a transaction of its own; on SQLite, call
        this before encrypting inside a write transaction of yours, which would block it.
        """
        _tenant(tenant)
        return self._current_version(tenant)

    def encrypt(self, tenant: str, ref: FieldRef, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for ``tenant`` at ``ref`` under the tenant's current DEK."""
        _check(tenant, ref)
        if not isinstance(plaintext, bytes):
            raise FieldCryptError(f"plaintext must be bytes, got {type(plaintext).__name__}")
        version = self._current_version(tenant)
        suite, dek = self._dek(tenant, version)
        return seal_field(suite, dek, version, tenant, ref, plaintext, os.urandom(NONCE_SIZE))

    def decrypt(self, tenant: str, ref: FieldRef, envelope: bytes) -> bytes:
        """Decrypt an envelope written for ``tenant`` at ``ref``."""
        _check(tenant, ref)
        version = envelope_version(envelope)
        data = bytes(envelope)
        suite, dek = self._dek(tenant, version)
        try:
            return aead.decrypt(
                suite, dek, data[HEADER.size :], field_aad(data[: HEADER.size], tenant, ref)
            )
        except DecryptionError:
            raise FieldCryptError(
                f"cannot decrypt {ref} of tenant {tenant!r} (data key version {version}): "
                "authentication failed; the value was encrypted for another tenant, table, "
                "column or row, or it was altered"
            ) from None

    def rotate_dek(self, tenant: str, suite: Suite | None = None) -> int:
        """Make a new DEK version for ``tenant`` (of ``suite``, else the cipher's); return it.

        New writes use it; envelopes of older versions still decrypt.
        """
        _tenant(tenant)
        for _ in range(10):
            version = self._create(tenant, (self._top(tenant) or 0) + 1, suite or self._suite)
            if version is not None:
                log.info("tenant %s: data key version %d is current", tenant, version)
                return version
        raise FieldCryptError(f"tenant {tenant!r}: could not add a data key version (contention)")

    def rotate_kek(self, provider: KeyProvider | None = None) -> Rewrapped:
        """Re-wrap every DEK not under ``provider``'s current KEK (default: this cipher's).

        Pass a new provider to move to another KEK store; after a :meth:`LocalKeyring.rotate
        <tally.cloud.keyring.LocalKeyring.rotate>` pass nothing. No field is re-encrypted;
        each DEK is swapped in its own short transaction and only if nobody changed it
        meanwhile, so readers and writers carry on. Previous providers stay usable.
        """
        with self._rotating:
            new = provider or self.provider
            with self._lock:
                if new is not self.provider:
                    self._providers = [new, *(p for p in self._providers if p is not new)]
            target, count = new.kek_id, 0
            for _ in range(MAX_PASSES):
                with self._engine.connect() as conn:
                    rows = conn.execute(
                        sa.select(data_keys).where(data_keys.c.kek_id != target)
                    ).all()
                if not rows:
                    break
                for row in rows:
                    suite = get_suite(row.suite)
                    aad = dek_aad(row.tenant, row.version, suite)
                    dek = self._unwrap(row.kek_id, bytes(row.wrapped), aad, row.tenant, row.version)
                    with self._engine.begin() as conn:
                        done = conn.execute(
                            sa.update(data_keys)
                            .where(
                                data_keys.c.tenant == row.tenant,
                                data_keys.c.version == row.version,
                                data_keys.c.kek_id == row.kek_id,
                            )
                            .values(kek_id=target, wrapped=new.wrap(dek, aad))
                        ).rowcount
                    count += done
            else:
                raise FieldCryptError(
                    f"data keys kept changing KEK during {MAX_PASSES} passes; is another "
                    f"rotation to a KEK other than {target} running?"
                )
        log.info("re-wrapped %d data keys under KEK %s", count, target)
        return Rewrapped(target, count)

    def kek_ids_in_use(self) -> frozenset[str]:
        """The KEK ids that still wrap some DEK (retire a KEK only when it is not among them)."""
        with self._engine.connect() as conn:
            return frozenset(conn.execute(sa.select(data_keys.c.kek_id).distinct()).scalars())

    def key_versions(self, tenant: str) -> list[DataKeyInfo]:
        """The DEK versions of ``tenant``, oldest first (no key material)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(data_keys)
                .where(data_keys.c.tenant == tenant)
                .order_by(data_keys.c.version)
            ).all()
        return [
            DataKeyInfo(r.tenant, r.version, r.suite, r.kek_id, r.created, r.retired) for r in rows
        ]

    def _current_version(self, tenant: str) -> int:
        now = self._clock()
        hit = self._current.get(tenant)
        if hit is not None and hit[1] > now:
            return hit[0]
        top = self._top(tenant)
        version = top if top is not None else self._create(tenant, 1, self._suite)
        if version is None:  # another writer created version 1 first
            return self._current_version(tenant)
        with self._lock:
            self._current[tenant] = (version, now + self._ttl)
        return version

    def _top(self, tenant: str) -> int | None:
        with self._engine.connect() as conn:
            top = conn.execute(
                sa.select(sa.func.max(data_keys.c.version)).where(data_keys.c.tenant == tenant)
            ).scalar()
        return None if top is None else int(top)

    def _create(self, tenant: str, version: int, suite: Suite) -> int | None:
        """Insert DEK ``version``; None when another writer inserted that version first."""
        if version > MAX_VERSION:
            raise FieldCryptError(f"tenant {tenant!r} has no data key version left")
        dek = aead.generate_key(suite)
        provider, now = self.provider, self._clock()
        wrapped = provider.wrap(dek, dek_aad(tenant, version, suite))
        try:
            with self._engine.begin() as conn:
                row = dict(tenant=tenant, version=version, suite=suite.name, created=now)
                conn.execute(
                    sa.insert(data_keys).values(kek_id=provider.kek_id, wrapped=wrapped, **row)
                )
                conn.execute(
                    sa.update(data_keys)
                    .where(
                        data_keys.c.tenant == tenant,
                        data_keys.c.version < version,
                        data_keys.c.retired.is_(None),
                    )
                    .values(retired=now)
                )
        except sa.exc.IntegrityError:
            return None
        with self._lock:
            if self._cache:
                self._deks[(tenant, version)] = (suite, dek)
            self._current[tenant] = (version, now + self._ttl)
        kek = provider.kek_id
        log.info(
            "tenant %s: created data key version %d (%s) under %s", tenant, version, suite, kek
        )
        return version

    def _dek(self, tenant: str, version: int) -> tuple[Suite, bytes]:
        hit = self._deks.get((tenant, version))
        if hit is not None:
            return hit
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(data_keys).where(
                    data_keys.c.tenant == tenant, data_keys.c.version == version
                )
            ).first()
        if row is None:
            raise FieldCryptError(f"tenant {tenant!r} has no data key version {version}")
        suite = get_suite(row.suite)
        dek = self._unwrap(
            row.kek_id, bytes(row.wrapped), dek_aad(tenant, version, suite), tenant, version
        )
        if self._cache:
            with self._lock:
                self._deks[(tenant, version)] = (suite, dek)
        return suite, dek

    def _unwrap(self, kek_id: str, wrapped: bytes, aad: bytes, tenant: str, version: int) -> bytes:
        for provider in list(self._providers):
            if provider.handles(kek_id):
                return provider.unwrap(wrapped, aad)
        raise FieldCryptError(
            f"data key version {version} of tenant {tenant!r} is wrapped under KEK {kek_id}, "
            f"which no configured key provider holds"
        )

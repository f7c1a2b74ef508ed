"""Opening what the ``[cloud]`` configuration names, for the server and the admin commands.

=================================  ===============================================================
:func:`open_identity`              the identity store (``[cloud.identity]`` policy) and the audit
                                   log (``[cloud.audit]``) on the cloud database
:func:`open_audit_log`             the audit log, in the suite it is kept with
:func:`open_cipher`                the field cipher of ``[cloud.keys]``: the keyring file opened
                                   with ``TALLY_KEYRING_PASSPHRASE``, data keys in ``data_keys``
:func:`open_views`                 the read model of the platform API (``[cloud.api]``)
:func:`audit_anchor`,              the audit log's head anchored on the ledger through the
:func:`anchor_audit_forever`       cloud's :class:`~tally.cloud.anchoring.LedgerLink`
=================================  ===============================================================

Each refuses a store it cannot open with :class:`ServerError` naming the setting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tally.cloud.anchoring import ConsortiumLink, LedgerLink, RemoteLedgerLink
from tally.cloud.auditlog import Anchor, AuditLog, AuditLogError, head_table
from tally.cloud.config import CloudSettings, KeysSettings
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.identity_store import IdentityStore
from tally.cloud.keyring import KeyringError, LocalKeyring
from tally.cloud.storage import Storage
from tally.cloud.storage.sql import SqlStorage
from tally.crypto import get_suite

if TYPE_CHECKING:
    from tally.cloud.views import Views

log = logging.getLogger("tally.cloud")

ALREADY_ANCHORED = "is already anchored (kind 'audit')"
"""The anchoring contract's refusal of a head the ledger holds already."""


class ServerError(Exception):
    """Raised when the cloud cannot start: a port taken, a bad certificate, a configured store
    that cannot be opened — or the server does not stop in time."""


def engine_of(storage: Storage) -> sa.Engine:
    """The SQLAlchemy engine of the cloud database."""
    if not isinstance(storage, SqlStorage):
        raise ServerError(f"the identity store needs an SQL database, not {type(storage).__name__}")
    return storage.engine


def open_cipher(keys: KeysSettings, engine: sa.Engine, passphrase: str) -> FieldCipher:
    """The field cipher of ``[cloud.keys]``: the keyring file opened with ``passphrase``."""
    try:
        ring = LocalKeyring.open(keys.keyring_file, passphrase)
    except KeyringError as exc:
        raise ServerError(f"cloud.keys.keyring_file: {exc.detail}") from None
    return FieldCipher(engine, ring, suite=get_suite(keys.suite) if keys.suite else ring.suite)


def open_audit_log(settings: CloudSettings, engine: sa.Engine, default_suite: str) -> AuditLog:
    """The audit log on ``engine``: in ``[cloud.audit] suite``, else the suite it is kept with,
    else ``default_suite``; ServerError when the configured suite is not the log's."""
    if not sa.inspect(engine).has_table(head_table.name):
        raise ServerError("the audit log's tables are missing: migrate the cloud database first")
    with engine.connect() as conn:
        kept = conn.execute(sa.select(head_table.c.suite)).scalar()
    a = settings.audit
    try:
        return AuditLog(engine, suite=a.suite or kept or default_suite,
                        every_n=a.anchor_every_n, every_ms=a.anchor_every_ms)  # fmt: skip
    except AuditLogError as exc:
        raise ServerError(f"cloud.audit: {exc}") from None


def open_identity(
    settings: CloudSettings, engine: sa.Engine, default_suite: str
) -> tuple[IdentityStore, AuditLog]:
    """The identity store with ``[cloud.identity]``'s policy and the audit log."""
    return IdentityStore(engine, settings.identity.policy), open_audit_log(
        settings, engine, default_suite
    )


def open_views(
    settings: CloudSettings, engine: sa.Engine, cipher: FieldCipher | None
) -> Views | None:
    """The read model of the platform API, when ``[cloud.api]`` enables it. Without the
    package ``tally.cloud.views`` the API is left out, unless ``enabled`` was set explicitly."""
    if not settings.api.enabled:
        return None
    try:
        from tally.cloud.views import Views
    except ModuleNotFoundError as exc:
        if "enabled" in settings.api.model_fields_set:
            raise ServerError(
                f"cloud.api.enabled: the platform API is not installed ({exc})"
            ) from None
        log.info("no platform API: %s", exc)
        return None
    return Views(engine, cipher)


def audit_anchor(link: LedgerLink) -> Anchor | None:
    """How the audit log's head is anchored through ``link`` (``anchoring.anchor_record`` as
    the cloud's member), or None for a link that cannot submit other transactions. A head the
    ledger holds already (an anchoring interrupted before it was recorded) counts as anchored."""
    submit: Callable[[str, bytes], Awaitable[Any]]
    if isinstance(link, RemoteLedgerLink):
        remote = link

        def submit(kind: str, h: bytes) -> Awaitable[Any]:
            args = ("anchoring", "anchor_record", [kind, h], remote.org, remote.key)
            return remote.remote.submit(*args, timeout=remote.timeout)

    elif isinstance(link, ConsortiumLink):
        local = link

        def submit(kind: str, h: bytes) -> Awaitable[Any]:
            args = ("anchoring", "anchor_record", [kind, h])
            return local.consortium.submit(*args, creator=local.org, timeout=local.timeout)

    else:
        return None

    async def anchor(kind: str, h: bytes) -> Any:
        r = await submit(kind, h)
        if r.valid:
            return r
        if ALREADY_ANCHORED in r.error:
            return None
        raise AuditLogError(f"the ledger refused the audit head: {r.code}: {r.error or r.reason}")

    return anchor


async def anchor_audit_forever(audit_log: AuditLog, anchor: Anchor) -> None:
    """Anchor the audit log's head whenever it is due (checked every second, or every
    ``every_ms`` when shorter); a failure is logged and tried again. Cancel to stop."""
    poll = min(audit_log.every_ms, 1000) / 1000
    while True:
        try:
            done = await audit_log.anchor_pending(anchor)
            if done is not None:
                log.info("anchored the audit log up to entry %d", done.seq)
        except AuditLogError as exc:
            log.warning("%s", exc)
        except Exception:  # never let the task die
            log.exception("anchoring the audit log failed")
        await asyncio.sleep(poll)

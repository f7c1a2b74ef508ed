"""Serving the cloud API with uvicorn: in-process (async start/stop) or as the main program.

``port = 0`` binds a free port; :meth:`CloudServer.start` returns the port actually bound.
With ``tls_cert_file`` and ``tls_key_file`` configured the server speaks HTTPS only; with
``tls_client_ca_file`` as well, a client must present a certificate signed by that CA, or the
TLS handshake fails (mutual TLS).

Slow and oversized requests are refused before they reach the app (:class:`GuardedH11`):

=====================================  =========================================================
a request header larger than           ``max_header_bytes`` (16 KiB): 431, connection closed
a header not complete within           ``header_timeout_s`` (10 s) of the connection or of the
                                       request's first byte: 408, connection closed
no byte of a request body for          ``body_timeout_s`` (30 s): connection closed
an idle kept-alive connection          closed after ``keep_alive_s`` (5 s)
more than ``max_connections`` (1000)   open connections or running requests: 503
=====================================  =========================================================

A TLS handshake that does not finish is dropped after 60 s (asyncio's handshake timeout).

:func:`build_service` opens everything the configuration names: storage (migrated), trust,
registrations, the identity store and audit log (``[cloud.identity]``, ``[cloud.audit]``), the
field cipher (``[cloud.keys]``), the read model of the platform API (``[cloud.api]``), and with
a ledger the batch :class:`~tally.cloud.anchoring.Anchorer` and the anchoring of the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from tally import config
from tally.cloud.anchoring import Anchorer, ConsortiumLink, LedgerLink, RemoteLedgerLink
from tally.cloud.app import create_app
from tally.cloud.auditlog import Anchor, AuditLog
from tally.cloud.auth import check_tokens, store_tenants
from tally.cloud.config import CloudSettings, LedgerSettings, keyring_passphrase
from tally.cloud.deployment import ServerError as ServerError
from tally.cloud.deployment import (
    anchor_audit_forever,
    audit_anchor,
    engine_of,
    open_cipher,
    open_identity,
    open_views,
)
from tally.cloud.errors import CloudError
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.identity_store import IdentityStore
from tally.cloud.ingest import now_ms
from tally.cloud.keys import CloudIdentity, registration_files
from tally.cloud.problems import PROBLEM_JSON, TYPE_PREFIX
from tally.cloud.registry import accept_signed
from tally.cloud.storage import Storage, open_storage
from tally.crypto.keystore import load_key
from tally.crypto.x509ca import X509Error
from tally.device.trust import Trust, load_trust
from tally.ledger.genesis import Genesis, read_genesis
from tally.ledger.remote import RemoteConsortium

if TYPE_CHECKING:
    from tally.cloud.live import EventHub
    from tally.cloud.views import Views

log = logging.getLogger("tally.cloud")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def import_registrations(settings: CloudSettings, trust: Trust, storage: Storage) -> int:
    """Store every valid signed ``*.cose`` in ``registrations_dir``; return how many were new.

    A file that does not verify is logged and skipped (it could be meant for another
    consortium); nothing else stops the start.
    """
    new = 0
    for path, data in registration_files(settings.registrations_dir):
        try:
            _rec, added = accept_signed(data, trust, storage, now_ms())
        except CloudError as exc:
            log.warning("skipping registration file %s: %s", path.name, exc.detail)
            continue
        new += added
    return new


def problem_bytes(status: int, title: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response carrying an RFC 9457 problem, closing the connection."""
    body = json.dumps({"type": TYPE_PREFIX + code, "title": title, "status": status,
                       "detail": detail}).encode()  # fmt: skip
    head = (f"HTTP/1.1 {status} {title}\r\ncontent-type: {PROBLEM_JSON}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with deadlines for reading a request and a 431 for a header
    that is too large (uvicorn itself waits for a header forever and answers a bare 400).
    The limits are class attributes: :func:`guarded_protocol` makes a subclass per server."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    max_header_bytes = 16 << 10
    _deadline: asyncio.TimerHandle | None = None
    _phase = "header"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("header", self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_size(data) > self.max_header_bytes:
            detail = f"the request header is larger than {self.max_header_bytes} bytes"
            self._refuse(431, "Request Header Fields Too Large", "header_too_large", detail)
            return
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE:  # a request has begun, its header is not complete
            if self._deadline is None:
                self._arm("header", self.header_timeout_s)
        elif state is h11.SEND_BODY:
            self._arm("body", self.body_timeout_s)  # again at every chunk: an idle limit
        else:
            self._cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _head_size(self, data: bytes) -> int:
        """The size of the request header read so far (h11 limits only an incomplete one)."""
        pending = self.conn.trailing_data[0] + data
        end = _HEAD_END.search(pending)
        return len(pending) if end is None else end.end()

    def _refuse(self, status: int, title: str, code: str, detail: str) -> None:
        self._cancel()
        self.transport.write(problem_bytes(status, title, code, detail))
        self.transport.close()

    def _arm(self, phase: str, seconds: float) -> None:
        self._cancel()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app has not taken what was read yet: not the client
            self._arm(self._phase, self.body_timeout_s)
            return
        if self._phase == "header" and self.conn.their_state is h11.IDLE:
            detail = f"the request header did not arrive within {self.header_timeout_s:g} s"
            self._refuse(408, "Request Timeout", "request_timeout", detail)
        self.transport.close()


def guarded_protocol(settings: CloudSettings) -> type[GuardedH11]:
    """The protocol class with ``settings``' limits."""

    class Guarded(GuardedH11):
        header_timeout_s = settings.header_timeout_s
        body_timeout_s = settings.body_timeout_s
        max_header_bytes = settings.max_header_bytes

    return Guarded


class CloudServer:
    """One uvicorn server for one app, started and stopped from a running event loop."""

    def __init__(self, app: FastAPI, settings: CloudSettings, log_level: str = "warning") -> None:
        self.app = app
        self.settings = settings
        s = settings
        cert, key, client_ca = s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file
        self.config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=log_level, access_log=False,
            lifespan="off", http=guarded_protocol(settings),
            h11_max_incomplete_event_size=settings.max_header_bytes,
            timeout_keep_alive=settings.keep_alive_s, limit_concurrency=settings.max_connections,
            ssl_certfile=str(cert) if cert else None, ssl_keyfile=str(key) if key else None,
            ssl_ca_certs=str(client_ca) if client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )  # fmt: skip
        self._server = uvicorn.Server(self.config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self.settings.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.settings.host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> int:
        """Start serving; return the bound port. Raises ServerError when it does not start."""
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception()
                raise ServerError(f"cloud server did not start: {exc or 'exited'}")
            if loop.time() > deadline:
                await self.stop()
                raise ServerError(f"cloud server did not start within {timeout} s")
            await asyncio.sleep(0.01)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for open connections to close (at most ``timeout`` s)."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout)
        self._task = None


@dataclass
class CloudService:
    """Everything one cloud process holds: storage, trust, identity, app and server, and what
    the configuration adds (identity store, audit log, field cipher, read model)."""

    settings: CloudSettings
    storage: Storage
    trust: Trust
    identity: CloudIdentity
    server: CloudServer
    anchorer: Anchorer | None = None
    identities: IdentityStore | None = None
    audit_log: AuditLog | None = None
    cipher: FieldCipher | None = None
    views: Views | None = None
    hub: EventHub | None = None
    audit_anchor: Anchor | None = None
    _audit_task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Start serving (and anchoring, with a ledger); return the bound port."""
        port = await self.server.start()
        if self.anchorer is not None:
            self.anchorer.start()
        if self.audit_log is not None and self.audit_anchor is not None:
            task = anchor_audit_forever(self.audit_log, self.audit_anchor)
            self._audit_task = asyncio.create_task(task, name="audit-anchor")
        return port

    async def stop(self) -> None:
        task, self._audit_task = self._audit_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.anchorer is not None:
            await self.anchorer.stop()
        await self.server.stop()
        self.storage.close()


def build_service(
    settings: CloudSettings,
    identity: CloudIdentity,
    trust: Trust | None = None,
    ledger: LedgerLink | None = None,
    identities: IdentityStore | None = None,
    audit_log: AuditLog | None = None,
    *,
    views: Views | None = None,
    hub: EventHub | None = None,
    cipher: FieldCipher | None = None,
) -> CloudService:
    """Open and migrate storage, load trust and registrations, and make the server (unstarted).

    With ``ledger`` the service also anchors every stored batch there (an
    :class:`~tally.cloud.anchoring.Anchorer`, started by :meth:`CloudService.start`) and its
    proof bundles carry the chain part. ``identities`` and ``audit_log`` (over the same
    database) make the API take logins, sessions and identity API tokens; when neither is
    given and ``[cloud.identity]`` is enabled they are opened on the cloud database, and the
    audit log is anchored through ``ledger``. ``cipher`` (else ``[cloud.keys]``, with
    ``TALLY_KEYRING_PASSPHRASE``) seals sensitive fields; ``views`` (else opened when there are
    identities and ``[cloud.api]`` is enabled) and ``hub`` serve the platform API.
    """
    if trust is None:
        if settings.trust_file is None:
            raise ServerError("cloud.trust_file is not configured")
        trust = load_trust(Path(settings.trust_file))
    storage = open_storage(settings.database_url)
    try:
        storage.migrate()
        import_registrations(settings, trust, storage)
        if cipher is None and settings.keys is not None:
            cipher = open_cipher(settings.keys, engine_of(storage), keyring_passphrase())
        if identities is None and audit_log is None and settings.identity_enabled:
            identities, audit_log = open_identity(settings, engine_of(storage), trust.suite.name)
        if identities is not None:
            try:
                check_tokens(settings.api_tokens, store_tenants(identities))
            except ValueError as exc:
                raise ServerError(str(exc)) from None
        if views is None and identities is not None and audit_log is not None:
            views = open_views(settings, engine_of(storage), cipher)
    except BaseException:
        storage.close()
        raise
    app = create_app(settings, storage, trust, identity, ledger=ledger, identities=identities,
                     audit_log=audit_log, views=views, hub=hub, cipher=cipher,
                     genesis=genesis_of(ledger))  # fmt: skip
    anchorer = None
    if ledger is not None:
        anchorer = Anchorer(
            storage, ledger, retry_ms=settings.anchor_retry_ms, hold_ms=settings.anchor_hold_ms
        )
        app.state.metrics.watch_anchorer(anchorer)  # checkpoint latency and retries
    anchor = audit_anchor(ledger) if ledger is not None and audit_log is not None else None
    server = CloudServer(app, settings)
    return CloudService(settings, storage, trust, identity, server, anchorer, identities,
                        audit_log, cipher, views, hub, anchor)  # fmt: skip


def genesis_of(ledger: LedgerLink | None) -> Genesis | None:
    """The consortium genesis behind ``ledger`` (its links know it), or None without one:
    ``POST /v1/verify`` checks transaction bundles and chain parts against it."""
    if isinstance(ledger, ConsortiumLink):
        return ledger.consortium.genesis
    if isinstance(ledger, RemoteLedgerLink):
        return ledger.remote.genesis
    return None


def remote_ledger(ledger: LedgerSettings, passphrase: str) -> RemoteLedgerLink:
    """The :class:`RemoteLedgerLink` that ``[cloud.ledger]`` describes (close it when done).

    Raises the genesis and keystore errors, and ServerError when the organisation is not a
    member, the key is not its genesis key or a peer is named for a non-member."""
    genesis = read_genesis(ledger.genesis)
    key = load_key(ledger.key_file, passphrase)
    try:
        remote = RemoteConsortium(
            genesis,
            ledger.peers,
            timeout=ledger.timeout_s,
            ca_file=ledger.ca_file,
            client_cert_file=ledger.client_cert_file,
            client_key_file=ledger.client_key_file,
        )
    except X509Error as exc:
        raise ServerError(f"cloud.ledger: {exc}") from exc
    except ValueError as exc:
        raise ServerError(f"cloud.ledger.peers: {exc}") from exc
    try:
        return RemoteLedgerLink(remote, ledger.org, key, timeout=ledger.timeout_s)
    except ValueError as exc:
        raise ServerError(f"cloud.ledger: {exc}") from exc


async def serve_forever(
    settings: CloudSettings, identity: CloudIdentity, passphrase: str | None = None
) -> None:
    """Run the cloud until cancelled; log the URL it listens on. With ``[cloud.ledger]`` it
    anchors through the member peers configured there (the member key's passphrase:
    ``passphrase``, else ``TALLY_KEY_PASSPHRASE``)."""
    link = None
    if settings.ledger is not None:
        link = remote_ledger(settings.ledger, passphrase or config.passphrase())
    try:
        await _serve(settings, identity, link)
    finally:
        if link is not None:
            await link.close()


async def _serve(
    settings: CloudSettings, identity: CloudIdentity, link: RemoteLedgerLink | None
) -> None:
    service = build_service(settings, identity, ledger=link)
    port = await service.start()
    log.info("tally cloud %s listening on %s", identity.id, service.server.url)
    print(
        f"tally cloud {identity.id} listening on {service.server.scheme}://{settings.host}:{port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await service.stop()

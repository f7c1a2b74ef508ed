"""Serving the cloud API with uvicorn: in-process (async start/stop) or as the main program.

``port = 0`` binds a free port; :meth:`CloudServer.start` returns the port actually bound.
With ``tls_cert_file`` and ``tls_key_file`` configured the server speaks HTTPS only; with
``tls_client_ca_file`` as well, a client must present a certificate signed by that CA, or the
TLS handshake fails (mutual TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tally import config
from tally.cloud.anchoring import Anchorer, LedgerLink, RemoteLedgerLink
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog
from tally.cloud.config import CloudSettings, LedgerSettings
from tally.cloud.errors import CloudError
from tally.cloud.identity_store import IdentityStore
from tally.cloud.ingest import now_ms
from tally.cloud.keys import CloudIdentity, registration_files
from tally.cloud.registry import accept_signed
from tally.cloud.storage import Storage, open_storage
from tally.crypto.keystore import load_key
from tally.device.trust import Trust, load_trust
from tally.ledger.genesis import read_genesis
from tally.ledger.remote import RemoteConsortium

log = logging.getLogger("tally.cloud")


class ServerError(Exception):
    """Raised when the server cannot start (port taken, bad certificate) or stop in time."""


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


class CloudServer:
    """One uvicorn server for one app, started and stopped from a running event loop."""

    def __init__(self, app: FastAPI, settings: CloudSettings, log_level: str = "warning") -> None:
        self.app = app
        self.settings = settings
        cert = settings.tls_cert_file
        key = settings.tls_key_file
        client_ca = settings.tls_client_ca_file
        self.config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
            ssl_ca_certs=str(client_ca) if client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )
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
    """Everything one cloud process holds: storage, trust, identity, app and server."""

    settings: CloudSettings
    storage: Storage
    trust: Trust
    identity: CloudIdentity
    server: CloudServer
    anchorer: Anchorer | None = None

    async def start(self) -> int:
        """Start serving (and anchoring, with a ledger); return the bound port."""
        port = await self.server.start()
        if self.anchorer is not None:
            self.anchorer.start()
        return port

    async def stop(self) -> None:
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
) -> CloudService:
    """Open and migrate storage, load trust and registrations, and make the server (unstarted).

    With ``ledger`` the service also anchors every stored batch there (an
    :class:`~tally.cloud.anchoring.Anchorer`, started by :meth:`CloudService.start`) and its
    proof bundles carry the chain part. With ``identities`` and ``audit_log`` (over the same
    database) the API also takes logins, sessions and identity API tokens.
    """
    if trust is None:
        if settings.trust_file is None:
            raise ServerError("cloud.trust_file is not configured")
        trust = load_trust(Path(settings.trust_file))
    storage = open_storage(settings.database_url)
    storage.migrate()
    import_registrations(settings, trust, storage)
    app = create_app(
        settings,
        storage,
        trust,
        identity,
        ledger=ledger,
        identities=identities,
        audit_log=audit_log,
    )
    anchorer = None
    if ledger is not None:
        anchorer = Anchorer(
            storage, ledger, retry_ms=settings.anchor_retry_ms, hold_ms=settings.anchor_hold_ms
        )
        app.state.metrics.watch_anchorer(anchorer)  # checkpoint latency and retries
    server = CloudServer(app, settings)
    return CloudService(settings, storage, trust, identity, server, anchorer)


def remote_ledger(ledger: LedgerSettings, passphrase: str) -> RemoteLedgerLink:
    """The :class:`RemoteLedgerLink` that ``[cloud.ledger]`` describes (close it when done).

    Raises the genesis and keystore errors, and ServerError when the organisation is not a
    member, the key is not its genesis key or a peer is named for a non-member."""
    genesis = read_genesis(ledger.genesis)
    key = load_key(ledger.key_file, passphrase)
    try:
        remote = RemoteConsortium(genesis, ledger.peers, timeout=ledger.timeout_s)
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

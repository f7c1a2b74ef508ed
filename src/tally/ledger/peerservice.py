"""A member's peer as a service: follows the JetStream orderer, commits blocks, serves HTTP.

Configuration, section ``[peer]`` (``TALLY_PEER__<KEY>`` overrides; the key passphrase comes
from ``TALLY_KEY_PASSPHRASE`` only)::

    [peer]
    org = "bank-1"                         # the member this peer belongs to
    key_file = "members/bank-1/member.key" # its encrypted member key
    genesis = "genesis.cbor"
    data_dir = "peers/bank-1"              # state.sqlite, txlog.bin, index.sqlite
    host = "127.0.0.1"
    port = 0                               # 0: a free port; the bound URL is printed
    nats = ["nats://127.0.0.1:4222", ...]  # the JetStream cluster (ordering "jetstream")
    tls_cert_file = "tls/peer-bank-1.pem"  # HTTPS (tally certs issue --kind server)
    tls_key_file = "tls/peer-bank-1-key.pem"
    tls_client_ca_file = "tls/ca.pem"      # mutual TLS: clients need a certificate of this CA
    nats_ca_file = "tls/ca.pem"            # the NATS servers' CA (TLS to the cluster)
    nats_cert_file = "tls/bank-1.pem"      # the client certificate NATS asks for (and its key)
    nats_key_file = "tls/bank-1-key.pem"

A solo orderer lives inside one process, so a genesis with ordering ``solo`` is refused.
The contracts are the registry the caller gives (``tally peer`` gives the system and the
finance contracts; the default is the system contracts only). Every instance runs a block
cutter; JetStream's expected-sequence check keeps one block per height.

Transport: without ``tls_cert_file`` the peer serves plain HTTP; with it, HTTPS only (TLS 1.2
or later), and with ``tls_client_ca_file`` as well, a client that does not present a client
certificate of that CA is refused during the TLS handshake (the cloud's anchoring, the edge's
release orders and the platform's projector then need one). The NATS connection uses TLS with
``nats_ca_file`` (else the system's CAs) when the servers speak it, presenting
``nats_cert_file`` when given. Certificates are checked at start (key, validity, use); a bad
one stops the peer with a :class:`PeerServiceError` naming it. See ``docs/transport.md``.

The HTTP API is :mod:`tally.ledger.peerhttp`: endorse, submit, status, transactions,
checkpoints, the log with inclusion paths, world state pages (``/v1/state``, read by the
warehouse's edge) and committed blocks (``/v1/blocks``, read by the platform's projector).
Its index, ``index.sqlite`` in ``data_dir`` (:mod:`tally.ledger.peerindex`), keeps per
committed block the signed checkpoint, each transaction's outcome, and the block's hash, time,
state commitment and transactions; heights it lacks (a crash between commit and index, or an
index from before blocks were kept) are indexed from the transaction log on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tally import config
from tally.crypto.keystore import load_key
from tally.crypto.tlsconf import X509Error, client_tls, server_tls
from tally.ledger import peerhttp
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.errors import BlockRejected, LedgerError
from tally.ledger.genesis import read_genesis
from tally.ledger.jetstream import JetStreamOrderer
from tally.ledger.orderer import OrdererError
from tally.ledger.peer import Peer
from tally.ledger.peerhttp import HttpServer, PeerApi
from tally.ledger.peerindex import PeerIndex
from tally.ledger.state import StateStore
from tally.ledger.state_sqlite import SqliteState

__all__ = ["PeerConfig", "PeerService", "PeerServiceError", "load_peer_config", "run"]

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = peerhttp.MAX_PAGE_BYTES
"""The most body a ``/v1/state`` page has (read on every request)."""


class PeerServiceError(LedgerError):
    """Raised when a peer service cannot start: ``reason`` says why (solo ordering, a key
    that is not the member's, no NATS servers)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"peer service: {reason}")


class PeerConfig(BaseModel):
    """The ``[peer]`` section."""

    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1)
    key_file: Path
    genesis: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    nats: list[str] = Field(min_length=1)
    state_url: str | None = None
    """PostgreSQL for the peer's state (``postgresql://…``); SQLite in ``data_dir`` if unset."""
    state_schema: str = "tally_ledger"
    tls_cert_file: Path | None = None
    """Serve HTTPS with this certificate (``tally certs issue --kind server``) and key."""
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    """Mutual TLS: serve only clients presenting a certificate of this CA."""
    nats_ca_file: Path | None = None
    """The CA the NATS servers' certificates must chain to (else the system's CAs)."""
    nats_cert_file: Path | None = None
    """The client certificate (and key) presented to NATS servers that require one."""
    nats_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_pairs(self) -> PeerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        if (self.nats_cert_file is None) != (self.nats_key_file is None):
            raise ValueError("nats_cert_file and nats_key_file must be given together")
        return self


def _state(cfg: PeerConfig) -> StateStore:
    """The peer's state store: PostgreSQL when ``state_url`` is set, else SQLite."""
    if cfg.state_url:
        from tally.ledger.state_postgres import PostgresState

        return PostgresState(cfg.state_url, cfg.state_schema)
    return SqliteState(cfg.data_dir / "state.sqlite")


def load_peer_config(path: Path | None) -> PeerConfig:
    """The ``[peer]`` section of ``path`` with ``TALLY_PEER__*`` applied; raises ConfigError."""
    return config.section(config.load(path), "peer", PeerConfig, str(path or "environment"))


class PeerService:
    """One peer, its orderer connection and its HTTP app. :meth:`start`, then :meth:`stop`."""

    def __init__(self, cfg: PeerConfig, passphrase: str, contracts: Registry | None = None) -> None:
        """``contracts``: what the peer executes (default: the system contracts only; the
        ``tally peer`` command adds the finance contracts)."""
        self.cfg = cfg
        self.genesis = read_genesis(cfg.genesis)
        if self.genesis.ordering.kind != "jetstream":
            raise PeerServiceError(
                f"the genesis orders with {self.genesis.ordering.kind!r}; a peer service needs "
                "'jetstream' (a solo orderer lives inside one process)"
            )
        member = self.genesis.members.get(cfg.org)
        if member is None:
            raise PeerServiceError(f"{cfg.org!r} is not a member of the genesis")
        self.tls, nats_tls = _contexts(cfg)
        key = load_key(cfg.key_file, passphrase)
        if key.public.raw != member.pub:
            raise PeerServiceError(f"{cfg.key_file} is not the genesis key of {cfg.org!r}")
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        registry = contracts if contracts is not None else Registry(*system_contracts())
        self.peer = Peer(cfg.org, key, self.genesis, _state(cfg), registry, cfg.data_dir)
        self.index = PeerIndex(cfg.data_dir / "index.sqlite")
        if self.peer.height > 0 and self.index.checkpoint(self.peer.height) is None:
            self.index.put_checkpoint(self.peer.height, self.peer.sign_checkpoint())
        filled = self.index.fill(self.peer.txlog, self.genesis.suite)
        if filled:
            log.info("peer %s: %d blocks indexed from the transaction log", cfg.org, filled)
        self.orderer = JetStreamOrderer(self.genesis, cfg.nats, cut=True, tls=nats_tls)
        self.error: str | None = None
        self.url = ""
        self._follow: asyncio.Task[None] | None = None
        self.api = PeerApi(self.peer, self.orderer, self.index, self._following,
                           lambda: MAX_PAGE_BYTES)  # fmt: skip
        self.app = self.api.app
        self._http = HttpServer(self.app, cfg.host, cfg.port, self.tls)

    def _following(self) -> tuple[bool, str | None]:
        return self._follow is not None and not self._follow.done(), self.error

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Connect to the orderer, start following blocks and serving; return the base URL
        (``https://`` with TLS)."""
        await self.orderer.start()
        self._follow = asyncio.get_running_loop().create_task(self._run(), name="follow")
        try:
            self.url = await self._http.start()
        except (RuntimeError, TimeoutError) as exc:
            raise PeerServiceError(f"the HTTP server did not start: {exc}") from exc
        return self.url

    async def stop(self) -> None:
        """Stop serving and following; close the orderer connection and the peer's files."""
        try:
            await self._http.stop()
        except Exception as exc:  # a stop must go on to close the files
            log.warning("peer %s: HTTP server stop: %r", self.peer.org, exc)
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follow
        await self.orderer.close()
        self.index.close()
        self.peer.close()

    async def _run(self) -> None:
        try:
            async for block in self.orderer.blocks(self.peer.height + 1):
                if block.height <= self.peer.height:
                    continue
                res = self.peer.commit(block)
                self.index.record(res, block)
        except asyncio.CancelledError:
            raise
        except (BlockRejected, OrdererError) as exc:
            self.error = str(exc)
            log.error("peer %s stops following: %s", self.peer.org, exc)


def _contexts(cfg: PeerConfig) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """The HTTP listener's and the NATS client's TLS contexts (None: plain)."""
    try:
        listener = server_tls(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_client_ca_file)
        nats = client_tls(cfg.nats_ca_file, cfg.nats_cert_file, cfg.nats_key_file)
    except X509Error as exc:
        raise PeerServiceError(f"TLS: {exc}") from None
    return listener, nats


async def run(cfg: PeerConfig, passphrase: str, contracts: Registry | None = None) -> None:
    """Run a peer service until SIGTERM or SIGINT; print its URL when it serves."""
    service = PeerService(cfg, passphrase, contracts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await service.start()
        print(f"tally peer {cfg.org}: serving at {url} (height {service.peer.height})",
              flush=True)  # fmt: skip
        await stop.wait()
    finally:
        await service.stop()

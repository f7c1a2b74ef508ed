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

A solo orderer lives inside one process, so a genesis with ordering ``solo`` is refused.
The contracts are the registry the caller gives (``tally peer`` gives the system and the
finance contracts; the default is the system contracts only). Every instance runs a block
cutter; JetStream's expected-sequence check keeps one block per height.

HTTP (errors are RFC 9457 ``application/problem+json`` with ``type`` ``urn:tally:ledger:<code>``,
``title``, ``status``, ``detail``)::

    POST /v1/endorse        proposal COSE bytes -> 200 endorsement COSE (application/cose);
                            422 with code = the validation code it would get
    POST /v1/submit         transaction CBOR    -> 202 once the orderer durably accepted it
    GET  /v1/status         {"org", "chain", "height", "block", "state", "size",
                             "following", "error"}  (hashes in hex)
    GET  /v1/tx/{tx_id}     {"tx_id", "height", "index", "start", "code", "reason", "error"},
                            404 until committed (the first ordering of a tx id counts);
                            ``start`` = the log size before its block, so the transaction
                            is at log position ``start + index``
    GET  /v1/checkpoints/{height}  this peer's signed checkpoint COSE, 404 until committed
    GET  /v1/log/{index}?size=N    {"index", "size", "tx", "root", "path"} (hex): the
                            transaction bytes at log position ``index`` and its RFC 9162
                            inclusion path in the log of its first ``N`` transactions (default:
                            the whole log) with that log's root; 404 when ``index`` or ``N``
                            is beyond this peer's log
    GET  /v1/state?prefix=P&after=K&limit=N
                            application/cbor (deterministic) {"height": h, "items": [[key,
                            value], ...], "more": bool}: the keys starting with ``P`` (required,
                            non-empty) greater than ``K`` (optional), in key order, at most
                            ``N`` (1 to 1000, default 500) and at most MAX_PAGE_BYTES of body
                            (never fewer than one item); ``more`` says whether keys follow, so
                            the next page is ``after`` = the last key; ``h`` is the height the
                            page was read at

``/v1/state`` is read-only and serves the member's own systems — the warehouse's edge reads
the release orders of its site (``relord/<site>/``) and their receipts from its own peer. It
shows world state as it is, without proofs (a value is covered by the state commitment of the
checkpoints, not proven by this answer). Who may reach the peer's endpoints, and over what
transport, is the platform's mutual-TLS work: until then, serve them on a network only the
member's systems reach.

``index.sqlite`` in ``data_dir`` keeps, per committed block, the signed checkpoint and each
transaction's outcome. It is written right after the block is committed; after a crash
between the two, the heights in between have no index rows (the current height's checkpoint
is signed again on open).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
import signal
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tally import config
from tally.crypto import cbor
from tally.crypto.keystore import load_key
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.errors import BlockRejected, LedgerError, ProposalRejected
from tally.ledger.genesis import read_genesis
from tally.ledger.jetstream import JetStreamOrderer, OrdererUnavailable
from tally.ledger.orderer import OrdererError
from tally.ledger.peer import BlockResult, Peer
from tally.ledger.state import InvalidKey, StateError, StateStore, check_key
from tally.ledger.state_sqlite import SqliteState

__all__ = ["PeerConfig", "PeerService", "PeerServiceError", "load_peer_config", "run"]

log = logging.getLogger(__name__)

COSE = "application/cose"
CBOR = "application/cbor"
PROBLEM_JSON = "application/problem+json"
MAX_BODY = 8 << 20
STATE_PARAMS = ("prefix", "after", "limit")
STATE_LIMIT = 500
"""Items in a ``/v1/state`` page unless ``limit`` says otherwise."""
STATE_MAX_LIMIT = 1000
MAX_PAGE_BYTES = 8 << 20
"""The most body a ``/v1/state`` page has (it always holds at least one item, if any
follows; a value is at most 1 MiB, a key 1 KiB)."""
_LIMIT = re.compile(r"[0-9]{1,7}")


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


def _state(cfg: PeerConfig) -> StateStore:
    """The peer's state store: PostgreSQL when ``state_url`` is set, else SQLite."""
    if cfg.state_url:
        from tally.ledger.state_postgres import PostgresState

        return PostgresState(cfg.state_url, cfg.state_schema)
    return SqliteState(cfg.data_dir / "state.sqlite")


def load_peer_config(path: Path | None) -> PeerConfig:
    """The ``[peer]`` section of ``path`` with ``TALLY_PEER__*`` applied; raises ConfigError."""
    return config.section(config.load(path), "peer", PeerConfig, str(path or "environment"))


class _Index:
    """``index.sqlite``: signed checkpoints by height, transaction outcomes by id."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (height INTEGER PRIMARY KEY, cose BLOB)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS txs (tx_id BLOB PRIMARY KEY, height INTEGER, "
            "idx INTEGER, code TEXT, reason TEXT, error TEXT)"
        )

    def record(self, res: BlockResult) -> None:
        rows = [
            (s.tx_id, res.height, s.index, s.code, s.reason, s.error)
            for s in res.statuses
            if s.tx_id is not None
        ]
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                (res.height, res.signed_checkpoint),
            )
            self.db.executemany("INSERT OR IGNORE INTO txs VALUES (?, ?, ?, ?, ?, ?)", rows)

    def put_checkpoint(self, height: int, cose: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (height, cose))

    def checkpoint(self, height: int) -> bytes | None:
        row = self.db.execute("SELECT cose FROM checkpoints WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def tx(self, tx_id: bytes) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT height, idx, code, reason, error FROM txs WHERE tx_id = ?", (tx_id,)
        ).fetchone()
        if row is None:
            return None
        height, idx, code, reason, error = row
        return {"tx_id": tx_id.hex(), "height": height, "index": idx, "code": code,
                "reason": reason, "error": error}  # fmt: skip

    def close(self) -> None:
        self.db.close()


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the service."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    body = {"type": f"urn:tally:ledger:{code}", "title": code.replace("_", " "),
            "status": status, "detail": detail}  # fmt: skip
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


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
        key = load_key(cfg.key_file, passphrase)
        if key.public.raw != member.pub:
            raise PeerServiceError(f"{cfg.key_file} is not the genesis key of {cfg.org!r}")
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        registry = contracts if contracts is not None else Registry(*system_contracts())
        self.peer = Peer(cfg.org, key, self.genesis, _state(cfg), registry, cfg.data_dir)
        self.index = _Index(cfg.data_dir / "index.sqlite")
        if self.peer.height > 0 and self.index.checkpoint(self.peer.height) is None:
            self.index.put_checkpoint(self.peer.height, self.peer.sign_checkpoint())
        self.orderer = JetStreamOrderer(self.genesis, cfg.nats, cut=True)
        self.error: str | None = None
        self.url = ""
        self._follow: asyncio.Task[None] | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.app = Starlette(routes=[
            Route("/v1/endorse", self._endorse, methods=["POST"]),
            Route("/v1/submit", self._submit, methods=["POST"]),
            Route("/v1/status", self._status, methods=["GET"]),
            Route("/v1/tx/{tx_id}", self._tx, methods=["GET"]),
            Route("/v1/checkpoints/{height:int}", self._checkpoint, methods=["GET"]),
            Route("/v1/log/{index:int}", self._log, methods=["GET"]),
            Route("/v1/state", self._state, methods=["GET"]),
        ])  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Connect to the orderer, start following blocks and serving; return the base URL."""
        await self.orderer.start()
        loop = asyncio.get_running_loop()
        self._follow = loop.create_task(self._run(), name="follow")
        sock = socket.socket(socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.cfg.host, self.cfg.port))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        ucfg = uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False)
        self._server = _Server(ucfg)
        self._serving = loop.create_task(self._server.serve(sockets=[sock]), name="http")
        deadline = loop.time() + 10.0  # the socket is bound already: this is quick
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise PeerServiceError("the HTTP server stopped while starting")
            if loop.time() > deadline:
                raise PeerServiceError("the HTTP server did not start within 10 s")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving and following; close the orderer connection and the peer's files."""
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._serving, 5.0)
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
                self.index.record(res)
        except asyncio.CancelledError:
            raise
        except (BlockRejected, OrdererError) as exc:
            self.error = str(exc)
            log.error("peer %s stops following: %s", self.peer.org, exc)

    # -- HTTP ----------------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes | None:
        body = await request.body()
        return body if 0 < len(body) <= MAX_BODY else None

    async def _endorse(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return _problem(400, "malformed", f"the body must be 1 to {MAX_BODY} bytes")
        try:
            return Response(self.peer.endorse(body), media_type=COSE)
        except ProposalRejected as exc:
            return _problem(422, exc.code, exc.reason)

    async def _submit(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return _problem(400, "malformed", f"the body must be 1 to {MAX_BODY} bytes")
        try:
            await self.orderer.submit(body)
        except ValueError as exc:
            return _problem(400, "malformed", str(exc))
        except OrdererUnavailable as exc:
            return _problem(503, "orderer_unavailable", str(exc))
        except OrdererError as exc:
            return _problem(503, "orderer_closed", str(exc))
        return Response(status_code=202)

    async def _status(self, request: Request) -> Response:
        p = self.peer
        return JSONResponse({
            "org": p.org, "chain": p.chain.hex(), "height": p.height,
            "block": p.block_hash.hex(), "state": p.commitment().hex(), "size": p.txlog.size,
            "following": self._follow is not None and not self._follow.done(),
            "error": self.error,
        })  # fmt: skip

    async def _tx(self, request: Request) -> Response:
        raw = request.path_params["tx_id"]
        try:
            tx_id = bytes.fromhex(raw)
        except ValueError:
            return _problem(400, "malformed", f"{raw!r} is not hex")
        got = self.index.tx(tx_id)
        if got is None:
            return _problem(404, "not_found", f"transaction {raw[:16]}… is not committed here")
        height = int(got["height"])
        if height <= self.peer.txlog.height:
            got["start"] = self.peer.txlog.size_at(height - 1)
        return JSONResponse(got)

    async def _checkpoint(self, request: Request) -> Response:
        height: int = request.path_params["height"]
        cose = self.index.checkpoint(height)
        if cose is None:
            return _problem(404, "not_found", f"no checkpoint for height {height} here "
                            f"(at {self.peer.height})")  # fmt: skip
        return Response(cose, media_type=COSE)

    async def _log(self, request: Request) -> Response:
        index: int = request.path_params["index"]
        txlog = self.peer.txlog
        have = txlog.size
        raw = request.query_params.get("size")
        try:
            size = have if raw is None else int(raw)
        except ValueError:
            return _problem(400, "malformed", f"size {raw!r} is not an integer")
        if not 0 <= index < size or size > have:
            return _problem(404, "not_found", f"no transaction {index} in a log of {size} here "
                            f"(this peer's log holds {have})")  # fmt: skip
        return JSONResponse({
            "index": index, "size": size, "tx": txlog.tx(index).hex(),
            "root": txlog.root_at(size).hex(),
            "path": [h.hex() for h in txlog.inclusion_proof(index, size)],
        })  # fmt: skip

    async def _state(self, request: Request) -> Response:
        q = request.query_params
        unknown = sorted(set(q) - set(STATE_PARAMS))
        if unknown:
            return _problem(400, "malformed", f"unknown parameter {unknown[0]!r} (the "
                            f"parameters are {', '.join(STATE_PARAMS)})")  # fmt: skip
        for name in STATE_PARAMS:
            if len(q.getlist(name)) > 1:
                return _problem(400, "malformed", f"parameter {name!r} is given "
                                f"{len(q.getlist(name))} times; give it at most once")  # fmt: skip
        prefix, after, raw = q.get("prefix"), q.get("after"), q.get("limit")
        if not prefix:
            return _problem(400, "malformed", "parameter 'prefix' is required and must not be "
                            "empty (the whole state is not served)")  # fmt: skip
        for name, value in (("prefix", prefix), ("after", after)):
            if value is None:
                continue
            try:
                check_key(value)
            except InvalidKey as exc:
                how = "leave it out to start at the prefix" if value == "" else exc.reason
                return _problem(400, "malformed", f"parameter {name!r} is not a state key: "
                                f"{how}")  # fmt: skip
        limit = STATE_LIMIT
        if raw is not None:
            if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= STATE_MAX_LIMIT:
                return _problem(400, "malformed", f"parameter 'limit' must be an integer from 1 "
                                f"to {STATE_MAX_LIMIT}, got {raw!r}")  # fmt: skip
            limit = int(raw)
        try:  # no await from here on: a block is committed between requests, never within one
            height = self.peer.height
            rows = self.peer.state.range(prefix)
        except StateError as exc:
            return _problem(500, "state_error", str(exc))
        return Response(_state_page(height, rows, after, limit), media_type=CBOR)


def _state_page(height: int, rows: list[tuple[str, Any, Any]], after: str | None,
                limit: int) -> bytes:  # fmt: skip
    """The deterministic CBOR of one ``/v1/state`` page of ``rows`` (sorted by key)."""
    start = 0 if after is None else bisect.bisect_right(rows, after, key=lambda r: r[0])
    tail = cbor.encode("height") + cbor.encode(height)
    head_room = MAX_PAGE_BYTES - len(tail) - 32  # the map, "more", "items" and the array heads
    parts: list[bytes] = []
    size = 0
    for key, value, _version in rows[start : start + limit]:
        part = cbor.encode([key, value])
        if parts and size + len(part) > head_room:
            break
        parts.append(part)
        size += len(part)
    more = start + len(parts) < len(rows)
    # the keys of a deterministic map are in the order of their encodings: "more" (4 letters)
    # before "items" (5) before "height" (6)
    return b"".join([
        cbor.head(5, 3), cbor.encode("more"), cbor.encode(more),
        cbor.encode("items"), cbor.head(4, len(parts)), *parts, tail,
    ])  # fmt: skip


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

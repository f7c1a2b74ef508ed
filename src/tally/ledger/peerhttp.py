"""The HTTP API of a peer service (:mod:`tally.ledger.peerservice`), and the server it runs on.

Errors are RFC 9457 ``application/problem+json`` with ``type`` ``urn:tally:ledger:<code>``,
``title``, ``status``, ``detail``::

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
    GET  /v1/blocks?after=H&limit=N
                            {"height": h, "blocks": [{"height", "hash", "time", "state",
                            "signers": [org, ...], "txs": [{"id", "index", "contract", "fn",
                            "creator", "code", "reason"}, ...]}, ...]}: the blocks above height
                            ``H`` (default 0) in ascending order, at most ``N`` (1 to 200,
                            default 50); ``h`` is the peer's height. Hashes in hex; ``time`` the
                            orderer's block time in ms since the epoch; ``state`` the state
                            commitment after the block; ``signers`` the members whose
                            checkpoint signature of that height this peer holds (its own);
                            ``reason`` null for a valid transaction. ``time``, ``state``,
                            ``contract``, ``fn``, ``creator`` and ``code`` are null where the
                            index does not know them (:mod:`tally.ledger.peerindex`)

``/v1/state`` and ``/v1/blocks`` are read-only and serve the member's own systems (the
warehouse's edge reads its site's release orders, the platform's projector the blocks). They
show what the peer holds, without proofs. With TLS configured the server speaks HTTPS only, and
with a client CA it serves only clients that present a certificate of that CA (mutual TLS):
``docs/transport.md``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tally.crypto import cbor
from tally.crypto.tlsconf import uvicorn_ssl
from tally.ledger.errors import ProposalRejected
from tally.ledger.jetstream import JetStreamOrderer, OrdererUnavailable
from tally.ledger.orderer import OrdererError
from tally.ledger.peer import Peer
from tally.ledger.peerindex import PeerIndex
from tally.ledger.state import InvalidKey, StateError, check_key

__all__ = ["MAX_PAGE_BYTES", "HttpServer", "PeerApi", "problem", "state_page"]

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
BLOCK_PARAMS = ("after", "limit")
BLOCK_LIMIT = 50
"""Blocks in a ``/v1/blocks`` answer unless ``limit`` says otherwise."""
BLOCK_MAX_LIMIT = 200
_LIMIT = re.compile(r"[0-9]{1,7}")
_HEIGHT = re.compile(r"[0-9]{1,19}")


def problem(status: int, code: str, detail: str) -> JSONResponse:
    """An RFC 9457 problem answer of type ``urn:tally:ledger:<code>``."""
    body = {"type": f"urn:tally:ledger:{code}", "title": code.replace("_", " "),
            "status": status, "detail": detail}  # fmt: skip
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class PeerApi:
    """The Starlette app (:attr:`app`) over one peer, its orderer and its index.
    ``following`` says whether the peer still follows the orderer and why not;
    ``page_bytes`` gives the ``/v1/state`` byte bound, read per request."""

    def __init__(
        self,
        peer: Peer,
        orderer: JetStreamOrderer,
        index: PeerIndex,
        following: Callable[[], tuple[bool, str | None]],
        page_bytes: Callable[[], int] = lambda: MAX_PAGE_BYTES,
    ) -> None:
        self.peer, self.orderer, self.index = peer, orderer, index
        self.following, self.page_bytes = following, page_bytes
        self.app = Starlette(routes=[
            Route("/v1/endorse", self._endorse, methods=["POST"]),
            Route("/v1/submit", self._submit, methods=["POST"]),
            Route("/v1/status", self._status, methods=["GET"]),
            Route("/v1/tx/{tx_id}", self._tx, methods=["GET"]),
            Route("/v1/checkpoints/{height:int}", self._checkpoint, methods=["GET"]),
            Route("/v1/log/{index:int}", self._log, methods=["GET"]),
            Route("/v1/state", self._state, methods=["GET"]),
            Route("/v1/blocks", self._blocks, methods=["GET"]),
        ])  # fmt: skip

    async def _body(self, request: Request) -> bytes | None:
        body = await request.body()
        return body if 0 < len(body) <= MAX_BODY else None

    async def _endorse(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return problem(400, "malformed", f"the body must be 1 to {MAX_BODY} bytes")
        try:
            return Response(self.peer.endorse(body), media_type=COSE)
        except ProposalRejected as exc:
            return problem(422, exc.code, exc.reason)

    async def _submit(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return problem(400, "malformed", f"the body must be 1 to {MAX_BODY} bytes")
        try:
            await self.orderer.submit(body)
        except ValueError as exc:
            return problem(400, "malformed", str(exc))
        except OrdererUnavailable as exc:
            return problem(503, "orderer_unavailable", str(exc))
        except OrdererError as exc:
            return problem(503, "orderer_closed", str(exc))
        return Response(status_code=202)

    async def _status(self, request: Request) -> Response:
        p = self.peer
        following, error = self.following()
        return JSONResponse({
            "org": p.org, "chain": p.chain.hex(), "height": p.height,
            "block": p.block_hash.hex(), "state": p.commitment().hex(), "size": p.txlog.size,
            "following": following, "error": error,
        })  # fmt: skip

    async def _tx(self, request: Request) -> Response:
        raw = request.path_params["tx_id"]
        try:
            tx_id = bytes.fromhex(raw)
        except ValueError:
            return problem(400, "malformed", f"{raw!r} is not hex")
        got = self.index.tx(tx_id)
        if got is None:
            return problem(404, "not_found", f"transaction {raw[:16]}… is not committed here")
        height = int(got["height"])
        if height <= self.peer.txlog.height:
            got["start"] = self.peer.txlog.size_at(height - 1)
        return JSONResponse(got)

    async def _checkpoint(self, request: Request) -> Response:
        height: int = request.path_params["height"]
        cose = self.index.checkpoint(height)
        if cose is None:
            return problem(404, "not_found", f"no checkpoint for height {height} here "
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
            return problem(400, "malformed", f"size {raw!r} is not an integer")
        if not 0 <= index < size or size > have:
            return problem(404, "not_found", f"no transaction {index} in a log of {size} here "
                           f"(this peer's log holds {have})")  # fmt: skip
        return JSONResponse({
            "index": index, "size": size, "tx": txlog.tx(index).hex(),
            "root": txlog.root_at(size).hex(),
            "path": [h.hex() for h in txlog.inclusion_proof(index, size)],
        })  # fmt: skip

    async def _state(self, request: Request) -> Response:
        q = request.query_params
        bad = _params(request, STATE_PARAMS)
        if bad is not None:
            return bad
        prefix, after, raw = q.get("prefix"), q.get("after"), q.get("limit")
        if not prefix:
            return problem(400, "malformed", "parameter 'prefix' is required and must not be "
                           "empty (the whole state is not served)")  # fmt: skip
        for name, value in (("prefix", prefix), ("after", after)):
            if value is None:
                continue
            try:
                check_key(value)
            except InvalidKey as exc:
                how = "leave it out to start at the prefix" if value == "" else exc.reason
                return problem(400, "malformed", f"parameter {name!r} is not a state key: "
                               f"{how}")  # fmt: skip
        limit = STATE_LIMIT
        if raw is not None:
            if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= STATE_MAX_LIMIT:
                return problem(400, "malformed", f"parameter 'limit' must be an integer from 1 "
                               f"to {STATE_MAX_LIMIT}, got {raw!r}")  # fmt: skip
            limit = int(raw)
        try:  # no await from here on: a block is committed between requests, never within one
            height = self.peer.height
            rows = self.peer.state.range(prefix)
        except StateError as exc:
            return problem(500, "state_error", str(exc))
        page = state_page(height, rows, after, limit, self.page_bytes())
        return Response(page, media_type=CBOR)

    async def _blocks(self, request: Request) -> Response:
        bad = _params(request, BLOCK_PARAMS)
        if bad is not None:
            return bad
        raw_after, raw_limit = request.query_params.get("after"), request.query_params.get("limit")
        after, limit = 0, BLOCK_LIMIT
        if raw_after is not None:
            if not _HEIGHT.fullmatch(raw_after) or int(raw_after) >= 1 << 63:
                return problem(400, "malformed", "parameter 'after' must be a block height (an "
                               f"integer from 0), got {raw_after!r}")  # fmt: skip
            after = int(raw_after)
        if raw_limit is not None:
            if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= BLOCK_MAX_LIMIT:
                return problem(400, "malformed", "parameter 'limit' must be an integer from 1 "
                               f"to {BLOCK_MAX_LIMIT}, got {raw_limit!r}")  # fmt: skip
            limit = int(raw_limit)
        height = self.peer.height  # no await from here on, as for /v1/state
        blocks = self.index.blocks(after, limit, self.peer.org)
        return JSONResponse({"height": height, "blocks": blocks})


def _params(request: Request, known: tuple[str, ...]) -> Response | None:
    """A 400 problem for an unknown or repeated query parameter, else None."""
    q = request.query_params
    unknown = sorted(set(q) - set(known))
    if unknown:
        return problem(400, "malformed", f"unknown parameter {unknown[0]!r} (the parameters "
                       f"are {', '.join(known)})")  # fmt: skip
    for name in known:
        if len(q.getlist(name)) > 1:
            return problem(400, "malformed", f"parameter {name!r} is given "
                           f"{len(q.getlist(name))} times; give it at most once")  # fmt: skip
    return None


def state_page(
    height: int,
    rows: list[tuple[str, Any, Any]],
    after: str | None,
    limit: int,
    max_bytes: int = MAX_PAGE_BYTES,
) -> bytes:
    """The deterministic CBOR of one ``/v1/state`` page of ``rows`` (sorted by key)."""
    start = 0 if after is None else bisect.bisect_right(rows, after, key=lambda r: r[0])
    tail = cbor.encode("height") + cbor.encode(height)
    head_room = max_bytes - len(tail) - 32  # the map, "more", "items" and the array heads
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


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the service."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Serves an ASGI app on ``host``:``port`` (0: a free port) over HTTP, or HTTPS with
    ``tls`` (a server context; with a client CA in it, mutual TLS)."""

    def __init__(self, app: Any, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.app, self.host, self.port, self.tls = app, host, port, tls
        self.url = ""
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> str:
        """Bind, serve in the background; return the base URL once it accepts connections."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        factory = None if self.tls is None else uvicorn_ssl(self.tls)
        ucfg = uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False,
                              ssl_context_factory=factory)  # fmt: skip
        self._server = _Server(ucfg)
        self._serving = loop.create_task(self._server.serve(sockets=[sock]), name="http")
        deadline = loop.time() + timeout  # the socket is bound already: this is quick
        while not self._server.started:
            if self._serving.done():
                sock.close()
                self._serving.result()
                raise RuntimeError("the HTTP server stopped while starting")
            if loop.time() > deadline:
                raise TimeoutError(f"the HTTP server did not start within {timeout:g} s")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        scheme = "http" if self.tls is None else "https"
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
        return self.url

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting and finish the requests in flight (at most ``timeout`` s)."""
        server, serving, self._server, self._serving = self._server, self._serving, None, None
        if server is not None and serving is not None:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout)

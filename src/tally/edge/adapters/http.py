"""HTTP endpoint: ``POST /v1/envelopes`` with one COSE_Sign1 envelope as the body.

Answers (errors are RFC 9457 ``application/problem+json`` objects whose ``type`` is
``urn:tally:problem:<code>``)::

    202  accepted: handed to the gateway, which verifies it (no body)
    400  empty-body | not-cose-sign1   (the body does not start like a COSE_Sign1)
    405  method-not-allowed
    404  not-found
    413  payload-too-large              (Content-Length or the streamed body over the limit)
    415  unsupported-media-type         (not application/cose; cose-type="cose-sign1")

Served by uvicorn on a socket the endpoint binds itself, so port 0 gives a free port. With
``tls`` (a server context, :func:`tally.crypto.tlsconf.server_tls`) it serves HTTPS only; a
context with a client CA serves only devices that present a certificate of that CA (the TLS
handshake fails for any other, before a request is read).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tally.crypto.tlsconf import uvicorn_ssl
from tally.device.publish.wire import (
    HTTP_PATH,
    MAX_ENVELOPE_BYTES,
    PROBLEM_MEDIA_TYPE,
    looks_like_sign1,
)
from tally.edge.adapters.base import AdapterStats, OnEnvelope, deliver

_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    415: "Unsupported media type",
}


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": f"urn:tally:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def is_cose_sign1_media_type(value: str) -> bool:
    """``application/cose`` with ``cose-type="cose-sign1"`` (or no cose-type parameter)."""
    parts = [p.strip() for p in value.split(";")]
    if parts[0].lower() != "application/cose":
        return False
    for param in parts[1:]:
        name, _, val = param.partition("=")
        if name.strip().lower() == "cose-type" and val.strip().strip('"').lower() != "cose-sign1":
            return False
    return True


class HttpEndpoint:
    """The ASGI app (:attr:`app`) and its uvicorn server on ``host``:``port`` (HTTPS with
    ``tls``)."""

    def __init__(
        self,
        on_envelope: OnEnvelope,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_bytes: int = MAX_ENVELOPE_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.max_bytes = max_bytes
        self.tls = tls
        self.stats = AdapterStats()
        self._on_envelope = on_envelope
        self.app = Starlette(
            routes=[Route(HTTP_PATH, self._post, methods=["POST"])],
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the HTTP endpoint has not started yet")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'http' if self.tls is None else 'https'}://{host}:{self.port}"

    async def __aenter__(self) -> HttpEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, timeout: float = 10.0) -> None:
        """Bind, serve in the background, and return once uvicorn accepts connections."""
        if self._task is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        factory = None if self.tls is None else uvicorn_ssl(self.tls)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                ssl_context_factory=factory)  # fmt: skip
        server = uvicorn.Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="http-endpoint")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RuntimeError("the HTTP endpoint stopped while starting")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"HTTP endpoint did not start within {timeout} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight, close the socket."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            await task

    async def _post(self, request: Request) -> Response:
        client = request.client
        source = f"http:{client.host}:{client.port}" if client else "http:unknown"
        ctype = request.headers.get("content-type", "")
        if not is_cose_sign1_media_type(ctype):
            self.stats.refuse(source, f"media type {ctype!r}")
            return problem(
                415,
                "unsupported-media-type",
                f'content type {ctype!r} is not application/cose; cose-type="cose-sign1"',
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self.stats.refuse(source, f"declared length {declared}")
            return self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                self.stats.refuse(source, f"body over {self.max_bytes} bytes")
                return self._too_large(size)
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            self.stats.refuse(source, "empty body")
            return problem(400, "empty-body", "the body must be one COSE_Sign1 envelope")
        if not looks_like_sign1(data):
            self.stats.refuse(source, "not a COSE_Sign1")
            return problem(
                400, "not-cose-sign1", "the body does not start with a tagged COSE_Sign1"
            )
        deliver(self._on_envelope, data, source, self.stats)
        return Response(status_code=202)

    def _too_large(self, size: int) -> Response:
        return problem(
            413,
            "payload-too-large",
            f"an envelope may have at most {self.max_bytes} bytes",
            max_bytes=self.max_bytes,
            received_at_least=size,
        )

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, code, str(exc.detail))

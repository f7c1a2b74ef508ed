"""CoAP endpoint: resource ``/up`` taking ``POST`` of one envelope (Content-Format 18).

Answers ``2.04 Changed`` when the envelope was handed to the gateway; ``4.15 Unsupported
Content-Format`` for another format than 18 (``application/cose; cose-type="cose-sign1"``),
``4.13 Request Entity Too Large`` (with a Size1 option giving the limit) over ``max_bytes``,
``4.00 Bad Request`` for an empty payload or one that does not start like a COSE_Sign1;
errors carry a diagnostic text payload. Envelopes over one CoAP block arrive block-wise
(RFC 7959); aiocoap reassembles them.

Only the UDP transport is served. aiocoap cannot report the port it bound, so with port 0
the endpoint first asks the OS for a free UDP port and then binds aiocoap to it.
"""

from __future__ import annotations

import socket

import aiocoap
import aiocoap.resource as resource

from tally.device.publish.wire import (
    COAP_CONTENT_FORMAT_COSE_SIGN1,
    COAP_PATH,
    MAX_ENVELOPE_BYTES,
    looks_like_sign1,
)
from tally.edge.adapters.base import AdapterStats, OnEnvelope, deliver, size_problem


def free_udp_port(host: str) -> int:
    """A UDP port on ``host`` that is free right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _UpResource(resource.Resource):  # type: ignore[misc]
    def __init__(self, endpoint: CoapEndpoint) -> None:
        super().__init__()
        self._ep = endpoint

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return self._ep._receive(request)


class CoapEndpoint:
    """An aiocoap server context with resource ``/up`` on ``host``:``port`` (UDP)."""

    def __init__(
        self,
        on_envelope: OnEnvelope,
        *,
        host: str = "127.0.0.1",
        port: int = 5683,
        max_bytes: int = MAX_ENVELOPE_BYTES,
    ) -> None:
        self.host = host
        self._port = port
        self.max_bytes = max_bytes
        self.stats = AdapterStats()
        self._on_envelope = on_envelope
        self._ctx: aiocoap.Context | None = None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the CoAP endpoint has not started yet")
        return self._port

    async def __aenter__(self) -> CoapEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and serve; raise OSError if the address cannot be bound."""
        if self._ctx is not None:
            return
        if self._port == 0:
            self._port = free_udp_port(self.host)
        site = resource.Site()
        site.add_resource([COAP_PATH], _UpResource(self))
        self._ctx = await aiocoap.Context.create_server_context(
            site, bind=(self.host, self._port), transports=["udp6"]
        )

    async def stop(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            await ctx.shutdown()

    def _receive(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            source = f"coap:{request.remote.hostinfo}"
        except Exception:  # an unusual remote must not cost the envelope
            source = "coap:unknown"
        fmt = request.opt.content_format
        if fmt is None or int(fmt) != COAP_CONTENT_FORMAT_COSE_SIGN1:
            self.stats.refuse(source, f"content format {fmt}")
            return _error(
                aiocoap.UNSUPPORTED_CONTENT_FORMAT,
                f"content format must be {COAP_CONTENT_FORMAT_COSE_SIGN1} (COSE_Sign1)",
            )
        data = bytes(request.payload)
        problem = size_problem(len(data), self.max_bytes)
        if problem is not None:
            self.stats.refuse(source, problem)
            if data:
                resp = _error(aiocoap.REQUEST_ENTITY_TOO_LARGE, problem)
                resp.opt.size1 = self.max_bytes
                return resp
            return _error(aiocoap.BAD_REQUEST, problem)
        if not looks_like_sign1(data):
            self.stats.refuse(source, "not a COSE_Sign1")
            return _error(aiocoap.BAD_REQUEST, "payload does not start with a tagged COSE_Sign1")
        deliver(self._on_envelope, data, source, self.stats)
        return aiocoap.Message(code=aiocoap.CHANGED)


def _error(code: aiocoap.numbers.codes.Code, text: str) -> aiocoap.Message:
    return aiocoap.Message(code=code, payload=text.encode())

"""CoAP publisher: confirmable ``POST /up`` with Content-Format 18 (COSE_Sign1).

The endpoint answers ``2.04 Changed``; an error code (``4.00``, ``4.13``, ``4.15``, ``5.xx``)
carries a diagnostic text payload. aiocoap retransmits the confirmable request (RFC 7252
§4.2) and splits large envelopes into blocks (RFC 7959) by itself.
"""

from __future__ import annotations

import asyncio
import logging

import aiocoap

from tally.device.publish.errors import PublishRejected, PublishUnreachable
from tally.device.publish.wire import COAP_CONTENT_FORMAT_COSE_SIGN1, COAP_PATH

log = logging.getLogger(__name__)


class CoapPublisher:
    """Posts envelopes to ``coap://{host}:{port}/up`` from one client context."""

    def __init__(self, host: str, port: int = 5683, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.uri = f"coap://{_host_literal(host)}:{port}/{COAP_PATH}"
        self._timeout = timeout
        self._ctx: aiocoap.Context | None = None
        self._lock = asyncio.Lock()
        self.published = 0

    async def __aenter__(self) -> CoapPublisher:
        await self._context()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            await ctx.shutdown()

    async def publish(self, site: str, device: str, payload: bytes) -> None:
        """Post one envelope; return on ``2.04 Changed``.

        ``site`` and ``device`` are not sent (see :class:`HttpPublisher`). Raises
        :class:`PublishRejected` for an error response and :class:`PublishUnreachable`
        when no response came within ``timeout`` (after CoAP's own retransmissions).
        """
        del site, device
        ctx = await self._context()
        req = aiocoap.Message(
            code=aiocoap.POST,
            transport_tuning=aiocoap.Reliable,  # confirmable (CON)
            uri=self.uri,
            payload=payload,
            content_format=COAP_CONTENT_FORMAT_COSE_SIGN1,
        )
        try:
            resp = await asyncio.wait_for(ctx.request(req).response, self._timeout)
        except (TimeoutError, aiocoap.error.Error, OSError) as exc:
            raise PublishUnreachable("coap", self.uri, str(exc) or repr(exc)) from exc
        if resp.code == aiocoap.CHANGED:
            self.published += 1
            return
        detail = resp.payload.decode("utf-8", "replace")
        raise PublishRejected("coap", self.uri, resp.code.dotted, {"detail": detail})

    async def _context(self) -> aiocoap.Context:
        # Concurrent first publishes must share one context: a second one would be dropped
        # while its socket is open.
        async with self._lock:
            if self._ctx is None:
                self._ctx = await aiocoap.Context.create_client_context(transports=["udp6"])
            return self._ctx


def _host_literal(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

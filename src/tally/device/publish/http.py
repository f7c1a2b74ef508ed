"""HTTP publisher: ``POST /v1/envelopes`` with the COSE_Sign1 bytes as the body.

The endpoint answers ``202 Accepted``; anything else is a refusal described by an RFC 9457
problem (``application/problem+json``). Connection failures and 5xx answers are retried
with exponential backoff until the retry deadline; 4xx answers are not retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

import httpx

from tally.device.publish.errors import PublishRejected, PublishUnreachable
from tally.device.publish.wire import COSE_SIGN1_MEDIA_TYPE, HTTP_PATH

log = logging.getLogger(__name__)


class HttpPublisher:
    """Posts envelopes to an edge's HTTP endpoint over one pooled connection.

    ``base_url`` is e.g. ``http://127.0.0.1:8081``; ``verify`` a CA file for HTTPS (or
    ``True`` for the system store).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retry_deadline: float = 30.0,
        verify: str | bool = True,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = base_url.rstrip("/") + HTTP_PATH
        tls: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._client = httpx.AsyncClient(timeout=timeout, verify=tls)
        self._retry_deadline = retry_deadline
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self.published = 0

    async def __aenter__(self) -> HttpPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.aclose()

    async def publish(self, site: str, device: str, payload: bytes) -> None:
        """Post one envelope; return when the endpoint answered 202.

        ``site`` and ``device`` are not sent (the envelope names its signer and an endpoint
        serves one site); they keep the interface the same as :class:`MqttPublisher`'s.
        Raises :class:`PublishRejected` (4xx, or 5xx past the deadline) or
        :class:`PublishUnreachable`.
        """
        del site, device
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_deadline
        delay = self._backoff_min
        headers = {"content-type": COSE_SIGN1_MEDIA_TYPE}
        while True:
            try:
                resp = await self._client.post(self.url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                if loop.time() + delay > deadline:
                    raise PublishUnreachable("http", self.url, str(exc) or repr(exc)) from exc
                log.info("post to %s failed: %r", self.url, exc)
            else:
                if resp.status_code == 202:
                    self.published += 1
                    return
                problem = _problem(resp)
                if resp.status_code < 500 or loop.time() + delay > deadline:
                    raise PublishRejected("http", self.url, resp.status_code, problem)
                log.info("post to %s answered %d", self.url, resp.status_code)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)


def _problem(resp: httpx.Response) -> dict[str, object]:
    try:
        obj = json.loads(resp.content)
    except ValueError:
        return {"status": resp.status_code, "detail": resp.text[:200]}
    return obj if isinstance(obj, dict) else {"status": resp.status_code, "detail": str(obj)}

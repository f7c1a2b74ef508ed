"""Uploading sealed batches to the cloud and deleting them on its signed receipt.

Protocol: ``POST {cloud_url}/v1/batches`` with ``Content-Type: application/cbor`` and body
``encode_upload(header, items)`` (see :mod:`tally.edge.formats`). The cloud answers

* ``200`` with the receipt's COSE bytes (``application/cose``): the receipt must be signed
  by a registered cloud (registration kind "cloud", ``kid`` = its id) and name this edge,
  this batch counter, the suite hash of this header and the item count; then the batch and
  its items are deleted. An invalid receipt keeps the batch and counts as a failed attempt.
* ``4xx`` (other than 408, 425 and 429) with an RFC 9457 problem: the batch is marked
  ``refused`` with the problem's title/detail, kept, and retried only after
  ``refused_retry_ms``; later batches go on.
* anything else, or no answer: retried with exponential backoff and equal jitter
  (``backoff_ms · 2^k``, capped at ``backoff_cap_ms``; half of it fixed, half random).

Batches are sent one at a time in counter order. Over HTTPS the cloud's certificate must chain
to ``ca_file`` (else to the system's CAs); with ``client_cert_file`` and ``client_key_file``
the edge presents that certificate, for a cloud that requires mutual TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tally import formats as F
from tally.crypto import CryptoError, Suite, parse_sign1
from tally.crypto.x509ca import client_context
from tally.edge.errors import ReceiptError, UploadRefused
from tally.edge.formats import Receipt, decode_receipt, encode_upload
from tally.edge.outbox import Batch, Outbox
from tally.edge.registry import Registry

log = logging.getLogger(__name__)

_TRANSIENT_4XX = frozenset({408, 425, 429})


class _Transient(Exception):
    """An upload attempt failed in a way worth retrying soon (5xx, bad receipt)."""


def verify_receipt(
    data: bytes, batch: Batch, edge: str, suite: Suite, registry: Registry
) -> Receipt:
    """Check that ``data`` is the cloud's signed receipt for ``batch``; raise ReceiptError."""
    try:
        msg = parse_sign1(data, content_type=F.CTY_RECEIPT, suite=suite)
    except CryptoError as exc:
        raise ReceiptError(batch.ctr, str(exc)) from None
    key = registry.cloud_key(msg.kid)
    if key is None:
        raise ReceiptError(batch.ctr, f"{msg.kid!r} is not a registered cloud")
    try:
        msg.verify(key)
        rc = decode_receipt(msg.payload)
    except CryptoError as exc:
        raise ReceiptError(batch.ctr, str(exc)) from None
    problems = []
    if rc.cloud != msg.kid:
        problems.append(f"signed by {msg.kid!r} but names cloud {rc.cloud!r}")
    if rc.edge != edge:
        problems.append(f"names edge {rc.edge!r}")
    if rc.ctr != batch.ctr:
        problems.append(f"names batch {rc.ctr}")
    if rc.header != batch.hash:
        problems.append("header hash differs")
    if rc.n != batch.n:
        problems.append(f"counts {rc.n} items, batch has {batch.n}")
    if problems:
        raise ReceiptError(batch.ctr, "; ".join(problems))
    return rc


def _problem(resp: httpx.Response) -> dict[str, object]:
    try:
        obj = json.loads(resp.content)
    except ValueError:
        return {"detail": resp.text[:500]}
    return obj if isinstance(obj, dict) else {"detail": str(obj)[:500]}


class Uplink:
    """Sends the outbox's batches; run :meth:`run` as a task, call :meth:`wake` on a seal."""

    def __init__(
        self,
        outbox: Outbox,
        registry: Registry,
        edge: str,
        suite: Suite,
        cloud_url: str,
        ca_file: Path | None = None,
        client_cert_file: Path | None = None,
        client_key_file: Path | None = None,
        clock: Callable[[], int] | None = None,
        timeout_ms: int = 30_000,
        backoff_ms: int = 500,
        backoff_cap_ms: int = 30_000,
        refused_retry_ms: int = 300_000,
    ) -> None:
        self.outbox = outbox
        self.registry = registry
        self.edge = edge
        self.suite = suite
        self.url = cloud_url.rstrip("/") + "/v1/batches"
        self.ca_file = ca_file
        self._verify: ssl.SSLContext | bool = True
        if ca_file is not None or client_cert_file is not None or client_key_file is not None:
            self._verify = client_context(ca_file, client_cert_file, client_key_file)
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.timeout_ms = timeout_ms
        self.backoff_ms = backoff_ms
        self.backoff_cap_ms = backoff_cap_ms
        self.refused_retry_ms = refused_retry_ms
        self.failures = 0
        self.last_error = ""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the loop a batch was sealed (or the link may be back)."""
        self._wake.set()

    def client(self) -> httpx.AsyncClient:
        """An HTTP client for the cloud; with ``ca_file`` the server must chain to it, with a
        client certificate the client presents it."""
        return httpx.AsyncClient(verify=self._verify, timeout=self.timeout_ms / 1000)

    async def send(self, client: httpx.AsyncClient, batch: Batch) -> Receipt:
        """Upload one batch; on a valid receipt delete it and return the receipt.

        Raises UploadRefused (4xx), ReceiptError (bad receipt), httpx.HTTPError (no
        answer) or ``_Transient`` (5xx and other statuses).
        """
        items = self.outbox.batch_items(batch.ctr)
        body = encode_upload(batch.header, items)
        self.outbox.mark_attempt(batch.ctr)
        resp = await client.post(
            self.url,
            content=body,
            headers={"content-type": "application/cbor", "accept": "application/cose"},
        )
        if resp.status_code == 200:
            rc = verify_receipt(resp.content, batch, self.edge, self.suite, self.registry)
            self.outbox.ack(batch.ctr, batch.hash, resp.content, self.clock())
            log.info("batch %d (%d items) receipted by %s", batch.ctr, batch.n, rc.cloud)
            return rc
        if 400 <= resp.status_code < 500 and resp.status_code not in _TRANSIENT_4XX:
            raise UploadRefused(batch.ctr, resp.status_code, _problem(resp))
        raise _Transient(f"HTTP {resp.status_code}")

    def _delay(self) -> float:
        d: float = (
            min(self.backoff_cap_ms, self.backoff_ms * 2 ** min(self.failures - 1, 30)) / 1000
        )
        return d / 2 + random.uniform(0, d / 2)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to ``seconds``; return early on stop or wake."""
        self._wake.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        """Upload batches until ``stop`` is set."""
        async with self.client() as client:
            while not stop.is_set():
                batch = self.outbox.next_batch(self.clock())
                if batch is None:
                    await self._sleep(stop, 1.0)
                    continue
                try:
                    await self.send(client, batch)
                    self.failures = 0
                except UploadRefused as exc:
                    log.warning("%s: %s", exc, exc.problem)
                    reason = str(exc.problem.get("title") or exc.problem.get("detail") or "")
                    self.outbox.mark_refused(
                        batch.ctr,
                        f"HTTP {exc.status}: {reason}".strip(),
                        self.clock() + self.refused_retry_ms,
                    )
                except Exception as exc:  # no answer, 5xx, bad receipt, outbox trouble
                    self.failures += 1
                    self.last_error = str(exc) or type(exc).__name__
                    delay = self._delay()
                    log.warning(
                        "upload of batch %d failed (%s); retry in %.1f s",
                        batch.ctr,
                        self.last_error,
                        delay,
                    )
                    # a wake (new batch) must not cut a backoff short: sleep on stop only
                    await self._sleep_stop(stop, delay)

    async def _sleep_stop(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

"""Release orders from the warehouse's own ledger peer, handed to the edge's rules.

Every release of goods on the consortium ledger (a bank's release, a repayment's release, a
delivery, a disposal) writes a release order ``relord/<site>/<id>`` (``docs/formats.md``
§28). With ``[edge] orders_url`` set to the warehouse's own peer, :class:`OrderPoller` reads
every ``orders_interval_ms`` the orders of the edge's site and the receipt of each
(``rcpt/<no>``, §27) through the peer's read-only ``GET /v1/state`` (deterministic CBOR
pages, followed with ``after``), and tells the gateway — the semantics of the finance
package's in-process order feed:

* a new order is authorised once (``EdgeGateway.authorise_release(location, weight, (lot,),
  from, to, id)``), unless its receipt is already *stopped* — ``frozen``, or ``disposed``
  when the order is not the disposal's own (the bank's sale must leave): then it is withheld;
* a handed-over order whose receipt is now stopped is revoked once
  (``EdgeGateway.revoke_release(id)``) and never authorised again.

The edge checks the records itself against the documented formats
(:mod:`tally.edge.order_records`, whose names are re-exported here): an order is a map of
exactly the §28 fields with their types, its key naming its id and this site; of a receipt,
the fields the edge uses (``v`` 1, its own ``no``, a known ``state``, a well-formed
``frozen``). A record that breaks them is logged with its key and the rule (once per reason)
and skipped: an order is looked at again at the next poll; a handed-over order whose receipt
cannot be read stays as it is. A peer that cannot be read — down, a problem answer, a page
not of the documented shape — fails the poll: the poller tries again at the next interval
and keeps the error in :meth:`OrderPoller.stats`.

Transport: an ``https://`` peer is checked against ``tls`` (a client context from
``orders_ca_file``, presenting ``orders_client_cert_file`` to a peer with mutual TLS:
:func:`tally.crypto.tlsconf.client_tls`), else the system's CAs. A refused handshake is a
peer that cannot be read.

What was handed over is kept in memory: after a restart every order of the site is handed
over again (the rules engine starts empty too), less those whose receipt is stopped. Receipts
of handed-over orders are read again only when the peer's height moved since the last poll
that read everything at one height.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from tally.crypto import DecodeError, cbor
from tally.edge.order_records import (
    FROZEN_FIELDS,
    KINDS,
    MAX_ID,
    MAX_PLACES,
    ORDER_FIELDS,
    RECEIPT_STATES,
    Order,
    Receipt,
    RecordError,
    _show,
    orders_prefix,
    parse_order,
    parse_receipt,
)

__all__ = ["CBOR", "FROZEN_FIELDS", "KINDS", "MAX_ID", "MAX_PAGE_BYTES", "MAX_PLACES",
           "ORDER_FIELDS", "PAGE_LIMIT", "RECEIPT_STATES", "Authorise", "Order", "OrderPoller",
           "Page", "PeerError", "Receipt", "RecordError", "Revoke", "orders_prefix",
           "parse_order", "parse_page", "parse_receipt", "stop_reason"]  # fmt: skip

log = logging.getLogger(__name__)

PAGE_LIMIT = 500
MAX_PAGE_BYTES = 8 << 20
"""The largest ``/v1/state`` page the peer sends."""
CBOR = "application/cbor"

Authorise = Callable[[str, Decimal, tuple[str, ...], int, int, str], None]
"""``EdgeGateway.authorise_release(location, quantity, lots, from_ms, to_ms, ref)``."""
Revoke = Callable[[str], object]
"""``EdgeGateway.revoke_release(ref)``."""


class PeerError(Exception):
    """The peer could not be read (unreachable, a problem answer, a malformed page)."""


def stop_reason(order: Order, receipt: Receipt | None) -> str | None:
    """Why ``order`` may no longer be honoured; None if it may (or its receipt is absent)."""
    if receipt is not None and receipt.state == "frozen":
        return f"receipt {receipt.no} is frozen by {receipt.frozen_by} ({receipt.frozen_reason})"
    if receipt is not None and receipt.state == "disposed" and order.kind != "disposal":
        return f"receipt {receipt.no} is disposed"
    return None


Page = tuple[int, list[tuple[str, Any]], bool]
"""A ``/v1/state`` page: height, items (key, value), more."""


def parse_page(data: bytes, prefix: str, after: str | None, limit: int) -> Page:
    """One ``/v1/state`` page; :class:`PeerError` if it is not of the documented shape."""
    try:
        doc = cbor.decode(data, where="state page", max_size=MAX_PAGE_BYTES)
    except DecodeError as exc:
        raise PeerError(f"the page is not deterministic CBOR: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"height", "items", "more"}:
        got = ", ".join(sorted(map(repr, doc))) if isinstance(doc, dict) else type(doc).__name__
        raise PeerError(f"the page must be a map of height, items, more; got {got}")
    height, items, more = doc["height"], doc["items"], doc["more"]
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        raise PeerError(f"the page's height must be an unsigned integer, got {_show(height)}")
    if not isinstance(more, bool) or not isinstance(items, list) or len(items) > limit:
        raise PeerError(f"the page's more must be a boolean and items a list of at most {limit}")
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise PeerError(f"item {i} of the page is not [key, value]")
        last = out[-1][0] if out else after
        if not item[0].startswith(prefix) or (last is not None and item[0] <= last):
            raise PeerError(f"item {i} of the page: {item[0]!r} is not a next key in {prefix!r}")
        out.append((item[0], item[1]))
    if more and not out:
        raise PeerError("the page says more follows but holds no items")
    return height, out, more


class OrderPoller:
    """Polls ``url`` (the warehouse's peer) for the release orders of ``site`` and passes them
    to ``authorise`` and ``revoke`` (module docstring). :meth:`start`, then :meth:`stop`."""

    def __init__(self, site: str, url: str, authorise: Authorise, revoke: Revoke, *,
                 interval_ms: int = 5000, timeout_s: float = 10.0, limit: int = PAGE_LIMIT,
                 clock: Callable[[], int] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.site, self.url = site, url.rstrip("/")
        self.authorise, self.revoke = authorise, revoke
        self.interval_ms, self.timeout_s, self.limit = interval_ms, timeout_s, limit
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.transport = transport  # None: the network (another one in tests)
        self.tls = tls  # None: the system's CAs for an https:// peer
        self.seen: set[str] = set()
        self.handed: list[Order] = []  # in the order handed over
        self.revoked: list[str] = []
        self.withheld: list[Order] = []  # first seen when their receipt was already stopped
        self.refused: dict[str, str] = {}  # id -> why the gateway refused it (not tried again)
        self.malformed: dict[str, str] = {}  # key -> the rule its record breaks
        self.polls = self.failures = self.consecutive_failures = 0
        self.error = self.last_error = ""  # error: why the latest poll failed, "" if it did not
        self.last_ok_ms: int | None = None
        self.height: int | None = None
        self._live: dict[str, Order] = {}
        self._checked: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._client = self._new_client()
            self._task = asyncio.create_task(self._run(), name="edge-orders")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout_s, trust_env=False, transport=self.transport,
                                 verify=True if self.tls is None else self.tls)  # fmt: skip

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_ms / 1000)

    async def poll_once(self) -> bool:
        """One poll that never raises: True if the peer was read, else the error is kept."""
        self.polls += 1
        try:
            client = self._client or self._new_client()
            try:
                await self.poll(client)
            finally:
                if client is not self._client:
                    await client.aclose()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, PeerError) else f"internal error: {exc!r}"
            if not isinstance(exc, PeerError):
                log.exception("the order poller of %s failed", self.site)
            elif reason != self.error:
                log.warning("release orders of %s not read: %s", self.site, reason)
            self.failures += 1
            self.consecutive_failures += 1
            self.error = self.last_error = reason
            self._checked = None
            return False
        if self.consecutive_failures:
            log.info("release orders of %s read again after %d failed polls", self.site,
                     self.consecutive_failures)  # fmt: skip
        self.consecutive_failures, self.error, self.last_ok_ms = 0, "", self.clock()
        return True

    async def poll(self, client: httpx.AsyncClient) -> list[Order]:
        """Read orders and receipts, hand over the new orders, revoke the stopped ones; return
        the orders handed over. Raises :class:`PeerError` if the peer cannot be read."""
        heights: set[int] = set()
        orders: list[Order] = []
        for key, value in await self._rows(client, orders_prefix(self.site), heights):
            try:
                orders.append(parse_order(key, value, self.site))
                self.malformed.pop(key, None)
            except RecordError as exc:
                self._skip(exc, "release order")
        new = [o for o in orders if o.id not in self.seen]
        recheck = not (len(heights) == 1 and self._checked in heights)
        wanted = {o.receipt for o in new} | ({o.receipt for o in self._live.values()}
                                             if recheck else set())  # fmt: skip
        receipts: dict[str, Receipt | None] = {}
        clean = True
        for no in sorted(wanted):
            try:
                receipts[no] = await self._receipt(client, no, heights)
            except RecordError as exc:
                self._skip(exc, "receipt")
                clean = False
        handed: list[Order] = []
        for o in (o for o in new if o.receipt in receipts):  # else: looked at next time
            self.seen.add(o.id)
            why = stop_reason(o, receipts[o.receipt])
            if why is not None:
                log.info("release order %s withheld: %s", o.id, why)
                self.withheld.append(o)
                continue
            try:
                self.authorise(o.location, o.weight, (o.lot,), o.valid_from, o.valid_to, o.id)
            except Exception as exc:
                log.error("release order %s refused by the edge: %s", o.id, exc)
                self.refused[o.id] = str(exc)
                continue
            self.handed.append(o)
            self._live[o.id] = o
            handed.append(o)
        if handed:  # orders expired by the chain's latest order time explain nothing any more
            now = max(o.t for o in handed)
            self._live = {ref: o for ref, o in self._live.items() if o.valid_to >= now}
        for ref in sorted(self._live) if recheck else ():
            o = self._live[ref]
            why = stop_reason(o, receipts[o.receipt]) if o.receipt in receipts else None
            if why is not None:
                try:
                    self.revoke(o.id)
                except Exception as exc:
                    log.error("release order %s not revoked (%s): %s", o.id, why, exc)
                    clean = False
                    continue
                log.info("release order %s revoked: %s", o.id, why)
                del self._live[o.id]
                self.revoked.append(o.id)
        self.height = max(heights)
        self._checked = heights.pop() if clean and len(heights) == 1 else None
        return handed

    def _skip(self, exc: RecordError, what: str) -> None:
        if self.malformed.get(exc.key) != exc.reason:
            log.warning("%s record skipped: %s: %s", what, exc.key, exc.reason)
        self.malformed[exc.key] = exc.reason

    async def _receipt(
        self, client: httpx.AsyncClient, no: str, heights: set[int]
    ) -> Receipt | None:
        key = f"rcpt/{no}"
        height, items, _ = await self._page(client, key, None, 1)
        heights.add(height)
        if not items or items[0][0] != key:
            return None
        got = parse_receipt(key, items[0][1], no)
        self.malformed.pop(key, None)
        return got

    async def _rows(
        self, client: httpx.AsyncClient, prefix: str, heights: set[int]
    ) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = []
        more, after = True, None
        while more:
            height, items, more = await self._page(client, prefix, after, self.limit)
            heights.add(height)
            rows.extend(items)
            after = items[-1][0] if items else None
        return rows

    async def _page(
        self, client: httpx.AsyncClient, prefix: str, after: str | None, limit: int
    ) -> Page:
        params = {"prefix": prefix, "limit": str(limit)} | (
            {} if after is None else {"after": after}
        )
        where = f"{self.url}/v1/state?prefix={prefix}" + ("" if after is None else "&after=…")
        try:
            resp = await client.get(f"{self.url}/v1/state", params=params)
        except httpx.HTTPError as exc:
            raise PeerError(f"{where}: {type(exc).__name__}: {exc or 'no answer'}") from None
        ctype = resp.headers.get("content-type", "")
        if resp.status_code != 200:
            detail = resp.text[:300]
            if ctype.startswith("application/problem+json"):
                with contextlib.suppress(ValueError, AttributeError):
                    detail = str(resp.json().get("detail", detail))
            raise PeerError(f"{where}: HTTP {resp.status_code}: {detail}")
        if not ctype.startswith(CBOR):
            raise PeerError(f"{where}: the answer is {ctype or 'untyped'}, not {CBOR}")
        try:
            return parse_page(resp.content, prefix, after, limit)
        except PeerError as exc:
            raise PeerError(f"{where}: {exc}") from None

    def stats(self) -> dict[str, Any]:
        """Counters and the current error (empty when the latest poll read the peer)."""
        return {
            "url": self.url, "site": self.site, "polls": self.polls, "failures": self.failures,
            "consecutive_failures": self.consecutive_failures, "error": self.error,
            "last_error": self.last_error, "last_ok_ms": self.last_ok_ms, "height": self.height,
            "handed": len(self.handed), "live": len(self._live), "revoked": len(self.revoked),
            "withheld": len(self.withheld), "refused": dict(self.refused),
            "malformed": dict(self.malformed),
        }  # fmt: skip

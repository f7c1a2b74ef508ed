"""Prometheus metrics of one cloud app, served as text at ``GET /metrics``.

Every app has its own :class:`~prometheus_client.CollectorRegistry` (never the process-wide
one), so several apps in one process count separately. What is measured:

====================================================  =============================================
``tally_ingest_batches_total{outcome}``               uploads ingested: ``stored``, ``duplicate``,
                                                      a rejection reason (``bad_header_signature``
                                                      …) or ``error``
``tally_ingest_items_total{kind}``                    items of stored batches: ``reading``,
                                                      ``heartbeat``, ``event``, ``gap``, ``summary``
``tally_ingest_seconds``                              histogram: time to verify and store a batch
``tally_anchor_queue_depth``                          stored batches not yet anchored or refused
``tally_anchored_total{state}``                       batches ``anchored`` or ``refused``
``tally_anchor_retries_total``                        passing anchoring failures (with an anchorer)
``tally_ledger_height``                               the ledger's height as the cloud sees it
                                                      (omitted while it cannot tell)
``tally_checkpoint_latency_seconds``                  histogram: anchoring submitted → final
                                                      checkpoint (with an anchorer)
``tally_alerts_total{kind,severity}``                 alerts given to :meth:`record_alert`
``tally_http_requests_total{route,method,status}``    requests by route template
``tally_http_request_seconds{route}``                 histogram: request durations
====================================================  =============================================

The anchoring figures come from storage when scraped, so they hold across restarts and
however many cloud processes share one database. The checkpoint latency and retries come
from the :class:`~tally.cloud.anchoring.Anchorer` handed to :meth:`CloudMetrics.watch_anchorer`.
Routes are labelled with their template (``/v1/devices/{device}/readings``), never with the
path asked for; a path that matches no route is ``unmatched``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.cloud.anchoring import (
    Anchorer,
    AnchorResult,
    ConsortiumLink,
    LedgerLink,
    RemoteLedgerLink,
)
from tally.cloud.config import token_digest
from tally.cloud.errors import IngestRejected, Unauthorized
from tally.cloud.ingest import IngestResult
from tally.cloud.storage.api import ANCHORED, PENDING, REFUSED, Storage
from tally.crypto import CryptoError, parse_sign1
from tally.edge.formats import decode_upload
from tally.formats import CTY_EVENT, CTY_GAP, CTY_HEARTBEAT, CTY_READING, CTY_SUMMARY
from tally.verify.bundle import ChainProof

log = logging.getLogger("tally.cloud.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SEVERITIES = ("info", "warning", "critical")
ITEM_KINDS = {
    CTY_READING: "reading",
    CTY_HEARTBEAT: "heartbeat",
    CTY_EVENT: "event",
    CTY_GAP: "gap",
    CTY_SUMMARY: "summary",
}
STATUS_TIMEOUT_S = 2.0
"""How long a scrape waits for a remote peer's height."""
_ALERT_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class AlertLike(Protocol):
    """Anything with an alert's ``kind`` and ``severity`` (a finance monitor's ``Alert``)."""

    @property
    def kind(self) -> str: ...

    @property
    def severity(self) -> str: ...


def item_kinds(body: bytes) -> dict[str, int]:
    """How many items of each kind an upload carries (items of no known kind are left out)."""
    counts: dict[str, int] = {}
    try:
        _header, items = decode_upload(body)
    except CryptoError:
        return counts
    for data in items:
        try:
            kind = ITEM_KINDS.get(parse_sign1(data).content_type)
        except CryptoError:
            continue
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


class TimedLink:
    """A :class:`~tally.cloud.anchoring.LedgerLink` that times each anchoring (submitted →
    final checkpoint) for ``metrics`` and passes everything through to ``link``."""

    def __init__(self, link: LedgerLink, metrics: CloudMetrics) -> None:
        self.link = link
        self.metrics = metrics

    async def anchor_batch(self, header_cose: bytes) -> AnchorResult:
        start = time.perf_counter()
        result = await self.link.anchor_batch(header_cose)
        self.metrics.observe_anchoring(time.perf_counter() - start, result)
        return result

    async def chain_proof(self, log_index: int) -> ChainProof | None:
        return await self.link.chain_proof(log_index)

    async def tx_bundle(self, tx_id: bytes) -> bytes:
        return await self.link.tx_bundle(tx_id)


class _StateCollector(Collector):
    """What is read when scraped: anchor counts from storage, the ledger height, retries."""

    def __init__(self, metrics: CloudMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        if m.storage is not None:
            try:
                counts = m.storage.anchor_counts()
            except Exception as exc:  # a scrape still answers while the database does not
                log.warning("metrics: no anchor counts: %s", exc)
            else:
                depth = counts.get(PENDING, 0) + counts.get("none", 0)
                yield GaugeMetricFamily(
                    "tally_anchor_queue_depth", "Stored batches waiting to be anchored", depth
                )
                done = CounterMetricFamily(
                    "tally_anchored", "Batches anchored or refused by the ledger", labels=["state"]
                )
                for state in (ANCHORED, REFUSED):
                    done.add_metric([state], counts.get(state, 0))
                yield done
        if m.ledger_height is not None:
            yield GaugeMetricFamily(
                "tally_ledger_height", "The ledger's height as the cloud sees it", m.ledger_height
            )
        if m.anchorer is not None:
            yield CounterMetricFamily(
                "tally_anchor_retries",
                "Anchoring attempts that failed for a passing reason",
                m.anchorer.stats.retries,
            )


class CloudMetrics:
    """The metrics of one cloud app (see the module docstring).

    ``storage`` gives the anchor counts; ``ledger`` the ledger height; ``token_sha256``
    (``metrics_token``), when set, is the digest of the bearer token a scrape must carry.
    """

    def __init__(
        self,
        storage: Storage | None = None,
        ledger: LedgerLink | None = None,
        token_sha256: str | None = None,
    ) -> None:
        self.storage = storage
        self.ledger = ledger
        self.token_sha256 = token_sha256
        self.anchorer: Anchorer | None = None
        self.ledger_height: int | None = None
        self._seen_height = 0
        r = self.registry = CollectorRegistry()
        self.ingest_batches = Counter(
            "tally_ingest_batches", "Uploads ingested, by outcome", ["outcome"], registry=r
        )
        self.ingest_items = Counter(
            "tally_ingest_items", "Items of stored batches, by kind", ["kind"], registry=r
        )
        self.ingest_seconds = Histogram(
            "tally_ingest_seconds", "Time to verify and store a batch", buckets=_SECONDS, registry=r
        )
        self.checkpoint_latency = Histogram(
            "tally_checkpoint_latency_seconds",
            "Anchoring submitted to final checkpoint",
            buckets=_LATENCY,
            registry=r,
        )
        self.alerts = Counter(
            "tally_alerts", "Alerts raised, by kind and severity", ["kind", "severity"], registry=r
        )
        self.http_requests = Counter(
            "tally_http_requests",
            "HTTP requests, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "tally_http_request_seconds", "HTTP request durations", ["route"], registry=r
        )
        r.register(_StateCollector(self))

    # -- what the app and the anchorer report --------------------------------------------

    def ingest(self, upload: Callable[[bytes], IngestResult], body: bytes) -> IngestResult:
        """Run ``upload(body)`` (an ingest), counting its outcome, time and items."""
        start = time.perf_counter()
        outcome = "error"
        try:
            result = upload(body)
            outcome = "duplicate" if result.dup else "stored"
        except IngestRejected as exc:
            outcome = exc.reason
            raise
        finally:
            self.ingest_seconds.observe(time.perf_counter() - start)
            self.ingest_batches.labels(outcome).inc()
        if not result.dup:
            for kind, n in item_kinds(body).items():
                self.ingest_items.labels(kind).inc(n)
        return result

    def observe_anchoring(self, seconds: float, result: AnchorResult) -> None:
        self.checkpoint_latency.observe(seconds)
        self._seen_height = max(self._seen_height, result.height)

    def watch_anchorer(self, anchorer: Anchorer) -> None:
        """Time ``anchorer``'s submissions and report its retries (call before it starts)."""
        if not (isinstance(anchorer.link, TimedLink) and anchorer.link.metrics is self):
            anchorer.link = TimedLink(anchorer.link, self)
        self.anchorer = anchorer

    def record_alert(self, kind: str, severity: str) -> None:
        """Count one alert; raises ValueError (counting nothing) as :func:`check_alert`."""
        check_alert(kind, severity)
        self.alerts.labels(kind, severity).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    # -- scraping ------------------------------------------------------------------------

    def check_token(self, authorization: str | None) -> None:
        """Raises Unauthorized when a metrics token is configured and not presented."""
        if self.token_sha256 is None:
            return
        if not authorization:
            raise Unauthorized("/metrics needs an Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        digest = token_digest(token.strip()).encode()
        if not hmac.compare_digest(digest, self.token_sha256.encode()):
            raise Unauthorized("unknown metrics token")

    async def exposition(self) -> bytes:
        """The text exposition of every metric (storage is read off the event loop)."""
        self.ledger_height = await self._height()
        return await asyncio.to_thread(generate_latest, self.registry)

    async def _height(self) -> int | None:
        link = self.ledger
        while isinstance(link, TimedLink):
            link = link.link
        asked: int | None = None
        if isinstance(link, ConsortiumLink):
            peers = link.consortium.peers
            peer = peers.get(link.org)
            if peer is not None:
                asked = peer.height
            elif peers:
                asked = max(p.height for p in peers.values())
        elif isinstance(link, RemoteLedgerLink):
            asked = await _remote_height(link)
        if asked is None and self._seen_height == 0:
            return None
        return max(asked or 0, self._seen_height)


async def _remote_height(link: RemoteLedgerLink) -> int | None:
    """The height the link's own peer (else the first by name) reports; None when it does
    not answer (in time) or its answer has no height."""
    orgs = sorted(link.remote.peers, key=lambda o: (o != link.org, o))
    if not orgs:
        return None
    try:
        status = await link.remote.status(orgs[0], timeout=STATUS_TIMEOUT_S)
    except ValueError as exc:  # not JSON
        log.warning("metrics: the status of peer %s is unreadable: %s", orgs[0], exc)
        return None
    height = status.get("height") if isinstance(status, dict) else None
    return height if isinstance(height, int) and not isinstance(height, bool) else None


class HttpMetrics:
    """ASGI middleware counting and timing each request by route template."""

    def __init__(self, app: ASGIApp, metrics: CloudMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe_request(
                route if isinstance(route, str) else UNMATCHED,
                str(scope.get("method", "")),
                status,
                time.perf_counter() - start,
            )


def check_alert(kind: object, severity: object) -> None:
    """Raises ValueError unless ``kind`` is lower-case snake case (a letter first, at most 64
    characters) and ``severity`` one of SEVERITIES."""
    if not isinstance(kind, str) or not _ALERT_KIND.fullmatch(kind):
        raise ValueError(
            f"alert kind {kind!r} must be lower-case letters, digits and '_', starting with a "
            "letter, at most 64 characters"
        )
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity {severity!r} must be one of {', '.join(SEVERITIES)}")


def record_alert(metrics: CloudMetrics, kind: str, severity: str) -> None:
    """Count one alert in ``metrics``; raises ValueError (counting nothing) as
    :func:`check_alert`."""
    metrics.record_alert(kind, severity)


def record_alerts(metrics: CloudMetrics, alerts: Iterable[AlertLike]) -> None:
    """Count every alert of ``alerts`` (e.g. a finance monitor result's ``alerts``). All are
    checked first: one bad alert raises ValueError and none is counted."""
    todo = list(alerts)
    for a in todo:
        check_alert(a.kind, a.severity)
    for a in todo:
        metrics.alerts.labels(a.kind, a.severity).inc()

"""``GET /metrics``: real batches ingested through the API move the counters, routes are
labelled by template, the optional scrape token is enforced, anchoring on a real in-process
consortium shows up as checkpoint latency and ledger height, and alerts are counted only when
well-formed.

Simulated data: every reading carries the label ``sim = "1"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World, make_consortium
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tally import config
from tally.cloud.anchoring import Anchorer, AnchorResult, ConsortiumLink, RemoteLedgerLink
from tally.cloud.app import create_app
from tally.cloud.config import load_settings, token_digest
from tally.cloud.metrics import CloudMetrics, record_alert, record_alerts
from tally.cloud.storage.api import ANCHORED, Storage
from tally.finance.monitor_model import Alert
from tally.ledger.errors import LedgerError
from tally.ledger.remote import RemoteConsortium
from tally.verify.bundle import ChainProof

CBOR = {"content-type": "application/cbor"}
COSE = {"content-type": "application/cose"}
SCRAPE_TOKEN = "scrape-token-for-tests"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[who]}"}


def make_app(world: World, storage: Storage, tmp_path: Path, **kw: object) -> FastAPI:
    settings = world.settings(str(tmp_path), **kw)
    return create_app(settings, storage, world.trust, world.identity, clock=lambda: T0 + 30_000)


@asynccontextmanager
async def registered(app: FastAPI, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` after every registration of ``world`` was posted."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        for data in world.registrations:
            r = await client.post("/v1/registrations", content=data, headers=COSE)
            assert r.status_code == 201, r.text
        yield client


@pytest.fixture
async def app(world: World, sqlite_storage: Storage, tmp_path: Path) -> FastAPI:
    return make_app(world, sqlite_storage, tmp_path)


@pytest.fixture
async def client(app: FastAPI, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(app, world) as c:
        yield c


async def scrape(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


async def test_ingest_counters_and_route_templates(
    client: httpx.AsyncClient, world: World, app: FastAPI
) -> None:
    items = [
        world.reading("d1", T0),
        world.reading("d2", T0 + 1000),
        world.reading("d1", T0 + 2000, heartbeat=True),
        world.event("e1", T0 + 3000),
    ]
    upload = world.upload("e1", items)
    assert (await client.post("/v1/batches", content=upload, headers=CBOR)).status_code == 200
    again = await client.post("/v1/batches", content=upload, headers=CBOR)
    assert again.headers["x-tally-duplicate"] == "true"
    forged = world.upload("e9", [world.reading("d9", T0)], key=world.edges["e1"].key)
    assert (await client.post("/v1/batches", content=forged, headers=CBOR)).status_code == 403
    r = await client.get("/v1/devices/d1/readings", headers=auth("acme"))
    assert r.status_code == 200 and r.json()["items"][0]["kind"] == "reading"
    item_hash = r.json()["items"][0]["hash"]
    assert (await client.get(f"/v1/proofs/items/{item_hash}", headers=auth("acme"))).is_success
    assert (await client.get("/v1/devices/d9/readings", headers=auth("acme"))).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404

    s = await scrape(client)
    assert value(s, "tally_ingest_batches_total", outcome="stored") == 1
    assert value(s, "tally_ingest_batches_total", outcome="duplicate") == 1
    assert value(s, "tally_ingest_batches_total", outcome="bad_header_signature") == 1
    assert value(s, "tally_ingest_seconds_count") == 3
    assert value(s, "tally_ingest_items_total", kind="reading") == 2
    assert value(s, "tally_ingest_items_total", kind="heartbeat") == 1
    assert value(s, "tally_ingest_items_total", kind="event") == 1
    # one batch stored, none anchored: it waits in the anchoring queue; no ledger, no height
    assert value(s, "tally_anchor_queue_depth") == 1
    assert value(s, "tally_anchored_total", state="anchored") == 0
    assert "tally_ledger_height" not in names(s)
    assert "tally_anchor_retries_total" not in names(s)

    readings = "/v1/devices/{device}/readings"
    assert value(s, "tally_http_requests_total", route=readings, method="GET", status="200") == 1
    assert value(s, "tally_http_requests_total", route=readings, method="GET", status="404") == 1
    proofs = "/v1/proofs/items/{hash_hex}"
    assert value(s, "tally_http_requests_total", route=proofs, method="GET", status="200") == 1
    batches = "/v1/batches"
    assert value(s, "tally_http_requests_total", route=batches, method="POST", status="200") == 2
    assert value(s, "tally_http_requests_total", route=batches, method="POST", status="403") == 1
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(s, "tally_http_requests_total", **unmatched) == 1
    assert value(s, "tally_http_request_seconds_count", route=readings) == 2
    routes = {dict(labels).get("route") for _name, labels in s} - {None}
    assert not any("d1" in r or "d9" in r or item_hash in r or "/no/" in r for r in routes if r), (
        routes
    )
    # the registry is the app's own: nothing of the process-wide default collectors
    assert not any(n.startswith(("process_", "python_")) for n in names(s))

    # the scrape itself is counted, under its own route
    s = await scrape(client)
    assert value(s, "tally_http_requests_total", route="/metrics", method="GET", status="200") == 1


async def test_an_unhandled_error_is_counted_as_500(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/v1/boom/{n}", boom)
    assert (await client.get("/v1/boom/7")).status_code == 500
    s = await scrape(client)
    labels = {"route": "/v1/boom/{n}", "method": "GET", "status": "500"}
    assert value(s, "tally_http_requests_total", **labels) == 1


async def test_apps_in_one_process_count_separately(
    client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    upload = world.upload("e1", [world.reading("d1", T0)])
    assert (await client.post("/v1/batches", content=upload, headers=CBOR)).status_code == 200
    from tally.cloud.storage import open_storage

    other_storage = open_storage(f"sqlite:///{tmp_path / 'other.db'}")
    other_storage.migrate()
    try:
        other = make_app(world, other_storage, tmp_path)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://other"
        ) as c2:
            s2 = await scrape(c2)
    finally:
        other_storage.close()
    assert value(s2, "tally_ingest_batches_total", outcome="stored") == 0
    assert value(s2, "tally_anchor_queue_depth") == 0
    assert value(await scrape(client), "tally_ingest_batches_total", outcome="stored") == 1


async def test_the_metrics_token_is_required_when_configured(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> None:
    app = make_app(world, sqlite_storage, tmp_path, metrics_token=token_digest(SCRAPE_TOKEN))
    async with registered(app, world) as client:
        for headers, detail in (
            (None, "/metrics needs an Authorization: Bearer token"),
            ({"authorization": "Bearer wrong-token"}, "unknown metrics token"),
            ({"authorization": f"Basic {SCRAPE_TOKEN}"}, "must be 'Bearer <token>'"),
            # a read-API token is not the scrape token
            (auth("regulator"), "unknown metrics token"),
        ):
            r = await client.get("/metrics", headers=headers)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"] == "Bearer"
            body = r.json()
            assert body["type"] == "urn:tally:problem:unauthorized"
            assert detail in body["detail"]
            assert "tally_" not in r.text
        s = await scrape(client, {"authorization": f"Bearer {SCRAPE_TOKEN}"})
    refused = {"route": "/metrics", "method": "GET", "status": "401"}
    assert value(s, "tally_http_requests_total", **refused) == 4
    # the read API is untouched by the scrape token
    assert "tally_ingest_seconds_count" in names(s)


def test_a_bad_metrics_token_setting_is_named() -> None:
    data = {"cloud": {"org": "bank", "metrics_token": "not-a-digest"}}
    with pytest.raises(config.ConfigError) as err:
        load_settings(data, "cloud.toml")
    assert "cloud.toml" in str(err.value) and "cloud.metrics_token" in str(err.value)
    assert data == {"cloud": {"org": "bank", "metrics_token": "not-a-digest"}}
    upper = token_digest(SCRAPE_TOKEN).upper()
    got = load_settings({"cloud": {"org": "bank", "metrics_token": upper}})
    assert got.metrics_token == token_digest(SCRAPE_TOKEN)


async def test_anchoring_shows_latency_height_and_counts(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> None:
    consortium = await make_consortium(world, tmp_path / "ledger")
    try:
        link = ConsortiumLink(consortium, "bank", timeout=2.0, attempts=1)
        for reg in [world.registrations[0], world.registrations[1], *world.registrations[3:]]:
            assert (await link.register(reg)).valid
        settings = world.settings(str(tmp_path))
        app = create_app(
            settings, sqlite_storage, world.trust, world.identity, lambda: T0 + 30_000, link
        )
        anchorer = Anchorer(sqlite_storage, link, clock=lambda: T0 + 30_000, hold_ms=60_000)
        metrics: CloudMetrics = app.state.metrics
        metrics.watch_anchorer(anchorer)
        metrics.watch_anchorer(anchorer)  # twice is once
        async with registered(app, world) as client:
            for i in range(2):
                upload = world.upload("e1", [world.reading("d1", T0 + 1000 * i)])
                r = await client.post("/v1/batches", content=upload, headers=CBOR)
                assert r.status_code == 200, r.text
            before = await scrape(client)
            assert await anchorer.step() == 2
            after = await scrape(client)
        height = consortium.peers["bank"].height
    finally:
        await consortium.close()
    assert value(before, "tally_anchor_queue_depth") == 2
    assert value(before, "tally_checkpoint_latency_seconds_count") == 0
    assert 1 <= value(before, "tally_ledger_height") < height  # the registrations' blocks
    assert value(after, "tally_anchor_queue_depth") == 0
    assert value(after, "tally_anchored_total", state=ANCHORED) == 2
    assert value(after, "tally_checkpoint_latency_seconds_count") == 2
    assert value(after, "tally_checkpoint_latency_seconds_sum") > 0
    assert value(after, "tally_ledger_height") == height >= 2
    assert value(after, "tally_anchor_retries_total") == 0


class FlakyLink:
    """A ledger link that fails once, then anchors at height 7."""

    def __init__(self) -> None:
        self.calls = 0

    async def anchor_batch(self, header_cose: bytes) -> AnchorResult:
        self.calls += 1
        if self.calls == 1:
            raise LedgerError("no quorum")
        return AnchorResult(bytes(32), "valid", 7, self.calls)

    async def chain_proof(self, log_index: int) -> ChainProof | None:
        return None

    async def tx_bundle(self, tx_id: bytes) -> bytes:
        raise LedgerError("not here")


async def test_retries_and_the_height_seen_when_the_link_cannot_tell(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> None:
    link = FlakyLink()
    settings = world.settings(str(tmp_path))
    app = create_app(
        settings, sqlite_storage, world.trust, world.identity, lambda: T0 + 30_000, link
    )
    anchorer = Anchorer(sqlite_storage, link, clock=lambda: T0 + 30_000, hold_ms=60_000)
    app.state.metrics.watch_anchorer(anchorer)
    async with registered(app, world) as client:
        upload = world.upload("e1", [world.reading("d1", T0)])
        assert (await client.post("/v1/batches", content=upload, headers=CBOR)).is_success
        assert "tally_ledger_height" not in names(await scrape(client))
        assert await anchorer.step() == 0  # the passing failure: not timed, retried
        s = await scrape(client)
        assert value(s, "tally_anchor_retries_total") == 1
        assert value(s, "tally_checkpoint_latency_seconds_count") == 0
        assert value(s, "tally_anchor_queue_depth") == 1
        assert await anchorer.step() == 1
        s = await scrape(client)
    assert value(s, "tally_checkpoint_latency_seconds_count") == 1
    assert value(s, "tally_ledger_height") == 7
    assert value(s, "tally_anchored_total", state=ANCHORED) == 1
    assert value(s, "tally_anchor_queue_depth") == 0


def alert(kind: str, severity: str) -> Alert:
    return Alert(kind, "L-1", severity, T0, Decimal("1.40"), Decimal("1.20"), ())


async def test_alerts_are_counted_only_when_well_formed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    metrics: CloudMetrics = app.state.metrics
    record_alert(metrics, "margin_call", "warning")
    record_alerts(metrics, [alert("disposal", "critical"), alert("margin_call", "warning")])
    for kind, severity, message in (
        ("margin_call", "loud", "alert severity 'loud' must be one of info, warning, critical"),
        ("Margin Call", "warning", "alert kind 'Margin Call' must be lower-case letters"),
        ("", "info", "alert kind '' must be lower-case letters"),
        ("x" * 65, "info", "at most 64 characters"),
    ):
        with pytest.raises(ValueError) as err:
            record_alert(metrics, kind, severity)
        assert message in str(err.value)
    # one bad alert among good ones: none of them is counted
    with pytest.raises(ValueError, match="alert severity 'urgent'"):
        record_alerts(metrics, [alert("cured", "info"), alert("disposal", "urgent")])
    s = await scrape(client)
    assert value(s, "tally_alerts_total", kind="margin_call", severity="warning") == 2
    assert value(s, "tally_alerts_total", kind="disposal", severity="critical") == 1
    assert value(s, "tally_alerts_total", kind="cured", severity="info") == 0
    alert_series = [labels for name, labels in s if name == "tally_alerts_total"]
    assert len(alert_series) == 2


async def test_the_height_of_remote_peers_is_asked_of_the_own_peer_first(
    world: World, tmp_path: Path
) -> None:
    consortium = await make_consortium(world, tmp_path / "ledger")
    try:
        genesis = consortium.genesis
    finally:
        await consortium.close()
    answers: dict[str, httpx.Response] = {}
    asked: list[str] = []

    def peer(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.url.host}{request.url.path}")
        return answers[request.url.host]

    remote = RemoteConsortium(genesis, {"acme": "http://acme", "bank": "http://bank"})
    await remote.http.aclose()
    remote.http = httpx.AsyncClient(transport=httpx.MockTransport(peer))
    link = RemoteLedgerLink(remote, "bank", world.org_keys["bank"])
    metrics = CloudMetrics(None, link)
    try:
        answers["bank"] = httpx.Response(200, json={"org": "bank", "height": 42})
        s = parse((await metrics.exposition()).decode())
        assert value(s, "tally_ledger_height") == 42
        assert asked == ["bank/v1/status"]
        # no storage given: no anchoring figures either
        assert "tally_anchor_queue_depth" not in names(s)
        for bad in (
            httpx.Response(503, text="down"),
            httpx.Response(200, text="not json"),
            httpx.Response(200, json=["height", 42]),
            httpx.Response(200, json={"height": "42"}),
        ):
            answers["bank"] = bad
            s = parse((await metrics.exposition()).decode())
            assert "tally_ledger_height" not in names(s), bad.text
        # a height seen in an anchoring still counts while the peer does not answer
        metrics.observe_anchoring(0.5, AnchorResult(bytes(32), "valid", 40, 3))
        assert value(parse((await metrics.exposition()).decode()), "tally_ledger_height") == 40
    finally:
        await link.close()

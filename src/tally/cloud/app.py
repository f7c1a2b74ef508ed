"""The cloud's HTTP API (FastAPI). Build it with :func:`create_app`.

=======================================  ==========================================================
``POST /v1/batches``                     an edge upload (``application/cbor``); 200 with the signed
                                         receipt (``application/cose``); authenticated by the
                                         edge's signature on the header
``POST /v1/registrations``               a signed registration or revocation (``application/cose``);
                                         201 when new, 200 when already stored
``GET /v1/health``                       liveness and database check (no token)
``GET /v1/devices``                      registered devices with liveness
``GET /v1/devices/{id}/readings``        readings, ``from``/``to`` (ms, to exclusive), ``limit``,
                                         ``cursor``, ``min_assurance`` = device | edge | manual
``GET /v1/sites/{site}/readings``        the same for every visible device of a site
``GET /v1/events``                       edge events, ``site``, ``rule``, ``from``, ``to`` …
``GET /v1/devices/{id}/gaps``            certified gaps of a device
``GET /v1/proofs/items/{hash}``          the proof bundle of an item (``application/cbor``);
                                         with the chain part once its batch is anchored
                                         under a final checkpoint
``GET /v1/anchors``                      how many stored batches are anchored, refused,
                                         pending or not yet submitted
``GET /metrics``                         Prometheus text (:mod:`tally.cloud.metrics`); a
                                         bearer token only when ``metrics_token`` is set
``POST``/``DELETE /v1/session``,         logins, logouts and the caller, when the app has an
``GET /v1/me``                           identity store (:mod:`tally.cloud.session_api`)
the platform API v1                      receipts, loans, notes, trades, documents, alerts,
                                         applications, orgs, chain, dashboards, stream, verify,
                                         audit, admin, ``/v1/openapi.json``
                                         (:mod:`tally.cloud.api`), when the app has a read
                                         model, an identity store and an audit log
=======================================  ==========================================================

Read endpoints need ``Authorization: Bearer <token>`` (see :mod:`tally.cloud.auth`); data of
another organisation answers 404 exactly like data that does not exist. Given an
:class:`~tally.cloud.identity_store.IdentityStore` and an :class:`~tally.cloud.auditlog.AuditLog`,
they also take a session cookie or an identity API token (``tly_…``), which the authorisation
policy checks for the endpoint's resource kind. Every error is an RFC 9457 problem
(:mod:`tally.cloud.problems`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tally.cloud import problems
from tally.cloud.anchoring import LedgerLink
from tally.cloud.auditlog import AuditLog
from tally.cloud.auth import Principal, TokenAuth
from tally.cloud.config import CloudSettings
from tally.cloud.errors import BadRequest, CloudError, NotFound
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.identity_store import IdentityStore
from tally.cloud.ingest import Ingestor, now_ms
from tally.cloud.keys import CloudIdentity
from tally.cloud.metrics import CONTENT_TYPE, CloudMetrics, HttpMetrics
from tally.cloud.proofs import build_bundle
from tally.cloud.registry import accept_signed
from tally.cloud.session_api import SessionApi
from tally.cloud.storage.api import ANCHORED, ItemQuery, ItemRecord, Page, Storage
from tally.crypto import DecodeError
from tally.device.registration import Assurance
from tally.device.trust import Trust
from tally.ledger.genesis import Genesis

if TYPE_CHECKING:
    from tally.cloud.live import EventHub
    from tally.cloud.views.store import Views

CBOR = "application/cbor"
COSE = "application/cose"
MAX_LIMIT = 1000


class UnsupportedMediaType(CloudError):
    """Raised when a POST body is not of the media type the endpoint takes."""

    code = "unsupported_media_type"
    title = "Unsupported media type"
    status = 415


class PayloadTooLarge(CloudError):
    """Raised when a POST body is larger than ``max_upload_bytes``."""

    code = "payload_too_large"
    title = "Payload too large"
    status = 413


@dataclass
class Cloud:
    """What the request handlers share (``app.state.cloud``)."""

    settings: CloudSettings
    storage: Storage
    trust: Trust
    identity: CloudIdentity
    ingestor: Ingestor
    auth: TokenAuth
    ledger: LedgerLink | None = None
    sessions: SessionApi | None = None


def encode_cursor(after: tuple[int, int] | None) -> str | None:
    if after is None:
        return None
    return base64.urlsafe_b64encode(f"{after[0]}.{after[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, int] | None:
    """Raises BadRequest for a cursor this server did not hand out."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        t, row = raw.split(".")
        return int(t), int(row)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"invalid cursor {cursor!r}") from None


def item_json(item: ItemRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hash": item.hash.hex(),
        "kind": item.kind,
        "device": item.device,
        "site": item.site,
        "org": item.org,
        "signer": item.signer,
        "boot": item.boot,
        "ctr": item.ctr,
        "t": item.t,
        "assurance": Assurance(item.assurance).label,
        "batch": {"edge": item.edge, "ctr": item.batch_ctr, "index": item.index},
        "received": item.received,
    }
    meta = json.loads(item.meta)
    if item.kind in ("reading", "heartbeat"):
        out["measurements"] = [
            {"quantity": m["q"], "value": m["v"], "unit": m["u"]}
            for m in json.loads(item.measurements)
        ]
        out["labels"] = meta.get("labels", {})
    else:
        out["rule"] = item.rule
        out.update({k: v for k, v in meta.items() if k not in out})
    return out


def page_json(page: Page) -> dict[str, Any]:
    return {
        "items": [item_json(i) for i in page.items],
        "next_cursor": encode_cursor(page.next_after),
    }


def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller of a read endpoint; raises Unauthorized."""
    cloud: Cloud = request.app.state.cloud
    return cloud.auth.principal(authorization)


def reader(kind: str) -> Any:
    """The caller of a read endpoint on resources of ``kind`` (an :mod:`tally.cloud.authz`
    resource kind, which identity principals are checked for); raises Unauthorized/Forbidden."""

    def caller(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Principal:
        cloud: Cloud = request.app.state.cloud
        if cloud.sessions is None:
            return cloud.auth.principal(authorization, kind)
        return cloud.sessions.reader(request, authorization, kind)

    return Depends(caller)


Who = Annotated[Principal, Depends(principal)]
Devices = Annotated[Principal, reader("device")]
Telemetry = Annotated[Principal, reader("telemetry")]
Alerts = Annotated[Principal, reader("alert")]
Evidence = Annotated[Principal, reader("evidence")]
Chain = Annotated[Principal, reader("chain")]
From = Annotated[int | None, Query(alias="from")]
To = Annotated[int | None, Query(alias="to")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def create_app(
    settings: CloudSettings,
    storage: Storage,
    trust: Trust,
    identity: CloudIdentity,
    clock: Any = now_ms,
    ledger: LedgerLink | None = None,
    identities: IdentityStore | None = None,
    audit_log: AuditLog | None = None,
    *,
    views: Views | None = None,
    hub: EventHub | None = None,
    cipher: FieldCipher | None = None,
    genesis: Genesis | None = None,
) -> FastAPI:
    """The cloud API over ``storage`` (already migrated), verifying against ``trust``;
    proof bundles carry the chain part from ``ledger`` when there is one. With
    ``identities`` (and ``audit_log``, where every login is recorded) it also takes logins,
    sessions and identity API tokens (:mod:`tally.cloud.session_api`). With ``views`` too
    it serves the platform API v1 (:mod:`tally.cloud.api`): live events from ``hub``,
    bundles verified against ``genesis`` (else ``trust``)."""
    if identities is not None and audit_log is None:
        raise ValueError("create_app: identities need an audit_log, where every login is recorded")
    ingestor = Ingestor(storage, trust, identity, clock, settings.max_upload_bytes)
    auth = TokenAuth(settings.api_tokens)
    cloud = Cloud(settings, storage, trust, identity, ingestor, auth, ledger)
    app = FastAPI(title="tally cloud", version="1", docs_url=None, redoc_url=None)
    app.state.cloud = cloud
    problems.install(app)
    if identities is not None and audit_log is not None:
        cloud.sessions = SessionApi(identities, audit_log, auth)
        cloud.sessions.install(app)
    if views is not None and identities is not None and audit_log is not None:
        from tally.cloud.api import ApiContext, install_api

        ctx = ApiContext(views, identities, audit_log, hub=hub, cipher=cipher, clock=clock,
                         genesis=genesis, trust=trust)  # fmt: skip
        install_api(app, ctx)
        from tally.cloud.console import install_console

        install_console(app, ctx)
    metrics = app.state.metrics = CloudMetrics(storage, ledger, settings.metrics_token)
    app.add_middleware(HttpMetrics, metrics=metrics)

    async def body_of(request: Request, media: str) -> bytes:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != media:
            raise UnsupportedMediaType(f"send {media}, not {ctype or 'no content type'}")
        body = await request.body()
        if len(body) > settings.max_upload_bytes:
            raise PayloadTooLarge(f"{len(body)} bytes, at most {settings.max_upload_bytes}")
        return body

    def min_level(name: str | None) -> int:
        if name is None:
            return 0
        try:
            return int(Assurance.parse(name))
        except DecodeError:
            raise BadRequest(f"min_assurance must be device, edge or manual: {name!r}") from None

    def visible_device(who: Principal, device: str) -> None:
        reg = storage.registrations([device]).get(device)
        if reg is None or reg.kind != "device" or not who.may_read(reg.org):
            raise NotFound(f"no device {device!r}")

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        storage.ping()
        suite = trust.suite.name
        return {"status": "ok", "cloud": identity.id, "org": identity.org, "suite": suite}

    @app.get("/metrics", include_in_schema=False)
    async def scrape(authorization: Annotated[str | None, Header()] = None) -> Response:
        metrics.check_token(authorization)
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE)

    @app.post("/v1/batches")
    async def post_batch(request: Request) -> Response:
        body = await body_of(request, CBOR)
        result = await run_in_threadpool(metrics.ingest, ingestor.ingest_upload, body)
        headers = {"X-Tally-Duplicate": "true" if result.dup else "false"}
        return Response(result.receipt, media_type=COSE, headers=headers)

    @app.post("/v1/registrations")
    async def post_registration(request: Request) -> JSONResponse:
        body = await body_of(request, COSE)
        rec, new = await run_in_threadpool(accept_signed, body, trust, storage, clock())
        kind = getattr(rec, "kind", "revocation")
        out = {"id": rec.subject, "kind": kind, "org": rec.org, "hash": rec.hash.hex(), "new": new}
        return JSONResponse(out, status_code=201 if new else 200)

    @app.get("/v1/devices")
    def devices(who: Devices) -> dict[str, Any]:
        regs = storage.subjects("device", who.org_filter)
        seen = {d.device: d for d in storage.devices(who.org_filter)}
        revoked = storage.revocations([r.subject for r in regs])
        now = clock()
        window = settings.online_window_s * 1000
        out = []
        for r in regs:
            st = seen.get(r.subject)
            out.append(
                {
                    "id": r.subject,
                    "org": r.org,
                    "site": r.site,
                    "profile": r.profile,
                    "assurance": Assurance(r.assurance).label,
                    "revoked": r.subject in revoked,
                    "last_seen": st.last_seen if st else None,
                    "last_reading_t": st.last_reading_t if st else None,
                    "boot": st.boot if st else None,
                    "ctr": st.ctr if st else None,
                    "items": st.items if st else 0,
                    "online": bool(st and now - st.last_seen <= window),
                }
            )
        return {"devices": out, "online_window_s": settings.online_window_s}

    @app.get("/v1/devices/{device}/readings")
    def device_readings(
        who: Telemetry,
        device: str,
        t_from: From = None,
        t_to: To = None,
        limit: Limit = 100,
        cursor: str | None = None,
        min_assurance: str | None = None,
    ) -> dict[str, Any]:
        visible_device(who, device)
        q = ItemQuery(
            device=device,
            org=who.org_filter,
            t_from=t_from,
            t_to=t_to,
            min_assurance=min_level(min_assurance),
            limit=limit,
            after=decode_cursor(cursor),
        )
        return page_json(storage.items(q))

    @app.get("/v1/sites/{site}/readings")
    def site_readings(
        who: Telemetry,
        site: str,
        t_from: From = None,
        t_to: To = None,
        limit: Limit = 100,
        cursor: str | None = None,
        min_assurance: str | None = None,
    ) -> dict[str, Any]:
        q = ItemQuery(
            site=site,
            org=who.org_filter,
            t_from=t_from,
            t_to=t_to,
            min_assurance=min_level(min_assurance),
            limit=limit,
            after=decode_cursor(cursor),
        )
        return page_json(storage.items(q))

    @app.get("/v1/events")
    def events(
        who: Alerts,
        site: str | None = None,
        rule: str | None = None,
        t_from: From = None,
        t_to: To = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        q = ItemQuery(
            kinds=("event",),
            site=site,
            rule=rule,
            org=who.org_filter,
            t_from=t_from,
            t_to=t_to,
            limit=limit,
            after=decode_cursor(cursor),
        )
        return page_json(storage.items(q))

    @app.get("/v1/devices/{device}/gaps")
    def device_gaps(who: Telemetry, device: str) -> dict[str, Any]:
        visible_device(who, device)
        gaps = storage.gaps(device, who.org_filter)
        return {
            "gaps": [
                {
                    "edge": g.edge,
                    "boot": g.boot,
                    "from": g.first,
                    "to": g.last,
                    "count": g.last - g.first + 1,
                    "reason": g.reason,
                    "t": g.t,
                    "certificate": g.item_hash.hex(),
                }
                for g in gaps
            ]
        }

    @app.get("/v1/proofs/items/{hash_hex}")
    async def proof(who: Evidence, hash_hex: str) -> Response:
        try:
            h = bytes.fromhex(hash_hex)
        except ValueError:
            raise BadRequest(f"{hash_hex!r} is not a hex hash") from None
        item = await run_in_threadpool(storage.item, h)
        if item is None or not who.may_read(item.org):
            raise NotFound(f"no item {hash_hex}")
        chain = None
        if ledger is not None:  # asked on the event loop: the ledger link lives there
            anchors = await run_in_threadpool(storage.anchors, [item.batch_id])
            anchor = anchors.get(item.batch_id)
            if anchor is not None and anchor.state == ANCHORED and anchor.log_index is not None:
                chain = await ledger.chain_proof(anchor.log_index)
        bundle = await run_in_threadpool(
            build_bundle, storage, trust, item, identity.id, identity.registration, chain
        )
        return Response(bundle.encode(), media_type=CBOR)

    @app.get("/v1/anchors")
    def anchors(who: Chain) -> dict[str, Any]:
        counts = storage.anchor_counts()
        return {
            "batches": sum(counts.values()),
            "anchored": counts.get("anchored", 0),
            "refused": counts.get("refused", 0),
            "pending": counts.get("pending", 0),
            "not_submitted": counts.get("none", 0),
            "ledger": ledger is not None,
        }

    return app

"""The HTTP API through ASGI: uploads, registrations, auth and tenancy, queries, proofs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World

from tally.cloud.app import create_app
from tally.cloud.storage.api import Storage
from tally.crypto import SigningKey, parse_sign1
from tally.device.registration import Assurance
from tally.edge.formats import decode_batch_header, decode_receipt
from tally.merkle import Hasher, verify_inclusion
from tally.verify.bundle import decode_bundle
from tally.verify.verifier import verify_bundle

CBOR = {"content-type": "application/cbor"}
COSE = {"content-type": "application/cose"}


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[who]}"}


@pytest.fixture
async def client(
    world: World, sqlite_storage: Storage, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        world.settings(str(tmp_path), online_window_s=60),
        sqlite_storage,
        world.trust,
        world.identity,
        clock=lambda: T0 + 30_000,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as c:
        for data in world.registrations:
            r = await c.post("/v1/registrations", content=data, headers=COSE)
            assert r.status_code == 201, r.text
        yield c


async def upload(c: httpx.AsyncClient, w: World, edge: str, items: list[bytes]) -> httpx.Response:
    return await c.post("/v1/batches", content=w.upload(edge, items), headers=CBOR)


def problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert body["type"] == f"urn:tally:problem:{code}" and body["status"] == status
    assert body["title"] and body["detail"]
    return body


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/health")
    assert r.status_code == 200 and r.json()["cloud"] == "cloud-1"


async def test_upload_returns_signed_receipt(client: httpx.AsyncClient, world: World) -> None:
    r = await upload(client, world, "e1", [world.reading("d1", T0)])
    assert r.status_code == 200 and r.headers["content-type"] == "application/cose"
    msg = parse_sign1(r.content)
    msg.verify(world.identity.key.public)
    assert decode_receipt(msg.payload).edge == "e1"
    forged = world.upload("e1", [world.reading("d1", T0)], key=SigningKey.generate(world.suite))
    r = await client.post("/v1/batches", content=forged, headers=CBOR)
    body = problem(r, 403, "bad_header_signature")
    assert body["reason"] == "bad_header_signature"
    bad = world.reading("d1", T0 + 5)
    bad = bad[:-1] + bytes([bad[-1] ^ 1])
    r = await upload(client, world, "e1", [world.reading("d2", T0), bad])
    assert problem(r, 422, "bad_item_signature")["index"] == 1
    r = await client.post("/v1/batches", content=b"x", headers={"content-type": "text/plain"})
    problem(r, 415, "unsupported_media_type")


async def test_registrations_endpoint(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/v1/registrations", content=world.registrations[1], headers=COSE)
    assert r.status_code == 200 and r.json()["new"] is False
    rogue = SigningKey.generate(world.suite)
    world.org_keys["other"], real = rogue, world.org_keys["other"]
    r = await client.post(
        "/v1/registrations",
        content=world.register("device", "dX", "other", "s9", rogue),
        headers=COSE,
    )
    problem(r, 422, "registration_rejected")
    world.org_keys["other"] = real
    hijack = world.register("device", "d1", "other", "s9", rogue)
    problem(await client.post("/v1/registrations", content=hijack, headers=COSE), 403, "forbidden")
    rev = world.revocation("d2", T0)
    r = await client.post("/v1/registrations", content=rev, headers=COSE)
    assert r.status_code == 201 and r.json()["kind"] == "revocation"
    r = await client.get("/v1/devices", headers=auth("acme"))
    assert {d["id"]: d["revoked"] for d in r.json()["devices"]}["d2"] is True


async def test_auth_and_tenancy(client: httpx.AsyncClient, world: World) -> None:
    assert (await upload(client, world, "e1", [world.reading("d1", T0)])).status_code == 200
    assert (await upload(client, world, "e9", [world.reading("d9", T0)])).status_code == 200
    r = await client.get("/v1/devices")
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    problem(
        await client.get("/v1/devices", headers={"authorization": "Bearer nope"}),
        401,
        "unauthorized",
    )
    acme = (await client.get("/v1/devices", headers=auth("acme"))).json()["devices"]
    assert {d["id"] for d in acme} == {"d1", "d2", "d3"}
    seen = {d["id"]: d for d in acme}
    assert seen["d1"]["online"] is True and seen["d1"]["last_reading_t"] == T0
    assert seen["d2"]["online"] is False and seen["d2"]["last_seen"] is None
    r = await client.get("/v1/devices/d9/readings", headers=auth("acme"))
    body = problem(r, 404, "not_found")
    assert "21.5" not in r.text and body["detail"] == "no device 'd9'"
    unknown = await client.get("/v1/devices/zz/readings", headers=auth("acme"))
    assert unknown.json()["detail"] == "no device 'zz'"  # the same answer: nothing leaks
    r = await client.get("/v1/sites/s9/readings", headers=auth("acme"))
    assert r.json()["items"] == []
    regulator = (await client.get("/v1/devices", headers=auth("regulator"))).json()["devices"]
    assert {d["id"] for d in regulator} == {"d1", "d2", "d3", "d9"}
    r = await client.get("/v1/devices/d9/readings", headers=auth("regulator"))
    assert [i["device"] for i in r.json()["items"]] == ["d9"]


async def test_readings_pagination_and_assurance(client: httpx.AsyncClient, world: World) -> None:
    items = []
    for k in range(12):
        items.append(world.reading("d1", T0 + k, str(k)))
        items.append(world.reading("d2", T0 + k, str(k)))
    items.append(world.reading("d3", T0 + 100, "5"))
    assert (await upload(client, world, "e1", items)).status_code == 200
    got: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/devices/d1/readings", params=params, headers=auth("acme"))
        body = r.json()
        got += [i["measurements"][0]["value"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert got == [str(k) for k in range(12)] and pages == 3
    r = await client.get(
        "/v1/sites/s1/readings",
        params={"min_assurance": "edge", "limit": 1000},
        headers=auth("acme"),
    )
    levels = {i["assurance"] for i in r.json()["items"]}
    assert levels == {"device", "edge"} and len(r.json()["items"]) == 24
    r = await client.get(
        "/v1/sites/s1/readings", params={"min_assurance": "device", "from": T0 + 3, "to": T0 + 5},
        headers=auth("acme"),
    )  # fmt: skip
    assert [(i["device"], i["t"]) for i in r.json()["items"]] == [("d1", T0 + 3), ("d1", T0 + 4)]
    r = await client.get(
        "/v1/sites/s1/readings", params={"min_assurance": "x"}, headers=auth("acme")
    )
    problem(r, 400, "bad_request")
    problem(
        await client.get("/v1/sites/s1/readings", params={"cursor": "@@"}, headers=auth("acme")),
        400,
        "bad_request",
    )
    problem(
        await client.get("/v1/sites/s1/readings", params={"limit": 0}, headers=auth("acme")),
        400,
        "bad_request",
    )


async def test_events_and_gaps(client: httpx.AsyncClient, world: World) -> None:
    items = [world.event("e1", T0, "cold-chain"), world.event("e1", T0 + 1, "door", seq=1)]
    items.append(world.gap("e1", "d1", 3, 7, T0 + 2))
    assert (await upload(client, world, "e1", items)).status_code == 200
    r = await client.get("/v1/events", params={"site": "s1", "rule": "door"}, headers=auth("acme"))
    [ev] = r.json()["items"]
    assert ev["rule"] == "door" and ev["seq"] == 1 and ev["sev"] == "warning"
    r = await client.get("/v1/events", headers=auth("other"))
    assert r.json()["items"] == []
    r = await client.get("/v1/devices/d1/gaps", headers=auth("acme"))
    [g] = r.json()["gaps"]
    assert (g["from"], g["to"], g["count"]) == (3, 7, 5)
    problem(await client.get("/v1/devices/d1/gaps", headers=auth("other")), 404, "not_found")


async def test_proof_bundle_verifies(client: httpx.AsyncClient, world: World) -> None:
    items = [world.reading("d1", T0 + k) for k in range(5)] + [world.reading("d2", T0)]
    items += [world.reading("d3", T0), world.event("e1", T0), world.gap("e1", "d1", 9, 9, T0)]
    assert (await upload(client, world, "e1", items)).status_code == 200
    hasher = Hasher.for_name(world.suite.hash_name)
    for index in (3, 5, 6, 7, 8):
        item_hash = world.suite.hash(items[index]).hex()
        r = await client.get(f"/v1/proofs/items/{item_hash}", headers=auth("acme"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/cbor"
        b = decode_bundle(r.content)
        assert (b.item, b.index, b.size) == (items[index], index, 9)
        header = decode_batch_header(parse_sign1(b.header).payload)
        verify_inclusion(
            hasher, b.index, b.size, hasher.hash_leaf(b.item), list(b.path), header.root
        )
        assert set(b.anchors) == {"acme", "bank"}
        want = 2 if index == 7 else 3  # (device,) edge, cloud
        assert b.receipt is not None and len(b.registrations) == want
        _verify_with_offline_verifier(r.content, world)
    missing = "00" * 32
    problem(await client.get(f"/v1/proofs/items/{missing}", headers=auth("acme")), 404, "not_found")
    h = world.suite.hash(items[0]).hex()
    problem(await client.get(f"/v1/proofs/items/{h}", headers=auth("other")), 404, "not_found")
    r = await client.get(f"/v1/proofs/items/{h}", headers=auth("regulator"))
    assert r.status_code == 200
    assert Assurance.DEVICE.label == "device"


def _verify_with_offline_verifier(raw: bytes, world: World) -> None:
    verdict = verify_bundle(raw, world.trust, now_ms=T0 + 60_000)
    assert verdict.ok, verdict.reason
    assert verdict.receipt_cloud == "cloud-1"

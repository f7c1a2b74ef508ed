"""``POST /v1/verify``: a proof bundle the cloud made is VALID step by step, a tampered or
malformed one is a verdict of INVALID (200), what the cloud is not configured for is a 503
that says what is missing, and each verification is in the audit log (SIMULATED world)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from apiworld import Api, problem
from cloud_factory import T0, TOKENS
from fastapi import FastAPI

from tally.cloud.api import ApiContext, install_api
from tally.crypto import cbor
from tally.verify.txbundle import TX_BUNDLE_KIND

CBOR = {"content-type": "application/cbor"}


async def bundle(api: Api) -> bytes:
    """A proof bundle of a simulated reading, as GET /v1/proofs/items/{hash} gives it."""
    w, c = api.world.factory, api.client
    for data in w.registrations:
        r = await c.post("/v1/registrations", content=data,
                         headers={"content-type": "application/cose"})  # fmt: skip
        assert r.status_code == 201, r.text
    item = w.reading("d1", T0)
    r = await c.post("/v1/batches", content=w.upload("e1", [item]), headers=CBOR)
    assert r.status_code == 200, r.text
    r = await c.get(f"/v1/proofs/items/{w.suite.hash(item).hex()}",
                    headers={"authorization": f"Bearer {TOKENS['acme']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.content


async def verify(api: Api, data: bytes, who: dict[str, str]) -> httpx.Response:
    return await api.client.post("/v1/verify", content=data, headers={**who, **CBOR})


async def test_a_bundle_of_the_cloud_is_valid_step_by_step(api: Api) -> None:
    data = await bundle(api)
    r = await verify(api, data, api.session("viewer", "bank-a"))
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["valid"] is True and v["kind"] == "proof" and v["reason"] == "valid"
    assert v["line"].startswith("VALID reading d1 boot 0 ctr 0 (assurance device) in batch e1#0")
    names = [s["name"] for s in v["steps"]]
    assert names[:3] == ["bundle", "suite", "anchors"] and "inclusion proof" in names
    assert all(s["ok"] for s in v["steps"])
    assert v["facts"]["device"] == "d1" and v["facts"]["anchors_pinned"] is True
    [entry] = api.audit("bundle.verify")
    assert entry.outcome == "ok" and entry.detail == {"valid": True, "kind": "proof",
                                                      "bytes": len(data)}  # fmt: skip
    assert entry.resource_id == hashlib.sha256(data).hexdigest()[:32]


async def test_a_tampered_or_malformed_bundle_is_an_invalid_verdict(api: Api) -> None:
    data = bytearray(await bundle(api))
    data[len(data) // 2] ^= 0x01
    r = await verify(api, bytes(data), api.token("viewer", "wh-a"))
    v = r.json()
    assert r.status_code == 200 and v["valid"] is False and v["reason"], v
    assert v["steps"][-1]["ok"] is False and v["line"] == f"INVALID: {v['reason']}"
    r = await verify(api, b"not cbor at all", api.token("viewer", "wh-a"))
    assert r.status_code == 200 and r.json()["reason"].startswith("bundle: ")


async def test_who_may_not_verify_and_what_the_cloud_cannot(api: Api) -> None:
    problem(
        await verify(api, b"\xa0", api.token("viewer", "gov-a")),
        403,
        "forbidden",
        "government-aggregates-only: the government portal may not read a evidence",
    )
    problem(await verify(api, b"\xa0", api.session("viewer", "bank-a", csrf=False)), 403,
            "csrf_refused")  # fmt: skip
    tx = cbor.encode({"kind": TX_BUNDLE_KIND})
    problem(await verify(api, tx, api.token("viewer", "bank-a")), 503,
            "verification_unavailable", "a transaction bundle is checked against the "
            "consortium's genesis, and this cloud was not given one")  # fmt: skip
    big = b"\x00" * ((4 << 20) + 1)
    problem(await verify(api, big, api.token("viewer", "bank-a")), 413, "payload_too_large")


def bare_app(api: Api, **ctx: Any) -> FastAPI:
    app = FastAPI()
    w = api.world
    install_api(app, ApiContext(w.views, w.store, w.audit, **ctx))
    return app


async def test_an_api_without_anchors_says_so(api: Api, tmp_path: Path) -> None:
    app = bare_app(api)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        r = await c.post("/v1/verify", content=b"\xa0",
                         headers={**api.token("viewer", "bank-a"), **CBOR})  # fmt: skip
    problem(r, 503, "verification_unavailable", "this cloud has neither the consortium's "
            "genesis nor trust anchors to verify against")  # fmt: skip


async def test_a_given_verifier_is_used(api: Api) -> None:
    seen: list[bytes] = []

    def fake(data: bytes) -> dict[str, Any]:
        seen.append(data)
        return {"valid": True, "kind": "transaction", "line": "VALID transaction (simulated)",
                "reason": "", "steps": [{"name": "bundle", "ok": True, "detail": "simulated"}],
                "contract": "loans"}  # fmt: skip

    app = bare_app(api, verify_bundle=fake)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        r = await c.post("/v1/verify", content=b"\xa1\x01\x02",
                         headers={**api.token("viewer", "core-a"), **CBOR})  # fmt: skip
    assert r.status_code == 200 and seen == [b"\xa1\x01\x02"]
    assert r.json() == {"valid": True, "kind": "transaction",
                        "line": "VALID transaction (simulated)", "reason": "",
                        "steps": [{"name": "bundle", "ok": True, "detail": "simulated"}],
                        "facts": {"contract": "loans"}}  # fmt: skip

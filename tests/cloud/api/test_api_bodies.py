"""Request bodies of the platform API: JSON of at most 64 KiB, of the right media type,
without unknown fields or converted values — each refusal a precise problem, and nothing
changed (SIMULATED world of :mod:`apiworld`)."""

from __future__ import annotations

import json

import pytest
from apiworld import PW, Api, problem

from tally.cloud.api.routing import JSON_MAX


async def test_a_body_over_64_kib_is_413_on_every_kind_of_write(api: Api) -> None:
    admin = api.token("admin", "bank-a")
    big = json.dumps({"roles": ["viewer"], "pad": "x" * JSON_MAX}).encode()
    headers = {**admin, "content-type": "application/json"}
    r = await api.client.patch("/v1/admin/users/viewer@bank-a", content=big, headers=headers)
    problem(r, 413, "payload_too_large", f"{len(big)} bytes, at most {JSON_MAX}")
    victim = api.world.victims["bank-a"]
    r = await api.client.request("DELETE", f"/v1/admin/tokens/{victim}", content=big,
                                 headers=headers)  # fmt: skip
    problem(r, 413, "payload_too_large")
    assert api.world.store.token(victim).revoked is None
    exact = b" " * (JSON_MAX - 2) + b"{}"  # 64 KiB exactly is accepted (and then read)
    r = await api.client.post("/v1/alerts/A-a1/ack", content=exact, headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "multipart/form-data"])
async def test_another_media_type_is_415(api: Api, ctype: str) -> None:
    body = json.dumps({"username": "new@bank-a", "password": PW, "roles": ["viewer"]})
    r = await api.client.post(
        "/v1/admin/users",
        content=body,
        headers={**api.token("admin", "bank-a"), "content-type": ctype},
    )
    problem(r, 415, "unsupported_media_type", f"send application/json, not {ctype}")
    r = await api.client.post(
        "/v1/admin/users",
        content=body,
        headers={**api.token("admin", "bank-a"), "content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text  # parameters of the media type are fine


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"decision": "approve", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ({"decision": "maybe"}, "body.decision: Input should be 'approve', 'refuse' or "
                                "'withdraw'"),
        ({"decision": "refuse", "reason": 7}, "body.reason: Input should be a valid string"),
        ({"decision": "refuse", "reason": ""}, "body.reason: String should have at least 1 "
                                               "character"),
    ],
)  # fmt: skip
async def test_a_body_is_taken_as_it_is_written(api: Api, payload: object, detail: str) -> None:
    r = await api.client.post("/v1/applications/P-a1/decision", json=payload,
                              headers=api.token("credit_officer", "bank-a"))  # fmt: skip
    problem(r, 400, "bad_request", detail)
    assert api.world.views.application("P-a1").status == "submitted"

"""Idempotent writes (``Idempotency-Key``): a replay answers the stored response without
doing anything again, the same key with another request is 422, a request still running is
409; errors are replayed too, a server error frees the key, keys expire after 24 h, a stale
running key is taken over, and a new API token's secret is never stored (SIMULATED world)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from apiworld import Api, problem

from tally.cloud.api import idempotency as idem
from tally.cloud.views.tables import idempotency as table

APPLY = "/v1/applications"
KEY = "Idempotency-Key"


def application(subject: str = "R-b1", amount: int = 1000) -> dict[str, Any]:
    return {"bank": "bank-a", "subject_kind": "receipt", "subject": subject,
            "amount_fen": amount}  # fmt: skip


def rows(api: Api) -> list[Any]:
    with api.world.views.engine.connect() as conn:
        return list(conn.execute(sa.select(table)).mappings())


async def test_a_replay_answers_the_stored_response_and_does_nothing(api: Api) -> None:
    api.world.views.decide_application("P-b1", "withdrawn", "operator@sup-b", api.clock.now, None)
    headers = {**api.session("operator", "sup-b"), KEY: "apply-1"}
    first = await api.client.post(APPLY, json=application(), headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    api.clock.now += 60_000
    again = await api.client.post(APPLY, json=application(), headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert [e.outcome for e in api.audit("application.create")] == ["ok"]  # done once
    mine = [p for p in api.world.views.list_applications(_sup_b(), limit=200).items
            if p.status == "submitted"]  # fmt: skip
    assert [p.id for p in mine] == [first.json()["id"]]
    [row] = rows(api)
    assert (
        row["state"] == "done"
        and row["status"] == 201
        and row["scope"] == "sup-b/user:operator@sup-b"
    )
    # the same key of another caller is another key
    other = {**api.token("operator", "sup-b"), KEY: "apply-1"}
    r = await api.client.post(APPLY, json=application(), headers=other)
    problem(r, 422, "subject_under_application")
    assert "idempotent-replayed" not in r.headers


async def test_the_same_key_with_another_request_is_422(api: Api) -> None:
    headers = {**api.session("operator", "sup-a"), KEY: "k-2"}
    first = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert first.status_code in (403, 404), first.text  # sup-a may not: stored all the same
    r = await api.client.post(APPLY, json=application("R-a1"), headers=headers)
    problem(r, 422, "idempotency_key_reused",
            "the idempotency key 'k-2' was used for another request in the last 24 h; use a "
            "new key for a new request")  # fmt: skip
    r = await api.client.post("/v1/alerts/A-w1/ack?x=1", headers=headers)  # the query counts
    problem(r, 422, "idempotency_key_reused")
    again = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/problem+json"


async def test_a_request_still_running_is_409(api: Api) -> None:
    headers = {**api.token("operator", "wh-a"), KEY: "busy"}
    scope = f"wh-a/token:{_token_id(api, 'operator', 'wh-a')}"
    fp = idem.fingerprint("POST", "/v1/alerts/A-w1/ack", b"")
    assert api.world.app.state.api_idempotency.begin(scope, "busy", fp) is None  # in flight
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    problem(r, 409, "idempotency_in_progress",
            "the request with idempotency key 'busy' is still running; retry later")  # fmt: skip
    assert api.world.views.alert("A-w1").acked_by is None
    api.clock.now += idem.STALE_MS  # the first one died: its key is taken over
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert r.status_code == 200 and r.json()["acked_by"] == "operator@wh-a", r.text


async def test_keys_expire_after_a_day(api: Api) -> None:
    headers = {**api.token("operator", "wh-a"), KEY: "daily"}
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    api.clock.now += idem.TTL_MS - 1
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert r.headers["idempotent-replayed"] == "true"
    api.clock.now += 1
    r = await api.client.post(APPLY, json=application(), headers=headers)  # a new request now
    problem(r, 403, "forbidden")
    assert "idempotent-replayed" not in r.headers


async def test_a_server_error_frees_the_key(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {**api.token("operator", "wh-a"), KEY: "boom"}

    def broken(*_: Any) -> Any:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(api.world.views, "ack_alert", broken)
    with pytest.raises(RuntimeError):  # the in-process client sees the server's exception
        await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert rows(api) == []
    [entry] = api.audit("alert.ack")
    assert (entry.outcome, entry.detail["status"], entry.detail["error"]) == (
        "failed",
        500,
        "RuntimeError",
    )
    monkeypatch.undo()
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


@pytest.mark.parametrize(
    "key", ["", "a" * 65, "has space", "semi;colon", "kl\u00fcc".encode("latin-1")]
)
async def test_a_malformed_key_is_400(api: Api, key: str | bytes) -> None:
    headers = {**api.token("operator", "wh-a"), KEY: key}
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=headers)
    body = problem(r, 400, "bad_request")
    assert "Idempotency-Key" in body["detail"], body
    assert rows(api) == [] and api.world.views.alert("A-w1").acked_by is None


async def test_a_replayed_token_never_shows_its_secret_again(api: Api) -> None:
    headers = {**api.session("admin", "bank-a"), KEY: "token-1"}
    payload = {"scopes": ["read:loans"], "user": "viewer@bank-a"}
    first = await api.client.post("/v1/admin/tokens", json=payload, headers=headers)
    assert first.status_code == 201 and first.json()["token"].startswith("tly_"), first.text
    again = await api.client.post("/v1/admin/tokens", json=payload, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == {**first.json(), "token": None}
    [row] = rows(api)
    assert b"tly_" not in row["body"]
    assert len(api.world.store.list_tokens("bank-a")) == 5 + 1 + 1  # users', spare, this one


def _sup_b() -> Any:
    from tally.cloud.views.model import Scope

    return Scope("sup-b")


def _token_id(api: Api, role: str, tenant: str) -> str:
    from tally.cloud.identity import secret_id

    return secret_id(api.world.tokens[f"{role}@{tenant}"])

"""The platform API on PostgreSQL (the machine's server, a fresh database): lists and their
cursors, an application made once under an idempotency key and replayed, a reused key, the
dashboards, sensitive fields and the audit log read back (SIMULATED world of
:mod:`apiworld`). The SQLite runs of the other modules cover the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from apiworld import SENSITIVE, Api, Clock, build, problem

from tally.cloud.live import EventHub


@pytest.fixture
async def pg_api(tmp_path: Path, postgres_url: str) -> AsyncIterator[Api]:
    clock, hub = Clock(), EventHub()
    world = build(tmp_path, hub=hub, clock=clock, url=postgres_url)
    transport = httpx.ASGITransport(app=world.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as client:
            yield Api(world, hub, clock, client)
    finally:
        world.close()


async def test_the_api_on_postgresql(pg_api: Api) -> None:
    api = pg_api
    reg = api.token("viewer", "reg-a")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await api.client.get("/v1/receipts", params=params, headers=reg)
        assert r.status_code == 200, r.text
        seen += [x["no"] for x in r.json()["items"]]
        if (cursor := r.json()["next_cursor"]) is None:
            break
    assert seen == ["R-c1", "R-b2", "R-b1", "R-a2", "R-a1"]

    api.world.views.decide_application("P-b1", "withdrawn", "operator@sup-b", api.clock.now, None)
    headers = {**api.session("operator", "sup-b"), "Idempotency-Key": "pg-1"}
    body = {"bank": "bank-b", "subject_kind": "receipt", "subject": "R-b1", "amount_fen": 10}
    first = await api.client.post("/v1/applications", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.client.post("/v1/applications", json=body, headers=headers)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = await api.client.post("/v1/applications", json={**body, "amount_fen": 11},
                                  headers=headers)  # fmt: skip
    problem(other, 422, "idempotency_key_reused")
    assert [e.outcome for e in api.audit("application.create")] == ["ok"]

    r = await api.client.get("/v1/dashboards/portfolio", headers=api.token("viewer", "bank-b"))
    assert r.status_code == 200 and r.json()["applications_waiting"] == 1, r.text
    r = await api.client.get("/v1/orgs/sup-b", params={"include": "sensitive"},
                             headers=api.token("admin", "sup-b"))  # fmt: skip
    assert r.json()["sensitive"] == SENSITIVE
    r = await api.client.get("/v1/audit", headers=api.token("auditor", "sup-b"))
    assert [e["action"] for e in r.json()["items"]] == ["org.read_sensitive", "application.create"]

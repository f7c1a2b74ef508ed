"""Reading through the platform API: pages and cursors, filters, unknown parameters, 404 for
what another tenant owns and 403 with the policy's reason for what the caller may not,
sensitive organisation fields and documents recorded in the audit log, the chain, the
dashboards, and the OpenAPI document (SIMULATED world of :mod:`apiworld`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apiworld import SENSITIVE, Api, problem

from tally.cloud.api.deps import NOT_IDENTITY
from tally.cloud.problems import PROBLEM_JSON


async def ids(
    api: Api, path: str, who: dict[str, str], key: str = "id", **params: Any
) -> list[str]:
    r = await api.client.get(path, params=params, headers=who)
    assert r.status_code == 200, r.text
    return [x[key] for x in r.json()["items"]]


async def test_pages_follow_their_cursor_newest_first(api: Api) -> None:
    reg = api.token("viewer", "reg-a")
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await api.client.get("/v1/receipts", params=params, headers=reg)
        assert r.status_code == 200, r.text
        seen += [x["no"] for x in r.json()["items"]]
        cursor, pages = r.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == ["R-c1", "R-b2", "R-b1", "R-a2", "R-a1"] and pages == 3


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": 0}, "query.limit: Input should be greater than or equal to 1"),
        ({"limit": 201}, "query.limit: Input should be less than or equal to 200"),
        ({"limit": "ten"}, "query.limit: Input should be a valid integer, unable to parse string "
                           "as an integer"),
        ({"cursor": "a+b"}, "cursor is not unpadded URL-safe base64 (it has '+', '/', '=' or "
                            "spaces)"),
        ({"cursor": "***"}, "cursor does not decode to a page position; pass next_cursor back "
                            "unchanged"),
        ({"cursor": "WyJibG9jayIsMjAsIiJd"}, "cursor belongs to the 'block' list, not to the "
                                             "'receipt' list"),
        ({"status": ""}, "query.status: String should have at least 1 character"),
    ],
)  # fmt: skip
async def test_bad_list_parameters_are_400(api: Api, params: Any, detail: str) -> None:
    r = await api.client.get("/v1/receipts", params=params, headers=api.token("viewer", "reg-a"))
    problem(r, 400, "bad_request", detail)


async def test_unknown_query_parameters_are_ignored(api: Api) -> None:
    who = api.token("viewer", "bank-a")
    plain = await ids(api, "/v1/receipts", who, "no")
    assert plain == ["R-a2"]
    assert await ids(api, "/v1/receipts", who, "no", colour="blue", limit=5) == plain


async def test_each_tenant_lists_what_it_takes_part_in(api: Api) -> None:
    assert await ids(api, "/v1/receipts", api.token("viewer", "wh-b"), "no") == [
        "R-c1", "R-b2", "R-b1"]  # fmt: skip
    assert await ids(api, "/v1/receipts", api.token("viewer", "sup-a"), "no") == ["R-a2", "R-a1"]
    assert await ids(api, "/v1/loans", api.token("viewer", "bank-a")) == ["L-c1", "L-a1"]
    assert await ids(api, "/v1/loans", api.token("viewer", "bank-a"), borrower="core-b") == [
        "L-c1"]  # fmt: skip
    assert await ids(api, "/v1/loans", api.token("viewer", "bank-a"), borrower="sup-b") == []
    # the issuer sees what it issued; a supplier that passed a note on no longer reads it
    # (the policy lets it read its own), and is told so: it knows the note exists
    assert await ids(api, "/v1/notes", api.token("viewer", "sup-a")) == ["N-c1", "N-a1"]
    assert await ids(api, "/v1/notes", api.token("viewer", "core-a")) == ["N-c1", "N-a2", "N-a1"]
    r = await api.client.get("/v1/notes/N-a2", headers=api.token("viewer", "sup-a"))
    problem(r, 403, "forbidden", "default-deny: no rule lets supplier 'sup-a' with roles "
                                 "['viewer'] read the note of 'sup-b'")  # fmt: skip
    assert await ids(api, "/v1/trades", api.token("viewer", "core-a")) == ["T-a1"]
    assert await ids(api, "/v1/documents", api.token("viewer", "bank-b"), "hash") == ["d0b1"]
    assert await ids(api, "/v1/alerts", api.token("viewer", "wh-a")) == ["A-w1", "A-a1"]
    assert await ids(api, "/v1/orgs", api.token("viewer", "bank-a")) == [
        "bank-a", "core-a", "sup-a"]  # fmt: skip
    r = await api.client.get("/v1/notes/N-a2", headers=api.token("viewer", "bank-a"))
    assert r.status_code == 200 and r.json()["holder"] == "sup-b"


async def test_another_tenants_row_is_404_like_a_missing_one(api: Api) -> None:
    who = api.token("admin", "bank-a")
    hidden = problem(await api.client.get("/v1/loans/L-b1", headers=who), 404, "not_found")
    missing = problem(await api.client.get("/v1/loans/L-zz", headers=who), 404, "not_found")
    assert hidden == {**missing, "detail": "no loan 'L-b1'"}
    problem(await api.client.get("/v1/receipts/R-b1", headers=api.token("admin", "gov-a")), 404,
            "not_found", "no receipt 'R-b1'")  # fmt: skip


async def test_sensitive_fields_are_for_the_org_its_bank_and_not_for_viewers(api: Api) -> None:
    url = "/v1/orgs/sup-a"
    r = await api.client.get(url, params={"include": "sensitive"},
                             headers=api.token("auditor", "sup-a"))  # fmt: skip
    assert r.status_code == 200 and r.json()["sensitive"] == SENSITIVE, r.text
    r = await api.client.get(url, params={"include": "sensitive"},
                             headers=api.token("credit_officer", "bank-a"))  # fmt: skip
    assert r.status_code == 200 and r.json()["sensitive"] == SENSITIVE
    r = await api.client.get(url, headers=api.token("viewer", "sup-a"))
    assert r.status_code == 200 and r.json()["sensitive"] is None
    r = await api.client.get(url, params={"include": "sensitive"},
                             headers=api.token("viewer", "sup-a"))  # fmt: skip
    problem(
        r,
        403,
        "forbidden",
        "sensitive: own-read does not let supplier 'sup-a' with roles "
        "['viewer'] read the party of 'sup-a': it is sensitive",
    )
    r = await api.client.get(url, params={"include": "sensitive"},
                             headers=api.token("admin", "bank-b"))  # fmt: skip
    problem(r, 404, "not_found", "no organisation 'sup-a'")
    entries = [(e.tenant, e.actor, e.outcome) for e in api.audit("org.read_sensitive")]
    assert entries == [
        ("sup-a", "auditor@sup-a", "ok"),
        ("bank-a", "credit_officer@bank-a", "ok"),
        ("sup-a", "viewer@sup-a", "denied"),
        ("bank-b", "admin@bank-b", "denied"),
    ]
    dumped = json.dumps([dict(e.detail) for e in api.audit("org.read_sensitive")])
    assert "SIMULATED" not in dumped  # the fields' names are recorded, never their values


async def test_documents_are_audited_reads(api: Api) -> None:
    r = await api.client.get("/v1/documents/d0a1", headers=api.token("viewer", "bank-a"))
    assert r.status_code == 200 and r.json()["trade"] == "T-a1", r.text
    r = await api.client.get("/v1/documents/d0a1", headers=api.token("viewer", "sup-b"))
    problem(r, 404, "not_found", "no document 'd0a1'")
    assert await ids(api, "/v1/documents", api.token("auditor", "bank-a"), "hash") == ["d0a1"]
    # the counterparty is among a document's parties, which gives a core enterprise nothing
    assert await ids(api, "/v1/documents", api.token("viewer", "core-a"), "hash") == []
    reads = [(e.actor, e.resource_id, e.outcome) for e in api.audit("document.read")]
    assert reads == [("viewer@bank-a", "d0a1", "ok"), ("viewer@sup-b", "d0a1", "denied")]
    listed = [(e.actor, e.detail["count"], e.detail["shown"]) for e in api.audit("document.list")]
    assert listed == [("auditor@bank-a", 1, ["d0a1"]), ("viewer@core-a", 0, [])]


async def test_a_token_does_what_its_scopes_say_and_configured_tokens_are_refused(api: Api) -> None:
    token = api.world.store.issue_token("bank-a", ["read:receipts"], user="viewer@bank-a").token
    who = {"authorization": f"Bearer {token}"}
    assert (await api.client.get("/v1/receipts", headers=who)).status_code == 200
    problem(
        await api.client.get("/v1/loans", headers=who),
        403,
        "forbidden",
        "token-scope: the API token of bank 'bank-a' lacks the scope 'read:loans'",
    )
    r = await api.client.get("/v1/loans", headers={"authorization": "Bearer tok-acme"})
    problem(r, 401, "unauthorized", NOT_IDENTITY)
    assert r.headers["www-authenticate"] == "Bearer"
    problem(await api.client.get("/v1/loans"), 401, "unauthorized")
    assert (await api.client.get("/v1/ping")).json() == {"ok": True, "version": "1"}


async def test_the_chain_is_the_consortium_members(api: Api) -> None:
    r = await api.client.get("/v1/chain/blocks", headers=api.token("viewer", "sup-a"))
    problem(r, 403, "forbidden", "default-deny: no rule lets supplier 'sup-a' with roles "
                                 "['viewer'] read the chain of 'consortium'")  # fmt: skip
    who = api.token("viewer", "log-b")
    r = await api.client.get("/v1/chain/status", headers=who)
    assert r.json()["height"] == 2 and r.json()["latest"]["hash"] == "b2" * 32
    r = await api.client.get("/v1/chain/blocks/1", headers=who)
    assert [t["id"] for t in r.json()["txs"]] == ["aa01", "aa02"]
    r = await api.client.get("/v1/chain/txs/AA02", headers=who)
    assert r.status_code == 200 and r.json()["creator"] == "wh-b"
    problem(await api.client.get("/v1/chain/blocks/9", headers=who), 404, "not_found",
            "no block at height 9")  # fmt: skip
    problem(await api.client.get("/v1/chain/txs/xyz", headers=who), 400, "bad_request")
    problem(await api.client.get("/v1/chain/txs/aa01", headers=api.token("admin", "sup-a")),
            404, "not_found", "no transaction 'aa01'")  # fmt: skip


async def test_dashboards_are_their_organisations_and_the_regulators(api: Api) -> None:
    r = await api.client.get("/v1/dashboards/portfolio", headers=api.token("viewer", "bank-a"))
    got = r.json()
    assert (
        got["bank"] == "bank-a" and got["live"]["count"] == 2 and got["applications_waiting"] == 3
    )
    r = await api.client.get("/v1/dashboards/portfolio", params={"bank": "bank-b"},
                             headers=api.token("viewer", "bank-a"))  # fmt: skip
    problem(r, 404, "not_found", "no portfolio dashboard of 'bank-b'")
    r = await api.client.get("/v1/dashboards/portfolio", params={"bank": "bank-b"},
                             headers=api.token("viewer", "reg-a"))  # fmt: skip
    assert r.status_code == 200 and r.json()["bank"] == "bank-b"
    r = await api.client.get("/v1/dashboards/supplier", headers=api.token("viewer", "sup-a"))
    assert r.json()["receipts"]["free"] == {"count": 1, "value_fen": 1_000_000}
    r = await api.client.get("/v1/dashboards/core", headers=api.token("viewer", "core-a"))
    assert r.json()["edges"] == [{"from": "core-a", "to": "sup-a", "tier": 1}]
    r = await api.client.get("/v1/dashboards/warehouse", headers=api.token("viewer", "wh-a"))
    assert [s["site"] for s in r.json()["sites"]] == ["wh-a-s1"]
    assert r.json()["totals"] == {"receipts": 2, "pledged": 1, "alerts_open": 2}
    r = await api.client.get("/v1/dashboards/warehouse", headers=api.token("viewer", "sup-a"))
    problem(r, 404, "not_found", "no warehouse dashboard of 'sup-a'")
    r = await api.client.get("/v1/aggregates", headers=api.token("viewer", "gov-a"))
    assert r.status_code == 200 and r.json()["loans"]["count"] == 3
    r = await api.client.get("/v1/aggregates", headers=api.token("admin", "bank-a"))
    problem(r, 403, "forbidden", "default-deny: no rule lets bank 'bank-a' with roles ['admin'] "
                                 "read the aggregate of 'platform'")  # fmt: skip


async def test_the_openapi_document_says_what_the_server_answers(api: Api) -> None:
    r = await api.client.get("/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert "HTTPValidationError" not in r.text and "ValidationError" not in spec["components"][
        "schemas"]  # fmt: skip
    assert set(spec["components"]["securitySchemes"]) >= {"apiToken", "session"}
    routes = {(m, x.path) for x in api.world.app.state.api_routes for m in x.methods}
    assert len(routes) == 37 + 9  # the knowledge graph's 9 (the world has one)
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes <= listed and ("POST", "/v1/session") in listed
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (path, method)
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(resp["content"]) == [PROBLEM_JSON], (path, method, code)
            if (path, method) not in {("/v1/ping", "get"), ("/v1/session", "post")}:
                assert op["security"], (path, method)
                assert "401" in codes, (path, method)
            if (
                method in ("post", "patch", "delete")
                and path.startswith("/v1/")
                and (path not in ("/v1/session",))
            ):
                names = {p["name"] for p in op.get("parameters", [])}
                assert {"Idempotency-Key", "X-CSRF-Token"} <= names, (path, method)
    verify = spec["paths"]["/v1/verify"]["post"]["requestBody"]["content"]
    assert list(verify) == ["application/cbor"]

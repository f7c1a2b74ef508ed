"""Administration and the audit log through the API: users and API tokens of the caller's own
tenant only, precise refusals, every write in the audit log without a password or a token,
and the audit log read back by auditors (SIMULATED world of :mod:`apiworld`)."""

from __future__ import annotations

import json

from apiworld import PW, Api, problem

from tally.cloud import identity as I

USERS = "/v1/admin/users"
TOKENS = "/v1/admin/tokens"


async def test_users_of_the_own_tenant(api: Api) -> None:
    admin = api.session("admin", "bank-a")
    r = await api.client.get(USERS, headers=api.token("auditor", "bank-a"))
    assert [u["username"] for u in r.json()["items"]] == [
        "admin@bank-a", "auditor@bank-a", "credit_officer@bank-a", "operator@bank-a",
        "viewer@bank-a"]  # fmt: skip
    problem(await api.client.get(USERS, headers=api.token("viewer", "bank-a")), 403, "forbidden",
            "default-deny: no rule lets bank 'bank-a' with roles ['viewer'] read the user of "
            "'bank-a'")  # fmt: skip
    new = {"username": "clerk@bank-a", "password": PW, "roles": ["operator"]}
    r = await api.client.post(USERS, json=new, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json() == {"tenant": "bank-a", "username": "clerk@bank-a", "roles": ["operator"],
                        "failed": 0, "locked_until": None, "created": api.clock.now,
                        "disabled": False}  # fmt: skip
    assert api.world.store.login("clerk@bank-a", PW).principal.tenant == "bank-a"
    problem(await api.client.post(USERS, json=new, headers=admin), 409, "conflict",
            "username 'clerk@bank-a' is taken")  # fmt: skip
    weak = {**new, "username": "weak@bank-a", "password": "short"}
    problem(await api.client.post(USERS, json=weak, headers=admin), 400, "bad_request",
            "password must be at least 12 characters (got 5)")  # fmt: skip
    odd = {**new, "username": "odd@bank-a", "roles": ["root"]}
    body = problem(await api.client.post(USERS, json=odd, headers=admin), 400, "bad_request")
    assert body["detail"].startswith("body.roles.0: Input should be"), body
    r = await api.client.post(USERS, json={**new, "username": "x@bank-a"},
                              headers=api.session("credit_officer", "bank-a"))  # fmt: skip
    problem(r, 403, "forbidden", "default-deny: no rule lets bank 'bank-a' with roles "
                                 "['credit_officer'] admin the user of 'bank-a'")  # fmt: skip
    outcomes = [(e.resource_id, e.outcome) for e in api.audit("user.create")]
    assert outcomes == [("clerk@bank-a", "ok"), ("clerk@bank-a", "failed"),
                        ("weak@bank-a", "failed"), ("x@bank-a", "denied")]  # fmt: skip
    assert PW not in json.dumps([dict(e.detail) for e in api.audit("user.create")])


async def test_changing_users(api: Api) -> None:
    admin = api.session("admin", "bank-a")
    url = f"{USERS}/viewer@bank-a"
    r = await api.client.patch(url, json={"disabled": True}, headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True, r.text
    r = await api.client.get("/v1/receipts", headers=api.token("viewer", "bank-a"))
    problem(r, 401, "token_refused", "the API token's user 'viewer@bank-a' is disabled")
    r = await api.client.patch(url, json={"disabled": False, "roles": ["viewer", "auditor"],
                                          "password": "another long pass"},
                               headers=admin)  # fmt: skip
    assert r.json()["roles"] == ["auditor", "viewer"] and r.json()["disabled"] is False
    assert api.world.store.login("viewer@bank-a", "another long pass").principal.user
    problem(await api.client.patch(url, json={}, headers=admin), 400, "bad_request",
            "give at least one of roles, disabled, password, unlock")  # fmt: skip
    problem(await api.client.patch(f"{USERS}/admin@bank-a", json={"roles": ["viewer"]},
                                   headers=admin), 409, "conflict",
            "an admin cannot disable itself or drop its own admin role")  # fmt: skip
    problem(
        await api.client.patch(f"{USERS}/viewer@bank-b", json={"unlock": True}, headers=admin),
        404,
        "not_found",
        "no user 'viewer@bank-b'",
    )
    [first, second, *_] = api.audit("user.update")
    assert first.detail == {"disabled": True, "changed": ["disabled"]}
    assert second.detail["changed"] == ["disabled", "password", "roles"]
    assert "another long pass" not in json.dumps(dict(second.detail))


async def test_tokens_of_the_own_tenant(api: Api) -> None:
    admin = api.session("admin", "wh-a")
    scopes = ["read:receipts", "read:alerts", "write:alerts"]
    r = await api.client.post(TOKENS, json={"scopes": scopes}, headers=admin)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["user"] is None and issued["tenant"] == "wh-a"
    assert issued["token"].startswith(I.TOKEN_PREFIX) and issued["id"] == I.secret_id(
        issued["token"])  # fmt: skip
    tenant_wide = {"authorization": f"Bearer {issued['token']}"}
    assert (await api.client.get("/v1/receipts", headers=tenant_wide)).status_code == 200
    r = await api.client.post("/v1/alerts/A-w1/ack", headers=tenant_wide)
    assert r.json()["acked_by"] == f"token:{issued['id'][:16]}"  # it acts as an operator
    problem(await api.client.post(TOKENS, json={"scopes": ["read:widgets"]}, headers=admin), 400,
            "bad_request")  # fmt: skip
    problem(await api.client.post(TOKENS, json={"scopes": ["read:loans"],
                                                "user": "viewer@wh-b"}, headers=admin),
            404, "not_found", "no user 'viewer@wh-b'")  # fmt: skip
    r = await api.client.get(TOKENS, headers=api.token("auditor", "wh-a"))
    assert issued["id"] in [t["id"] for t in r.json()["items"]]
    assert all(t["tenant"] == "wh-a" for t in r.json()["items"])
    assert "token" not in r.json()["items"][0]
    other = api.world.victims["wh-b"]
    problem(await api.client.delete(f"{TOKENS}/{other}", headers=admin), 404, "not_found",
            f"no API token with id {other!r}")  # fmt: skip
    api.clock.now += 1000
    r = await api.client.delete(f"{TOKENS}/{issued['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] == api.clock.now
    problem(await api.client.get("/v1/receipts", headers=tenant_wide), 401, "token_refused",
            f"API token revoked at {I.iso_ms(api.clock.now)}")  # fmt: skip
    entries = api.audit("token.issue") + api.audit("token.revoke")
    assert [(e.action, e.outcome) for e in entries] == [
        ("token.issue", "ok"), ("token.issue", "failed"), ("token.issue", "denied"),
        ("token.revoke", "denied"), ("token.revoke", "ok")]  # fmt: skip
    assert entries[0].detail["token_id"] == issued["id"][:16]
    assert I.TOKEN_PREFIX not in json.dumps([dict(e.detail) for e in entries])


async def test_the_audit_log_is_read_by_auditors_of_the_tenant_and_the_regulator(api: Api) -> None:
    for k in range(3):
        await api.client.post(f"/v1/alerts/A-a{k}/ack", headers=api.token("operator", "bank-a"))
    auditor = api.token("auditor", "bank-a")
    r = await api.client.get("/v1/audit", params={"limit": 2}, headers=auditor)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["resource_id"] for e in page["items"]] == ["A-a2", "A-a1"]
    assert all(e["tenant"] == "bank-a" and len(e["hash"]) == 64 for e in page["items"])
    r = await api.client.get("/v1/audit", params={"cursor": page["next_cursor"]}, headers=auditor)
    rest = r.json()["items"]
    assert [(e["action"], e["resource_id"]) for e in rest] == [("alert.ack", "A-a0")]
    seqs = [e["seq"] for e in page["items"] + rest]
    assert seqs == sorted(seqs, reverse=True)
    problem(await api.client.get("/v1/audit", headers=api.token("viewer", "bank-a")), 403,
            "forbidden")  # fmt: skip
    problem(await api.client.get("/v1/audit", params={"tenant": "bank-b"}, headers=auditor),
            404, "not_found", "no audit log of 'bank-b'")  # fmt: skip
    r = await api.client.get("/v1/audit", params={"tenant": "bank-a"},
                             headers=api.token("auditor", "reg-b"))  # fmt: skip
    assert r.status_code == 200 and {e["tenant"] for e in r.json()["items"]} == {"bank-a"}
    r = await api.client.get("/v1/audit", params={"tenant": "bank-a"},
                             headers=api.token("viewer", "reg-b"))  # fmt: skip
    problem(r, 404, "not_found")
    outcomes = [(e.tenant, e.outcome) for e in api.audit("audit.read")]
    assert outcomes == [("bank-a", "ok"), ("bank-a", "ok"), ("bank-a", "denied"),
                        ("bank-a", "denied"), ("reg-b", "ok"), ("reg-b", "denied")]  # fmt: skip

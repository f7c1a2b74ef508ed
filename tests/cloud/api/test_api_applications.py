"""Financing applications through the API: a supplier applies against what it holds, each
rule's 422 problem, the policy's 403s, the bank's decision, withdrawal, the live events and
the audit entries (SIMULATED world of :mod:`apiworld`)."""

from __future__ import annotations

from typing import Any

import pytest
from apiworld import Api, problem

from tally.cloud.views.model import ReceiptRow

APPLY = "/v1/applications"


def body(subject: str, kind: str = "receipt", amount: int = 1000, bank: str = "bank-a") -> Any:
    return {"bank": bank, "subject_kind": kind, "subject": subject, "amount_fen": amount}


async def test_a_supplier_applies_against_a_free_receipt_it_holds(api: Api) -> None:
    sub = api.hub.subscribe()
    api.world.views.upsert_receipt(ReceiptRow(
        "R-a9", "sup-a", "wh-a", None, "wh-a-s1", "wh-a-s1/B1", "copper", "3.000", "t",
        2_000_000, "live", None, 1, 1, 9,
    ))  # fmt: skip
    r = await api.client.post(APPLY, json=body("R-a9", amount=2_000_000),
                              headers=api.session("operator", "sup-a"))  # fmt: skip
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["applicant"] == "sup-a" and got["bank"] == "bank-a" and got["status"] == "submitted"
    assert got["created_by"] == "operator@sup-a" and got["created_ms"] == api.clock.now
    stored = api.world.views.application(got["id"])
    assert stored is not None and stored.subject == "R-a9" and stored.amount_fen == 2_000_000
    event = await sub.next(1.0)
    assert event is not None and event.kind == "application"
    assert event.data["id"] == got["id"] and event.data["event"] == "submitted"
    assert event.resource is not None and event.resource.bank == "bank-a"
    assert event.resource.kind == "loan" and event.resource.owner == "sup-a"
    [entry] = api.audit("application.create")
    assert (entry.tenant, entry.actor, entry.outcome) == ("sup-a", "operator@sup-a", "ok")
    assert entry.resource_id == got["id"] and entry.detail["subject"] == "R-a9"
    # the bank sees it, the other bank does not
    r = await api.client.get(f"{APPLY}/{got['id']}", headers=api.token("viewer", "bank-a"))
    assert r.status_code == 200 and r.json() == got
    r = await api.client.get(f"{APPLY}/{got['id']}", headers=api.token("admin", "bank-b"))
    problem(r, 404, "not_found", f"no application {got['id']!r}")


async def test_a_core_enterprise_applies_against_a_note_it_holds(api: Api) -> None:
    r = await api.client.post(APPLY, json=body("R-c1", amount=5_000_000, bank="bank-b"),
                              headers=api.token("credit_officer", "core-a"))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["applicant"] == "core-a"


@pytest.mark.parametrize(
    ("payload", "code", "detail"),
    [
        (body("R-a1", bank="sup-b"), "unknown_bank", "'sup-b' is not a bank one may apply to"),
        (body("R-a1", bank="bank-z"), "unknown_bank", "'bank-z' is not a bank one may apply to"),
        (body("R-b1"), "subject_not_held", "'sup-a' holds no receipt 'R-b1'"),
        (body("R-zz"), "subject_not_held", "'sup-a' holds no receipt 'R-zz'"),
        (body("N-b1", "note"), "subject_not_held", "'sup-a' holds no note 'N-b1'"),
        (body("R-a2"), "subject_encumbered",
         "receipt 'R-a2' is pledged, pledged to 'bank-a' for loan 'L-a1': only a live receipt "
         "that is not pledged can back an application"),
        (body("N-c1", "note"), "subject_encumbered",
         "note 'N-c1' is financed: only a live note that is not financed can back an "
         "application"),
        (body("R-a1", amount=1_000_001), "amount_exceeds_value",
         "amount_fen 1000001 is more than the receipt's value, 1000000 fen"),
        (body("N-a1", "note", amount=500_001), "amount_exceeds_value",
         "amount_fen 500001 is more than the note's amount, 500000 fen"),
        (body("R-a1"), "subject_under_application",
         "receipt 'R-a1' already backs application 'P-a2', which is not refused or withdrawn"),
    ],
)  # fmt: skip
async def test_each_rule_has_its_422(api: Api, payload: Any, code: str, detail: str) -> None:
    before = api.world.views.list_applications(_everything(), limit=200).items
    r = await api.client.post(APPLY, json=payload, headers=api.token("operator", "sup-a"))
    problem(r, 422, code, detail)
    assert r.json()["title"] == "Application refused"
    assert api.world.views.list_applications(_everything(), limit=200).items == before
    [entry] = api.audit("application.create")
    assert entry.outcome == "failed" and entry.detail["code"] == code


async def test_a_receipt_without_a_value_backs_nothing(api: Api) -> None:
    api.world.views.upsert_receipt(ReceiptRow(
        "R-a8", "sup-a", "wh-a", None, "wh-a-s1", "wh-a-s1/B2", "copper", "1.000", "t", None,
        "live", None, 1, 1, 8,
    ))  # fmt: skip
    r = await api.client.post(APPLY, json=body("R-a8"), headers=api.token("admin", "sup-a"))
    problem(r, 422, "subject_value_unknown", "receipt 'R-a8' has no known value to lend against")


@pytest.mark.parametrize(
    ("role", "tenant", "reason"),
    [
        ("viewer", "sup-a", "default-deny: no rule lets supplier 'sup-a' with roles ['viewer'] "
                            "write the loan of 'sup-a'"),
        ("auditor", "sup-a", "default-deny: no rule lets supplier 'sup-a' with roles "
                             "['auditor'] write the loan of 'sup-a'"),
        ("admin", "wh-a", "default-deny: no rule lets warehouse 'wh-a' with roles ['admin'] "
                          "write the loan of 'wh-a'"),
        ("admin", "reg-a", "regulator-read-only: the regulator may not write a loan"),
        ("admin", "gov-a", "government-aggregates-only: the government portal may not write "
                           "a loan"),
    ],
)  # fmt: skip
async def test_who_may_not_apply_gets_the_policys_reason(
    api: Api, role: str, tenant: str, reason: str
) -> None:
    r = await api.client.post(APPLY, json=body("R-a1"), headers=api.session(role, tenant))
    problem(r, 403, "forbidden", reason)
    [entry] = api.audit("application.create")
    assert entry.outcome == "denied" and entry.tenant == tenant and entry.detail["status"] == 403


async def test_the_bank_decides_and_nobody_else(api: Api) -> None:
    sub = api.hub.subscribe()
    url = f"{APPLY}/P-a1/decision"
    approve = {"decision": "approve", "reason": "collateral checked"}
    r = await api.client.post(url, json=approve, headers=api.session("operator", "bank-a"))
    problem(r, 403, "forbidden", "default-deny: no rule lets bank 'bank-a' with roles "
                                 "['operator'] write the loan of 'sup-a'")  # fmt: skip
    r = await api.client.post(url, json=approve, headers=api.session("credit_officer", "sup-a"))
    problem(r, 403, "forbidden", "decision: only the bank 'bank-a' approves or refuses")
    r = await api.client.post(url, json=approve, headers=api.session("admin", "bank-b"))
    problem(r, 404, "not_found", "no application 'P-a1'")
    r = await api.client.post(url, json={"decision": "refuse"},
                              headers=api.session("credit_officer", "bank-a"))  # fmt: skip
    problem(r, 422, "reason_required", "a refusal needs a reason")
    api.clock.now += 5000
    r = await api.client.post(url, json=approve, headers=api.session("credit_officer", "bank-a"))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "approved" and got["decided_by"] == "credit_officer@bank-a"
    assert got["decided_ms"] == api.clock.now and got["reason"] == "collateral checked"
    event = await sub.next(1.0)
    assert event is not None and event.kind == "application" and event.data["event"] == "approved"
    r = await api.client.post(url, json={"decision": "withdraw"},
                              headers=api.session("operator", "sup-a"))  # fmt: skip
    problem(r, 409, "conflict", "application 'P-a1' is already approved; only a submitted "
                                "application can be decided")  # fmt: skip
    outcomes = [(e.tenant, e.outcome) for e in api.audit("application.decide")]
    assert outcomes == [("bank-a", "denied"), ("sup-a", "denied"), ("bank-b", "denied"),
                        ("bank-a", "failed"), ("bank-a", "ok"), ("sup-a", "failed")]  # fmt: skip


async def test_the_applicant_withdraws_and_the_bank_may_not(api: Api) -> None:
    url = f"{APPLY}/P-b1/decision"
    r = await api.client.post(url, json={"decision": "withdraw"},
                              headers=api.session("credit_officer", "bank-b"))  # fmt: skip
    problem(r, 403, "forbidden", "decision: only the applicant 'sup-b' withdraws its application")
    r = await api.client.post(url, json={"decision": "withdraw"},
                              headers=api.token("operator", "sup-b"))  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text
    # the receipt is free again for another application
    r = await api.client.post(APPLY, json=body("R-b1", bank="bank-b"),
                              headers=api.token("operator", "sup-b"))  # fmt: skip
    assert r.status_code == 201, r.text


async def test_lists_show_the_applicants_and_the_banks_own(api: Api) -> None:
    r = await api.client.get(APPLY, headers=api.token("viewer", "bank-a"))
    assert r.status_code == 200
    assert sorted(x["id"] for x in r.json()["items"]) == ["P-a1", "P-a2", "P-c1"]
    r = await api.client.get(APPLY, params={"applicant": "sup-a"},
                             headers=api.token("viewer", "bank-a"))  # fmt: skip
    assert sorted(x["id"] for x in r.json()["items"]) == ["P-a1", "P-a2"]
    r = await api.client.get(APPLY, headers=api.token("viewer", "sup-b"))
    assert [x["id"] for x in r.json()["items"]] == ["P-b1"]
    r = await api.client.get(APPLY, headers=api.token("viewer", "reg-b"))
    assert len(r.json()["items"]) == 4
    r = await api.client.get(APPLY, headers=api.token("admin", "gov-a"))
    problem(r, 403, "forbidden", "government-aggregates-only: the government portal may not "
                                 "read a loan")  # fmt: skip


def _everything() -> Any:
    from tally.cloud.views.model import Scope

    return Scope("any", everything=True)

"""The console's forms: a supplier applies, the bank decides, an alert is acknowledged, a
bundle is verified — each through the API in process (its checks, audit entries and
idempotency), each refused without the session's CSRF token."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from console_client import Login, csrf_of
from console_world import FREE_RECEIPT, ConsoleWorld

_KEY = re.compile(r'name="key" value="([^"]+)"')


def form_key(html: str) -> str:
    m = _KEY.search(html)
    assert m is not None
    return m.group(1)


async def apply(client: httpx.AsyncClient, amount: str, **more: str) -> httpx.Response:
    page = await client.get("/console/workspace")
    form = {"csrf": csrf_of(page.text), "key": form_key(page.text),
            "subject": f"receipt:{FREE_RECEIPT}", "bank": "bank-1", "amount": amount,
            **more}  # fmt: skip
    return await client.post("/console/workspace/apply", data=form)


async def test_supplier_applies_and_the_bank_approves(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("op@sup-1")
    r = await apply(client, "250,000.50")
    assert r.status_code == 303 and r.headers["location"] == "/console/workspace"
    page = await client.get("/console/workspace", headers={"accept-language": "en"})
    assert (
        'data-testid="flash"' in page.text and "submitted to Simulated Jiangnan Bank" in page.text
    )
    apps = cworld.views.list_applications(_everything(), applicant="sup-1").items
    assert [(a.subject, a.amount_fen, a.status) for a in apps] == [
        (FREE_RECEIPT, 25_000_050, "submitted")
    ]
    assert any(e.action == "application.create" and e.outcome == "ok"
               for e in cworld.audit.entries(limit=100))  # fmt: skip
    client.cookies.clear()
    await login("officer@bank-1")
    portfolio = await client.get("/console/portfolio")
    assert apps[0].id in portfolio.text
    form = {"csrf": csrf_of(portfolio.text), "key": form_key(portfolio.text),
            "decision": "approve", "next": "/console/portfolio"}  # fmt: skip
    r = await client.post(f"/console/applications/{apps[0].id}/decision", data=form)
    assert r.status_code == 303
    assert cworld.views.application(apps[0].id).status == "approved"  # type: ignore[union-attr]
    again = await client.get("/console/portfolio")
    assert f"申请 {apps[0].id} 已批准" in again.text


async def test_refusals_from_the_api_are_shown(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("op@sup-1")
    r = await apply(client, "999999999")  # more than the receipt's value
    assert r.status_code == 303
    page = await client.get("/console/workspace", headers={"accept-language": "en"})
    assert "The application was refused" in page.text and "more than the receipt" in page.text
    for amount, says in (("12.345", "at most two decimals"), ("abc", "is not an amount"),
                         ("-5", "more than zero")):  # fmt: skip
        await apply(client, amount)
        page = await client.get("/console/workspace", headers={"accept-language": "en"})
        assert says in page.text, amount
    assert cworld.views.list_applications(_everything(), applicant="sup-1").items == ()


async def test_a_form_sent_twice_applies_once(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("op@sup-1")
    page = await client.get("/console/workspace")
    form = {"csrf": csrf_of(page.text), "key": form_key(page.text),
            "subject": f"receipt:{FREE_RECEIPT}", "bank": "bank-1", "amount": "1000"}  # fmt: skip
    for _ in range(2):
        assert (await client.post("/console/workspace/apply", data=form)).status_code == 303
    assert len(cworld.views.list_applications(_everything(), applicant="sup-1").items) == 1


@pytest.mark.parametrize("csrf", [None, "forged-token"])
async def test_posts_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld, csrf: str | None
) -> None:
    await login("op@sup-1")
    extra = {} if csrf is None else {"csrf": csrf}
    form = {"subject": f"receipt:{FREE_RECEIPT}", "bank": "bank-1", "amount": "1000", **extra}
    r = await client.post("/console/workspace/apply", data=form)
    assert r.status_code == 403 and 'data-testid="error"' in r.text
    r = await client.post("/console/applications/app-seed-1/decision",
                          data={"decision": "withdraw", **extra})  # fmt: skip
    assert r.status_code == 403
    r = await client.post("/console/alerts/AL-1/ack", data=extra)
    assert r.status_code == 403
    r = await client.post("/console/verify", files={"bundle": ("b.cbor", b"x")}, data=extra)
    assert r.status_code == 403
    assert cworld.views.list_applications(_everything(), applicant="sup-1").items == ()
    assert cworld.views.application("app-seed-1").status == "submitted"  # type: ignore[union-attr]


async def test_warehouse_acknowledges_its_alert(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("op@acme")
    page = await client.get("/console/sites")
    form = {"csrf": csrf_of(page.text), "key": "ack-1", "next": "/console/sites"}
    r = await client.post("/console/alerts/AL-2/ack", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/console/sites"
    assert cworld.views.alert("AL-2").acked_by == "op@acme"  # type: ignore[union-attr]
    r = await client.post("/console/alerts/AL-1/ack", data={**form, "key": "ack-2"})
    after = await client.get("/console/sites", headers={"accept-language": "en"})
    assert "Alert AL-1 was not acknowledged: no alert 'AL-1'" in html.unescape(after.text)


async def test_verify_a_bundle_step_by_step(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("op@acme")
    page = await client.get("/console/verify", headers={"accept-language": "en"})
    csrf = csrf_of(page.text)
    r = await client.post("/console/verify", data={"csrf": csrf},
                          files={"bundle": ("proof.cbor", cworld.bundle, "application/cbor")},
                          headers={"accept-language": "en"})  # fmt: skip
    assert r.status_code == 200, r.text[-1500:]
    assert 'class="verdict valid"' in r.text and "proof.cbor" in r.text
    assert r.text.count('<li class="ok">') >= 3
    tampered = bytearray(cworld.bundle)
    tampered[-5] ^= 0x01
    r = await client.post("/console/verify", data={"csrf": csrf},
                          files={"bundle": ("bad.cbor", bytes(tampered))},
                          headers={"hx-request": "true", "accept-language": "en"})  # fmt: skip
    assert r.status_code in (200, 400)
    assert "<html" not in r.text  # the fragment alone for htmx
    assert 'class="verdict invalid"' in r.text or 'data-testid="verify-error"' in r.text
    empty = await client.post("/console/verify", data={"csrf": csrf},
                              files={"bundle": ("e.cbor", b"")})  # fmt: skip
    assert empty.status_code == 400


def _everything():  # type: ignore[no-untyped-def]
    from tally.cloud.views.model import Scope

    return Scope("test", everything=True)

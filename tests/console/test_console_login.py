"""The console's login, logout, language switch and CSRF: the same session cookie as the
API's login, the ``tally_csrf`` cookie, audit entries, clear messages on refusal."""

from __future__ import annotations

import httpx
from console_client import Login, csrf_of
from console_world import PW, ConsoleWorld

from tally.cloud.session_api import COOKIE, COOKIE_ATTRIBUTES


async def test_login_sets_the_session_and_csrf_cookies_and_goes_home(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    r = await login("officer@bank-1")
    assert r.status_code == 303 and r.headers["location"] == "/console/portfolio"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{COOKIE}="))
    assert session.endswith(COOKIE_ATTRIBUTES) and "Max-Age=" in session
    csrf = next(c for c in cookies if c.startswith("tally_csrf="))
    assert "HttpOnly" not in csrf and "SameSite=Strict" in csrf and "Secure" in csrf
    token = csrf.split(";")[0].split("=", 1)[1]
    # the cookie's token is the session's: a write with it is accepted by the identity store
    secret = session.split(";")[0].split("=", 1)[1]
    p = cworld.store.authenticate_session(secret, token, unsafe=True)
    assert p.user == "officer@bank-1"
    entries = [e for e in cworld.audit.entries(limit=50) if e.action == "session.login"]
    assert [(e.actor, e.outcome) for e in entries] == [("officer@bank-1", "ok")]
    home = await client.get("/console/")
    assert home.status_code == 303 and home.headers["location"] == "/console/portfolio"


async def test_wrong_password_then_lockout_say_so(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    r = await login("op@sup-1", "not the password")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text  # Chinese by default
    for _ in range(2):  # the third failure locks the account (and says no more)
        r = await login("op@sup-1", "not the password")
        assert r.status_code == 401
    r = await login("op@sup-1", PW)  # locked even with the right password
    assert r.status_code == 423, r.text
    assert "账户已锁定" in r.text
    outcomes = [e.outcome for e in cworld.audit.entries(limit=50) if e.action == "session.login"]
    assert outcomes == ["denied"] * 4
    client.cookies.set("tally_lang", "en")
    r = await login("op@sup-1", PW)
    assert "this account is locked until" in r.text


async def test_login_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/login")
    form = {"username": "officer@bank-1", "password": PW}
    r = await client.post("/console/login", data=form)
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    r = await client.post("/console/login", data={**form, "csrf": "forged"})
    assert r.status_code == 403
    r = await client.post("/console/login", data={**form, "csrf": csrf_of(page.text)})
    assert r.status_code == 303


async def test_other_tenant_at_login_is_refused(login: Login) -> None:
    r = await login("officer@bank-1", PW, tenant="sup-1")
    assert r.status_code == 401


async def test_logout_needs_csrf_and_ends_the_session(
    client: httpx.AsyncClient, login: Login
) -> None:
    await login("officer@bank-1")
    page = await client.get("/console/portfolio")
    assert page.status_code == 200, page.text
    r = await client.post("/console/logout", data={})
    assert r.status_code == 403 and "CSRF" in r.text
    r = await client.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    after = await client.get("/console/portfolio")
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")


async def test_not_logged_in_goes_to_login_and_back(client: httpx.AsyncClient) -> None:
    r = await client.get("/console/chain?cursor=x")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=/console/chain%3Fcursor%3Dx"
    root = await client.get("/")
    assert root.status_code == 303 and root.headers["location"] == "/console/"


async def test_language_from_accept_language_then_cookie(client: httpx.AsyncClient) -> None:
    zh = await client.get("/console/login")
    assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text
    en = await client.get("/console/login", headers={"accept-language": "en-GB,en;q=0.8"})
    assert '<html lang="en-GB">' in en.text and "Sign in" in en.text
    r = await client.post("/console/lang", data={"lang": "en", "csrf": csrf_of(zh.text),
                                                 "next": "/console/login"})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert "tally_lang=en" in r.headers["set-cookie"]
    assert "Sign in" in (await client.get("/console/login")).text
    bad = await client.post("/console/lang", data={"lang": "fr", "csrf": csrf_of(zh.text)})
    assert bad.status_code == 400
    forged = await client.post("/console/lang", data={"lang": "zh"})
    assert forged.status_code == 403


async def test_an_htmx_request_without_a_session_is_sent_to_the_login(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    r = await client.get("/console/portfolio/loans", headers={"hx-request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/console/login?next=/console/"
    await login("officer@bank-1")
    cworld.store.purge_sessions()  # nothing expired yet: the session stays
    ok = await client.get("/console/portfolio/loans", headers={"hx-request": "true"})
    assert ok.status_code == 200
    client.cookies.set(COOKIE, "ended-session-secret", domain="cloud.test")
    r = await client.get("/console/portfolio", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("&expired=1")

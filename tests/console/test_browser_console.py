"""The console in a real browser: Chromium (Debian's, driven by Playwright) against the cloud
served over HTTPS on 127.0.0.1 with a small simulated world. Each role logs in through the
form, walks its pages (charts drawn, tables filled) and is refused another role's page; the
language is switched; a supplier applies for financing and the bank sees the application
appear live and approves it; a proof bundle is dropped on the verification page; the bank
walks the knowledge graph's pages (charts drawn, a firm opened from the needs, the brief's
PDF downloaded). Every page
is saved to ``artifacts/screenshots/<test>-<page>.png``. No fixed sleeps: every wait is on a
condition, with a deadline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM_ARGS, ServedApp, require_chromium, shot_path, tls_files
from cloud_factory import make_world
from console_graph_support import console_graph
from console_world import FREE_RECEIPT, PW, ConsoleWorld, make_console_app
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tally.cloud.api import install_graph
from tally.cloud.live import EventHub
from tally.cloud.storage import open_storage

WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-chart]')]
    .every(e => e.dataset.ready === '1' || e.dataset.ready === 'empty')"""
# username → (home path, a heading of its home in Chinese, pages to walk, a page refused)
ROLES = {
    "officer@bank-1": ("/console/portfolio", "贷款组合", ["/console/chain"], "/console/workspace"),
    "op@sup-1": ("/console/workspace", "融资工作台", ["/console/verify"], "/console/portfolio"),
    "op@core-1": ("/console/tiers", "供应链与应收凭证", ["/console/workspace"], "/console/sites"),
    "op@acme": ("/console/sites", "仓点、设备与货物", ["/console/chain"], "/console/tiers"),
    "auditor@reg": ("/console/chain", "链上浏览器", ["/console/chain/blocks/2", "/console/portal"],
                    "/console/portfolio"),
    "viewer@gov": ("/console/portal", "区域供应链金融概览", ["/console/verify"], "/console/chain"),
}  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ConsoleWorld]]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("console")
    storage = open_storage(f"sqlite:///{tmp / 'cloud.db'}")
    storage.migrate()
    world = make_world()
    cw = make_console_app(world, storage, tmp, hub=EventHub())
    install_graph(cw.app, console_graph(tmp / "economy"))
    cert, key = tls_files(tmp)
    settings = world.settings(str(tmp), host="127.0.0.1", port=0, tls_cert_file=cert,
                              tls_key_file=key)  # fmt: skip
    served = ServedApp(cw.app, settings)
    url = served.start()
    try:
        yield url, cw
    finally:
        served.stop()
        storage.close()


@pytest.fixture(scope="module")
def browser(site: tuple[str, ConsoleWorld]) -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def new_context(browser: Browser, lang: str = "zh-CN") -> BrowserContext:
    ctx = browser.new_context(ignore_https_errors=True, locale=lang,
                              viewport={"width": 1366, "height": 900})  # fmt: skip
    ctx.set_default_timeout(WAIT_MS)
    return ctx


def log_in(page: Page, url: str, username: str, password: str = PW) -> None:
    page.goto(f"{url}/console/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def settled(page: Page) -> None:
    """Wait until every chart on the page is drawn (or says it has no data)."""
    page.wait_for_load_state("load")
    page.wait_for_function(CHARTS_DRAWN, timeout=WAIT_MS)


def shoot(page: Page, test: str, name: str) -> None:
    page.screenshot(path=str(shot_path(test, name)), full_page=True)


@pytest.mark.parametrize("username", list(ROLES))
def test_each_role_walks_its_pages(
    browser: Browser, site: tuple[str, ConsoleWorld], username: str
) -> None:
    url, _cw = site
    home, heading, more, refused = ROLES[username]
    test = f"roles-{username.split('@')[0]}-{username.split('@')[1]}"
    ctx = new_context(browser)
    page = ctx.new_page()
    try:
        log_in(page, url, username)
        expect(page).to_have_url(f"{url}{home}")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.get_by_test_id("user")).to_contain_text(username)
        settled(page)
        shoot(page, test, home.rsplit("/", 1)[-1])
        for path in more:
            page.goto(f"{url}{path}")
            expect(page.get_by_test_id("error")).to_have_count(0)
            settled(page)
            shoot(page, test, path.replace("/console/", "").replace("/", "_"))
        page.goto(f"{url}{refused}")
        expect(page.get_by_test_id("error")).to_contain_text("403")
        shoot(page, test, "refused")
        page.get_by_test_id("logout").click()
        expect(page).to_have_url(f"{url}/console/login")
    finally:
        ctx.close()


def test_warehouse_devices_and_live_telemetry(
    browser: Browser, site: tuple[str, ConsoleWorld]
) -> None:
    url, _cw = site
    ctx = new_context(browser, "en-US")
    page = ctx.new_page()
    try:
        log_in(page, url, "op@acme")
        expect(page.get_by_test_id("device-row")).to_have_count(3)  # d1, d2, d3 from /v1/devices
        expect(page.get_by_test_id("telemetry-chart")).to_have_attribute("data-ready", "1")
        expect(page.get_by_test_id("telemetry-chart")).to_contain_text("temperature (Cel)")
        page.get_by_test_id("device-row").nth(1).get_by_role("button").click()
        expect(page.locator("[data-telemetry-device]")).to_have_text("d2")
        expect(page.get_by_test_id("telemetry-chart")).to_have_attribute("data-ready", "1")
        shoot(page, "warehouse", "sites")
    finally:
        ctx.close()


def test_language_switch_and_locale_formats(
    browser: Browser, site: tuple[str, ConsoleWorld]
) -> None:
    url, _cw = site
    ctx = new_context(browser)
    page = ctx.new_page()
    try:
        log_in(page, url, "officer@bank-1")
        expect(page.locator("h1")).to_have_text("贷款组合")
        expect(page.get_by_test_id("kpi-outstanding")).to_contain_text("¥152万")
        page.get_by_test_id("lang-en").click()
        expect(page.locator("h1")).to_have_text("Loan portfolio")
        expect(page.locator("html")).to_have_attribute("lang", "en-US")
        expect(page.get_by_test_id("kpi-outstanding")).to_contain_text("CN¥1.5M")
        settled(page)
        shoot(page, "language", "portfolio-en")
        page.get_by_test_id("lang-zh").click()
        expect(page.locator("h1")).to_have_text("贷款组合")
    finally:
        ctx.close()


def test_supplier_applies_and_the_bank_sees_it_live(
    browser: Browser, site: tuple[str, ConsoleWorld]
) -> None:
    url, cw = site
    bank_ctx, sup_ctx = new_context(browser, "en-US"), new_context(browser, "en-US")
    bank, sup = bank_ctx.new_page(), sup_ctx.new_page()
    try:
        log_in(bank, url, "officer@bank-1")
        rows = bank.get_by_test_id("application-row")
        expect(rows).to_have_count(1)  # the seeded application
        expect(bank.get_by_test_id("live-feed")).to_have_attribute("data-connected", "1")
        log_in(sup, url, "op@sup-1")
        sup.get_by_test_id("apply-subject").select_option(f"receipt:{FREE_RECEIPT}")
        sup.get_by_test_id("apply-amount").fill("300,000.00")
        shoot(sup, "apply", "workspace-form")
        sup.get_by_test_id("apply-submit").click()
        expect(sup.get_by_test_id("flash")).to_contain_text("submitted to Simulated Jiangnan Bank")
        expect(sup.get_by_test_id("my-application-row")).to_have_count(1)
        shoot(sup, "apply", "workspace-submitted")
        expect(rows).to_have_count(2)  # on the bank's open page, through the live stream
        expect(bank.get_by_test_id("live-feed")).to_contain_text("Application")
        new = rows.filter(has_text=FREE_RECEIPT)
        expect(new).to_contain_text("CN¥300,000.00")
        shoot(bank, "apply", "portfolio-new-application")
        new.get_by_test_id("approve").click()
        expect(bank.get_by_test_id("flash")).to_contain_text("approved")
        expect(rows).to_have_count(1)
        sup.reload()
        expect(sup.get_by_test_id("my-application-row")).to_contain_text("approved")
        shoot(sup, "apply", "workspace-approved")
        assert [a.status for a in cw.views.list_applications(_all(), applicant="sup-1").items
                ] == ["approved"]  # fmt: skip
    finally:
        bank_ctx.close()
        sup_ctx.close()


def test_wrong_password_then_verify_a_bundle(
    browser: Browser, site: tuple[str, ConsoleWorld], tmp_path: Path
) -> None:
    url, cw = site
    ctx = new_context(browser, "en-US")
    page = ctx.new_page()
    try:
        log_in(page, url, "auditor@reg", "not the password")
        expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
        shoot(page, "login", "wrong-password")
        log_in(page, url, "auditor@reg")
        page.goto(f"{url}/console/verify")
        bundle = tmp_path / "reading-proof.cbor"
        bundle.write_bytes(cw.bundle)
        page.get_by_test_id("verify-file").set_input_files(str(bundle))
        page.get_by_test_id("verify-submit").click()
        expect(page.get_by_test_id("verdict-line")).to_contain_text("VALID")
        steps = page.get_by_test_id("verify-steps").locator("li.ok")
        expect(steps.first).to_be_visible()
        assert steps.count() >= 3
        shoot(page, "verify", "valid-bundle")
    finally:
        ctx.close()


def test_bank_walks_the_knowledge_graph(browser: Browser, site: tuple[str, ConsoleWorld]) -> None:
    url, _cw = site
    ctx = new_context(browser, "en-US")
    page = ctx.new_page()
    try:
        log_in(page, url, "officer@bank-1")
        for key in ("graph_tiers", "graph_circles", "graph_needs", "graph_brief"):
            page.get_by_test_id(f"nav-{key}").click()
            expect(page).to_have_url(re.compile(f"{url}/console/graph/"))
            expect(page.get_by_test_id("error")).to_have_count(0)
            expect(page.get_by_test_id("graph-simulated")).to_be_visible()
            settled(page)
            shoot(page, "graph", key)
        page.goto(f"{url}/console/graph/tiers?core=core-1")
        expect(page.get_by_test_id("graph-tiers-chart")).to_have_attribute("data-ready", "1")
        shoot(page, "graph", "tiers-core-1")
        page.goto(f"{url}/console/graph/circles")
        expect(page.get_by_test_id("graph-circle-chart")).to_have_attribute("data-ready", "1")
        page.goto(f"{url}/console/graph/needs")
        expect(page.get_by_test_id("graph-needs-chart")).to_have_attribute("data-ready", "1")
        page.get_by_test_id("graph-need-row").first.get_by_role("link").click()
        expect(page.get_by_test_id("graph-scorecard")).to_be_visible()
        expect(page.get_by_test_id("graph-neighbourhood-chart")).to_have_attribute(
            "data-ready", "1"
        )
        expect(page.get_by_test_id("graph-reason").first).to_be_visible()
        settled(page)
        shoot(page, "graph", "firm")
        page.goto(f"{url}/console/graph/brief")
        href = page.get_by_test_id("graph-brief-pdf").get_attribute("href")
        assert href == "/v1/graph/brief.pdf"
        pdf = page.request.get(f"{url}{href}")
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.body().startswith(b"%PDF-")
    finally:
        ctx.close()


def _all():  # type: ignore[no-untyped-def]
    from tally.cloud.views.model import Scope

    return Scope("test", everything=True)

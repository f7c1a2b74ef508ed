"""Each role's pages, in process: what they show, who may open them (403 page otherwise),
tables and their htmx fragments, and the security headers."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from console_client import Login
from console_world import ConsoleWorld

PAGES = ("portfolio", "workspace", "tiers", "sites", "chain", "portal", "verify")
# username → (home page, pages it may open)
ROLES = {
    "officer@bank-1": ("portfolio", {"portfolio", "chain", "verify"}),
    "op@sup-1": ("workspace", {"workspace", "verify"}),
    "op@core-1": ("tiers", {"workspace", "tiers", "chain", "verify"}),
    "op@acme": ("sites", {"sites", "chain", "verify"}),
    "auditor@reg": ("chain", {"chain", "portal", "verify"}),
    "viewer@gov": ("portal", {"portal", "verify"}),
}


@pytest.mark.parametrize("username", sorted(ROLES))
async def test_each_role_opens_its_pages_and_only_those(
    client: httpx.AsyncClient, login: Login, username: str
) -> None:
    home, allowed = ROLES[username]
    r = await login(username)
    assert r.status_code == 303 and r.headers["location"] == f"/console/{home}"
    for page in PAGES:
        got = await client.get(f"/console/{page}")
        if page in allowed:
            assert got.status_code == 200, (page, got.text[-2000:])
            assert f'data-testid="nav-{page}"' in got.text
            assert got.headers["content-security-policy"].startswith("default-src 'self'")
            assert got.headers["cache-control"] == "no-store"
        else:
            assert got.status_code == 403, (page, got.status_code)
            assert 'data-testid="error"' in got.text and "403" in got.text
            assert f'data-testid="nav-{page}"' not in (await client.get(f"/console/{home}")).text


async def test_bank_portfolio_shows_the_book(client: httpx.AsyncClient, login: Login) -> None:
    await login("officer@bank-1")
    r = await client.get("/console/portfolio", headers={"accept-language": "en-US"})
    text = r.text
    assert "Simulated Jiangnan Bank" in text and "credit officer" in text  # top bar
    assert "CN¥1.5M" in text  # live exposure: 100,000,000 + 32,000,000 + 20,000,000 fen
    assert "app-seed-1" in text and 'data-testid="approve"' in text  # to decide
    assert "LN-2" in text and "125.0%" in text  # margin call, its coverage
    assert "coverage below the warning line (simulated)" in text  # open alert
    zh = await client.get("/console/portfolio", headers={"accept-language": "zh-CN"})
    assert "¥152万" in zh.text and "待审批的融资申请" in zh.text


async def test_a_bank_viewer_sees_no_decision_buttons(
    client: httpx.AsyncClient, login: Login
) -> None:
    await login("viewer@bank-1")
    r = await client.get("/console/portfolio")
    assert r.status_code == 200 and "app-seed-1" in r.text
    assert 'data-testid="approve"' not in r.text


async def test_loans_table_pages_through_htmx_fragment(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    await login("officer@bank-1")
    r = await client.get("/console/portfolio/loans", headers={"hx-request": "true"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<section class="card" id="loans"')
    assert all(f">{loan}<" in r.text for loan in ("LN-1", "LN-2", "LN-3"))
    bad = await client.get("/console/portfolio/loans?cursor=not-a-cursor")
    assert bad.status_code == 400 and 'data-testid="error"' in bad.text


async def test_supplier_workspace(client: httpx.AsyncClient, login: Login) -> None:
    await login("op@sup-1")
    r = await client.get("/console/workspace", headers={"accept-language": "en"})
    assert "WR-1001" in r.text and "NT-1" in r.text  # free receipt, live note: choices
    assert 'value="receipt:WR-1001"' in r.text and 'value="receipt:WR-1002"' not in r.text
    assert "CN¥1,000,000.00 used of CN¥3,000,000.00" in r.text  # its limit at bank-1


async def test_core_tiers_and_warehouse_sites(client: httpx.AsyncClient, login: Login) -> None:
    await login("op@core-1")
    r = await client.get("/console/tiers", headers={"accept-language": "en"})
    assert 'data-testid="kpi-tier-1"' in r.text and "2 suppliers" in r.text
    assert "NT-1" in r.text and "NT-2" in r.text
    client.cookies.clear()
    await login("op@acme")
    r = await client.get("/console/sites", headers={"accept-language": "en"})
    assert "WR-1001" in r.text and "a door switch opened out of hours (simulated)" in r.text
    assert 'data-devices="/v1/devices"' in r.text


async def test_chain_explorer(client: httpx.AsyncClient, login: Login) -> None:
    await login("auditor@reg")
    r = await client.get("/console/chain", headers={"accept-language": "en"})
    assert 'data-testid="kpi-height"' in r.text and "not yet signed" in r.text
    assert '<span class="chip">bank-1</span>' in r.text
    block = await client.get("/console/chain/blocks/2")
    assert block.status_code == 200 and "receipts.issue" in block.text
    tx_id = "0201" * 16
    assert f"/console/chain/txs/{tx_id}" in block.text
    tx = await client.get(f"/console/chain/txs/{tx_id}")
    assert tx.status_code == 200 and tx_id in tx.text
    found = await client.get("/console/chain?q=3")
    assert found.status_code == 303 and found.headers["location"] == "/console/chain/blocks/3"
    missing = await client.get("/console/chain/blocks/99")
    assert missing.status_code == 404 and "no block at height 99" in missing.text
    bad = await client.get("/console/chain/txs/zz")
    assert bad.status_code == 400


async def test_government_portal(client: httpx.AsyncClient, login: Login) -> None:
    await login("viewer@gov")
    r = await client.get("/console/portal", headers={"accept-language": "en"})
    assert r.status_code == 200
    assert 'data-testid="kpi-smes"' in r.text and "steel" in r.text and "Jiangsu" in r.text
    assert "Simulated Suzhou" not in r.text and "sup-1" not in r.text  # no firm is named


async def test_blocks_page_through_the_cursor(
    client: httpx.AsyncClient, login: Login, cworld: ConsoleWorld
) -> None:
    from tally.cloud.views.model import BlockRow

    for h in range(4, 41):  # 40 blocks in all: two pages of 25
        cworld.views.upsert_block(BlockRow(h, f"{h:064x}", 0, None, ("reg",), None), [])
    await login("auditor@reg")
    first = await client.get("/console/chain")
    assert first.text.count('data-testid="block-row"') == 25
    m = re.search(r'hx-get="(/console/chain/blocks\?cursor=[^"]+)"', first.text)
    assert m is not None and 'href="/console/chain?cursor=' in first.text
    second = await client.get(html.unescape(m.group(1)), headers={"hx-request": "true"})
    assert second.status_code == 200 and "<html" not in second.text
    heights = re.findall(r'href="/console/chain/blocks/(\d+)"', second.text)
    assert heights == [str(h) for h in range(15, 0, -1)]
    assert 'data-testid="next-page"' not in second.text
    assert 'data-testid="first-page"' in second.text

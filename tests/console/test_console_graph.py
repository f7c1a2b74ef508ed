"""The knowledge graph's console pages, in process: who sees them in the navigation and may
open them, what they show (tiers, a firm's neighbourhood and score card, circles, needs, the
brief and its PDF), and that without a graph they are not there."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from console_client import Login
from console_graph_support import console_graph
from console_world import ConsoleWorld

from tally.cloud.api import install_graph
from tally.cloud.graphsvc import GraphService

GRAPH_PAGES = ("graph_tiers", "graph_circles", "graph_needs", "graph_brief")
# username → the graph pages in its navigation
NAV = {
    "officer@bank-1": set(GRAPH_PAGES),
    "op@core-1": {"graph_tiers", "graph_brief"},
    "auditor@reg": set(GRAPH_PAGES),
    "op@sup-1": set(),
    "viewer@gov": set(),
}


@pytest.fixture
def graph(cworld: ConsoleWorld, tmp_path: Path) -> GraphService:
    svc = console_graph(tmp_path / "economy")
    install_graph(cworld.app, svc)
    return svc


def path_of(key: str) -> str:
    return "/console/graph/" + key.removeprefix("graph_")


@pytest.mark.parametrize("username", sorted(NAV))
async def test_graph_pages_for_whom_they_are(
    client: httpx.AsyncClient, login: Login, graph: GraphService, username: str
) -> None:
    assert (await login(username)).status_code == 303
    for key in GRAPH_PAGES:
        got = await client.get(path_of(key))
        if key in NAV[username]:
            assert got.status_code == 200, (key, got.text[-1500:])
            assert f'data-testid="nav-{key}"' in got.text
            assert "/static/graph.js" in got.text
        else:
            assert got.status_code == 403, (key, got.status_code)
            assert f'data-testid="nav-{key}"' not in got.text


async def test_a_bank_walks_the_graph(
    client: httpx.AsyncClient, login: Login, graph: GraphService
) -> None:
    await login("officer@bank-1")
    tiers = await client.get("/console/graph/tiers?core=core-1")
    assert tiers.status_code == 200 and 'data-testid="graph-tier-1"' in tiers.text
    assert "/v1/graph/tiers/core-1?max_tier=4" in tiers.text
    assert "sup-1" in tiers.text
    needs = await client.get("/console/graph/needs")
    rows = re.findall(r'data-testid="graph-need-row"', needs.text)
    mine = [n for n in graph.needs() if "bank-1" in graph.banks_of(n.firm)]
    assert len(rows) == len(mine) > 0
    assert "no loan outstanding and no note financed" in needs.text
    firm = await client.get("/console/graph/firm/sup-1")
    assert firm.status_code == 200, firm.text[-1500:]
    assert 'data-testid="graph-scorecard"' in firm.text
    score = graph.score("sup-1")
    assert f">{score.score}<" in firm.text
    for reason in score.reasons:
        assert reason.code in firm.text
    circles = await client.get("/console/graph/circles")
    assert circles.status_code == 200 and 'data-chart="graph-circle"' in circles.text
    brief = await client.get("/console/graph/brief")
    assert brief.status_code == 200 and 'data-testid="graph-brief-pdf"' in brief.text
    assert 'href="/v1/graph/brief.pdf"' in brief.text
    pdf = await client.get("/v1/graph/brief.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]


async def test_no_firm_of_another_bank_and_no_other_brief(
    client: httpx.AsyncClient, login: Login, graph: GraphService
) -> None:
    await login("officer@bank-1")
    stranger = next(f for f in sorted(graph.graph.firms) if "bank-1" not in graph.banks_of(f))
    got = await client.get(f"/console/graph/firm/{stranger}")
    assert got.status_code == 404
    other = next(b for b in sorted(graph.graph.banks) if b != "bank-1")
    assert (await client.get(f"/console/graph/brief?bank={other}")).status_code == 404


async def test_a_supplier_reads_its_own_firm_only(
    client: httpx.AsyncClient, login: Login, graph: GraphService
) -> None:
    await login("op@sup-1")
    own = await client.get("/console/graph/firm/sup-1")
    assert own.status_code == 200 and 'data-testid="graph-scorecard"' in own.text
    assert (await client.get("/console/graph/firm/core-1")).status_code == 404


async def test_without_a_graph_there_are_no_graph_pages(
    client: httpx.AsyncClient, login: Login
) -> None:
    await login("officer@bank-1")
    home = await client.get("/console/portfolio")
    assert home.status_code == 200 and "nav-graph" not in home.text
    assert (await client.get("/console/graph/needs")).status_code == 404

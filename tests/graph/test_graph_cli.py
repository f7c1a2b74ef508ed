"""The graph's command line on a tiny generated economy (registered as tally.cli will)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tally.cli_graph import bench_graph, graph_app, sim_app

app = typer.Typer()
app.add_typer(sim_app, name="sim")
app.add_typer(graph_app, name="graph")
bench_app = typer.Typer()
app.add_typer(bench_app, name="bench")
bench_app.command("graph")(bench_graph)
runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("economy")
    r = runner.invoke(app, ["sim", "generate", "--out", str(out), "--scale", "0.01", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "simulated economy, scale 0.01, seed 3" in r.output
    return out


def _json(args: list[str]) -> Any:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_queries(data: Path) -> None:
    truth = json.loads((data / "truth.json").read_text())
    d = ["--data", str(data)]
    core = truth["distressed_core"]
    tiers = _json(["graph", "tiers", *d, core])
    assert isinstance(tiers, dict) and "1" in tiers
    circles = _json(["graph", "circles", *d])
    assert [c["firms"] for c in circles] == truth["guarantee_circles"]
    cycles = _json(["graph", "circular", *d])
    assert [c["firms"] for c in cycles] == truth["circular_trades"]
    shells = _json(["graph", "shells", *d])
    flagged = sorted(f["firm"] for g in shells for f in g["firms"] if f["flagged"])
    hit = set(flagged) & set(truth["shell_companies"])
    assert len(hit) >= 0.9 * len(truth["shell_companies"]) and len(hit) >= 0.9 * len(flagged)
    firm = truth["guarantee_circles"][0][0]
    ex = _json(["graph", "exposure", *d, firm])
    assert isinstance(ex, list) and all(e["firm"] == firm for e in ex)
    rel = _json(["graph", "relatives", *d, truth["shell_clusters"][0][0]])
    assert {r["firm"] for r in rel} >= set(truth["shell_clusters"][0][1:])
    spread = _json(["graph", "contagion", *d, core])
    assert spread["defaults"][core] == 0
    needs = _json(["graph", "needs", *d, "--top", "3"])
    assert isinstance(needs, list) and len(needs) <= 3 and all(n["reasons"] for n in needs)


def test_score_calibrate_and_brief(data: Path, tmp_path: Path) -> None:
    d = ["--data", str(data)]
    truth = json.loads((data / "truth.json").read_text())
    s = _json(["graph", "score", *d, truth["financing_needs"][0], "--bank", "BANK02"])
    assert s["limit"]["key"] == f"limit/BANK02/{truth['financing_needs'][0]}"
    assert set(s) >= {"score", "points", "reasons", "features"}
    weights = tmp_path / "w.toml"
    cal = _json(["graph", "calibrate", *d, "--out", str(weights)])
    assert cal["simulated"] is True and 0 <= cal["auc_held_out"] <= 1
    assert "simulated outcomes" in weights.read_text()
    state = tmp_path / "state.json"
    b = _json(
        ["graph", "brief", *d, "--state", str(state), "--weights", str(weights), "--bank", "BANK01"]
    )
    assert list(b["banks"]) == ["BANK01"] and b["simulated"] is True
    kept = json.loads(state.read_text())
    assert kept["circles"] == truth["guarantee_circles"] and kept["scores"]
    again = _json(["graph", "brief", *d, "--state", str(state), "--core", truth["distressed_core"]])
    chain = again["chains"][truth["distressed_core"]]
    assert chain["new_guarantee_circles"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "tiers", "--data", "{data}", "NOPE"], "tally: no firm 'NOPE' in the graph"),
        (["graph", "score", "--data", "{data}", "NOPE"], "tally: no firm 'NOPE' in the graph"),
        (["graph", "exposure", "--data", "{data}", "NOPE"], "tally: no firm 'NOPE' in the graph"),
        (["graph", "circles", "--data", "{missing}"], "not a directory"),
        (["graph", "score", "--data", "{data}", "{firm}", "--weights", "{missing}"], "cannot read"),
        (
            ["graph", "contagion", "--data", "{data}", "{firm}", "--absorb", "0"],
            "absorb must be > 0",
        ),
        (["sim", "generate", "--out", "{missing}", "--scale", "0"], "scale must be in (0, 10.0]"),
        (["bench", "graph", "--scales", "0.1,x"], "scales must be numbers separated by commas"),
        (["bench", "graph", "--scales", "20"], "scales must be in (0, 10.0]"),
    ],
)
def test_bad_input_exits_2_with_a_precise_message(
    data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    truth = json.loads((data / "truth.json").read_text())
    subst = {
        "data": str(data),
        "missing": str(tmp_path / "missing"),
        "firm": truth["financing_needs"][0],
    }
    r = runner.invoke(app, [a.format(**subst) for a in args])
    assert r.exit_code == 2
    assert message in r.stderr


def test_bad_data_line(tmp_path: Path) -> None:
    (tmp_path / "firms.jsonl").write_text('{"id": "S1"}\n', encoding="utf-8")
    r = runner.invoke(app, ["graph", "circles", "--data", str(tmp_path)])
    assert r.exit_code == 2
    assert "firms.jsonl:1: Firm record: field 'name' is missing" in r.stderr

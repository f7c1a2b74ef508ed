"""The synthetic economy: seeded and byte-reproducible, shaped like the seed, patterns planted
where the truth says, everything labelled simulated."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tally.graph.cycles import canonical
from tally.graph.queries import guarantee_circles
from tally.graph.records import INDUSTRIES
from tally.graph.store import Graph
from tally.sim.economy import Economy, generate
from tally.sim.economy_io import write_economy

SCALE = 0.02


@pytest.fixture(scope="module")
def economy() -> Economy:
    return generate(SCALE, seed=7)


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_in_another_process(tmp_path: Path, economy: Economy) -> None:
    write_economy(economy, tmp_path / "a")
    write_economy(generate(SCALE, seed=7), tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    code = (
        "import sys; from pathlib import Path; from tally.sim.economy import generate; "
        "from tally.sim.economy_io import write_economy; "
        f"write_economy(generate({SCALE}, seed=7), Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c")], check=True, env=env, timeout=120
    )
    assert _digest(tmp_path / "a") == _digest(tmp_path / "c")
    write_economy(generate(SCALE, seed=8), tmp_path / "d")
    assert _digest(tmp_path / "d")["trades.jsonl"] != _digest(tmp_path / "a")["trades.jsonl"]


def test_manifest_counts_and_hashes_the_files(tmp_path: Path, economy: Economy) -> None:
    m = write_economy(economy, tmp_path)
    assert m["simulated"] is True and m["seed"] == 7 and m["scale"] == SCALE
    for name, meta in m["files"].items():
        data = (tmp_path / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        if name.endswith(".jsonl"):
            assert data.count(b"\n") == meta["records"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == m


def test_shape_follows_the_seed(economy: Economy) -> None:
    kinds = Counter(f.kind for f in economy.firms)
    assert kinds["core"] == round(4800 * SCALE) and kinds["sme"] == round(34000 * SCALE)
    assert {f.industry for f in economy.firms} == set(INDUSTRIES)
    assert all(f.name.endswith("(simulated)") for f in economy.firms)
    assert all(r.role == "legal_rep" for f in economy.firms for r in f.roles[:1])
    for table in ("trades", "notes", "guarantees", "loans", "receipts", "telemetry", "outcomes"):
        assert len(getattr(economy, table)) > 0, table
    assert sum(o.defaulted for o in economy.outcomes) > 0
    assert all(len(t.electricity) in (0, 12) for t in economy.telemetry)
    ids = [f.id for f in economy.firms]
    assert len(ids) == len(set(ids))
    assert all(t.t <= economy.as_of for t in economy.trades)


def test_supply_chain_has_several_tiers(economy: Economy) -> None:
    g = Graph()
    g.add_all(economy.records())
    from tally.graph.queries import supplier_tiers

    depths = [max(supplier_tiers(g, f.id), default=0) for f in economy.firms if f.kind == "core"]
    assert max(depths) >= 4


def test_planted_truth_is_in_the_data(economy: Economy) -> None:
    t = economy.truth
    assert t["simulated"] is True and t["scale"] == SCALE
    g = Graph()
    g.add_all(economy.records())
    circles = {c.firms for c in guarantee_circles(g)}
    assert {tuple(c) for c in t["guarantee_circles"]} == circles
    for c in t["broken_circles"]:
        assert tuple(c) not in circles
    shells = set(t["shell_companies"])
    assert len(shells) == sum(len(c) for c in t["shell_clusters"]) >= 9
    for cluster in t["shell_clusters"]:
        reps = {next(r.person for r in g.firms[f].roles if r.role == "legal_rep") for f in cluster}
        addrs = {g.firms[f].addresses for f in cluster}
        assert len(reps) == 1 and len(addrs) == 1
    assert g.firms[t["distressed_core"]].kind == "core"
    assert any(n.state == "overdue" for n in g.notes.values() if n.issuer == t["distressed_core"])
    for cyc in t["circular_trades"]:
        assert list(canonical(cyc)) == cyc
        for i, a in enumerate(cyc):
            b = cyc[(i + 1) % len(cyc)]
            assert any(e.dst == b for e in g.out_edges("trades", a))
    for f in t["financing_needs"]:
        assert not g.in_edges("loans", f)
        assert any(n.state == "live" and n.confirmed for n in g.endorsed_notes(f))


def test_bad_scale_is_refused() -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 10.0\], got 0"):
        generate(0)

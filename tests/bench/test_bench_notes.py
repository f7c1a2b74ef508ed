"""Smoke test of ``tally bench notes``: tiny sizes, JSON shape, positive numbers, and that
the notes it builds are the contract's (executed, then cloned) with intact provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.notes import NotesChain, clone, family_id, family_records, run, run_notes_bench
from tally.finance.keys import note_key
from tally.finance.notes import check_conservation, provenance


def test_notes_bench_tiny() -> None:
    r = run(sizes=(40, 100), tiers=4, executed_max=40, sample=2, queries=20)
    assert r["benchmark"] == "notes"
    assert [s["notes"] for s in r["sizes"]] == [42, 105]  # 7 notes per family of 4 tiers
    small, large = r["sizes"]
    assert (small["families"], small["executed_notes"], small["cloned_notes"]) == (6, 42, 0)
    assert small["executed_ops"] == 6 * 8  # issue, accept, 3 splits and 3 transfers
    # the second size adds 9 families: 2 executed, 7 cloned
    assert (large["families"], large["executed_notes"], large["cloned_notes"]) == (15, 56, 49)
    assert large["executed_ops"] == 2 * 8
    for s in r["sizes"]:
        assert s["tiers"] == 4
        positive(s["ops_per_s"], s["op_us"]["p50"], s["op_us"]["p95"])
        for key in ("provenance_us", "index_provenance_us"):
            positive(s[key]["p50"], s[key]["p95"])
            assert s[key]["p95"] >= s[key]["p50"]
            assert s[key]["n"] == 20
    p50 = [s["provenance_us"]["p50"] for s in r["sizes"]]
    assert r["flatness"] == round(max(p50) / min(p50), 3)
    assert r["goal_met"] == (r["flatness"] <= 2.0)
    assert "cloned" in r["method"]
    check_machine(r)
    round_trips_as_json(r)


def test_the_bench_families_are_what_the_contracts_write(tmp_path: Path) -> None:
    chain = NotesChain(tmp_path, tiers=3)
    try:
        chain.attest(0)
        for fn, args, creator in chain.family_ops(0):
            chain.ok("notes", fn, *args, creator=creator)
        assert clone(chain, family_records(chain, 0), 0, range(1, 3)) == 2 * 5
        assert check_conservation(chain.state) == []
        for f in range(3):
            p = provenance(chain.state, chain.deepest(f))
            assert p.ids == [family_id(f), f"{family_id(f)}.p", f"{family_id(f)}.p.p"]
            assert p.holders == ["tier-01", "tier-02", "tier-03"]
            assert p.trade is not None and p.trade["id"] == f"T{f:06d}"
        leaf = chain.state.get(note_key(chain.deepest(2)))
        assert leaf is not None and leaf[0]["root"] == family_id(2)
    finally:
        chain.close()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive note counts"):
        run(sizes=(0,))
    with pytest.raises(ValueError, match="tiers must be 2 to 20, got 1"):
        run(sizes=(10,), tiers=1)


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_notes_bench((30,), json_only=True) == 0
    out = capsys.readouterr().out
    assert '"benchmark": "notes"' in out

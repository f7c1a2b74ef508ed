"""Reading a directory of JSON-lines records: round trip, and errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.graph.load import DataError, load_dir, manifest, read_records
from tally.graph.store import Graph
from tally.sim.economy import generate
from tally.sim.economy_io import write_economy


def test_a_written_economy_loads_back_into_the_same_graph(tmp_path: Path) -> None:
    e = generate(0.01, seed=3)
    write_economy(e, tmp_path)
    loaded = load_dir(tmp_path)
    direct = Graph()
    direct.add_all(e.records())
    assert loaded.records == sum(len(v) for v in e.tables().values())
    assert loaded.as_of == e.as_of and loaded.simulated is True
    assert loaded.graph.counts() == direct.counts()
    assert loaded.graph.firms == direct.firms and loaded.graph.trades == direct.trades


def test_missing_files_are_empty_and_blank_lines_skipped(tmp_path: Path) -> None:
    (tmp_path / "banks.jsonl").write_text('{"id": "B1", "name": "b"}\n\n', encoding="utf-8")
    loaded = load_dir(tmp_path)
    assert loaded.records == 1 and loaded.simulated is False and manifest(tmp_path) == {}


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("banks.jsonl", '{"id": "B1", "name": "b"}\n{"id": "B2"\n', r"banks.jsonl:2: not JSON"),
        ("loans.jsonl", '{"id": "L1"}\n', r"loans.jsonl:1: Loan record: field 'bank' is missing"),
        ("manifest.json", "[1]", r"manifest.json:1: must be a JSON object"),
        ("manifest.json", "{", r"manifest.json:1: not JSON"),
    ],
)
def test_bad_data_names_file_and_line(tmp_path: Path, file: str, text: str, message: str) -> None:
    (tmp_path / file).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_dir(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        list(read_records(tmp_path / "nope"))

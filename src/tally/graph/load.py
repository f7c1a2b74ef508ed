"""Reading records from a directory of JSON-lines files into the graph.

A directory holds up to one ``<kind>.jsonl`` per record kind of :mod:`tally.graph.records`
(missing files are empty); each line is one record's JSON object (blank lines are skipped).
``manifest.json``, when present, gives ``as_of`` (the time the data describes) and says
whether the data is simulated. Loading stops at the first bad line with
:class:`DataError`, which names the file, the line number and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.graph.record_json import from_json
from tally.graph.records import KINDS, RecordError
from tally.graph.store import Graph


class DataError(ValueError):
    """Raised when a data directory or one of its lines cannot be read."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Loaded:
    graph: Graph
    as_of: int
    simulated: bool
    records: int


def read_records(directory: Path) -> Iterator[Any]:
    """Every record of the directory, file by file in the order of ``KINDS``."""
    if not directory.is_dir():
        raise DataError(directory, 0, "not a directory")
    for kind in KINDS:
        path = directory / f"{kind}.jsonl"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            for no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(path, no, f"not JSON: {exc.msg}") from None
                try:
                    yield from_json(kind, obj)
                except RecordError as exc:
                    raise DataError(path, no, str(exc)) from None


def manifest(directory: Path) -> dict[str, Any]:
    """The directory's ``manifest.json`` (empty if there is none)."""
    path = directory / "manifest.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(path, 1, "must be a JSON object")
    return data


def load_dir(directory: Path) -> Loaded:
    """A graph of every record in ``directory``; ``as_of`` from the manifest, else the
    latest time in the records."""
    meta = manifest(directory)
    g = Graph()
    n = g.add_all(read_records(directory))
    as_of = meta.get("as_of")
    if not isinstance(as_of, int) or isinstance(as_of, bool):
        as_of = g.as_of
    return Loaded(g, as_of, bool(meta.get("simulated", False)), n)


__all__ = ["DataError", "Loaded", "load_dir", "manifest", "read_records"]

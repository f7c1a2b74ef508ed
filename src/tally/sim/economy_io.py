"""Writing a synthetic economy to a directory: one JSON-lines file per record kind.

Layout (``tally sim generate --out DIR``)::

    DIR/banks.jsonl … DIR/outcomes.jsonl   one record a line, the kinds and fields of
                                           tally.graph.records, each with "sim": 1
    DIR/truth.json                         the planted ground truth ("simulated": true)
    DIR/manifest.json                      seed, scale, as_of, and per file its record
                                           count and SHA-256 ("simulated": true)

Lines are compact JSON with the record's fields in declaration order; files end with a
newline; ``truth.json`` and ``manifest.json`` are indented with sorted keys. The same economy
always gives the same bytes. :func:`tally.graph.load.load_dir` reads the directory back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tally.graph.record_json import to_json
from tally.graph.records import KINDS
from tally.sim.economy import Economy

GENERATOR = "tally.sim.economy"


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_economy(economy: Economy, out: Path) -> dict[str, Any]:
    """Write ``economy`` under ``out`` (created if missing; files replaced); return the
    manifest."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    tables = economy.tables()
    for kind in KINDS:
        rows = tables[kind]
        h = hashlib.sha256()
        path = out / f"{kind}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for rec in rows:
                line = (
                    json.dumps(
                        {**to_json(rec), "sim": 1}, separators=(",", ":"), ensure_ascii=False
                    )
                    + "\n"
                )
                f.write(line)
                h.update(line.encode("utf-8"))
        files[f"{kind}.jsonl"] = {"records": len(rows), "sha256": h.hexdigest()}
    truth = _dump(economy.truth)
    (out / "truth.json").write_text(truth, encoding="utf-8")
    files["truth.json"] = {"sha256": hashlib.sha256(truth.encode()).hexdigest()}
    manifest = {
        "simulated": True,
        "generator": GENERATOR,
        "seed": economy.seed,
        "scale": economy.scale,
        "as_of": economy.as_of,
        "files": files,
    }
    (out / "manifest.json").write_text(_dump(manifest), encoding="utf-8")
    return manifest


__all__ = ["GENERATOR", "write_economy"]

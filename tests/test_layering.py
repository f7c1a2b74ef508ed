"""The package map of docs/architecture.md: imports only point down the table.

See docs/adr/0003-shared-format-modules.md for the format modules every tier may read.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tally"

FORMAT_MODULES = {
    "tally.formats",
    "tally.device.envelope",
    "tally.device.registration",
    "tally.device.trust",
    "tally.edge.formats",
    "tally.verify.bundle",
    "tally.device.publish.wire",
    "tally.device.modbus_registers",
}
BASE = {"tally.config", "tally.formats", "tally.mqtt"}

ALLOWED: dict[str, set[str]] = {
    "crypto": {"tally.crypto"},
    "merkle": {"tally.crypto", "tally.merkle"},
    "device": {"tally.crypto", "tally.device"} | BASE,
    "edge": {"tally.crypto", "tally.merkle", "tally.edge"} | BASE | FORMAT_MODULES,
    "verify": {"tally.crypto", "tally.merkle", "tally.ledger", "tally.verify"}
    | BASE
    | FORMAT_MODULES,
    # the ledger's system contracts read the telemetry spine's signed formats (ADR 0003)
    "ledger": {"tally.crypto", "tally.merkle", "tally.ledger"} | BASE | FORMAT_MODULES,
    # finance registers its contracts with the ledger and reads the spine's signed formats
    "finance": {"tally.crypto", "tally.merkle", "tally.ledger", "tally.finance"}
    | BASE
    | FORMAT_MODULES,
    # the knowledge graph reads finance's state keys and limits (graph/ → finance types)
    "graph": {"tally.finance", "tally.graph"},
    "cloud": {
        "tally.finance",
        "tally.crypto",
        "tally.merkle",
        "tally.device",
        "tally.edge",
        "tally.verify",
        "tally.ledger",  # the cloud anchors batches on the consortium ledger
        "tally.graph",  # the platform serves the knowledge graph and its daily brief
        "tally.cloud",
    }
    | BASE,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m == "tally" or m.startswith("tally.")}


def _allowed(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def test_imports_point_down_the_package_map() -> None:
    bad: list[str] = []
    for pkg, allowed in ALLOWED.items():
        for path in sorted((SRC / pkg).rglob("*.py")):
            for mod in _imports(path):
                # "from tally.device import envelope" names tally.device and tally.device.envelope
                if mod in {"tally", f"tally.{pkg}"} or any(
                    a.startswith(mod + ".") for a in allowed
                ):
                    continue
                if not _allowed(mod, allowed):
                    bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert not bad, "imports against the package map:\n" + "\n".join(bad)


def test_lower_tiers_never_import_cloud_or_sim() -> None:
    for pkg in ("crypto", "merkle", "device", "edge", "verify", "ledger"):
        for path in (SRC / pkg).rglob("*.py"):
            for mod in _imports(path):
                assert not mod.startswith(("tally.cloud", "tally.sim", "tally.bench")), (
                    f"{path.relative_to(SRC)} imports {mod}"
                )

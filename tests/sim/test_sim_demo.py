"""The main job, end to end: ``tally demo --headless`` runs a simulated site, edge and cloud,
injects every scripted incident, and proves that nothing produced was lost.

Runs the real command in a subprocess (embedded MQTT broker, HTTP, CoAP, Modbus, SQLite),
then checks the report and every proof bundle it wrote with the offline verifier.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tally.cloud.storage import open_storage
from tally.sim.accounting import account
from tally.verify.cli import run_verify

REQUIRED = (
    "readings_produced",
    "readings_stored",
    "gaps_certified",
    "unaccounted",
    "rejected",
    "events",
)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tally",
            "demo",
            "--headless",
            "--duration",
            "40",
            "--report",
            str(out / "report"),
            "--data-dir",
            str(out / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "report"


def test_demo_report_accounts_for_every_envelope(demo_report: Path) -> None:
    report = json.loads((demo_report / "report.json").read_text())
    for key in REQUIRED:
        assert key in report, key
    assert report["simulated"] is True
    assert report["unaccounted"] == 0
    assert report["duplicates_stored"] == 0
    assert report["readings_produced"] > 100
    assert report["readings_stored"] <= report["readings_produced"]
    # the radio dropout lost envelopes that the edge certified as a gap
    assert report["lost_in_transit"] >= 1
    assert report["gaps_certified"] == report["lost_in_transit"]
    # the attacks were refused for what they are
    assert report["rejected"].get("bad_signature", 0) >= 1
    assert report["rejected"].get("duplicate", 0) >= 1
    # what the rules and continuity checks saw
    events = report["events"]
    assert any(rule.startswith("plausibility-") for rule in events), events
    assert "night-movement" in events
    assert "continuity.counter_reset" in events
    assert "continuity.clock_skew" in events
    assert "continuity.gap" in events


def test_demo_bundles_verify_and_any_changed_byte_is_rejected(
    demo_report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundles = sorted((demo_report / "bundles").glob("*.cbor"))
    report = json.loads((demo_report / "report.json").read_text())
    assert len(bundles) == len(report["incidents"]) == 7
    for path in bundles:
        assert run_verify(path, None, False) == 0, capsys.readouterr().out
        assert "(pinned)" in capsys.readouterr().out
        data = path.read_bytes()
        for pos in (0, len(data) // 3, len(data) // 2, len(data) - 1):
            bad = bytearray(data)
            bad[pos] ^= 0x01
            mutated = demo_report / "mutated.cbor"
            mutated.write_bytes(bytes(bad))
            assert run_verify(mutated, demo_report / "trust.cbor", False) == 1
            assert capsys.readouterr().out.startswith("INVALID")


def test_accounting_flags_what_is_neither_stored_nor_certified(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'empty.db'}")
    storage.migrate()
    try:
        acc = account(storage, {"dev-1": {(0, 0), (0, 1)}})
    finally:
        storage.close()
    assert acc.produced == 2
    assert acc.unaccounted == [("dev-1", 0, 0), ("dev-1", 0, 1)]

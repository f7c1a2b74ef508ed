"""The ``tally`` command line: clear errors for bad input, and the manual-entry path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tally.cli import app
from tally.crypto.keystore import load_key
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust
from tally.edge.adapters import HttpEndpoint
from tally.edge.config import load_edge_config
from tally.edge.gateway import EdgeGateway

PASS = "test passphrase"


def _tally(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tally", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_a_bad_configuration_is_named_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[edge]\nid = "e1"\norg = "o"\nsite = "s"\nwindow_ms = 0\n')
    r = _tally("edge", "-c", str(cfg))
    assert r.returncode == 2
    assert "bad.toml" in r.stderr and "edge.window_ms" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_missing_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    r = _tally("keys", "new", str(tmp_path / "k.key"))
    assert r.returncode == 2
    assert "TALLY_KEY_PASSPHRASE is not set" in r.stderr


def test_a_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    assert _tally("keys", "new", str(key), env={"TALLY_KEY_PASSPHRASE": PASS}).returncode == 0
    r = _tally("keys", "show", str(key), env={"TALLY_KEY_PASSPHRASE": "wrong"})
    assert r.returncode == 2
    assert "wrong passphrase" in r.stderr
    assert "Traceback" not in r.stderr


def test_keys_are_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    env = {"TALLY_KEY_PASSPHRASE": PASS}
    assert _tally("keys", "new", str(key), env=env).returncode == 0
    before = key.read_bytes()
    r = _tally("keys", "new", str(key), env=env)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    assert key.read_bytes() == before


def test_enter_signs_a_manual_reading_that_the_edge_stores(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"TALLY_KEY_PASSPHRASE": PASS}
    for name in ("warehouse", "edge"):
        assert (
            runner.invoke(app, ["keys", "new", str(tmp_path / f"{name}.key")], env=env).exit_code
            == 0
        )
    org_key = load_key(tmp_path / "warehouse.key", PASS)
    trust = Trust(org_key.suite, {"warehouse": org_key.public})
    regs = tmp_path / "registrations"
    regs.mkdir()
    clerk = Registration(
        "device", "wh1-clerk", "warehouse", "wh1", "manual_count", "intl", b"", Assurance.MANUAL, 0
    )
    (regs / "clerk.cose").write_bytes(sign_registration(org_key, clerk))
    cfg = load_edge_config(
        {
            "edge": {
                "id": "edge-1",
                "org": "warehouse",
                "site": "wh1",
                "data_dir": str(tmp_path / "edge"),
                "registrations_dir": str(regs),
            }
        }
    )
    gw = EdgeGateway(cfg, key=load_key(tmp_path / "edge.key", PASS), trust=trust)
    gw.open()

    async def serve_and_enter() -> list[str]:
        outputs = []
        async with HttpEndpoint(gw.on_envelope, port=0) as ep:
            for v in ("weight=12.340:t", "weight=12.100:t"):
                args = [
                    "enter",
                    "wh1-clerk",
                    "--org",
                    "warehouse",
                    "--org-key",
                    str(tmp_path / "warehouse.key"),
                    "--edge-url",
                    ep.url,
                    "--value",
                    v,
                    "--label",
                    "lot=L-7",
                    "--state-dir",
                    str(tmp_path / "manual"),
                ]
                res = await asyncio.to_thread(runner.invoke, app, args, env=env)
                assert res.exit_code == 0, res.output
                outputs.append(res.output)
        return outputs

    outputs = asyncio.run(serve_and_enter())
    assert "ctr 0 (assurance manual)" in outputs[0] and "ctr 1" in outputs[1]
    stats = gw.stats()
    assert stats["accepted"] == 2 and stats["rejected"] == {}
    rows = gw.outbox._db.execute("SELECT assurance FROM items WHERE kind = 'reading'").fetchall()
    assert [a for (a,) in rows] == [int(Assurance.MANUAL)] * 2
    gw.outbox.close()


def test_a_keyring_passphrase_in_the_file_is_refused_and_not_echoed(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    keys = '[cloud.keys]\nkeyring_file = "ring"\npassphrase = "hunter2hunter2"\n'
    cfg.write_text('[cloud]\norg = "bank"\n' + keys)
    r = _tally("cloud", "-c", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cloud.keys" in r.stderr and "TALLY_KEYRING_PASSPHRASE only" in r.stderr
    assert "hunter2" not in r.stderr + r.stdout

"""``tally verify`` with a genesis: --genesis, --require-anchor, and how the anchors are found
when neither --genesis nor --trust is given (genesis.cbor preferred to trust.cbor, beside the
bundle or one directory up)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.verify.cli import find_anchors, run_verify

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
CHAIN = BUNDLES / "intl" / "chain"
MANIFEST = json.loads((BUNDLES / "manifest-chain-intl.json").read_text())
VALID = MANIFEST["cases"][0]["line"]


def test_verify_chain_cli_finds_genesis_beside_the_bundle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = CHAIN / "valid-reading.cbor"
    assert find_anchors(path) == ((CHAIN / "genesis.cbor").resolve(), None)
    assert run_verify(path, None, False) == 0
    assert capsys.readouterr().out == VALID + "\n"


def test_verify_chain_cli_prefers_genesis_one_level_up_to_trust_beside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(CHAIN / "genesis.cbor", tmp_path / "genesis.cbor")
    (tmp_path / "sub").mkdir()
    shutil.copy(BUNDLES / "intl" / "trust.cbor", tmp_path / "sub" / "trust.cbor")
    bundle = tmp_path / "sub" / "b.cbor"
    shutil.copy(CHAIN / "valid-reading.cbor", bundle)
    assert find_anchors(bundle) == ((tmp_path / "genesis.cbor").resolve(), None)
    assert run_verify(bundle, None, False) == 0
    assert capsys.readouterr().out == VALID + "\n"


def test_verify_chain_cli_explicit_genesis_and_require_anchor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    genesis = CHAIN / "genesis.cbor"
    plain = CHAIN / "unanchored-reading.cbor"
    assert run_verify(plain, None, False, genesis) == 0
    assert capsys.readouterr().out.endswith(
        f", not anchored — genesis {MANIFEST['chain_id'][:16]}\n"
    )
    assert run_verify(plain, None, False, genesis, require_anchor=True) == 1
    assert capsys.readouterr().out == "INVALID: chain: not anchored: the bundle has no chain part\n"
    assert run_verify(CHAIN / "too-few-signers.cbor", None, False, genesis) == 1
    assert capsys.readouterr().out.startswith(
        "INVALID: quorum: 2 distinct members signed, quorum is 3"
    )


def test_verify_chain_cli_bundle_without_genesis_says_chain_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    bundle = tmp_path / "a" / "b.cbor"
    shutil.copy(CHAIN / "valid-reading.cbor", bundle)
    assert run_verify(bundle, None, False) == 0
    out = capsys.readouterr().out
    assert out.endswith("; chain part not checked (no genesis)\n") and "not pinned" in out
    assert run_verify(bundle, None, False, require_anchor=True) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --require-anchor needs the consortium's genesis")


def test_verify_chain_cli_trust_file_must_agree_with_the_genesis(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle, genesis = CHAIN / "valid-reading.cbor", CHAIN / "genesis.cbor"
    assert run_verify(bundle, CHAIN / "trust.cbor", False, genesis) == 0
    assert capsys.readouterr().out == VALID + "\n"
    assert run_verify(bundle, BUNDLES / "intl" / "trust.cbor", False, genesis) == 2
    assert capsys.readouterr().err == (
        "error: the trust file contradicts the genesis: trust file key of 'acme' differs from"
        " the genesis member's\n"
    )


@pytest.mark.parametrize("broken", ["missing", "malformed", "unsigned"])
def test_verify_chain_cli_unusable_genesis_exits_2(
    broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis = tmp_path / "genesis.cbor"
    if broken == "malformed":
        genesis.write_bytes(b"\xa0")
    elif broken == "unsigned":
        shutil.copy(CHAIN / "trust.cbor", genesis)  # a trust file is no genesis
    assert run_verify(CHAIN / "valid-reading.cbor", None, False, genesis) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")


def test_verify_chain_cli_json_and_typer_options(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["verify", str(CHAIN / "valid-reading.cbor"), "--genesis", str(CHAIN / "genesis.cbor"),
         "--require-anchor", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["valid"] and obj["chain"] == "anchored" and obj["genesis"] == MANIFEST["chain_id"]
    assert obj["quorum"] == 3 and obj["members"] == 4 and len(obj["checkpoint_signers"]) == 3
    assert obj["genesis_file"].endswith("genesis.cbor") and obj["trust"] is None
    res = runner.invoke(app, ["verify", str(CHAIN / "unanchored-reading.cbor"), "--require-anchor"])
    assert res.exit_code == 1
    assert res.stdout == "INVALID: chain: not anchored: the bundle has no chain part\n"

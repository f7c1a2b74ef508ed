"""run_verify: the one line it prints, its exit codes, and how it finds the trust file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tally.verify.cli import find_trust, run_verify

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
VALID_LINE = (
    "VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12"
    " — anchors: acme, bank (pinned)"
)


def test_verify_cli_valid_bundle_finds_trust_next_to_it(capsys: pytest.CaptureFixture[str]) -> None:
    path = BUNDLES / "intl" / "valid-reading.cbor"
    assert find_trust(path) == (BUNDLES / "intl" / "trust.cbor").resolve()
    assert run_verify(path, None, False) == 0
    assert capsys.readouterr().out == VALID_LINE + "\n"


def test_verify_cli_invalid_bundle_prints_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_verify(BUNDLES / "intl" / "trailing-bytes.cbor", None, False)
    assert code == 1
    assert capsys.readouterr().out == "INVALID: bundle: 2 trailing bytes\n"


def test_verify_cli_finds_trust_in_parent_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(BUNDLES / "intl" / "trust.cbor", tmp_path / "trust.cbor")
    (tmp_path / "sub").mkdir()
    bundle = tmp_path / "sub" / "b.cbor"
    shutil.copy(BUNDLES / "intl" / "valid-reading.cbor", bundle)
    assert run_verify(bundle, None, False) == 0
    assert capsys.readouterr().out == VALID_LINE + "\n"


def test_verify_cli_without_trust_says_anchors_not_pinned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    bundle = tmp_path / "a" / "b.cbor"
    shutil.copy(BUNDLES / "intl" / "valid-reading.cbor", bundle)
    assert run_verify(bundle, None, False) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID reading site-1/lc-03") and "anchors not pinned" in out


def test_verify_cli_explicit_trust_of_other_suite_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_verify(BUNDLES / "intl" / "valid-reading.cbor", BUNDLES / "gm" / "trust.cbor", False)
    assert code == 1
    assert capsys.readouterr().out == (
        "INVALID: suite: bundle suite 'intl', trust file suite 'gm'\n"
    )


def test_verify_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_verify(BUNDLES / "intl" / "valid-event.cbor", None, True) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    assert obj["valid"] is True and obj["item_kind"] == "event"
    assert obj["trust"].endswith("trust.cbor") and obj["anchors_pinned"] is True


@pytest.mark.parametrize("broken", ["missing-bundle", "missing-trust", "bad-trust"])
def test_verify_cli_unusable_arguments_exit_2(
    broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = BUNDLES / "intl" / "valid-reading.cbor"
    trust: Path | None = None
    if broken == "missing-bundle":
        bundle = tmp_path / "nope.cbor"
    elif broken == "missing-trust":
        trust = tmp_path / "nope.cbor"
    else:
        trust = tmp_path / "trust.cbor"
        trust.write_bytes(b"\xa0")
    assert run_verify(bundle, trust, False) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")

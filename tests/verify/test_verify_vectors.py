"""The committed proof-bundle vectors verify, or fail, exactly as their manifests say.

``tests/vectors/bundles/manifest-{intl,gm}.json`` list every bundle with the trust file it is
checked against and the expected one-line answer (valid) or reason prefix (invalid). The
``intl`` files must also be exactly what ``tests/vectors/formats/generate.py`` writes today.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tally.device.trust import load_trust
from tally.verify.verifier import verify_bundle

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
BUNDLES = VECTORS / "bundles"


def _generator() -> ModuleType:
    """Import tests/vectors/formats/generate.py (it is a script, not a package module)."""
    name = "tally_format_vector_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, VECTORS / "formats" / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for suite in ("intl", "gm"):
        manifest = json.loads((BUNDLES / f"manifest-{suite}.json").read_text())
        for i, case in enumerate(manifest["cases"]):
            out.append((f"{case['file']}#{i}", case))
    return out


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[n for n, _ in _cases()])
def test_verify_vector_bundle_as_manifest_says(name: str, case: dict[str, Any]) -> None:
    data = (BUNDLES / case["file"]).read_bytes()
    trust = load_trust(BUNDLES / case["trust"]) if case["trust"] else None
    verdict = verify_bundle(data, trust, case["accept_bundled_anchors"])
    assert verdict.ok is case["valid"], verdict.reason
    if case["valid"]:
        assert verdict.line() == case["line"]
        assert all(s.ok for s in verdict.steps)
    else:
        assert verdict.reason.startswith(case["reason_prefix"]), verdict.reason
        assert verdict.line() == f"INVALID: {verdict.reason}"
        assert [s.ok for s in verdict.steps][-1] is False
        assert all(s.ok for s in verdict.steps[:-1])


def test_verify_vector_manifests_name_every_bundle_file() -> None:
    named = {c["file"] for _, c in _cases()}
    on_disk = {str(p.relative_to(BUNDLES)) for p in BUNDLES.glob("*/*.cbor")} - {
        "intl/trust.cbor",
        "gm/trust.cbor",
    }
    assert named == on_disk


def test_verify_vector_manifest_covers_each_failure_kind() -> None:
    files = {c["file"].split("/")[1] for _, c in _cases() if not c["valid"]}
    for kind in (
        "flip-item-bit",
        "flip-path-bit",
        "flip-header-bit",
        "flip-signature-bit",
        "wrong-index",
        "wrong-size",
        "swapped-registration",
        "unknown-org",
        "trailing-bytes",
        "wrong-suite",
        "truncated",
    ):
        assert f"{kind}.cbor" in files


def test_verify_vector_generator_reproduces_intl_byte_for_byte() -> None:
    files = _generator().build("intl")
    assert any(k.startswith("bundles/intl/") for k in files)
    for rel, data in files.items():
        committed = (VECTORS / rel).read_bytes()
        assert committed == data, f"{rel} differs from what the generator writes"


def test_verify_vector_gm_files_are_committed_not_regenerated() -> None:
    # SM2 signatures are randomised: a fresh gm build must differ, yet verify the same way.
    gen = _generator()
    fresh = gen.build("gm")
    committed = (BUNDLES / "gm" / "valid-reading.cbor").read_bytes()
    assert fresh["bundles/gm/valid-reading.cbor"] != committed
    trust = load_trust(BUNDLES / "gm" / "trust.cbor")
    assert fresh["bundles/gm/trust.cbor"] == (BUNDLES / "gm" / "trust.cbor").read_bytes()
    assert verify_bundle(fresh["bundles/gm/valid-reading.cbor"], trust).ok


def test_verify_vector_readme_names_every_bundle() -> None:
    readme = (BUNDLES / "README.md").read_text()
    for _, case in _cases():
        assert f"`{case['file']}`" in readme

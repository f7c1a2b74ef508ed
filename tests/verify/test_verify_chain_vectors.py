"""The committed chained bundles verify, or fail, exactly as their manifests say.

``tests/vectors/bundles/manifest-chain-{intl,gm}.json`` list every bundle under
``*/chain/`` with the genesis (and trust file) it is checked against and the expected line
(valid) or reason prefix (invalid). They were written by a live in-process consortium
(``tests/vectors/bundles/generate_chain.py``), so they are checked by verifying, not by
regenerating (``test_verify_chain_live.py`` runs the generator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tally.device.trust import load_trust
from tally.ledger.genesis import load_genesis
from tally.verify.verifier import verify_bundle

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
CHAIN_STEPS = ("bundle: chain", "checkpoint", "quorum", "chain inclusion", "anchoring transaction")


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for suite in ("intl", "gm"):
        manifest = json.loads((BUNDLES / f"manifest-chain-{suite}.json").read_text())
        for i, case in enumerate(manifest["cases"]):
            out.append((f"{case['file']}#{i}", case))
    return out


CASES = _cases()


@pytest.mark.parametrize(("name", "case"), CASES, ids=[n for n, _ in CASES])
def test_verify_chain_vector_as_manifest_says(name: str, case: dict[str, Any]) -> None:
    data = (BUNDLES / case["file"]).read_bytes()
    genesis = load_genesis((BUNDLES / case["genesis"]).read_bytes()) if case["genesis"] else None
    trust = load_trust(BUNDLES / case["trust"]) if case["trust"] else None
    v = verify_bundle(
        data,
        trust,
        case["accept_bundled_anchors"],
        genesis=genesis,
        require_anchor=case["require_anchor"],
    )
    assert v.ok is case["valid"], v.reason
    if case["valid"]:
        assert v.line() == case["line"]
        assert all(s.ok for s in v.steps)
    else:
        assert v.reason.startswith(case["reason_prefix"]), v.reason
        assert [s.ok for s in v.steps][-1] is False
        assert all(s.ok for s in v.steps[:-1])


def test_verify_chain_valid_vectors_run_the_four_chain_steps_in_order() -> None:
    for suite in ("intl", "gm"):
        d = BUNDLES / suite / "chain"
        v = verify_bundle(
            (d / "valid-reading.cbor").read_bytes(),
            None,
            genesis=load_genesis((d / "genesis.cbor").read_bytes()),
        )
        names = [s.name for s in v.steps]
        assert v.ok and v.chain == "anchored" and v.anchors_pinned
        assert names[-4:] == ["checkpoint", "quorum", "chain inclusion", "anchoring transaction"]
        assert names.index("receipt") == len(names) - 5
        assert v.quorum == 3 and v.members == 4 and len(v.checkpoint_signers) == 3
        assert v.endorsers and v.tx_id is not None and v.genesis is not None
        assert v.line().endswith(f" — genesis {v.genesis.hex()[:16]}")


def test_verify_chain_manifests_cover_each_failure_kind() -> None:
    files = {c["file"].split("/")[-1] for _, c in CASES if not c["valid"]}
    for kind in (
        "forged-checkpoint-sig",
        "too-few-signers",
        "non-member-signer",
        "duplicate-signer",
        "other-chain",
        "tx-not-in-log",
        "wrong-index",
        "wrong-size",
        "other-header",
        "policy-not-met",
        "contract-refused",
        "not-anchoring",
    ):
        assert f"{kind}.cbor" in files
    failing = [c for _, c in CASES if not c["valid"] and c["genesis"]]
    assert all(c["reason_prefix"].startswith((*CHAIN_STEPS, "chain:", "anchors:")) for c in failing)


def test_verify_chain_manifests_name_every_file() -> None:
    named = {c["file"] for _, c in CASES}
    on_disk = {str(p.relative_to(BUNDLES)) for p in BUNDLES.glob("*/chain/*.cbor")}
    on_disk -= {f"{s}/chain/{f}" for s in ("intl", "gm") for f in
                ("genesis.cbor", "other-genesis.cbor", "trust.cbor")}  # fmt: skip
    assert named == on_disk


def test_verify_chain_readme_names_every_bundle() -> None:
    readme = (BUNDLES / "README.md").read_text()
    for _, case in CASES:
        assert f"`{case['file']}`" in readme

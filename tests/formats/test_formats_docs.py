"""docs/formats.md shows the committed vectors, so the page and the files cannot drift apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "formats.md").read_text()
HEX_IN_DOC = re.sub(r"\s+", "", DOC)
FORMATS = ROOT / "tests" / "vectors" / "formats"

SHOWN = [
    ("intl-trust", "cbor"),
    ("intl-registration-lc-03", "cose"),
    ("intl-revocation", "cose"),
    ("intl-reading-41", "cose"),
    ("intl-reading-41", "payload"),
    ("intl-reading-41", "protected"),
    ("intl-reading-41", "sig_structure"),
    ("intl-reading-41", "signature"),
    ("intl-reading-41", "hash"),
    ("intl-event", "cose"),
    ("intl-gap", "cose"),
    ("intl-summary", "cose"),
    ("intl-batch-header", "cose"),
    ("intl-upload", "cbor"),
    ("intl-receipt", "cose"),
    ("intl-bundle", "cbor"),
    ("intl-bundle", "leaf_hash"),
    ("intl-bundle", "root"),
    ("intl-keyfile", "cbor"),
    ("gm-reading-41", "sig_structure"),
    ("gm-reading-41", "signature"),
]


@pytest.mark.parametrize(("name", "field"), SHOWN)
def test_formats_doc_shows_the_committed_vector(name: str, field: str) -> None:
    value = json.loads((FORMATS / f"{name}.json").read_text())[field]
    assert value in HEX_IN_DOC, f"docs/formats.md does not show {name} {field}"


def test_formats_doc_shows_the_sm2_public_key() -> None:
    v = json.loads((FORMATS / "gm-reading-41.json").read_text())
    assert v["key"]["public"] in HEX_IN_DOC


def test_formats_doc_lists_every_reason_of_the_bundle_manifests() -> None:
    for suite in ("intl", "gm"):
        manifest = json.loads((ROOT / f"tests/vectors/bundles/manifest-{suite}.json").read_text())
        for case in manifest["cases"]:
            if not case["valid"]:
                step = case["reason_prefix"].split(":")[0]
                assert f"**{step.split(' of ')[0]}" in DOC, step

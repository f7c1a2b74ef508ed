"""The JSON vectors under tests/vectors/merkle/: each verifier answers as the file says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tally.merkle import Hasher, MerkleError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"
FILES = sorted(VECTORS.glob("*/*.json"))


def answer(vector: dict[str, Any]) -> tuple[str, str]:
    """Run the verifier the vector names; return ("ok", "") or (class name, message)."""
    hasher = Hasher.for_name(vector["hash"])
    proof = [bytes.fromhex(h) for h in vector["proof"]]
    try:
        if "index" in vector:
            verify_inclusion(
                hasher,
                vector["index"],
                vector["size"],
                bytes.fromhex(vector["leaf_hash"]),
                proof,
                bytes.fromhex(vector["root"]),
            )
        else:
            verify_consistency(
                hasher,
                vector["size1"],
                vector["size2"],
                proof,
                bytes.fromhex(vector["root1"]),
                bytes.fromhex(vector["root2"]),
            )
    except MerkleError as error:
        return type(error).__name__, str(error)
    return "ok", ""


def test_there_are_vectors_of_every_kind() -> None:
    kinds = {path.parent.name for path in FILES}
    assert kinds == {"inclusion", "consistency"}
    expects = {json.loads(path.read_text())["expect"] for path in FILES}
    assert expects == {
        "ok",
        "RootMismatchError",
        "ProofSizeError",
        "IndexOutOfRangeError",
        "SizeError",
        "HashLengthError",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert answer(vector) == (vector["expect"], vector.get("message", ""))


def test_vectors_are_what_the_generator_writes() -> None:
    """The files on disk are exactly the generator's output: none stale, none missing."""
    spec = importlib.util.spec_from_file_location(
        "merkle_vector_generator", VECTORS / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected: dict[str, str] = generator.build()
    on_disk = {str(path.relative_to(VECTORS)): path.read_text(encoding="utf-8") for path in FILES}
    assert on_disk == expected

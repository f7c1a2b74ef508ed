"""Write the Merkle proof test vectors: one JSON file per case, under inclusion/ and consistency/.

Run from the repository root::

    python tests/vectors/merkle/generate.py

Everything is computed by the slow RFC 9162 reference in ``tests/merkle/reference.py``
(not by ``tally``) over the eight-leaf test tree used by Certificate Transparency and
transparency-dev/merkle. The published proofs of transparency-dev/merkle are checked
against the reference before anything is written. See README.md for the file format.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "merkle"))

from reference import (  # noqa: E402
    CT_LEAVES,
    expected_consistency,
    expected_inclusion,
    leaf_hash,
    mth,
    path,
    proof,
)

UPSTREAM = "transparency-dev/merkle proof/verify_test.go"
REFERENCE = "tests/merkle/reference.py"
# The proofs transparency-dev/merkle publishes for the test tree, SHA-256.
PUBLISHED_INCLUSION = {  # (index, size) -> proof
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip
PUBLISHED_CONSISTENCY = {  # (size1, size2) -> proof
    (1, 8): PUBLISHED_INCLUSION[(0, 8)],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
    (6, 7): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}  # fmt: skip

Vector = dict[str, Any]


def flip(value: bytes) -> bytes:
    """``value`` with bit 3 of its first byte flipped."""
    return bytes([value[0] ^ 8]) + value[1:]


def inclusion(alg: str, index: int, size: int) -> Iterator[tuple[str, str, Vector]]:
    """The valid inclusion case for (index, size), then its corruptions for published ones."""
    leaf = leaf_hash(alg, CT_LEAVES[index])
    good = path(alg, index, CT_LEAVES[:size])
    root = mth(alg, CT_LEAVES[:size])
    published = alg == "sha256" and (index, size) in PUBLISHED_INCLUSION
    if published:
        assert [h.hex() for h in good] == PUBLISHED_INCLUSION[(index, size)]
    cases = [("ok", "valid proof", index, size, leaf, good, root)]
    if published:
        last = len(good) - 1
        cases += [
            ("flip-proof0", "proof[0] with bit 3 flipped", index, size, leaf,
             [flip(good[0]), *good[1:]], root),
            ("flip-leaf", "leaf hash with bit 3 flipped", index, size, flip(leaf), good, root),
            ("flip-root", "root with bit 3 flipped", index, size, leaf, good, flip(root)),
            ("trailing-byte", f"proof[{last}] with a trailing zero byte", index, size, leaf,
             [*good[:last], good[last] + b"\x00"], root),
            ("extra-element", "the root appended to the proof", index, size, leaf,
             [*good, root], root),
            ("missing-element", f"proof[{last}] removed", index, size, leaf, good[:last], root),
            ("index-plus-1", "the next index", index + 1, size, leaf, good, root),
            ("size-plus-1", "one more leaf", index, size + 1, leaf, good, root),
            ("size-times-2", "twice the tree size", index, size * 2, leaf, good, root),
            ("index-is-size", "index equal to the tree size", size, size, leaf, good, root),
            ("empty-leaf-hash", "a leaf hash of 0 bytes", index, size, b"", good, root),
        ]  # fmt: skip
    for slug, what, i, n, leaf_, proof_, root_ in cases:
        vector: Vector = {
            "description": f"inclusion of leaf {index} in the first {size} test-tree leaves: "
            + what,
            "source": source(published, slug),
            "hash": alg,
            "index": i,
            "size": n,
            "leaf_hash": leaf_.hex(),
            "proof": [h.hex() for h in proof_],
            "root": root_.hex(),
        }
        outcome = expected_inclusion(alg, i, n, leaf_, proof_, root_)
        check_outcome(vector, slug, outcome)
        yield "inclusion", f"{alg}-{index}-of-{size}-{slug}", with_outcome(vector, outcome)


def consistency(alg: str, size1: int, size2: int) -> Iterator[tuple[str, str, Vector]]:
    """The valid consistency case for (size1, size2), then corruptions for published ones."""
    good = proof(alg, size1, CT_LEAVES[:size2])
    root1, root2 = mth(alg, CT_LEAVES[:size1]), mth(alg, CT_LEAVES[:size2])
    published = alg == "sha256" and (size1, size2) in PUBLISHED_CONSISTENCY
    if published:
        assert [h.hex() for h in good] == PUBLISHED_CONSISTENCY[(size1, size2)]
    cases = [("ok", "valid proof", size1, size2, root1, good, root2)]
    if published:
        last = len(good) - 1
        cases += [
            ("flip-proof0", "proof[0] with bit 3 flipped", size1, size2, root1,
             [flip(good[0]), *good[1:]], root2),
            ("flip-root1", "root1 with bit 3 flipped", size1, size2, flip(root1), good, root2),
            ("flip-root2", "root2 with bit 3 flipped", size1, size2, root1, good, flip(root2)),
            ("swapped-roots", "root1 and root2 swapped", size1, size2, root2, good, root1),
            ("trailing-byte", f"proof[{last}] with a trailing zero byte", size1, size2, root1,
             [*good[:last], good[last] + b"\x00"], root2),
            ("extra-element", "root2 appended to the proof", size1, size2, root1,
             [*good, root2], root2),
            ("missing-element", f"proof[{last}] removed", size1, size2, root1, good[:last], root2),
            ("empty-proof", "an empty proof", size1, size2, root1, [], root2),
            ("size1-plus-1", "one more leaf in the old tree", size1 + 1, size2, root1, good, root2),
            ("size2-minus-1", "one leaf fewer in the new tree", size1, size2 - 1, root1, good,
             root2),
            ("sizes-swapped", "size1 and size2 swapped", size2, size1, root1, good, root2),
        ]  # fmt: skip
    if alg == "sha256" and (size1, size2) == (0, 5):
        cases += [
            ("nonempty-proof", "a proof from the empty tree that is not empty", 0, 5, root1,
             [root2], root2),
            ("wrong-root1", "root1 not the empty tree's root", 0, 5, root2, good, root2),
        ]  # fmt: skip
    if alg == "sha256" and (size1, size2) == (3, 3):
        cases += [("different-roots", "equal sizes, different roots", 3, 3, root1, good,
                   mth(alg, CT_LEAVES[:4]))]  # fmt: skip
    for slug, what, m, n, root1_, proof_, root2_ in cases:
        vector: Vector = {
            "description": f"consistency of the first {size1} test-tree leaves with the first "
            f"{size2}: " + what,
            "source": source(published, slug),
            "hash": alg,
            "size1": m,
            "size2": n,
            "root1": root1_.hex(),
            "proof": [h.hex() for h in proof_],
            "root2": root2_.hex(),
        }
        outcome = expected_consistency(alg, m, n, proof_, root1_, root2_)
        check_outcome(vector, slug, outcome)
        yield "consistency", f"{alg}-{size1}-to-{size2}-{slug}", with_outcome(vector, outcome)


# Changing only a size or index can leave the proof's shape unchanged, so it may still
# verify: a proof binds the leaf and the root, the signed tree head binds the size.
MAY_VERIFY = {"index-plus-1", "size-plus-1", "size1-plus-1", "size2-minus-1"}


def check_outcome(vector: Vector, slug: str, outcome: tuple[str, str]) -> None:
    """Every valid case verifies and every corruption fails, except as MAY_VERIFY says."""
    if slug in MAY_VERIFY:
        if outcome[0] == "ok":
            vector["description"] += " (same proof shape, so it still verifies)"
        return
    assert (outcome[0] == "ok") == (slug == "ok"), (vector["description"], outcome)


def source(published: bool, slug: str) -> str:
    if not published:
        return REFERENCE
    return UPSTREAM if slug == "ok" else f"{UPSTREAM}, altered"


def with_outcome(vector: Vector, outcome: tuple[str, str]) -> Vector:
    vector["expect"] = outcome[0]
    if outcome[0] != "ok":
        vector["message"] = outcome[1]
    return vector


def build() -> dict[str, str]:
    """Return every vector file: relative path -> its exact text."""
    files: dict[str, str] = {}
    generators = [
        *(inclusion("sha256", i, n) for n in range(1, 9) for i in range(n)),
        *(consistency("sha256", m, n) for n in range(9) for m in range(n + 1)),
        *(inclusion("sm3", i, n) for i, n in PUBLISHED_INCLUSION),
        *(consistency("sm3", m, n) for m, n in PUBLISHED_CONSISTENCY),
    ]
    for cases in generators:
        for kind, name, vector in cases:
            path_ = f"{kind}/{name}.json"
            assert path_ not in files, path_
            files[path_] = json.dumps(vector, indent=2) + "\n"
    return files


def main() -> None:
    files = build()
    for kind in ("inclusion", "consistency"):
        (HERE / kind).mkdir(exist_ok=True)
        for old in (HERE / kind).glob("*.json"):
            old.unlink()
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} vectors under {HERE.name}/")


if __name__ == "__main__":
    main()

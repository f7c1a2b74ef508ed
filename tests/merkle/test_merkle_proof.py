"""Proof verification: generated failure cases, each with its error class and exact message."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import pytest
from reference import CT_LEAVES, expected_consistency, expected_inclusion, mth

from tally.merkle import (
    SHA256,
    SM3,
    Hasher,
    HashLengthError,
    IndexOutOfRangeError,
    MerkleError,
    ProofSizeError,
    RootMismatchError,
    SizeError,
    Tree,
    errors,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [*CT_LEAVES, *(bytes([i]) * i for i in range(8, 13))]  # 13 leaves.


def flip(value: bytes, bit: int = 3) -> bytes:
    """``value`` with one bit of its first byte flipped."""
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def outcome(call: Callable[[], object]) -> tuple[str, str]:
    """("ok", "") if ``call`` returns None, else the error's class name and message."""
    try:
        assert call() is None
    except MerkleError as error:
        return type(error).__name__, str(error)
    return "ok", ""


@pytest.fixture(scope="module", params=[SHA256, SM3], ids=lambda h: h.name)
def tree(request: pytest.FixtureRequest) -> Tree:
    hasher: Hasher = request.param
    built = Tree(hasher)
    built.extend(LEAVES)
    return built


Probe = tuple[str, str | None, int, int, bytes, list[bytes], bytes]


def inclusion_probes(tree: Tree, index: int, size: int) -> Iterator[Probe]:
    """Corruptions of a valid inclusion proof: (description, class that must be raised or
    None to take the reference's word, index, size, leaf hash, proof, root)."""
    leaf, proof, root = tree.leaf_hash(index), tree.inclusion_proof(index, size), tree.root_at(size)
    mismatch, length, count = "RootMismatchError", "HashLengthError", "ProofSizeError"
    yield "valid", "ok", index, size, leaf, proof, root
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i]), *proof[i + 1 :]]
        yield f"flipped bit in proof[{i}]", mismatch, index, size, leaf, bad, root
        bad = [*proof[:i], proof[i] + b"\x00", *proof[i + 1 :]]
        yield f"trailing byte in proof[{i}]", length, index, size, leaf, bad, root
    yield "flipped bit in leaf hash", mismatch, index, size, flip(leaf, 0), proof, root
    yield "flipped bit in root", mismatch, index, size, leaf, proof, flip(root, 7)
    yield "short leaf hash", length, index, size, leaf[:-1], proof, root
    yield "long root", length, index, size, leaf, proof, root + b"\x00"
    yield "extra element", count, index, size, leaf, [*proof, root], root
    yield "extra element first", count, index, size, leaf, [root, *proof], root
    if proof:
        yield "missing element", count, index, size, leaf, proof[:-1], root
        yield "missing first element", count, index, size, leaf, proof[1:], root
    for name, wrong_index, wrong_size in [
        ("index - 1", index - 1, size),
        ("index + 1", index + 1, size),
        ("index ^ 2", index ^ 2, size),
        ("size - 1", index, size - 1),
        ("size + 1", index, size + 1),
        ("size * 2", index, size * 2),
    ]:
        yield name, None, wrong_index, wrong_size, leaf, proof, root


def test_inclusion_failures(tree: Tree) -> None:
    hasher, alg = tree.hasher, tree.hasher.name
    checked = 0
    for size in range(1, tree.size + 1):
        for index in range(size):
            for desc, want, i, n, leaf, proof, root in inclusion_probes(tree, index, size):
                expected = expected_inclusion(alg, i, n, leaf, proof, root)
                got = outcome(lambda: verify_inclusion(hasher, i, n, leaf, proof, root))  # noqa: B023
                assert got == expected, (index, size, desc)
                assert want is None or got[0] == want, (index, size, desc)
                checked += 1
    assert checked > 1000


def consistency_probes(tree: Tree, size1: int, size2: int) -> Iterator[Probe]:
    """Corruptions of a valid consistency proof, as :func:`inclusion_probes` (the fields
    are description, class, size1, size2, root1, proof, root2)."""
    proof = tree.consistency_proof(size1, size2)
    root1, root2 = tree.root_at(size1), tree.root_at(size2)
    mismatch, length, count = "RootMismatchError", "HashLengthError", "ProofSizeError"
    yield "valid", "ok", size1, size2, root1, proof, root2
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]]
        yield f"flipped bit in proof[{i}]", mismatch, size1, size2, root1, bad, root2
        bad = [*proof[:i], proof[i] + b"\x00", *proof[i + 1 :]]
        yield f"trailing byte in proof[{i}]", length, size1, size2, root1, bad, root2
    yield "flipped bit in root1", mismatch, size1, size2, flip(root1), proof, root2
    # The empty tree is consistent with every larger tree: nothing binds root2 then.
    unbound = size1 == 0 < size2
    yield (
        "flipped bit in root2",
        "ok" if unbound else mismatch,
        size1,
        size2,
        root1,
        proof,
        flip(root2),
    )
    if root1 != root2:
        yield "swapped roots", mismatch, size1, size2, root2, proof, root1
    yield "short root1", length, size1, size2, root1[:-1], proof, root2
    yield "long root2", length, size1, size2, root1, proof, root2 + b"\x00"
    yield "extra element", count, size1, size2, root1, [*proof, root2], root2
    yield "extra element first", count, size1, size2, root1, [root1, *proof], root2
    if proof:
        yield "missing element", count, size1, size2, root1, proof[:-1], root2
        yield "missing first element", count, size1, size2, root1, proof[1:], root2
        yield "empty proof", count, size1, size2, root1, [], root2
    for name, wrong1, wrong2 in [
        ("size1 - 1", size1 - 1, size2),
        ("size1 + 1", size1 + 1, size2),
        ("size2 - 1", size1, size2 - 1),
        ("size2 + 1", size1, size2 + 1),
        ("size2 * 2", size1, size2 * 2),
    ]:
        yield name, None, wrong1, wrong2, root1, proof, root2


def test_consistency_failures(tree: Tree) -> None:
    hasher, alg = tree.hasher, tree.hasher.name
    checked = 0
    for size2 in range(tree.size + 1):
        for size1 in range(size2 + 1):
            for desc, want, m, n, root1, proof, root2 in consistency_probes(tree, size1, size2):
                expected = expected_consistency(alg, m, n, proof, root1, root2)
                got = outcome(lambda: verify_consistency(hasher, m, n, proof, root1, root2))  # noqa: B023
                assert got == expected, (size1, size2, desc)
                assert want is None or got[0] == want, (size1, size2, desc)
                checked += 1
    assert checked > 1000


def test_proof_from_another_hash_function_fails() -> None:
    tree = Tree(SM3)
    tree.extend(LEAVES)
    proof, root = tree.inclusion_proof(5, 13), tree.root_at(13)
    with pytest.raises(RootMismatchError):
        verify_inclusion(SHA256, 5, 13, SHA256.hash_leaf(LEAVES[5]), proof, root)
    with pytest.raises(RootMismatchError):
        verify_inclusion(SHA256, 5, 13, tree.leaf_hash(5), proof, root)


def test_exact_messages() -> None:
    tree = Tree()
    tree.extend(LEAVES)
    leaf, root9 = tree.leaf_hash(0), tree.root_at(9)
    proof = tree.inclusion_proof(0, 9)
    assert len(proof) == 4
    empty = SHA256.empty_root()
    cases: list[tuple[type[MerkleError], str, Callable[[], None]]] = [
        (
            IndexOutOfRangeError,
            "index 7 out of range for tree size 5",
            lambda: verify_inclusion(SHA256, 7, 5, leaf, [], root9),
        ),
        (
            ProofSizeError,
            "wrong proof size 3, want 4",
            lambda: verify_inclusion(SHA256, 0, 9, leaf, proof[:3], root9),
        ),
        (
            HashLengthError,
            "proof element 2 has 33 bytes, want 32",
            lambda: verify_inclusion(
                SHA256, 0, 9, leaf, [*proof[:2], proof[2] + b"!", proof[3]], root9
            ),
        ),
        (
            RootMismatchError,
            f"calculated root {root9.hex()} does not match expected root {empty.hex()}",
            lambda: verify_inclusion(SHA256, 0, 9, leaf, proof, empty),
        ),
        (
            SizeError,
            "size1 5 is greater than size2 3",
            lambda: verify_consistency(SHA256, 5, 3, [], root9, root9),
        ),
        (
            SizeError,
            "size1 -1 is negative",
            lambda: verify_consistency(SHA256, -1, 3, [], root9, root9),
        ),
        (
            ProofSizeError,
            "wrong proof size 1, want 0",
            lambda: verify_consistency(SHA256, 0, 9, [root9], empty, root9),
        ),
        (
            RootMismatchError,
            f"calculated root1 {empty.hex()} does not match expected root1 {root9.hex()}",
            lambda: verify_consistency(SHA256, 0, 9, [], root9, root9),
        ),
        (
            RootMismatchError,
            f"calculated root2 {root9.hex()} does not match expected root2 {empty.hex()}",
            lambda: verify_consistency(SHA256, 9, 9, [], root9, empty),
        ),
        (
            HashLengthError,
            "root2 has 0 bytes, want 32",
            lambda: verify_consistency(SHA256, 9, 9, [], root9, b""),
        ),
    ]
    for error, message, call in cases:
        with pytest.raises(error) as caught:
            call()
        assert str(caught.value) == message


def test_errors_carry_their_data() -> None:
    tree = Tree()
    tree.extend(LEAVES)
    leaf, root = tree.leaf_hash(3), tree.root_at(13)
    proof = tree.inclusion_proof(3, 13)
    with pytest.raises(RootMismatchError) as mismatch:
        verify_inclusion(SHA256, 3, 13, leaf, proof, flip(root))
    assert (mismatch.value.expected, mismatch.value.calculated) == (flip(root), root)
    assert mismatch.value.name == "root"
    with pytest.raises(ProofSizeError) as size:
        verify_inclusion(SHA256, 3, 13, leaf, proof[1:], root)
    assert (size.value.got, size.value.want) == (len(proof) - 1, len(proof))
    with pytest.raises(IndexOutOfRangeError) as index:
        root_from_inclusion_proof(SHA256, 13, 13, leaf, proof)
    assert (index.value.index, index.value.size) == (13, 13)
    with pytest.raises(HashLengthError) as length:
        root_from_inclusion_proof(SHA256, 3, 13, leaf * 2, proof)
    assert (length.value.name, length.value.got, length.value.want) == ("leaf hash", 64, 32)


def test_every_error_is_a_documented_merkle_error() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)]
    assert {c.__name__ for c in classes} == {
        "MerkleError",
        "RootMismatchError",
        "ProofSizeError",
        "IndexOutOfRangeError",
        "SizeError",
        "HashLengthError",
    }
    for cls in classes:
        assert issubclass(cls, MerkleError)
        if cls is not MerkleError:
            assert (cls.__doc__ or "").startswith("Raised when "), cls


def test_root_from_inclusion_proof_gives_the_root() -> None:
    for hasher in (SHA256, SM3):
        tree = Tree(hasher)
        tree.extend(LEAVES)
        for index in range(13):
            calculated = root_from_inclusion_proof(
                hasher, index, 13, tree.leaf_hash(index), tree.inclusion_proof(index)
            )
            assert calculated == tree.root() == mth(hasher.name, LEAVES)

"""Tree hashes and proofs: known answers, agreement with the RFC reference, speed, errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import CT_LEAVES, mth, path, proof

from tally.merkle import (
    SHA256,
    SM3,
    Hasher,
    HashLengthError,
    IndexOutOfRangeError,
    SizeError,
    Tree,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# Roots of the first n CT_LEAVES with SHA-256, n = 0..8. The values are those of
# transparency-dev/merkle (testonly/constants.go, RootHashes). Those marked with a
# command were also checked by hand with OpenSSL, after defining in bash:
#   H(){ openssl dgst -sha256 -binary; }; L(){ { printf '\x00'; printf "$1"; } | H; }
SHA256_ROOTS = [
    # printf '' | openssl dgst -sha256
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    # L '' | xxd -p -c32
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    # { printf '\x01'; L ''; L '\x00'; } | H | xxd -p -c32
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    # { printf '\x01'; { printf '\x01'; L ''; L '\x00'; } | H; L '\x10'; } | H | xxd -p -c32
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    # { printf '\x01'; { printf '\x01'; { printf '\x01'; L ''; L '\x00'; } | H;
    #   { printf '\x01'; L '\x10'; L '\x20\x21'; } | H; } | H; { printf '\x01';
    #   { printf '\x01'; L '\x30\x31'; L '\x40\x41\x42\x43'; } | H; { printf '\x01';
    #   L '\x50\x51\x52\x53\x54\x55\x56\x57';
    #   L '\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f'; } | H; } | H;
    # } | H | xxd -p -c32
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# The 8-leaf root with SM3, from the reference; checked by hand with the same command as
# the SHA-256 size-8 root above after defining H(){ openssl dgst -sm3 -binary; } instead.
SM3_ROOT_8 = "bc48ba7a709184b5f2a631e1adeb8dc2a0d4c018c1d6cc89b5664fe154c93b38"

# Proofs in the CT test tree, from transparency-dev/merkle (proof/verify_test.go).
INCLUSION = {  # (index, size) -> proof
    (0, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
    (5, 8): ["bc1a0643", "ca854ea1", "d37ee418"],
    (2, 3): ["fac54203"],
    (1, 5): ["6e340b9c", "5f083f0a", "bc1a0643"],
}
CONSISTENCY = {  # (size1, size2) -> proof
    (1, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
    (6, 8): ["0ebc5d34", "ca854ea1", "d37ee418"],
    (2, 5): ["5f083f0a", "bc1a0643"],
    (6, 7): ["0ebc5d34", "b08693ec", "d37ee418"],
}


def ct_tree(hasher: Hasher = SHA256) -> Tree:
    tree = Tree(hasher)
    tree.extend(CT_LEAVES)
    return tree


def test_sha256_roots_of_the_ct_test_tree() -> None:
    tree = ct_tree()
    hashes = [SHA256.hash_leaf(data) for data in CT_LEAVES]
    for n, want in enumerate(SHA256_ROOTS):
        assert tree.root_at(n).hex() == want
        assert root(SHA256, hashes[:n]).hex() == want
        assert mth("sha256", CT_LEAVES[:n]).hex() == want
    assert tree.root().hex() == SHA256_ROOTS[8]


def test_sm3_root_of_the_ct_test_tree() -> None:
    tree = ct_tree(SM3)
    assert tree.root().hex() == SM3_ROOT_8
    assert root(SM3, [SM3.hash_leaf(data) for data in CT_LEAVES]).hex() == SM3_ROOT_8
    assert mth("sm3", CT_LEAVES).hex() == SM3_ROOT_8
    assert tree.root_at(0) == SM3.empty_root()


def test_known_proofs_of_the_ct_test_tree() -> None:
    tree = ct_tree()
    for (index, size), want in INCLUSION.items():
        assert [h.hex()[:8] for h in tree.inclusion_proof(index, size)] == want
    for (size1, size2), want in CONSISTENCY.items():
        assert [h.hex()[:8] for h in tree.consistency_proof(size1, size2)] == want


def check_against_reference(hasher: Hasher, leaves: list[bytes], tree: Tree) -> None:
    """Every root and proof of ``tree`` equals the reference's, and every proof verifies."""
    alg = hasher.name
    roots = [mth(alg, leaves[:n]) for n in range(len(leaves) + 1)]
    hashes = [hasher.hash_leaf(data) for data in leaves]
    for size in range(len(leaves) + 1):
        assert tree.root_at(size) == roots[size]
        assert root(hasher, hashes[:size]) == roots[size]
        for index in range(size):
            got = tree.inclusion_proof(index, size)
            assert got == path(alg, index, leaves[:size])
            verify_inclusion(hasher, index, size, hashes[index], got, roots[size])
            assert root_from_inclusion_proof(hasher, index, size, hashes[index], got) == roots[size]
        for size1 in range(size + 1):
            got = tree.consistency_proof(size1, size)
            assert got == proof(alg, size1, leaves[:size])
            verify_consistency(hasher, size1, size, got, roots[size1], roots[size])


@pytest.mark.parametrize(("hasher", "count"), [(SHA256, 65), (SM3, 17)], ids=["sha256", "sm3"])
def test_every_proof_of_small_trees_matches_the_reference(hasher: Hasher, count: int) -> None:
    leaves = [i.to_bytes(2, "big") for i in range(count)]
    tree = Tree(hasher)
    tree.extend(leaves)
    check_against_reference(hasher, leaves, tree)


@settings(max_examples=200, deadline=None)
@given(
    hasher=st.sampled_from([SHA256, SM3]),
    leaves=st.integers(0, 70).flatmap(
        lambda n: st.lists(st.binary(max_size=12), min_size=n, max_size=n)
    ),
    data=st.data(),
)
def test_random_trees_match_the_reference(
    hasher: Hasher, leaves: list[bytes], data: st.DataObject
) -> None:
    alg = hasher.name
    tree = Tree(hasher)
    for data_item in leaves:
        tree.append(data_item)
    assert tree.size == len(leaves)
    for n in range(len(leaves) + 1):
        assert tree.root_at(n) == mth(alg, leaves[:n])
    size = data.draw(st.integers(0, len(leaves)), label="size")
    size1 = data.draw(st.integers(0, size), label="size1")
    root1, root2 = mth(alg, leaves[:size1]), mth(alg, leaves[:size])
    consistency = tree.consistency_proof(size1, size)
    assert consistency == proof(alg, size1, leaves[:size])
    verify_consistency(hasher, size1, size, consistency, root1, root2)
    if size:
        index = data.draw(st.integers(0, size - 1), label="index")
        inclusion = tree.inclusion_proof(index, size)
        assert inclusion == path(alg, index, leaves[:size])
        verify_inclusion(hasher, index, size, tree.leaf_hash(index), inclusion, root2)


def test_append_and_append_hash_build_the_same_tree() -> None:
    by_data, by_hash = Tree(SM3), Tree(SM3)
    for i, data in enumerate(CT_LEAVES):
        assert by_data.append(data) == i
        assert by_hash.append_hash(SM3.hash_leaf(data)) == i
        assert len(by_data) == by_hash.size == i + 1
        assert by_data.root() == by_hash.root()
    assert by_data.leaf_hash(3) == SM3.hash_leaf(CT_LEAVES[3])
    assert Tree().root() == SHA256.empty_root()


def test_root_of_100k_leaves_is_fast() -> None:
    hashes = [SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(100_000)]
    start = time.perf_counter()
    top = root(SHA256, hashes)
    assert time.perf_counter() - start < 1.0
    tree = Tree()
    start = time.perf_counter()
    for leaf_hash in hashes:
        tree.append_hash(leaf_hash)
    assert tree.root() == top
    assert time.perf_counter() - start < 2.0
    for index in (0, 1, 4_095, 65_536, 99_998, 99_999):
        verify_inclusion(SHA256, index, 100_000, hashes[index], tree.inclusion_proof(index), top)
    old = tree.root_at(77_777)
    verify_consistency(SHA256, 77_777, 100_000, tree.consistency_proof(77_777), old, top)


def test_tree_errors_carry_exact_messages() -> None:
    tree = ct_tree()
    cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
        (SizeError, "size 9 is greater than tree size 8", lambda: tree.root_at(9)),
        (SizeError, "size -1 is negative", lambda: tree.root_at(-1)),
        (SizeError, "size 9 is greater than tree size 8", lambda: tree.inclusion_proof(0, 9)),
        (
            IndexOutOfRangeError,
            "index 8 out of range for tree size 8",
            lambda: tree.inclusion_proof(8),
        ),
        (
            IndexOutOfRangeError,
            "index 5 out of range for tree size 5",
            lambda: tree.inclusion_proof(5, 5),
        ),
        (IndexOutOfRangeError, "index -1 out of range for tree size 8", lambda: tree.leaf_hash(-1)),
        (SizeError, "size1 5 is greater than size2 3", lambda: tree.consistency_proof(5, 3)),
        (SizeError, "size1 -2 is negative", lambda: tree.consistency_proof(-2)),
        (SizeError, "size2 9 is greater than tree size 8", lambda: tree.consistency_proof(1, 9)),
        (HashLengthError, "leaf hash has 33 bytes, want 32", lambda: tree.append_hash(bytes(33))),
        (
            HashLengthError,
            "leaf hash 1 has 5 bytes, want 32",
            lambda: root(SHA256, [bytes(32), b"short"]),
        ),
    ]
    for error, message, call in cases:
        with pytest.raises(error) as caught:
            call()
        assert str(caught.value) == message
    assert tree.size == 8  # Nothing above changed the tree.


def test_size_error_carries_its_data() -> None:
    with pytest.raises(SizeError) as caught:
        ct_tree().consistency_proof(5, 3)
    error = caught.value
    assert (error.size, error.limit, error.name, error.limit_name) == (5, 3, "size1", "size2")

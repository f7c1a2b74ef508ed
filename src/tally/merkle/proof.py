"""Verification of RFC 9162 inclusion and consistency proofs.

A proof is a list of hashes, each ``hasher.size`` bytes, ordered from the leaf (or the
old tree's last complete subtree) upwards to the root::

    inclusion proof   = PATH(index, D[0:size])      RFC 9162 §2.1.3.1
    consistency proof = PROOF(size1, D[0:size2])    RFC 9162 §2.1.4.1

The verifiers follow the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.
They return None when the proof holds and raise a :class:`~tally.merkle.errors.MerkleError`
subclass when it does not, checking in this order:

1. sizes and index (IndexOutOfRangeError, SizeError);
2. the lengths of the leaf hash and the roots (HashLengthError);
3. the number of proof hashes, which the sizes fix exactly (ProofSizeError);
4. the length of each proof hash (HashLengthError, naming ``proof element i``);
5. the roots (RootMismatchError; for consistency, ``root1`` before ``root2``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tally.merkle.errors import (
    HashLengthError,
    IndexOutOfRangeError,
    ProofSizeError,
    RootMismatchError,
    SizeError,
)
from tally.merkle.hasher import Hasher

__all__ = [
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


def _inclusion_size(index: int, size: int) -> tuple[int, int]:
    """Split the proof for leaf ``index`` of a tree of ``size`` leaves in two lengths.

    ``inner`` counts the levels below the point where the paths to ``index`` and to
    ``size - 1`` meet; ``border`` counts the left siblings above it.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _consistency_size(size1: int, size2: int) -> int:
    """Return the number of hashes in PROOF(size1, D[0:size2])."""
    if size1 == 0 or size1 == size2:
        return 0
    inner, border = _inclusion_size(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner - shift + border


def _check_length(hasher: Hasher, name: str, value: bytes) -> None:
    if len(value) != hasher.size:
        raise HashLengthError(name, len(value), hasher.size)


def _check_proof(hasher: Hasher, proof: Sequence[bytes], want: int) -> None:
    if len(proof) != want:
        raise ProofSizeError(len(proof), want)
    for i, element in enumerate(proof):
        _check_length(hasher, f"proof element {i}", element)


def _check_match(calculated: bytes, expected: bytes, name: str) -> None:
    if calculated != expected:
        raise RootMismatchError(expected, calculated, name)


def root_from_inclusion_proof(
    hasher: Hasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` leads to from ``leaf_hash`` at ``index`` of ``size``.

    Runs steps 1-5 of RFC 9162 §2.1.3.2 short of the final root comparison. Raises
    IndexOutOfRangeError, HashLengthError or ProofSizeError if the input is malformed.
    """
    if not 0 <= index < size:
        raise IndexOutOfRangeError(index, size)
    _check_length(hasher, "leaf hash", leaf_hash)
    want = sum(_inclusion_size(index, size))
    _check_proof(hasher, proof, want)

    # Step 1 (index < size) is checked above. Steps 2-3.
    fn, sn = index, size - 1
    r = leaf_hash
    # Step 4.
    for p in proof:
        if sn == 0:  # Cannot happen once the length is right; kept from the RFC.
            raise ProofSizeError(len(proof), want)
        if fn & 1 or fn == sn:
            r = hasher.hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hasher.hash_children(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5 checks sn == 0; the caller compares r with the root.
    if sn != 0:  # Cannot happen once the length is right; kept from the RFC.
        raise ProofSizeError(len(proof), want)
    return r


def verify_inclusion(
    hasher: Hasher,
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check that the leaf with ``leaf_hash`` sits at ``index`` of the tree of ``size``
    leaves whose root is ``root`` (RFC 9162 §2.1.3.2).

    Returns None if it does. Raises IndexOutOfRangeError, HashLengthError,
    ProofSizeError or RootMismatchError otherwise.
    """
    if not 0 <= index < size:
        raise IndexOutOfRangeError(index, size)
    _check_length(hasher, "leaf hash", leaf_hash)
    _check_length(hasher, "root", root)
    calculated = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)
    _check_match(calculated, root, "root")


def _consistency_roots(
    hasher: Hasher, size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """Return (fr, sr) of RFC 9162 §2.1.4.2 steps 2-6, for ``0 < size1 < size2`` and a
    proof already checked to have the right number of right-sized hashes.
    """
    # Step 1 (an empty proof fails) is covered by the length check done before.
    # Step 2: if size1 is an exact power of 2, prepend root1 to the path.
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    # Steps 3-4.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # Cannot happen once the length is right; kept from the RFC.
            raise ProofSizeError(len(proof), _consistency_size(size1, size2))
        if fn & 1 or fn == sn:
            fr = hasher.hash_children(c, fr)
            sr = hasher.hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hasher.hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7 checks sn == 0 before the roots.
    if sn != 0:  # Cannot happen once the length is right; kept from the RFC.
        raise ProofSizeError(len(proof), _consistency_size(size1, size2))
    return fr, sr


def verify_consistency(
    hasher: Hasher,
    size1: int,
    size2: int,
    proof: Sequence[bytes],
    root1: bytes,
    root2: bytes,
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of the tree of
    ``size2`` leaves with ``root2`` (RFC 9162 §2.1.4.2).

    Returns None if it is. Raises SizeError, HashLengthError, ProofSizeError or
    RootMismatchError otherwise. With ``size1 == 0`` the proof must be empty and
    ``root1`` must be ``H("")``; with ``size1 == size2`` the proof must be empty and
    the roots equal.
    """
    if size1 < 0 or size1 > size2:
        raise SizeError(size1, size2, "size1", "size2")
    _check_length(hasher, "root1", root1)
    _check_length(hasher, "root2", root2)
    _check_proof(hasher, proof, _consistency_size(size1, size2))
    if size1 == size2:
        _check_match(root1, root2, "root2")
    elif size1 == 0:
        _check_match(hasher.empty_root(), root1, "root1")
    else:
        fr, sr = _consistency_roots(hasher, size1, size2, proof, root1)
        _check_match(fr, root1, "root1")
        _check_match(sr, root2, "root2")

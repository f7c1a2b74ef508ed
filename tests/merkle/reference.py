"""A slow reference for RFC 9162 Merkle trees, written straight from the RFC's recursion.

Used only by the tests and by ``tests/vectors/merkle/generate.py``; it does not import
``tally``. Every function here is the RFC text transcribed (RFC 9162 §2.1.1 MTH,
§2.1.3.1 PATH, §2.1.4.1 PROOF and SUBPROOF) or its plain recursive inverse, with no
attempt at speed. ``D`` is a list of leaf *inputs* (unhashed), as in the RFC.

The ``expected_*`` functions state what the verifiers of ``tally.merkle.proof`` must
answer for any input: "ok", or the error class name and its exact message, in the
check order that module documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32  # SHA-256 and SM3 both produce 32 bytes.


def digest(alg: str, data: bytes) -> bytes:
    """Return ``alg(data)`` for ``alg`` in ("sha256", "sm3")."""
    try:
        return hashlib.new(alg, data).digest()
    except ValueError:  # An OpenSSL without SM3.
        from cryptography.hazmat.primitives import hashes

        context = hashes.Hash(hashes.SM3())
        context.update(data)
        return context.finalize()


def leaf_hash(alg: str, data: bytes) -> bytes:
    return digest(alg, b"\x00" + data)


def node_hash(alg: str, left: bytes, right: bytes) -> bytes:
    return digest(alg, b"\x01" + left + right)


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(alg: str, d: Sequence[bytes]) -> bytes:
    """MTH(D[n]), RFC 9162 §2.1.1."""
    n = len(d)
    if n == 0:
        return digest(alg, b"")
    if n == 1:
        return leaf_hash(alg, d[0])
    k = split(n)
    return node_hash(alg, mth(alg, d[:k]), mth(alg, d[k:n]))


def path(alg: str, m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1; requires 0 <= m < n."""
    n = len(d)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*path(alg, m, d[:k]), mth(alg, d[k:n])]
    return [*path(alg, m - k, d[k:n]), mth(alg, d[:k])]


def proof(alg: str, m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]), RFC 9162 §2.1.4.1; empty (by convention) when m is 0 or n."""
    if m == 0 or m == len(d):
        return []
    return subproof(alg, m, d, True)


def subproof(alg: str, m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [mth(alg, d)]
    k = split(n)
    if m <= k:
        return [*subproof(alg, m, d[:k], b), mth(alg, d[k:n])]
    return [*subproof(alg, m - k, d[k:n], False), mth(alg, d[:k])]


# Inverses: from a proof back to the roots, following the same recursion.


def path_length(m: int, n: int) -> int:
    """len(PATH(m, D[n])) for 0 <= m < n."""
    if n == 1:
        return 0
    k = split(n)
    return 1 + (path_length(m, k) if m < k else path_length(m - k, n - k))


def root_from_path(alg: str, m: int, n: int, leaf: bytes, p: Sequence[bytes]) -> bytes:
    """The root that inclusion proof ``p`` gives for leaf hash ``leaf`` at (m, n)."""
    assert len(p) == path_length(m, n)
    if n == 1:
        return leaf
    k = split(n)
    *rest, last = p
    if m < k:
        return node_hash(alg, root_from_path(alg, m, k, leaf, rest), last)
    return node_hash(alg, last, root_from_path(alg, m - k, n - k, leaf, rest))


def proof_length(m: int, n: int, b: bool = True) -> int:
    """len(SUBPROOF(m, D[n], b)); 0 when m is 0 or m == n (see :func:`proof`)."""
    if m == 0 or (m == n and b):
        return 0
    if m == n:
        return 1
    k = split(n)
    return 1 + (proof_length(m, k, b) if m <= k else proof_length(m - k, n - k, False))


def roots_from_proof(
    alg: str, m: int, n: int, p: Sequence[bytes], root1: bytes, b: bool = True
) -> tuple[bytes, bytes]:
    """The (old, new) roots that consistency proof ``p`` gives for 0 < m < n."""
    assert len(p) == proof_length(m, n, b)
    if m == n:
        return (root1, root1) if b else (p[0], p[0])
    k = split(n)
    *rest, last = p
    if m <= k:
        old, new = roots_from_proof(alg, m, k, rest, root1, b)
        return old, node_hash(alg, new, last)
    old, new = roots_from_proof(alg, m - k, n - k, rest, root1, False)
    return node_hash(alg, last, old), node_hash(alg, last, new)


# What the verifiers must answer.

Outcome = tuple[str, str]
OK: Outcome = ("ok", "")


def _hash_lengths(named: Sequence[tuple[str, bytes]]) -> Outcome | None:
    for name, value in named:
        if len(value) != HASH_SIZE:
            return "HashLengthError", f"{name} has {len(value)} bytes, want {HASH_SIZE}"
    return None


def _proof_shape(p: Sequence[bytes], want: int) -> Outcome | None:
    if len(p) != want:
        return "ProofSizeError", f"wrong proof size {len(p)}, want {want}"
    return _hash_lengths([(f"proof element {i}", e) for i, e in enumerate(p)])


def _mismatch(calculated: bytes, expected: bytes, name: str) -> Outcome | None:
    if calculated == expected:
        return None
    return (
        "RootMismatchError",
        f"calculated {name} {calculated.hex()} does not match expected {name} {expected.hex()}",
    )


def expected_inclusion(
    alg: str, index: int, size: int, leaf: bytes, p: Sequence[bytes], root: bytes
) -> Outcome:
    """What ``verify_inclusion`` must answer."""
    if not 0 <= index < size:
        return "IndexOutOfRangeError", f"index {index} out of range for tree size {size}"
    failure = _hash_lengths([("leaf hash", leaf), ("root", root)]) or _proof_shape(
        p, path_length(index, size)
    )
    if failure:
        return failure
    return _mismatch(root_from_path(alg, index, size, leaf, p), root, "root") or OK


def expected_consistency(
    alg: str, size1: int, size2: int, p: Sequence[bytes], root1: bytes, root2: bytes
) -> Outcome:
    """What ``verify_consistency`` must answer."""
    if size1 < 0:
        return "SizeError", f"size1 {size1} is negative"
    if size1 > size2:
        return "SizeError", f"size1 {size1} is greater than size2 {size2}"
    failure = _hash_lengths([("root1", root1), ("root2", root2)]) or _proof_shape(
        p, proof_length(size1, size2)
    )
    if failure:
        return failure
    if size1 == size2:
        return _mismatch(root1, root2, "root2") or OK
    if size1 == 0:
        return _mismatch(digest(alg, b""), root1, "root1") or OK
    old, new = roots_from_proof(alg, size1, size2, p, root1)
    return _mismatch(old, root1, "root1") or _mismatch(new, root2, "root2") or OK


# The test tree of RFC 6962 implementations (Certificate Transparency, transparency-dev/merkle):
# eight leaf inputs of growing length.
CT_LEAVES: list[bytes] = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

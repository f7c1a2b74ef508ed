"""RFC 9162 (Certificate Transparency v2) Merkle trees, with SHA-256 or SM3.

- :mod:`~tally.merkle.hasher`: ``Hasher`` (empty root, leaf and node hashes), ``SHA256``, ``SM3``;
- :mod:`~tally.merkle.tree`: ``root`` of a list of leaf hashes, and the append-only ``Tree``
  that gives roots, inclusion proofs and consistency proofs for any of its sizes;
- :mod:`~tally.merkle.proof`: ``verify_inclusion`` and ``verify_consistency``, which return
  None or raise, and ``root_from_inclusion_proof``;
- :mod:`~tally.merkle.errors`: ``MerkleError`` and its subclasses.
"""

from __future__ import annotations

from tally.merkle.errors import (
    HashLengthError,
    IndexOutOfRangeError,
    MerkleError,
    ProofSizeError,
    RootMismatchError,
    SizeError,
)
from tally.merkle.hasher import SHA256, SM3, Hasher
from tally.merkle.proof import root_from_inclusion_proof, verify_consistency, verify_inclusion
from tally.merkle.tree import Tree, root

__all__ = [
    "SHA256",
    "SM3",
    "HashLengthError",
    "Hasher",
    "IndexOutOfRangeError",
    "MerkleError",
    "ProofSizeError",
    "RootMismatchError",
    "SizeError",
    "Tree",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

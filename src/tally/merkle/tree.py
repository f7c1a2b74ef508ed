"""RFC 9162 Merkle tree hashes, and an append-only tree that produces proofs.

The Merkle Tree Hash (RFC 9162 §2.1.1) of ``n`` leaf hashes ``D[0:n]`` is::

    MTH({})      = H("")                                  (n = 0)
    MTH(D[0:1])  = D[0]                                   (n = 1; D[i] = H(0x00 || leaf i))
    MTH(D[0:n])  = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  (n > 1; k = largest power of 2 < n)

The same tree is built bottom-up by hashing neighbours in pairs, level by level, and
lifting a level's last node unpaired when the level has an odd count; :func:`root`
does exactly that.

:class:`Tree` keeps every complete subtree hash: ``levels[l][i]`` is the hash of leaves
``[i * 2**l, (i + 1) * 2**l)``. Appending costs amortised O(1) hashes, and the root or a
proof for any earlier size costs O(log n) hashes, since any node of an earlier tree is
the fold of at most ``log2 n`` complete subtrees. Proof elements are ordered from the
leaf upwards, as in RFC 9162 §2.1.3.1 (inclusion) and §2.1.4.1 (consistency).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tally.merkle.errors import HashLengthError, IndexOutOfRangeError, SizeError
from tally.merkle.hasher import SHA256, Hasher

__all__ = ["Tree", "root"]


def root(hasher: Hasher, leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the RFC 9162 Merkle Tree Hash of ``leaf_hashes`` (already leaf-hashed).

    Raises HashLengthError if a leaf hash is not ``hasher.size`` bytes long.
    """
    for i, leaf_hash in enumerate(leaf_hashes):
        if len(leaf_hash) != hasher.size:
            raise HashLengthError(f"leaf hash {i}", len(leaf_hash), hasher.size)
    if not leaf_hashes:
        return hasher.empty_root()
    hash_children = hasher.hash_children
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = list(map(hash_children, level[0::2], level[1::2]))
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class Tree:
    """An append-only RFC 9162 Merkle tree held in memory.

    Leaves are appended as data (hashed with ``H(0x00 || data)``) or as ready leaf
    hashes. The root, inclusion proofs and consistency proofs are available for the
    current size and for every earlier size.
    """

    __slots__ = ("_levels", "hasher")

    def __init__(self, hasher: Hasher = SHA256) -> None:
        self.hasher = hasher
        self._levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        """The number of leaves in the tree."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, data: bytes) -> int:
        """Append a leaf holding ``data``; return its index."""
        return self.append_hash(self.hasher.hash_leaf(data))

    def extend(self, items: Iterable[bytes]) -> None:
        """Append one leaf for each of ``items``, in order."""
        for data in items:
            self.append(data)

    def append_hash(self, leaf_hash: bytes) -> int:
        """Append a leaf given its leaf hash; return its index.

        Raises HashLengthError if ``leaf_hash`` is not ``hasher.size`` bytes long.
        """
        if len(leaf_hash) != self.hasher.size:
            raise HashLengthError("leaf hash", len(leaf_hash), self.hasher.size)
        levels = self._levels
        index = len(levels[0])
        levels[0].append(leaf_hash)
        node, level, position = leaf_hash, 0, index
        while position & 1:  # This node completes a pair: hash it into the level above.
            node = self.hasher.hash_children(levels[level][position - 1], node)
            level += 1
            position >>= 1
            if level == len(levels):
                levels.append([])
            levels[level].append(node)
        return index

    def leaf_hash(self, index: int) -> bytes:
        """Return the leaf hash at ``index``.

        Raises IndexOutOfRangeError unless ``0 <= index < size``.
        """
        if not 0 <= index < self.size:
            raise IndexOutOfRangeError(index, self.size)
        return self._levels[0][index]

    def root(self) -> bytes:
        """Return the root of the tree at its current size."""
        return self._range_hash(0, self.size)

    def root_at(self, size: int) -> bytes:
        """Return the root the tree had when it held ``size`` leaves.

        Raises SizeError unless ``0 <= size <= self.size``.
        """
        self._check_size(size, "size")
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

        ``size`` defaults to the current size. This is ``PATH(index, D[0:size])`` of
        RFC 9162 §2.1.3.1. Raises SizeError unless ``0 <= size <= self.size`` and
        IndexOutOfRangeError unless ``0 <= index < size``.
        """
        size = self.size if size is None else size
        self._check_size(size, "size")
        if not 0 <= index < size:
            raise IndexOutOfRangeError(index, size)
        return self._path(0, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return the proof that the tree of ``size1`` leaves is a prefix of that of ``size2``.

        ``size2`` defaults to the current size. This is ``PROOF(size1, D[0:size2])`` of
        RFC 9162 §2.1.4.1, and empty when ``size1`` is 0 or equals ``size2``. Raises
        SizeError unless ``0 <= size1 <= size2 <= self.size``.
        """
        size2 = self.size if size2 is None else size2
        self._check_size(size2, "size2")
        if not 0 <= size1 <= size2:
            raise SizeError(size1, size2, "size1", "size2")
        if size1 == 0 or size1 == size2:
            return []
        # The last complete subtree of the old tree (level = trailing zero bits of size1)
        # is a node of the new tree too; the proof is that node's inclusion proof in the
        # new tree, preceded by the node itself unless it is the whole old tree.
        level = (size1 & -size1).bit_length() - 1
        index = (size1 - 1) >> level
        proof = self._path(level, index, size2)
        if index != 0:
            proof.insert(0, self._levels[level][index])
        return proof

    def _check_size(self, size: int, name: str) -> None:
        if not 0 <= size <= self.size:
            raise SizeError(size, self.size, name, "tree size")

    def _path(self, level: int, index: int, size: int) -> list[bytes]:
        """Return the siblings of node (``level``, ``index``) up to the root of ``size``."""
        proof: list[bytes] = []
        while (1 << level) < size:  # The node at this level is not yet the root.
            sibling = index ^ 1
            if sibling << level < size:  # A sibling past the end is absent: no hash.
                proof.append(self._node(level, sibling, size))
            index >>= 1
            level += 1
        return proof

    def _node(self, level: int, index: int, size: int) -> bytes:
        """Return the hash of node (``level``, ``index``) in the tree of ``size`` leaves."""
        start = index << level
        return self._range_hash(start, min(start + (1 << level), size))

    def _range_hash(self, start: int, end: int) -> bytes:
        """Return MTH of leaves ``[start, end)``; ``start`` is a multiple of a power of 2
        at least ``end - start``, so the range is one node of the tree of ``end`` leaves.
        """
        count = end - start
        if count == 0:
            return self.hasher.empty_root()
        # Split the range into complete subtrees, largest first, then fold from the right.
        parts: list[bytes] = []
        for level in range(count.bit_length() - 1, -1, -1):
            if count >> level & 1:
                parts.append(self._levels[level][start >> level])
                start += 1 << level
        node = parts.pop()
        while parts:
            node = self.hasher.hash_children(parts.pop(), node)
        return node

"""The Merkle tier's errors. Each says when it is raised and carries its data.

Every error derives from :class:`MerkleError`, so a caller that only needs to know
"this proof does not hold" catches that one class; a caller that needs to tell a
malformed proof from a forged one looks at the subclass::

    MerkleError
    ├── RootMismatchError     the proof is well formed but leads to another root
    ├── ProofSizeError        the proof has too many or too few hashes
    ├── IndexOutOfRangeError  the leaf index is not inside the tree
    ├── SizeError             a tree size is negative or larger than allowed
    └── HashLengthError       a hash has the wrong number of bytes
"""

from __future__ import annotations


class MerkleError(Exception):
    """Base class of every error raised by :mod:`tally.merkle`."""


class RootMismatchError(MerkleError):
    """Raised when the root calculated from a proof differs from the expected root.

    ``expected`` is the root the caller supplied, ``calculated`` the root the proof
    leads to, ``name`` which root was compared (``"root"``, ``"root1"`` or ``"root2"``).
    """

    def __init__(self, expected: bytes, calculated: bytes, name: str = "root") -> None:
        self.expected = expected
        self.calculated = calculated
        self.name = name
        super().__init__(
            f"calculated {name} {calculated.hex()} does not match expected {name} {expected.hex()}"
        )


class ProofSizeError(MerkleError):
    """Raised when a proof holds a different number of hashes than its tree sizes require.

    ``got`` is the number of hashes in the proof, ``want`` the number required.
    """

    def __init__(self, got: int, want: int) -> None:
        self.got = got
        self.want = want
        super().__init__(f"wrong proof size {got}, want {want}")


class IndexOutOfRangeError(MerkleError):
    """Raised when a leaf index is negative or not less than the tree size.

    ``index`` is the leaf index asked for, ``size`` the tree size it must fall within.
    """

    def __init__(self, index: int, size: int) -> None:
        self.index = index
        self.size = size
        super().__init__(f"index {index} out of range for tree size {size}")


class SizeError(MerkleError):
    """Raised when a tree size is negative or exceeds the size it is bounded by.

    Examples: ``size1 > size2`` in a consistency check, or a size beyond the number of
    leaves a tree holds. ``size`` is the offending size and ``name`` what it is called;
    ``limit`` is the bound and ``limit_name`` what that is called.
    """

    def __init__(
        self, size: int, limit: int, name: str = "size", limit_name: str = "tree size"
    ) -> None:
        self.size = size
        self.limit = limit
        self.name = name
        self.limit_name = limit_name
        if size < 0:
            message = f"{name} {size} is negative"
        else:
            message = f"{name} {size} is greater than {limit_name} {limit}"
        super().__init__(message)


class HashLengthError(MerkleError):
    """Raised when a hash (leaf hash, root or proof element) has the wrong length.

    ``name`` says which hash (e.g. ``"proof element 2"``), ``got`` its length in bytes
    and ``want`` the hash function's digest size.
    """

    def __init__(self, name: str, got: int, want: int) -> None:
        self.name = name
        self.got = got
        self.want = want
        super().__init__(f"{name} has {got} bytes, want {want}")

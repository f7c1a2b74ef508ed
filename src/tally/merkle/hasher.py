"""Hash functions for RFC 9162 Merkle trees, with domain separation of leaves and nodes.

Byte layout (RFC 9162 §2.1.1, the same as RFC 6962 §2.1)::

    empty root   = H("")                          the root of a tree with no leaves
    leaf hash    = H(0x00 || data)                data: the leaf's bytes, any length
    node hash    = H(0x01 || left || right)       left, right: two hashes of `size` bytes

The prefix byte keeps a leaf from ever being mistaken for an interior node (a
second-preimage defence). The hash function ``H`` is chosen by name: ``"sha256"``
(RFC 9162's SHA-256) or ``"sm3"`` (GB/T 32905-2016; both produce 32 bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

__all__ = ["SHA256", "SM3", "Hasher"]

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def _sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sm3_digest_function() -> Callable[[bytes], bytes]:
    """Return a one-shot SM3 function: OpenSSL's via hashlib, else ``cryptography``'s."""
    try:
        prototype = hashlib.new("sm3")
    except ValueError:
        from cryptography.hazmat.primitives import hashes

        def crypto_digest(data: bytes) -> bytes:
            context = hashes.Hash(hashes.SM3())
            context.update(data)
            return context.finalize()

        return crypto_digest

    def hashlib_digest(data: bytes) -> bytes:
        context = prototype.copy()
        context.update(data)
        return context.digest()

    return hashlib_digest


class Hasher:
    """One hash function used the RFC 9162 way: empty root, leaf hash, node hash.

    Get one with :meth:`for_name` or use the module's :data:`SHA256` and :data:`SM3`.
    Instances are immutable and compare equal when their names are equal.
    """

    __slots__ = ("_digest", "_empty_root", "name", "size")

    name: str
    size: int

    def __init__(self, name: str, size: int, digest: Callable[[bytes], bytes]) -> None:
        self.name = name
        self.size = size
        self._digest = digest
        self._empty_root = digest(b"")
        if len(self._empty_root) != size:
            raise ValueError(f"{name} produced {len(self._empty_root)} bytes, want {size}")

    @staticmethod
    def for_name(name: str) -> Hasher:
        """Return the hasher called ``name`` (``"sha256"`` or ``"sm3"``).

        Raises ValueError for any other name.
        """
        hasher = _BY_NAME.get(name)
        if hasher is None:
            known = ", ".join(sorted(_BY_NAME))
            raise ValueError(f"unknown Merkle hash {name!r} (known: {known})")
        return hasher

    def empty_root(self) -> bytes:
        """Return the root of the empty tree: ``H("")``."""
        return self._empty_root

    def hash_leaf(self, data: bytes) -> bytes:
        """Return the leaf hash of ``data``: ``H(0x00 || data)``."""
        return self._digest(_LEAF_PREFIX + data)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        """Return the hash of an interior node: ``H(0x01 || left || right)``."""
        return self._digest(_NODE_PREFIX + left + right)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hasher):
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Hasher.for_name({self.name!r})"


SHA256: Final = Hasher("sha256", 32, _sha256_digest)
"""RFC 9162 hashing with SHA-256."""

SM3: Final = Hasher("sm3", 32, _sm3_digest_function())
"""RFC 9162 hashing with SM3."""

_BY_NAME: Final[dict[str, Hasher]] = {SHA256.name: SHA256, SM3.name: SM3}

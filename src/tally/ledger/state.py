"""World state: the current value and version of every key, as a peer's contracts see it.

A peer executes proposals against a :class:`StateView` and commits each block's valid writes
to its :class:`StateStore` in one atomic :meth:`StateStore.apply`, together with the new
height and state commitment (the commitment itself is computed by the peer, see
:func:`tally.ledger.formats.state_step`).

Keys are text of at most :data:`MAX_KEY_BYTES` UTF-8 bytes, without NUL characters or lone
surrogates, compared by their UTF-8 bytes (which for valid text is code point order, Python's
``str`` order; both backends store keys so that SQL sorts them the same way). Values are
stored as their deterministic CBOR (:mod:`tally.crypto.cbor`), at most
:data:`MAX_VALUE_BYTES`, never ``None`` (a write of ``None`` deletes). A version is
``(height, index)`` of the transaction that last wrote the key.

Backends, both behind the same contract test suite:

* :class:`~tally.ledger.state_sqlite.SqliteState` — one SQLite file (WAL, synchronous FULL);
* :class:`~tally.ledger.state_postgres.PostgresState` — tables in one PostgreSQL schema per
  peer, so several peers can share a database.

Before the first block a store has height 0 and the empty commitment ``b""``; the peer then
starts from :func:`tally.ledger.formats.state_zero`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tally.crypto import DecodeError, cbor
from tally.ledger.errors import LedgerError
from tally.ledger.formats import Version

if TYPE_CHECKING:
    from tally.ledger.state_postgres import PostgresState
    from tally.ledger.state_sqlite import SqliteState

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "HeightNotIncreasing",
    "InvalidKey",
    "InvalidValue",
    "PostgresState",
    "SqliteState",
    "StateCorrupt",
    "StateError",
    "StateStore",
    "StateView",
    "Write",
]

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20

Write = tuple[str, Any | None, Version]
"""``(key, value or None to delete, version)`` as given to :meth:`StateStore.apply`."""


class StateView(Protocol):
    """Read access to the world state."""

    def get(self, key: str) -> tuple[Any, Version] | None:
        """The value and version of ``key``, or None if it is absent."""
        ...

    def range(self, prefix: str) -> list[tuple[str, Any, Version]]:
        """Every ``(key, value, version)`` whose key starts with ``prefix``, sorted by key."""
        ...


class StateStore(StateView, Protocol):
    """A peer's durable world state."""

    def height(self) -> int:
        """The height of the last applied block (0 before the first)."""
        ...

    def commitment(self) -> bytes:
        """The state commitment stored with the last applied block (``b""`` before the first)."""
        ...

    def apply(self, height: int, writes: Sequence[Write], commitment: bytes) -> None:
        """Apply ``writes`` in order (a value of None deletes the key), set the height and the
        commitment, all in one transaction: on any error nothing changes and the error is
        raised. Raises :class:`HeightNotIncreasing` if ``height`` is not above
        :meth:`height`, :class:`InvalidKey` / :class:`InvalidValue` for a bad write."""
        ...

    def close(self) -> None:
        """Release the store's connection; later calls fail."""
        ...


class StateError(LedgerError):
    """Base class of the state store's errors."""


class HeightNotIncreasing(StateError):
    """Raised by ``apply`` when ``height`` is not greater than the stored height ``current``
    (a block applied twice or out of order). Nothing is changed."""

    def __init__(self, height: int, current: int) -> None:
        self.height = height
        self.current = current
        super().__init__(f"apply at height {height}, but the state is already at {current}")


class InvalidKey(StateError):
    """Raised when a key is not text, is empty, longer than MAX_KEY_BYTES in UTF-8, or holds
    a NUL character or a lone surrogate. ``key`` is the offending key (its repr if not text)."""

    def __init__(self, key: object, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid state key {key!r}: {reason}")


class InvalidValue(StateError):
    """Raised when a value (or version) to store is not deterministic-CBOR encodable, is
    larger than MAX_VALUE_BYTES, or a version is not ``(height, index)``. ``key`` is the key
    it was written to."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid value for state key {key!r}: {reason}")


class StateCorrupt(StateError):
    """Raised when a stored value does not decode as deterministic CBOR (the database was
    changed behind the store's back). ``key`` names the row."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"state key {key!r} is corrupt: {reason}")


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid state key, else raise :class:`InvalidKey`."""
    if not isinstance(key, str):
        raise InvalidKey(key, f"must be text, got {type(key).__name__}")
    if not key:
        raise InvalidKey(key, "must not be empty")
    if "\x00" in key:
        raise InvalidKey(key, "must not contain NUL")
    try:
        n = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(key, "must not contain lone surrogates") from None
    if n > MAX_KEY_BYTES:
        raise InvalidKey(key, f"{n} UTF-8 bytes, more than {MAX_KEY_BYTES}")
    return key


def check_prefix(prefix: object) -> str:
    """A range prefix: like a key, but may be empty (the whole state)."""
    if prefix == "":
        return ""
    return check_key(prefix)


def check_version(key: str, version: object) -> Version:
    if (
        not isinstance(version, tuple | list)
        or len(version) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in version)
        or not all(0 <= x < 1 << 63 for x in version)
    ):
        raise InvalidValue(key, f"version must be (height, index), got {version!r}")
    return (version[0], version[1])


def encode_value(key: str, value: Any) -> bytes:
    """The stored bytes of ``value``; raise :class:`InvalidValue` if it has none."""
    try:
        data = cbor.encode(value)
    except (ValueError, RecursionError) as exc:
        raise InvalidValue(key, str(exc)) from None
    if len(data) > MAX_VALUE_BYTES:
        raise InvalidValue(key, f"{len(data)} bytes, more than {MAX_VALUE_BYTES}")
    return data


def decode_value(key: str, data: bytes) -> Any:
    try:
        return cbor.decode(bytes(data), where="state value", max_size=MAX_VALUE_BYTES)
    except DecodeError as exc:
        raise StateCorrupt(key, exc.reason) from None


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (code point
    order, skipping surrogates), or None if there is none (empty prefix or all U+10FFFF).
    ``k.startswith(prefix)`` iff ``prefix <= k < prefix_end(prefix)``."""
    p = prefix
    while p and p[-1] == "\U0010ffff":
        p = p[:-1]
    if not p:
        return None
    last = ord(p[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000
    return p[:-1] + chr(last)


def __getattr__(name: str) -> Any:
    # The backends import this module; loading them lazily keeps psycopg out of processes
    # that only use SQLite and avoids an import cycle.
    if name == "SqliteState":
        from tally.ledger.state_sqlite import SqliteState

        return SqliteState
    if name == "PostgresState":
        from tally.ledger.state_postgres import PostgresState

        return PostgresState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The ordering service's interface, and the block-building rules every orderer shares.

An orderer totally orders endorsed transactions into blocks (layout in
:mod:`tally.ledger.formats`). It never looks inside a transaction: it only guarantees

- durability: :meth:`Orderer.submit` returns once the transaction bytes are durably accepted;
  an acknowledged transaction ends up in exactly one block, even across a crash;
- idempotence: the same bytes submitted twice (same suite hash) are ordered once;
- one history: heights run 1, 2, 3, … and there are never two blocks at one height;
  block ``h`` names block ``h - 1``'s hash in ``prev`` (the chain id for height 1).

Peers re-check every transaction, so an orderer can delay but not forge.

Backends: :class:`tally.ledger.solo.SoloOrderer` (embedded, one process, files + fsync).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from tally.crypto import Suite
from tally.ledger.errors import (
    BlockRootMismatch,
    LedgerError,
    UnexpectedHeight,
    WrongBlockChain,
    WrongParent,
)
from tally.ledger.formats import Block
from tally.ledger.genesis import Genesis
from tally.merkle import Hasher, root

__all__ = [
    "BlockLogCorrupt",
    "Orderer",
    "OrdererClosed",
    "OrdererError",
    "OrdererLocked",
    "block_root",
    "build_block",
    "check_block",
    "tx_hash",
]


@runtime_checkable
class Orderer(Protocol):
    """What peers and clients need of an ordering service."""

    async def submit(self, tx: bytes) -> None:
        """Accept transaction CBOR bytes for ordering.

        Returns when the transaction is durably accepted: it will be in exactly one block,
        whatever crashes follow. Submitting bytes already pending or already ordered returns
        at once and orders nothing. Raises :class:`OrdererClosed` after :meth:`close`.
        """
        ...

    def blocks(self, from_height: int) -> AsyncIterator[Block]:
        """Every block of height ``from_height`` (>= 1) and above, in order, forever.

        Replays the durable blocks first, then waits for new ones. Several subscribers may
        iterate at once; each sees the same blocks. The iteration ends when the orderer is
        closed. Raises ValueError if ``from_height < 1``.
        """
        ...

    def height(self) -> int:
        """The height of the last durable block (0 before the first)."""
        ...

    async def close(self) -> None:
        """Stop ordering; subscribers' iterations end. Pending transactions stay durable and
        are ordered when the orderer is opened again."""
        ...


class OrdererError(LedgerError):
    """Base class of the errors an orderer raises."""


class OrdererClosed(OrdererError):
    """Raised by ``submit`` once the orderer is closed or has failed; ``cause`` is the
    failure (an OSError writing a log, say) when it failed rather than closed."""

    def __init__(self, cause: BaseException | None = None) -> None:
        self.cause = cause
        super().__init__(
            "the orderer is closed" if cause is None else f"the orderer failed: {cause!r}"
        )


class OrdererLocked(OrdererError):
    """Raised when opening an orderer whose directory another orderer holds open (two
    writers could put two blocks at one height). ``path`` is the lock file."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is locked by another orderer")


class BlockLogCorrupt(OrdererError):
    """Raised on open when a log file is damaged other than by a torn last record (which is
    dropped with a warning): a bad record followed by more data, a block that does not chain,
    or a file of another kind or chain. ``path`` names the file, ``offset`` the record."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path} at byte {offset}: {reason}")


def tx_hash(suite: Suite, tx: bytes) -> bytes:
    """The identity an orderer deduplicates on: ``H(tx bytes)`` with the suite's hash."""
    return suite.hash(tx)


def block_root(suite: Suite, txs: Sequence[bytes]) -> bytes:
    """The RFC 9162 root over ``txs`` as leaves, with the suite's hash (``H("")`` if empty)."""
    hasher = Hasher.for_name(suite.hash_name)
    return root(hasher, [hasher.hash_leaf(tx) for tx in txs])


def build_block(genesis: Genesis, height: int, prev: bytes, t: int, txs: Sequence[bytes]) -> Block:
    """The block at ``height`` after the block whose hash is ``prev`` (the chain id when
    ``height`` is 1), cut at orderer time ``t`` (ms) with ``txs`` in order."""
    if height < 1:
        raise ValueError(f"block height {height} must be at least 1")
    return Block(
        chain=genesis.chain,
        height=height,
        prev=prev,
        t=t,
        root=block_root(genesis.suite, txs),
        txs=tuple(txs),
    )


def check_block(genesis: Genesis, block: Block, height: int, prev: bytes) -> None:
    """Check that ``block`` is the block at ``height`` following ``prev``.

    Raises WrongBlockChain, UnexpectedHeight, WrongParent or BlockRootMismatch (from
    :mod:`tally.ledger.errors`), in that order of checking.
    """
    chain = genesis.chain
    if block.chain != chain:
        raise WrongBlockChain(block.height, chain, block.chain)
    if block.height != height:
        raise UnexpectedHeight(block.height, height)
    if block.prev != prev:
        raise WrongParent(block.height, prev, block.prev)
    want = block_root(genesis.suite, block.txs)
    if block.root != want:
        raise BlockRootMismatch(block.height, want, block.root)

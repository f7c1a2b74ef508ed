"""The transaction log: every ordered transaction, valid or not, in order, with its Merkle tree.

A checkpoint's ``size`` and ``root`` describe this log (RFC 9162 over the transaction CBOR
bytes as leaves), so anyone holding a checkpoint can be given an inclusion proof of a
transaction, or a consistency proof between two checkpoints.

The log is one append-only file of records, one per block::

    record  = length: u32 big-endian || payload: length bytes || crc32(payload): u32 big-endian
    payload = CBOR([height: uint, block_hash: bstr, txs: [bstr]])

Records are written and fsynced before the block's state is committed; on open a torn last
record (short, or failing its CRC) is dropped, and any other damage raises
:class:`TxLogError`. Heights run 1, 2, 3, … without gaps.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tally.crypto import DecodeError, cbor
from tally.ledger.errors import TxLogError
from tally.merkle import Hasher, Tree

_U32 = struct.Struct(">I")


class TxLog:
    """The persisted transaction log of one peer, with its Merkle tree held in memory."""

    def __init__(self, path: Path, hasher: Hasher) -> None:
        self.path = path
        self.hasher = hasher
        self.tree = Tree(hasher)
        self._txs: list[bytes] = []
        self._hashes: list[bytes] = []  # block hash per height (index height - 1)
        self._sizes: list[int] = []  # log size after each height
        self._offsets: list[int] = []  # file offset where each height's record starts
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+b")  # noqa: SIM115 - held open for the log's lifetime
        try:
            self._load()
        except BaseException:
            self._file.close()
            raise

    # -- reading -------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """The height of the last block in the log (0 when empty)."""
        return len(self._hashes)

    @property
    def size(self) -> int:
        """The number of transactions in the log."""
        return self.tree.size

    @property
    def block_hash(self) -> bytes | None:
        """The hash of the last block in the log, None when empty."""
        return self._hashes[-1] if self._hashes else None

    def block_hash_at(self, height: int) -> bytes:
        self._check_height(height)
        return self._hashes[height - 1]

    def size_at(self, height: int) -> int:
        """The log size after block ``height`` (0 for height 0)."""
        if height == 0:
            return 0
        self._check_height(height)
        return self._sizes[height - 1]

    def root(self) -> bytes:
        return self.tree.root()

    def root_at(self, size: int) -> bytes:
        return self.tree.root_at(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return self.tree.consistency_proof(size1, size2)

    def tx(self, index: int) -> bytes:
        """The transaction CBOR bytes at log position ``index``."""
        return self._txs[index]

    def txs(self) -> Iterator[bytes]:
        return iter(self._txs)

    def _check_height(self, height: int) -> None:
        if not 1 <= height <= self.height:
            raise IndexError(f"height {height} not in the log (1..{self.height})")

    # -- writing -------------------------------------------------------------------------

    def append_block(self, height: int, block_hash: bytes, txs: Sequence[bytes]) -> None:
        """Append block ``height``'s transactions durably (fsync before returning)."""
        if height != self.height + 1:
            raise TxLogError(str(self.path), f"append of height {height} after {self.height}")
        payload = cbor.encode([height, block_hash, list(txs)])
        record = _U32.pack(len(payload)) + payload + _U32.pack(zlib.crc32(payload))
        self._file.seek(0, os.SEEK_END)
        offset = self._file.tell()
        self._file.write(record)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._remember(offset, height, block_hash, txs)

    def truncate(self, height: int) -> None:
        """Drop every block above ``height`` (used when the state is behind the log after a
        crash between the two writes; the blocks are then delivered again)."""
        if height >= self.height:
            return
        if height < 0:
            raise ValueError("height must not be negative")
        self._file.truncate(self._offsets[height])
        self._file.flush()
        os.fsync(self._file.fileno())
        self._hashes = self._hashes[:height]
        self._sizes = self._sizes[:height]
        self._offsets = self._offsets[:height]
        keep = self._sizes[-1] if self._sizes else 0
        self._txs = self._txs[:keep]
        self.tree = Tree(self.hasher)
        for tx in self._txs:
            self.tree.append(tx)

    def close(self) -> None:
        self._file.close()

    # -- recovery ------------------------------------------------------------------------

    def _remember(self, offset: int, height: int, block_hash: bytes, txs: Sequence[bytes]) -> None:
        self._offsets.append(offset)
        self._hashes.append(block_hash)
        for tx in txs:
            self._txs.append(tx)
            self.tree.append(tx)
        self._sizes.append(self.tree.size)

    def _load(self) -> None:
        self._file.seek(0)
        data = self._file.read()
        pos = 0
        where = str(self.path)
        while pos < len(data):
            if pos + 4 > len(data):
                break  # torn length
            (length,) = _U32.unpack_from(data, pos)
            end = pos + 4 + length + 4
            if end > len(data):
                break  # torn record
            payload = data[pos + 4 : pos + 4 + length]
            (crc,) = _U32.unpack_from(data, pos + 4 + length)
            if crc != zlib.crc32(payload):
                if end == len(data):
                    break  # torn last record
                raise TxLogError(where, f"record at offset {pos} fails its CRC")
            height, block_hash, txs = self._decode(payload, pos)
            if height != self.height + 1:
                raise TxLogError(where, f"record at offset {pos} has height {height}, "
                                 f"want {self.height + 1}")  # fmt: skip
            self._remember(pos, height, block_hash, txs)
            pos = end
        if pos < len(data):
            self._file.truncate(pos)
            self._file.flush()
            os.fsync(self._file.fileno())

    def _decode(self, payload: bytes, pos: int) -> tuple[int, bytes, list[bytes]]:
        try:
            obj: Any = cbor.decode(payload, where="transaction log record")
        except DecodeError as exc:
            raise TxLogError(str(self.path), f"record at offset {pos}: {exc}") from None
        if (
            not isinstance(obj, list)
            or len(obj) != 3
            or not isinstance(obj[0], int)
            or not isinstance(obj[1], bytes)
            or not isinstance(obj[2], list)
            or not all(isinstance(t, bytes) for t in obj[2])
        ):
            raise TxLogError(str(self.path), f"record at offset {pos} is not [height, hash, txs]")
        return obj[0], obj[1], obj[2]

"""The solo orderer: one process orders every transaction, durably, with files and fsync.

Directory layout::

    LOCK          held (flock) while an orderer has the directory open: one writer only
    blocks.log    the chain: "TLYBLK01" then one record per block, heights 1, 2, 3, …
    pending.log   accepted, not yet ordered: "TLYPND01" then one record per transaction

    record  = length: u32 big-endian || payload: length bytes || crc32(payload): u32 big-endian

A ``blocks.log`` payload is the block's CBOR (:meth:`tally.ledger.formats.Block.to_cbor`), a
``pending.log`` payload the transaction's bytes. Records are only ever appended, each write
followed by fsync, so only the last record can be torn by a crash. On open both files are
scanned: a torn last record (short, zero-filled or failing its CRC) is cut off with a
warning; any other damage, or a block that does not chain, raises
:class:`~tally.ledger.orderer.BlockLogCorrupt`.

``submit`` appends to ``pending.log`` (batched: concurrent submits share one fsync) and
returns after the fsync. A block is cut when ``ordering.max_txs`` are pending or
``ordering.max_ms`` have passed on the orderer's clock since the oldest pending one arrived;
it is appended to ``blocks.log`` and fsynced before anyone sees it, then ``pending.log`` is
rewritten with what remains. A crash between the two leaves ordered transactions in
``pending.log``; they are recognised by hash on open (the set of ordered hashes is rebuilt
from ``blocks.log``) and not ordered again. Block ``t`` is the orderer clock in ms, never
less than the previous block's ``t``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

from tally.crypto import DecodeError
from tally.ledger.errors import BlockRejected
from tally.ledger.formats import Block, decode_block
from tally.ledger.genesis import Genesis
from tally.ledger.orderer import (
    BlockLogCorrupt,
    OrdererClosed,
    OrdererLocked,
    build_block,
    check_block,
    tx_hash,
)

__all__ = ["MAX_BLOCK_BYTES", "MAX_TX_BYTES", "SoloOrderer", "wall_clock_ms"]

log = logging.getLogger(__name__)

MAGIC_BLOCKS = b"TLYBLK01"
MAGIC_PENDING = b"TLYPND01"
MAX_TX_BYTES = 16 << 20
"""The largest transaction ``submit`` accepts."""
MAX_BLOCK_BYTES = 32 << 20
"""A block is cut before its transactions exceed this many bytes (unless it holds one)."""
_MAX_RECORD = 64 << 20
_U32 = struct.Struct(">I")
_RECENT = 64


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch: the default orderer clock."""
    return time.time_ns() // 1_000_000


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _frame(payload: bytes) -> bytes:
    return _U32.pack(len(payload)) + payload + _U32.pack(zlib.crc32(payload))


class _RecordFile:
    """An append-only file of CRC-checked records behind a magic header (layout above)."""

    def __init__(self, path: Path, magic: bytes) -> None:
        self.path = path
        self.magic = magic
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.end = os.fstat(self._fd).st_size
        head = os.pread(self._fd, len(magic), 0)
        if self.end < len(magic):  # new, or torn while being created
            if head != magic[: len(head)] and head.strip(b"\0"):
                raise BlockLogCorrupt(str(path), 0, f"not a {magic.decode()} file")
            os.ftruncate(self._fd, 0)
            _write_all(self._fd, magic)
            os.fsync(self._fd)
            _fsync_dir(path.parent)
            self.end = len(magic)
        elif head != magic:
            raise BlockLogCorrupt(str(path), 0, f"not a {magic.decode()} file")

    def records(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(offset, payload)`` of every record; cut off a torn last record."""
        size = os.fstat(self._fd).st_size
        with open(self.path, "rb") as f:
            f.seek(len(self.magic))
            off = len(self.magic)
            while off < size:
                hdr = f.read(4)
                n = _U32.unpack(hdr)[0] if len(hdr) == 4 else -1
                end = off + 8 + n
                if n < 0:
                    bad, torn = "a length cut short", True
                elif n == 0 or n > _MAX_RECORD:
                    bad, torn = f"impossible length {n}", False
                elif end > size:
                    bad, torn = f"a {n}-byte record cut short at the end of the file", True
                else:
                    payload = f.read(n)
                    if zlib.crc32(payload) == _U32.unpack(f.read(4))[0]:
                        yield off, payload
                        off = end
                        continue
                    bad, torn = "a checksum mismatch", end == size
                if not torn and not self._zeros_from(off, size):
                    raise BlockLogCorrupt(str(self.path), off, f"{bad}, with data after it")
                log.warning(
                    "%s: dropping a torn last record at byte %d (%d bytes): %s",
                    self.path, off, size - off, bad,
                )  # fmt: skip
                os.ftruncate(self._fd, off)
                os.fsync(self._fd)
                size = off
        self.end = size

    def _zeros_from(self, off: int, size: int) -> bool:
        while off < size:
            chunk = os.pread(self._fd, min(1 << 20, size - off), off)
            if not chunk or chunk.strip(b"\0"):
                return False
            off += len(chunk)
        return True

    def read(self, offset: int) -> bytes:
        """The payload of the (already verified) record at ``offset``."""
        n = _U32.unpack(os.pread(self._fd, 4, offset))[0]
        return os.pread(self._fd, n, offset + 4)

    def append(self, payloads: Sequence[bytes]) -> list[int]:
        """Append records and fsync; return their offsets."""
        offsets, frames, at = [], [], self.end
        for p in payloads:
            offsets.append(at)
            frames.append(_frame(p))
            at += len(frames[-1])
        _write_all(self._fd, b"".join(frames))
        os.fsync(self._fd)
        self.end = at
        return offsets

    def replace(self, payloads: Sequence[bytes]) -> None:
        """Atomically make ``payloads`` the file's only records."""
        if not payloads:
            os.ftruncate(self._fd, len(self.magic))
            os.fsync(self._fd)
            self.end = len(self.magic)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = self.magic + b"".join(_frame(p) for p in payloads)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self.end = len(data)

    def close(self) -> None:
        os.close(self._fd)


class SoloOrderer:
    """The embedded :class:`~tally.ledger.orderer.Orderer`: one process, one directory.

    Opening recovers the directory (see the module docstring) and raises OrdererLocked if
    another orderer holds it, BlockLogCorrupt if it is damaged beyond a torn last record.
    Transactions left pending by a previous run are ordered as soon as an event loop runs
    the orderer (opened inside one, or at the first ``submit``/``blocks`` call).
    ``clock`` returns milliseconds; it stamps blocks and times ``max_ms`` (the timer sleeps,
    in real time, for as many ms as the clock says remain, then asks the clock again).
    """

    def __init__(
        self,
        genesis: Genesis,
        directory: Path | str,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._genesis = genesis
        self._suite = genesis.suite
        self._chain = genesis.chain
        self._clock = clock
        self._max_txs = genesis.ordering.max_txs
        self._max_ms = genesis.ordering.max_ms
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        lock_path = self._dir / "LOCK"
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OrdererLocked(str(lock_path)) from None
        self._height = 0
        self._last_hash = self._chain
        self._last_t = 0
        self._offsets: list[int] = []
        self._recent: dict[int, Block] = {}
        self._ordered: set[bytes] = set()
        self._pending: dict[bytes, tuple[bytes, int]] = {}  # hash -> (tx, arrived ms)
        self._pending_bytes = 0
        self._queue: list[tuple[bytes, bytes]] = []  # submitted, not yet in pending.log
        self._inflight: dict[bytes, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._cond = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ended = False
        self._released = False
        self._failure: BaseException | None = None
        try:
            self._block_log = _RecordFile(self._dir / "blocks.log", MAGIC_BLOCKS)
            self._pending_log = _RecordFile(self._dir / "pending.log", MAGIC_PENDING)
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._start()

    # --- recovery ---------------------------------------------------------------------

    def _recover(self) -> None:
        path = str(self._block_log.path)
        for off, payload in self._block_log.records():
            try:
                block = decode_block(payload, max_size=_MAX_RECORD)
                check_block(self._genesis, block, self._height + 1, self._last_hash)
            except (DecodeError, BlockRejected) as exc:
                raise BlockLogCorrupt(path, off, str(exc)) from exc
            self._offsets.append(off)
            self._height = block.height
            self._last_hash = block.hash(self._suite)
            self._last_t = block.t
            self._ordered.update(tx_hash(self._suite, tx) for tx in block.txs)
        now = self._clock()
        seen = 0
        for _, tx in self._pending_log.records():
            seen += 1
            h = tx_hash(self._suite, tx)
            if h not in self._ordered and h not in self._pending:
                self._pending[h] = (tx, now)
                self._pending_bytes += len(tx)
        if seen != len(self._pending):  # drop what is ordered or repeated
            self._pending_log.replace([tx for tx, _ in self._pending.values()])
        if self._height or self._pending:
            log.info(
                "solo orderer %s: height %d, %d pending",
                self._dir, self._height, len(self._pending),
            )  # fmt: skip

    # --- the Orderer interface --------------------------------------------------------

    async def submit(self, tx: bytes) -> None:
        """See :meth:`tally.ledger.orderer.Orderer.submit`. Raises ValueError for a
        transaction over :data:`MAX_TX_BYTES` or that is not bytes."""
        if self._closing or self._failure is not None:
            raise OrdererClosed(self._failure)
        if not isinstance(tx, bytes) or not tx or len(tx) > MAX_TX_BYTES:
            raise ValueError(f"a transaction is 1 to {MAX_TX_BYTES} bytes")
        h = tx_hash(self._suite, tx)
        if h in self._ordered or h in self._pending:
            return
        fut = self._inflight.get(h)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[h] = fut
            self._queue.append((h, tx))
            self._start()
            self._wake.set()
        await asyncio.shield(fut)

    def blocks(self, from_height: int) -> AsyncIterator[Block]:
        """See :meth:`tally.ledger.orderer.Orderer.blocks`. The iteration raises
        OrdererClosed if the orderer fails (rather than closes)."""
        if from_height < 1:
            raise ValueError(f"blocks start at height 1, not {from_height}")
        if not self._closing:
            self._start()
        return self._follow(from_height)

    def height(self) -> int:
        return self._height

    def pending(self) -> int:
        """How many accepted transactions are not yet in a block."""
        return len(self._pending) + len(self._queue)

    async def close(self) -> None:
        """See :meth:`tally.ledger.orderer.Orderer.close`. Waits for acknowledged work in
        flight, then releases the directory."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._wake.set()
            await asyncio.shield(self._task)
        await self._end()
        self._released = True
        self._block_log.close()
        self._pending_log.close()
        os.close(self._lock_fd)

    # --- the sequencer task: persists submits, cuts blocks ------------------------------

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"solo-orderer {self._dir}"
            )

    def _due_in_ms(self) -> int:
        first = next(iter(self._pending.values()))[1]
        return first + self._max_ms - self._clock()

    def _full(self) -> bool:
        return len(self._pending) >= self._max_txs or self._pending_bytes >= MAX_BLOCK_BYTES

    async def _run(self) -> None:
        try:
            while True:
                if self._queue:
                    await self._persist()
                while self._full():
                    await self._cut()
                if self._pending and self._due_in_ms() <= 0:
                    await self._cut()
                    continue
                if self._queue:
                    continue
                if self._closing:
                    return
                self._wake.clear()
                timeout = max(self._due_in_ms(), 1) / 1000 if self._pending else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        except Exception as exc:  # a failed write: stop rather than risk a second history
            log.error("solo orderer %s failed: %r", self._dir, exc)
            self._failure = exc
            for fut in self._inflight.values():
                if not fut.done():
                    fut.set_exception(OrdererClosed(exc))
            self._inflight.clear()
            self._queue.clear()
            await self._end()

    async def _persist(self) -> None:
        batch, self._queue = self._queue, []
        await asyncio.to_thread(self._pending_log.append, [tx for _, tx in batch])
        now = self._clock()
        for h, tx in batch:
            self._pending[h] = (tx, now)
            self._pending_bytes += len(tx)
            fut = self._inflight.pop(h)
            if not fut.done():
                fut.set_result(None)

    async def _cut(self) -> None:
        taken: list[tuple[bytes, bytes]] = []
        size = 0
        for h, (tx, _) in self._pending.items():
            if len(taken) == self._max_txs or (taken and size + len(tx) > MAX_BLOCK_BYTES):
                break
            taken.append((h, tx))
            size += len(tx)
        t = max(self._clock(), self._last_t)
        block = build_block(
            self._genesis, self._height + 1, self._last_hash, t, [tx for _, tx in taken]
        )
        (offset,) = await asyncio.to_thread(self._block_log.append, [block.to_cbor()])
        self._offsets.append(offset)
        self._height = block.height
        self._last_hash = block.hash(self._suite)
        self._last_t = t
        self._recent[block.height] = block
        self._recent.pop(block.height - _RECENT, None)
        for h, tx in taken:
            self._ordered.add(h)
            del self._pending[h]
            self._pending_bytes -= len(tx)
        async with self._cond:
            self._cond.notify_all()
        remaining = [tx for tx, _ in self._pending.values()]
        await asyncio.to_thread(self._pending_log.replace, remaining)

    async def _end(self) -> None:
        self._ended = True
        async with self._cond:
            self._cond.notify_all()

    # --- subscribers --------------------------------------------------------------------

    def _block_at(self, height: int) -> Block:
        block = self._recent.get(height)
        if block is None:
            payload = self._block_log.read(self._offsets[height - 1])
            block = decode_block(payload, max_size=_MAX_RECORD)
        return block

    def _reached(self, height: int) -> bool:
        return self._height >= height or self._ended

    async def _follow(self, height: int) -> AsyncIterator[Block]:
        while not self._released:
            if height <= self._height:
                yield self._block_at(height)
                height += 1
                continue
            if self._ended:
                break
            async with self._cond:
                await self._cond.wait_for(functools.partial(self._reached, height))
        if self._failure is not None:
            raise OrdererClosed(self._failure)

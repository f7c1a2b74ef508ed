"""The JetStream orderer: transactions and blocks kept in NATS JetStream streams, replicated
by Raft over 3 (or 5) servers that fsync every write (``sync_interval: always``).

Two streams per chain (``P`` = ``TALLY_<first 16 hex digits of the chain id>``, or the
``stream`` argument; ``S`` = ``P`` in lower case)::

    P_TX      subject S.tx      one message per transaction: the transaction's CBOR bytes;
                                header Nats-Msg-Id = hex of the suite hash of those bytes
    P_BLOCKS  subject S.blocks  one message per block: the block's CBOR
                                (:meth:`tally.ledger.formats.Block.to_cbor`); block h is
                                stream sequence h; headers
                                  Tally-Height:  h
                                  Tally-Tx-First, Tally-Tx-Last: the P_TX sequences the block
                                    covers (inclusive; the first is the previous block's last
                                    + 1, so consecutive blocks cover the TX stream without gap
                                    or overlap)

Both streams are file-backed with ``replicas`` copies (3 by default; 1 on a server that is not
clustered) and keep every message. ``submit`` publishes to ``P_TX`` and returns after the
PubAck, i.e. once the stream's Raft group has stored (and, with ``sync_interval: always``,
synced) the message on a majority. JetStream drops a message whose Nats-Msg-Id it has seen
within ``duplicate_window`` and acknowledges it again, so a repeated submit is ordered once.

The block cutter (run by every instance opened with ``cut=True``; several may run at once)
reads ``P_TX`` in sequence order from the last block's Tally-Tx-Last + 1, cuts a block at
``ordering.max_txs`` transactions, at the largest message the servers accept, or when
``ordering.max_ms`` (on the cutter's clock) have passed since the block's first transaction
arrived, and publishes it with ``Nats-Expected-Last-Sequence: h - 1``. The stream refuses the
publish if any block h already exists, so two cutters never both publish a block at one
height: the loser reads the winner's blocks and carries on after them. A transaction whose
hash is in a block the cutter has seen is skipped (still covered by the range); repeats older
than both this memory and JetStream's window reach a block again and peers mark them
``duplicate_tx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors as jse
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from tally.crypto import DecodeError
from tally.ledger.errors import BlockRejected
from tally.ledger.formats import Block, decode_block
from tally.ledger.genesis import Genesis
from tally.ledger.orderer import OrdererClosed, OrdererError, build_block, check_block, tx_hash
from tally.ledger.solo import wall_clock_ms

__all__ = ["BlockStreamCorrupt", "JetStreamOrderer", "OrdererUnavailable"]

log = logging.getLogger(__name__)

H_EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
H_MSG_ID = "Nats-Msg-Id"
H_HEIGHT = "Tally-Height"
H_TX_FIRST = "Tally-Tx-First"
H_TX_LAST = "Tally-Tx-Last"

_ERR_WRONG_LAST_SEQ = 10071
_ERR_STREAM_NAME_IN_USE = 10058
_ERR_NOT_CLUSTERED = 10074
_ERR_MSG_ID_IN_PROCESS = 10158
"""The same Nats-Msg-Id is being stored right now: retrying gets the duplicate's PubAck."""
_ERR_NO_PLACEMENT = 10005
"""No suitable peers for a replicated stream (e.g. a server just restarted and not yet seen
online by the meta leader): retrying succeeds once the cluster has its servers back."""
_BLOCK_OVERHEAD = 1024
"""Bytes kept free in a block message for its header fields and CBOR framing."""
_PUBLISH_TIMEOUT = 2.0
"""Seconds to wait for one PubAck; a publish in flight when a connection drops is never
answered, so this bounds the stall before the retry (submit) or catching up (cutter)."""
_IDLE_WAIT = 0.5
_PROBE_AFTER = 2.0
_REMEMBERED = 100_000


class OrdererUnavailable(OrdererError):
    """Raised by ``submit`` (or opening) when the servers did not accept the operation before
    the deadline; ``cause`` is the last transient error, ``waited`` the seconds spent."""

    def __init__(self, what: str, cause: BaseException, waited: float) -> None:
        self.cause = cause
        self.waited = waited
        super().__init__(f"{what}: no success within {waited:.1f} s; last error {cause!r}")


class BlockStreamCorrupt(OrdererError):
    """Raised when a message of the blocks stream is not the block expected at its sequence
    (undecodable, another chain, wrong height, not chaining); ``stream``, ``seq``, ``reason``."""

    def __init__(self, stream: str, seq: int, reason: str) -> None:
        self.stream = stream
        self.seq = seq
        self.reason = reason
        super().__init__(f"stream {stream} message {seq}: {reason}")


def _transient(exc: BaseException) -> bool:
    """Whether retrying may succeed (a server down, a leader election, a lost connection)."""
    if isinstance(exc, jse.APIError):
        if exc.err_code in (_ERR_MSG_ID_IN_PROCESS, _ERR_NO_PLACEMENT):
            return True
        return isinstance(exc, jse.ServiceUnavailableError | jse.ServerError) or exc.code in (
            408,
            500,
            503,
        )
    return isinstance(exc, nats.errors.Error | TimeoutError | OSError)


class _NoLeaderYet(nats.errors.Error):
    """A stream has no Raft leader yet (just created, or electing): retried."""


class _Resync(Exception):
    """The cutter's view is stale (it lost a race, or a publish's outcome is unknown)."""


class _Reader:
    """Reads one stream in sequence order from ``next``, through an ephemeral pull consumer
    that is recreated (from the next unread sequence) whenever it is lost or skips."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        start: int,
        headers_only: bool = False,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.next = start
        self.headers_only = headers_only
        self._name: str | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._idle = 0.0

    async def _open(self) -> None:
        cfg = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
            headers_only=self.headers_only or None,
        )
        info = await self.js.add_consumer(self.stream, config=cfg)
        self._name = info.name
        self._sub = await self.js.pull_subscribe_bind(consumer=info.name, stream=self.stream)
        self._idle = 0.0

    async def close(self) -> None:
        sub, name, self._sub, self._name = self._sub, self._name, None, None
        with contextlib.suppress(Exception):
            if sub is not None:
                await sub.unsubscribe()
            if name is not None:
                await asyncio.wait_for(self.js.delete_consumer(self.stream, name), 1.0)

    async def batch(self, n: int, timeout: float) -> list[tuple[int, Msg]]:
        """Up to ``n`` messages with consecutive sequences from ``next`` (possibly none after
        ``timeout`` seconds). Transient errors are absorbed: the consumer is recreated."""
        try:
            if self._sub is None:
                await self._open()
            assert self._sub is not None
            try:
                msgs = await self._sub.fetch(max(n, 1), timeout=max(timeout, 0.005))
            except TimeoutError:
                self._idle += timeout
                if self._idle >= _PROBE_AFTER:
                    self._idle = 0.0
                    assert self._name is not None
                    await asyncio.wait_for(self.js.consumer_info(self.stream, self._name), 2.0)
                return []
        except Exception as exc:
            if not _transient(exc) and not isinstance(exc, jse.NotFoundError):
                raise
            log.debug("reader of %s at %d: %r; recreating", self.stream, self.next, exc)
            await self.close()
            await asyncio.sleep(0.05)  # do not spin while the servers are unreachable
            return []
        self._idle = 0.0
        out: list[tuple[int, Msg]] = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq < self.next:
                continue
            if seq > self.next:  # a gap: start again from what is missing
                log.warning("reader of %s expected %d, got %d", self.stream, self.next, seq)
                await self.close()
                break
            out.append((seq, m))
            self.next += 1
        return out


class JetStreamOrderer:
    """An :class:`~tally.ledger.orderer.Orderer` over a NATS JetStream cluster (streams and
    block cutting in the module docstring).

    ``servers`` are client URLs of the cluster (``nats://host:port``); ``stream`` overrides
    the streams' name prefix; ``clock`` returns ms and stamps blocks and times ``max_ms``;
    ``cut`` runs a block cutter in this instance; ``replicas`` (None: 3, or 1 on a server
    that is not clustered) and ``duplicate_window`` (seconds) apply when the streams are
    created; ``timeout`` bounds the retries of ``submit`` and of opening, in seconds;
    ``tls`` is the client context for servers that speak TLS (``tls://`` URLs; with mutual
    TLS it presents the client certificate: :func:`tally.crypto.tlsconf.client_tls`).

    The connection is opened by :meth:`start` (or the first ``submit``/``blocks`` call, or
    ``async with``), which creates the streams if missing and reads the last block.
    """

    def __init__(
        self,
        genesis: Genesis,
        servers: Sequence[str],
        stream: str | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        *,
        cut: bool = True,
        replicas: int | None = None,
        duplicate_window: float = 600.0,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not servers:
            raise ValueError("at least one server URL is needed")
        self._genesis = genesis
        self._suite = genesis.suite
        self._chain = genesis.chain
        self._servers = list(servers)
        self._tls = tls
        prefix = stream or f"TALLY_{self._chain.hex()[:16].upper()}"
        self.tx_stream = f"{prefix}_TX"
        self.block_stream = f"{prefix}_BLOCKS"
        self.tx_subject = f"{prefix.lower()}.tx"
        self.block_subject = f"{prefix.lower()}.blocks"
        self._clock = clock
        self._cut = cut
        self._replicas = replicas
        self._duplicate_window = duplicate_window
        self._timeout = timeout
        self._max_txs = genesis.ordering.max_txs
        self._max_ms = genesis.ordering.max_ms
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closing = False
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._known = 0  # the highest block height this instance has seen stored
        # the cutter's view of the chain's tip (changed only by _adopt)
        self._height = 0
        self._last_hash = self._chain
        self._last_t = 0
        self._next_tx = 1
        self._ordered: OrderedDict[bytes, None] = OrderedDict()
        self.blocks_published = 0
        """Blocks this instance's cutter published (won the race for)."""
        self.blocks_refused = 0
        """Blocks the stream refused because another cutter stored that height first."""

    # --- opening ------------------------------------------------------------------------

    async def __aenter__(self) -> JetStreamOrderer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, create the streams if missing, read the last block and start the cutter.
        Idempotent. Raises OrdererUnavailable if the servers do not answer in time,
        BlockStreamCorrupt if the last block is not this chain's."""
        async with self._start_lock:
            if self._closing:
                raise OrdererClosed(self._failure)
            if self._started:
                return
            self._nc = await self._connect()
            self._js = self._nc.jetstream(timeout=_PUBLISH_TIMEOUT)
            try:
                await self._retry("opening the streams", self._ensure_streams)
                await self._retry("reading the last block", self._load_tip)
            except BaseException:
                await self._nc.close()
                raise
            self._started = True
            run = self._cutter() if self._cut else self._watch_tip()
            self._task = asyncio.get_running_loop().create_task(
                run, name=f"orderer {self.block_stream}"
            )

    async def _connect(self) -> Client:
        """A client that reconnects forever once connected; the first connection must
        succeed within ``timeout`` (else OrdererUnavailable)."""
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    self._servers,
                    name="tally-orderer",
                    connect_timeout=2,
                    reconnect_time_wait=0.2,  # type: ignore[arg-type]  # seconds; a float works
                    max_reconnect_attempts=-1,
                    tls=self._tls,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                ),
                self._timeout,
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            if isinstance(exc, nats.errors.Error | TimeoutError | OSError):
                cause = nc.last_error or exc
                raise OrdererUnavailable("connecting", cause, self._timeout) from exc
            raise
        return nc

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats connection error: %r", exc)

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.info("orderer %s: disconnected from a server; reconnecting", self.block_stream)

    async def _retry(self, what: str, op: Callable[[], Any]) -> Any:
        began = time.monotonic()
        delay = 0.05
        while True:
            try:
                return await op()
            except Exception as exc:
                if self._closing:
                    raise OrdererClosed(self._failure) from exc
                if not _transient(exc):
                    raise
                waited = time.monotonic() - began
                log.debug("%s: %r after %.2f s; retrying", what, exc, waited)
                if waited >= self._timeout:
                    raise OrdererUnavailable(what, exc, waited) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _ensure_streams(self) -> None:
        assert self._js is not None
        chain = self._chain.hex()
        for name, subject, window, kind in (
            (self.tx_stream, self.tx_subject, self._duplicate_window, "transactions"),
            (self.block_stream, self.block_subject, None, "blocks"),
        ):
            description = f"tally ledger {kind} of chain {chain}"
            try:
                info = await self._js.stream_info(name)
            except jse.NotFoundError:
                info = await self._add_stream(name, subject, window, description)
            if info.config.description != description:
                raise OrdererError(f"stream {name} is not the {kind} stream of chain {chain}")
            if info.cluster is not None and not info.cluster.leader:
                raise _NoLeaderYet(name)

    async def _add_stream(
        self, name: str, subject: str, window: float | None, description: str
    ) -> Any:
        assert self._js is not None
        replicas = self._replicas or 3
        while True:
            cfg = StreamConfig(
                name=name,
                description=description,
                subjects=[subject],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=window or 120.0,
            )
            try:
                return await self._js.add_stream(cfg)
            except jse.APIError as exc:
                if exc.err_code == _ERR_STREAM_NAME_IN_USE:  # another instance made it
                    return await self._js.stream_info(name)
                if exc.err_code == _ERR_NOT_CLUSTERED and self._replicas is None and replicas > 1:
                    replicas = 1
                    continue
                raise

    async def _load_tip(self) -> None:
        assert self._js is not None
        info = await self._js.stream_info(self.block_stream)
        last = info.state.last_seq
        if last == 0:
            return
        block, tx_last = await self._read_block(last)
        self._adopt(block, tx_last)

    async def _read_block(self, seq: int) -> tuple[Block, int]:
        """Block ``seq`` of the blocks stream and its Tally-Tx-Last."""
        assert self._js is not None
        raw = await self._js.get_msg(self.block_stream, seq)
        try:
            block = decode_block(raw.data or b"")
            tx_last = int((raw.headers or {})[H_TX_LAST])
        except (DecodeError, KeyError, ValueError) as exc:
            raise BlockStreamCorrupt(self.block_stream, seq, repr(exc)) from exc
        if block.chain != self._chain or block.height != seq:
            raise BlockStreamCorrupt(
                self.block_stream, seq, "not this chain's block at that height"
            )
        return block, tx_last

    def _adopt(self, block: Block, tx_last: int) -> None:
        self._height = block.height
        self._known = max(self._known, block.height)
        self._last_hash = block.hash(self._suite)
        self._last_t = block.t
        self._next_tx = tx_last + 1
        for tx in block.txs:
            self._ordered[tx_hash(self._suite, tx)] = None
        while len(self._ordered) > _REMEMBERED:
            self._ordered.popitem(last=False)

    # --- the Orderer interface ----------------------------------------------------------

    def _max_tx_bytes(self) -> int:
        assert self._nc is not None
        return max(self._nc.max_payload - _BLOCK_OVERHEAD, 1)

    async def submit(self, tx: bytes) -> None:
        """See :meth:`tally.ledger.orderer.Orderer.submit`. Transient failures (a server or
        the stream leader down, a reconnect) are retried for ``timeout`` seconds, then
        OrdererUnavailable. Raises ValueError for a transaction that is not bytes or larger
        than the servers' ``max_payload`` less 1 KiB."""
        if self._closing or self._failure is not None:
            raise OrdererClosed(self._failure)
        await self.start()
        if not isinstance(tx, bytes) or not tx or len(tx) > self._max_tx_bytes():
            raise ValueError(f"a transaction is 1 to {self._max_tx_bytes()} bytes")
        msg_id = tx_hash(self._suite, tx).hex()
        js = self._js
        assert js is not None

        async def publish() -> None:
            await js.publish(
                self.tx_subject,
                tx,
                timeout=_PUBLISH_TIMEOUT,
                stream=self.tx_stream,
                headers={H_MSG_ID: msg_id},
            )

        await self._retry("submitting a transaction", publish)

    def blocks(self, from_height: int) -> AsyncIterator[Block]:
        """See :meth:`tally.ledger.orderer.Orderer.blocks`. Raises BlockStreamCorrupt from
        the iteration if a stored block is not the one expected at its height."""
        if from_height < 1:
            raise ValueError(f"blocks start at height 1, not {from_height}")
        return self._follow(from_height)

    def height(self) -> int:
        """The height of the last block this instance knows to be stored (its cutter's, or
        the latest block it has read)."""
        return self._known

    async def close(self) -> None:
        """See :meth:`tally.ledger.orderer.Orderer.close`. A block being cut is abandoned
        (its transactions stay in the stream for the next cutter)."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    # --- followers ----------------------------------------------------------------------

    async def _follow(self, height: int) -> AsyncIterator[Block]:
        if self._closing:
            return
        await self.start()
        assert self._js is not None
        reader = _Reader(self._js, self.block_stream, self.block_subject, height)
        prev: bytes | None = None
        try:
            while not self._closing:
                for seq, m in await reader.batch(64, _IDLE_WAIT):
                    try:
                        block = decode_block(m.data)
                        check_block(self._genesis, block, seq, prev or block.prev)
                    except (DecodeError, BlockRejected) as exc:
                        raise BlockStreamCorrupt(self.block_stream, seq, str(exc)) from exc
                    prev = block.hash(self._suite)
                    self._known = max(self._known, seq)
                    yield block
        finally:
            await reader.close()

    async def _watch_tip(self) -> None:
        """Keep ``height()`` current on an instance that does not cut."""
        assert self._js is not None
        reader = _Reader(
            self._js, self.block_stream, self.block_subject, self._height + 1, headers_only=True
        )
        try:
            while not self._closing:
                got = await reader.batch(256, _IDLE_WAIT)
                if got:
                    self._known = max(self._known, got[-1][0])
        finally:
            await reader.close()

    # --- the block cutter ---------------------------------------------------------------

    async def _cutter(self) -> None:
        while not self._closing:
            try:
                await self._catch_up()
                await self._cut_from_tip()
            except _Resync:
                continue
            except BlockStreamCorrupt as exc:
                log.error("orderer %s stops: %s", self.block_stream, exc)
                self._failure = exc
                return
            except Exception as exc:
                if not _transient(exc):
                    log.error("orderer %s cutter failed: %r", self.block_stream, exc)
                    self._failure = exc
                    return
                log.info("orderer %s cutter: %r; resuming", self.block_stream, exc)
                await asyncio.sleep(0.1)

    async def _catch_up(self) -> None:
        """Adopt every block stored after the cutter's view (another cutter's)."""
        assert self._js is not None
        info = await self._js.stream_info(self.block_stream)
        last = info.state.last_seq
        if last < self._height:
            raise BlockStreamCorrupt(self.block_stream, last, f"stream ends below {self._height}")
        for seq in range(self._height + 1, last + 1):
            block, tx_last = await self._read_block(seq)
            try:
                check_block(self._genesis, block, seq, self._last_hash)
            except BlockRejected as exc:
                raise BlockStreamCorrupt(self.block_stream, seq, str(exc)) from exc
            self._adopt(block, tx_last)

    async def _cut_from_tip(self) -> None:
        assert self._js is not None
        reader = _Reader(self._js, self.tx_stream, self.tx_subject, self._next_tx)
        budget = self._max_tx_bytes()
        txs: list[bytes] = []
        hashes: set[bytes] = set()
        size = 0
        first_ms = 0
        try:
            while not self._closing:
                wait = max(first_ms + self._max_ms - self._clock(), 1) / 1000 if txs else _IDLE_WAIT
                got = await reader.batch(min(self._max_txs - len(txs), 256), wait)
                for seq, m in got:
                    tx = m.data
                    h = tx_hash(self._suite, tx)
                    if h in self._ordered or h in hashes:
                        continue  # a repeat: covered by this block's range, not ordered again
                    if txs and size + len(tx) + 16 > budget:
                        await self._publish(txs, seq - 1)
                        txs, hashes, size = [], set(), 0
                    if not txs:
                        first_ms = self._clock()
                    txs.append(tx)
                    hashes.add(h)
                    size += len(tx) + 16
                    if len(txs) >= self._max_txs:
                        await self._publish(txs, seq)
                        txs, hashes, size = [], set(), 0
                if txs and self._clock() >= first_ms + self._max_ms:
                    await self._publish(txs, reader.next - 1)
                    txs, hashes, size = [], set(), 0
        finally:
            await reader.close()

    async def _publish(self, txs: list[bytes], tx_last: int) -> None:
        """Publish the next block holding ``txs`` and covering TX sequences up to
        ``tx_last``; raise _Resync if the stream refuses it or the outcome is unknown."""
        assert self._js is not None
        height = self._height + 1
        t = max(self._clock(), self._last_t)
        block = build_block(self._genesis, height, self._last_hash, t, txs)
        headers = {
            H_EXPECTED_LAST_SEQ: str(self._height),
            H_HEIGHT: str(height),
            H_TX_FIRST: str(self._next_tx),
            H_TX_LAST: str(tx_last),
        }
        try:
            ack = await self._js.publish(
                self.block_subject,
                block.to_cbor(),
                timeout=_PUBLISH_TIMEOUT,
                stream=self.block_stream,
                headers=headers,
            )
        except jse.APIError as exc:
            if exc.err_code != _ERR_WRONG_LAST_SEQ and not _transient(exc):
                raise
            if exc.err_code == _ERR_WRONG_LAST_SEQ:
                self.blocks_refused += 1
            log.debug("block %d not stored (%r); catching up", height, exc)
            raise _Resync from exc
        except Exception as exc:
            if not _transient(exc):
                raise
            log.info("block %d: outcome unknown (%r); catching up", height, exc)
            raise _Resync from exc
        if ack.seq != height:
            raise BlockStreamCorrupt(self.block_stream, ack.seq, f"block {height} stored there")
        self._adopt(block, tx_last)
        self.blocks_published += 1

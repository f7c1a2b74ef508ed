"""An in-process consortium: one peer per member, a solo orderer, checkpoints, a client.

For tests and the demo. Everything runs on the caller's asyncio loop::

    c = await Consortium.create(directory, members=[("bank", ["bank"]), ...],
                                policies={"toy.*": "2-OF(org:a, org:b, org:c, org:d)"},
                                quorum=3, contracts=Registry(Toy()))
    r = await c.submit("toy", "put", ["k", 1], creator="bank")
    assert r.code == "valid" and r.final_checkpoint is not None
    await c.close()

Directory layout::

    genesis.cbor                 the genesis file, signed by every member
    orderer/                     the SoloOrderer's files
    peers/<org>/state.sqlite     the peer's world state (SqliteState)
    peers/<org>/txlog.bin        the peer's transaction log

Every peer follows the orderer's blocks from its own height on, commits them and hands its
signed checkpoint to one :class:`~tally.ledger.checkpoint.CheckpointCollector`. Member keys
are held in memory only (a real member keeps its own key in its own keystore).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tally.crypto import CryptoError, SigningKey, Suite, VerifyKey, get_suite
from tally.ledger.checkpoint import Alarm, CheckpointCollector, FinalCheckpoint
from tally.ledger.client import Client
from tally.ledger.contract import Registry
from tally.ledger.errors import BlockRejected, CheckpointInvalid, TxTimeout
from tally.ledger.formats import decode_transaction
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis
from tally.ledger.orderer import Orderer
from tally.ledger.peer import VALID, BlockResult, Peer, TxStatus
from tally.ledger.policy import parse_policy
from tally.ledger.solo import SoloOrderer
from tally.ledger.state_sqlite import SqliteState

DEFAULT_TIMEOUT = 10.0
_T = TypeVar("_T")

OrdererFactory = Callable[[Genesis, Path], Orderer]
"""Makes a consortium's orderer from its genesis and the directory it may use."""


@dataclass(frozen=True)
class TxResult:
    """The outcome of a submitted transaction, as the creator's peer (or the first peer to
    commit it) recorded it."""

    tx_id: bytes
    code: str
    height: int
    index: int
    result: Any
    final_checkpoint: FinalCheckpoint | None
    """The final checkpoint of ``height`` (None when submitted with ``final=False``)."""
    reason: str = ""
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.code == VALID


@dataclass(frozen=True)
class Rejection:
    """A block a peer refused; the peer stops following the orderer."""

    org: str
    error: BlockRejected


def _policy(value: Any) -> Any:
    return parse_policy(value) if isinstance(value, str) else value


class Consortium:
    """Peers of every member, a solo orderer and a checkpoint collector in one process.

    Build one with :meth:`create`; always :meth:`close` it.
    """

    def __init__(
        self,
        directory: Path,
        genesis: Genesis,
        keys: Mapping[str, SigningKey],
        contracts: Registry,
        clock: Callable[[], int] | None = None,
        orderer: OrdererFactory | None = None,
    ) -> None:
        self.directory = directory
        self.genesis = genesis
        self.keys = dict(keys)
        self.contracts = contracts
        self.clock = clock
        self.orderer: Orderer = (
            orderer(genesis, directory / "orderer")
            if orderer is not None
            else SoloOrderer(genesis, directory / "orderer")
            if clock is None
            else SoloOrderer(genesis, directory / "orderer", clock=clock)
        )
        self.alarms: list[Alarm] = []
        self.collector = CheckpointCollector(genesis, self._key_for, self.alarms.append)
        self.rejections: list[Rejection] = []
        self.invalid_checkpoints: list[CheckpointInvalid] = []
        self.peers: dict[str, Peer] = {}
        self.results: dict[str, dict[int, BlockResult]] = {org: {} for org in genesis.members}
        self._by_tx: dict[str, dict[bytes, tuple[int, TxStatus]]] = {
            org: {} for org in genesis.members
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._connected: dict[str, asyncio.Event] = {}
        self._tick = asyncio.Event()

    # -- creation ------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        directory: Path,
        members: Sequence[tuple[str, Sequence[str]]],
        policies: Mapping[str, Any],
        quorum: int,
        suite: str | Suite = "intl",
        ordering: Ordering | None = None,
        *,
        contracts: Registry | None = None,
        name: str = "tally-test",
        clock: Callable[[], int] | None = None,
        orderer: OrdererFactory | None = None,
        keys: Mapping[str, SigningKey] | None = None,
    ) -> Consortium:
        """Make a key per member, the genesis they all sign, and start a peer per member.

        ``policies`` maps ``contract.fn`` (or ``contract.*``) to a policy in text form
        (``"2-OF(org:a, org:b, org:c)"``) or CBOR form. ``ordering`` defaults to solo with
        blocks of up to 100 transactions cut after 20 ms. ``orderer`` makes the orderer from
        the genesis and the directory ``orderer/`` (default: a :class:`SoloOrderer` there).
        ``keys`` gives members existing keys (org -> key, e.g. the organisations' root keys
        of a trust file); members not in it get a new key.
        """
        s = get_suite(suite) if isinstance(suite, str) else suite
        given = dict(keys or {})
        keys = {org: given.get(org) or SigningKey.generate(s) for org, _ in members}
        draft = Genesis(
            name=name,
            suite=s,
            t=time.time_ns() // 1_000_000 if clock is None else clock(),
            members={
                org: Member(org, tuple(roles), keys[org].public.raw) for org, roles in members
            },
            policies={k: _policy(v) for k, v in policies.items()},
            checkpoint_quorum=quorum,
            ordering=ordering or Ordering("solo", 100, 20),
        )
        data = draft.to_file([draft.sign(org, keys[org]) for org in draft.members])
        genesis = load_genesis(data)  # checks every policy and signature
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "genesis.cbor").write_bytes(data)
        c = cls(directory, genesis, keys, contracts or Registry(), clock, orderer)
        for org in genesis.members:
            c._start_peer(org)
        return c

    # -- peers ---------------------------------------------------------------------------

    def peer_dir(self, org: str) -> Path:
        return self.directory / "peers" / org

    def running(self, org: str) -> bool:
        return org in self._tasks

    def _start_peer(self, org: str) -> None:
        d = self.peer_dir(org)
        d.mkdir(parents=True, exist_ok=True)
        peer = Peer(org, self.keys[org], self.genesis, SqliteState(d / "state.sqlite"),
                    self.contracts, d)  # fmt: skip
        self.peers[org] = peer
        self._tasks[org] = asyncio.get_running_loop().create_task(
            self._follow(peer), name=f"peer {org}"
        )

    async def _follow(self, peer: Peer) -> None:
        async for block in self.orderer.blocks(peer.height + 1):
            if block.height <= peer.height:
                continue
            gate = self._connected.get(peer.org)
            if gate is not None:
                await gate.wait()  # partitioned: the peer runs and endorses, but gets no blocks
            try:
                res = peer.commit(block)
            except BlockRejected as exc:
                self.rejections.append(Rejection(peer.org, exc))
                self._changed()
                return
            self.results[peer.org][res.height] = res
            by_tx = self._by_tx[peer.org]
            for status, tx in zip(res.statuses, block.txs, strict=True):
                by_tx.setdefault(self.genesis.suite.hash(tx), (res.height, status))
            try:
                self.collector.add(res.signed_checkpoint)
            except CheckpointInvalid as exc:
                self.invalid_checkpoints.append(exc)
            self._changed()

    def partition(self, org: str) -> None:
        """Cut ``org``'s peer off from new blocks; it keeps running (and endorsing) meanwhile."""
        self._connected.setdefault(org, asyncio.Event()).clear()

    def reconnect(self, org: str) -> None:
        """Let a partitioned peer receive blocks again; it catches up from where it stopped."""
        self._connected.setdefault(org, asyncio.Event()).set()

    async def stop_peer(self, org: str) -> None:
        """Stop ``org``'s peer: it follows no more blocks and its files are closed."""
        task = self._tasks.pop(org)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.peers.pop(org).close()

    async def restart_peer(self, org: str) -> Peer:
        """Open ``org``'s peer again from its files; it catches up from its own height."""
        if org in self._tasks:
            await self.stop_peer(org)
        self._start_peer(org)
        return self.peers[org]

    def _key_for(self, org: str, height: int) -> VerifyKey | None:
        """``org``'s key at ``height`` as a running peer sees the membership (None when
        ``org`` is no member or its key is revoked)."""
        for peer in self.peers.values():
            view = peer.member_view()
            m = view.members.get(org)
            if m is None or view.is_revoked(org, height):
                return None
            return VerifyKey(self.genesis.suite, m.pub)
        return self.genesis.key(org)

    # -- transactions --------------------------------------------------------------------

    def client(self, org: str) -> Client:
        return (
            Client(org, self.keys[org], self.genesis)
            if self.clock is None
            else Client(org, self.keys[org], self.genesis, self.clock)
        )

    def endorse(self, contract: str, fn: str, args: Sequence[Any], creator: str,
                endorsers: Sequence[str] | None = None) -> tuple[bytes, list[bytes]]:  # fmt: skip
        """Propose as ``creator`` and gather endorsements from ``endorsers`` (default: a
        smallest set of running peers satisfying the policy). Returns (proposal, endorsements).
        """
        client = self.client(creator)
        proposal, _ = client.propose(contract, fn, args)
        if endorsers is None:
            members, policy = None, None
            for peer in self.peers.values():
                members = peer.members()
                policy = peer.policy(contract, fn)
                break
            endorsers = client.endorsers(contract, fn, self.peers, members, policy)
        return proposal, client.endorse(proposal, {o: self.peers[o] for o in endorsers})

    async def submit(
        self,
        contract: str,
        fn: str,
        args: Sequence[Any],
        creator: str,
        *,
        final: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> TxResult:
        """Propose, endorse by the peers the policy needs, order, and wait until committed
        (and, with ``final``, until the checkpoint of its block is final)."""
        proposal, endorsements = self.endorse(contract, fn, args, creator)
        tx = Client.transaction(proposal, endorsements)
        tx_id = self.genesis.suite.hash(proposal)  # what submit_tx decodes out of ``tx``
        return await self._submit_tx(tx, tx_id, final, timeout, creator)

    async def submit_tx(
        self,
        tx: bytes,
        *,
        final: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        prefer: str | None = None,
    ) -> TxResult:
        """Order ready transaction bytes and wait for their outcome (see :meth:`submit`)."""
        try:
            tx_id = self.genesis.suite.hash(decode_transaction(tx).proposal)
        except CryptoError:
            tx_id = b""
        return await self._submit_tx(tx, tx_id, final, timeout, prefer)

    async def _submit_tx(
        self, tx: bytes, tx_id: bytes, final: bool, timeout: float, prefer: str | None
    ) -> TxResult:
        h = self.genesis.suite.hash(tx)
        await self.orderer.submit(tx)
        deadline = asyncio.get_running_loop().time() + timeout
        found = await self._wait(lambda: self._status(h, prefer), deadline, tx_id, "commit",
                                 timeout)  # fmt: skip
        height, status = found
        cp: FinalCheckpoint | None = None
        if final:
            cp = await self._wait(lambda: self.collector.final(height), deadline, tx_id,
                                  "checkpoint", timeout)  # fmt: skip
        return TxResult(
            status.tx_id or tx_id, status.code, height, status.index, status.result, cp,
            status.reason, status.error,
        )  # fmt: skip

    def _status(self, tx_hash: bytes, prefer: str | None) -> tuple[int, TxStatus] | None:
        if prefer is not None and prefer in self._by_tx:
            got = self._by_tx[prefer].get(tx_hash)
            if got is not None or self.running(prefer):
                return got
        for by_tx in self._by_tx.values():
            got = by_tx.get(tx_hash)
            if got is not None:
                return got
        return None

    # -- waiting -------------------------------------------------------------------------

    def _changed(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def _wait(
        self,
        probe: Callable[[], _T | None],
        deadline: float,
        tx_id: bytes,
        stage: str,
        timeout: float,
    ) -> _T:
        loop = asyncio.get_running_loop()
        while True:
            got = probe()
            if got is not None:
                return got
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TxTimeout(tx_id, stage, timeout)
            try:
                await asyncio.wait_for(self._tick.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_for(self, probe: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until ``probe()`` is true (checked after every commit); raise TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not probe():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tick.wait(), remaining)

    async def wait_height(
        self, height: int, orgs: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until every running peer of ``orgs`` (default all) is at ``height`` or above."""
        names = list(orgs or self.genesis.members)
        await self.wait_for(
            lambda: all(self.peers[o].height >= height for o in names if o in self.peers),
            timeout,
        )

    # -- shutdown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every peer and the orderer."""
        for org in list(self._tasks):
            await self.stop_peer(org)
        await self.orderer.close()

    async def __aenter__(self) -> Consortium:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""Where the projector reads the chain: a member's peer in this process, or over HTTP.

A :class:`ChainSource` gives the height to project up to, the world state under a key
prefix, and the blocks after a height (as :class:`BlockRow` with their :class:`TxRow`).
A source that can also say what each block wrote (:class:`KeyedSource`: ``writes`` and
``get``) lets the projector refresh only the rows those writes touch, each with the height
and time of the block that changed it; any other source gets a full scan of the finance
prefixes after each batch of new blocks (fine at demo scale, a scan of the whole finance
state per sync at bank scale).

:class:`ConsortiumSource` reads one member's peer of an in-process
:class:`~tally.ledger.consortium.Consortium` (the demo, tests). Its height is the highest
height the member's peer has committed and whose checkpoint is final, so the read model
shows only final blocks, each with the members that signed its final checkpoint. A block's
``time_ms`` is the latest proposal time among its transactions (peers keep no block time);
``None`` for a block without a decodable transaction. Transaction outcomes come from the
consortium's record of what the peer committed; a block the peer committed before this
process started (none in the demo) shows its transactions with code ``unknown``. Calls are
safe from a worker thread while the event loop commits blocks: the peer's state store
serialises access and only committed, immutable parts of its log are read.

:class:`PeerSource` reads a peer service (:mod:`tally.ledger.peerservice`) over HTTP:
``GET /v1/status`` (height), ``GET /v1/state`` (CBOR pages of the world state) and
``GET /v1/blocks?after=H&limit=N`` (JSON, heights ascending)::

    {"height": h, "blocks": [{"height", "hash", "time", "state", "signers": [org, ...],
                              "txs": [{"id", "index", "contract", "fn", "creator",
                                       "code", "reason"}]}]}

A block's ``time`` is the orderer's; its ``signers`` are the checkpoint signatures that peer
holds (its own). Where the peer's index does not know a transaction's id, contract, function,
creator or code, the row shows ``undecodable-<height>-<index>``, ``?`` and ``unknown``.
Anything else — a transport error, a problem answer, a body of another shape — raises
:class:`SourceError` naming the URL and what was wrong. ``ssl_context``: the client context
for a peer serving HTTPS (with a client certificate where the peer asks for one).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from tally.crypto import CryptoError, cbor, parse_sign1
from tally.ledger.consortium import Consortium
from tally.ledger.formats import (
    CTY_ENDORSEMENT,
    CTY_PROPOSAL,
    decode_endorsement,
    decode_proposal,
    decode_transaction,
)
from tally.ledger.peer import VALID

from .model import BlockRow, TxRow

MAX_BLOCKS = 200
"""The most blocks one ``blocks`` call returns."""
STATE_PAGE = 1000


class SourceError(RuntimeError):
    """The chain source could not be read; the message says where and why."""


class ChainSource(Protocol):
    """What the projector reads (see the module text)."""

    def height(self) -> int: ...
    def scan(self, prefix: str) -> Iterable[tuple[str, Any]]: ...
    def blocks(self, after: int, limit: int) -> list[tuple[BlockRow, list[TxRow]]]: ...


@runtime_checkable
class KeyedSource(Protocol):
    """A source that also knows each block's writes and reads single keys."""

    def height(self) -> int: ...
    def scan(self, prefix: str) -> Iterable[tuple[str, Any]]: ...
    def blocks(self, after: int, limit: int) -> list[tuple[BlockRow, list[TxRow]]]: ...
    def writes(self, height: int) -> list[tuple[str, Any]] | None:
        """The writes of block ``height``'s valid transactions in order (value None:
        deleted), or None when they are not known."""
        ...

    def get(self, key: str) -> Any:
        """The current value of ``key`` (None when absent)."""
        ...


def _limit(after: int, limit: int) -> None:
    if after < 0 or not 1 <= limit <= MAX_BLOCKS:
        raise ValueError(f"after {after} must be >= 0 and limit {limit} within 1..{MAX_BLOCKS}")


# -- the in-process consortium ----------------------------------------------------------------


class ConsortiumSource:
    """Member ``org``'s peer of an in-process consortium (see the module text)."""

    def __init__(self, consortium: Consortium, org: str, *, final_only: bool = True) -> None:
        if org not in consortium.genesis.members:
            raise ValueError(f"{org!r} is not a member of the consortium")
        self.consortium = consortium
        self.org = org
        self.final_only = final_only
        self._final = 0
        self._decoded: dict[int, tuple[BlockRow, list[TxRow], list[tuple[str, Any]] | None]] = {}

    @property
    def _peer(self) -> Any:
        peer = self.consortium.peers.get(self.org)
        if peer is None:
            raise SourceError(f"the peer of {self.org!r} is not running")
        return peer

    def height(self) -> int:
        committed: int = self._peer.height
        if not self.final_only:
            return committed
        collector = self.consortium.collector
        while self._final < committed and collector.final(self._final + 1) is not None:
            self._final += 1
        return min(self._final, committed)

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        return [(k, v) for k, v, _ in self._peer.state.range(prefix)]

    def get(self, key: str) -> Any:
        got = self._peer.state.get(key)
        return None if got is None else got[0]

    def blocks(self, after: int, limit: int) -> list[tuple[BlockRow, list[TxRow]]]:
        _limit(after, limit)
        top = min(self.height(), after + limit)
        out = []
        for h in range(after + 1, top + 1):
            block, txs, _ = self._decode(h)
            out.append((block, txs))
        return out

    def writes(self, height: int) -> list[tuple[str, Any]] | None:
        if not 1 <= height <= self._peer.height:
            return None
        writes = self._decode(height)[2]
        self._decoded.pop(height, None)  # blocks() then writes(): done with this height
        return writes

    def _decode(self, h: int) -> tuple[BlockRow, list[TxRow], list[tuple[str, Any]] | None]:
        got = self._decoded.get(h)
        if got is not None:
            return got
        peer = self._peer
        suite = self.consortium.genesis.suite
        log = peer.txlog
        start, end = log.size_at(h - 1), log.size_at(h)
        result = self.consortium.results.get(self.org, {}).get(h)
        statuses = list(result.statuses) if result is not None else []
        txs: list[TxRow] = []
        writes: list[tuple[str, Any]] | None = [] if result is not None else None
        times: list[int] = []
        for index, pos in enumerate(range(start, end)):
            raw = log.tx(pos)
            status = statuses[index] if index < len(statuses) else None
            contract = fn = creator = "?"
            tx_id = suite.hash(raw)
            try:
                t = decode_transaction(raw)
                msg = parse_sign1(t.proposal, content_type=CTY_PROPOSAL, suite=suite)
                proposal = decode_proposal(msg.payload)
                contract, fn, creator = proposal.contract, proposal.fn, proposal.creator
                tx_id = suite.hash(t.proposal)
                times.append(proposal.t)
                if status is not None and status.code == VALID and writes is not None:
                    e = parse_sign1(t.endorsements[0], content_type=CTY_ENDORSEMENT, suite=suite)
                    writes.extend(decode_endorsement(e.payload).writes)
            except (CryptoError, IndexError):
                pass  # an undecodable transaction is shown by the hash of its bytes
            code = status.code if status is not None else "unknown"
            reason = (status.reason or status.error or None) if status is not None else None
            txs.append(TxRow((status.tx_id or tx_id).hex() if status else tx_id.hex(), h, index,
                             contract, fn, creator, code, reason))  # fmt: skip
        final = self.consortium.collector.final(h)
        state: str | None
        if final is not None:
            signers = tuple(final.signers)
            state = final.checkpoint.state.hex()
        else:
            signers = tuple(sorted(self.consortium.collector.signers(h)))
            state = result.checkpoint.state.hex() if result is not None else None
        block = BlockRow(h, log.block_hash_at(h).hex(), end - start,
                         max(times) if times else None, signers, state)  # fmt: skip
        if len(self._decoded) > 2 * MAX_BLOCKS:
            self._decoded.clear()
        self._decoded[h] = (block, txs, writes)
        return block, txs, writes


# -- a peer service over HTTP -----------------------------------------------------------------


class PeerSource:
    """A peer service's HTTP API at ``url`` (see the module text); :meth:`close` it."""

    def __init__(
        self,
        url: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url,
            verify=ssl_context if ssl_context is not None else True,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: Mapping[str, str | int]) -> httpx.Response:
        try:
            resp = self._client.get(path, params=dict(params))
        except httpx.HTTPError as exc:
            raise SourceError(f"peer {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            detail = resp.text[:300]
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(resp.json().get("detail", detail))
            raise SourceError(f"peer {self.url}{path}: HTTP {resp.status_code}: {detail}")
        return resp

    def _json(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        resp = self._get(path, params)
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(f"peer {self.url}{path}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise SourceError(f"peer {self.url}{path}: the answer is not a JSON object")
        return body

    def height(self) -> int:
        h = self._json("/v1/status", {}).get("height")
        if not isinstance(h, int) or isinstance(h, bool) or h < 0:
            raise SourceError(f"peer {self.url}/v1/status: height {h!r} is not a height")
        return h

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        params: dict[str, str | int] = {"prefix": prefix, "limit": STATE_PAGE}
        while True:
            resp = self._get("/v1/state", params)
            try:
                page = cbor.decode(resp.content, where="state page")
                items, more = page["items"], page["more"]
            except (CryptoError, KeyError, TypeError) as exc:
                raise SourceError(f"peer {self.url}/v1/state: not a state page: {exc}") from None
            out.extend((k, v) for k, v in items)
            if not more or not items:
                return out
            params["after"] = items[-1][0]

    def blocks(self, after: int, limit: int) -> list[tuple[BlockRow, list[TxRow]]]:
        _limit(after, limit)
        path = "/v1/blocks"
        body = self._json(path, {"after": after, "limit": limit})
        try:
            out = [_block(b) for b in body["blocks"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"peer {self.url}{path}: not a blocks page: {exc!r}") from None
        heights = [b.height for b, _ in out]
        if heights != sorted(set(heights)) or (heights and (heights[0] <= after or
                                                            len(heights) > limit)):  # fmt: skip
            raise SourceError(f"peer {self.url}{path}: heights {heights[:5]}… after {after} are "
                              f"not ascending, above {after} and at most {limit}")  # fmt: skip
        return out


def _text(obj: Mapping[str, Any], name: str, unknown: str | None = None) -> str:
    """Text ``name`` of ``obj``; a null becomes ``unknown`` when that is given."""
    v = obj.get(name)
    if v is None and unknown is not None:
        return unknown
    if not isinstance(v, str) or not v:
        raise ValueError(f"{name} must be text, got {v!r}")
    return v


def _int(obj: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    v = obj.get(name) if optional else obj[name]
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return v


def _block(b: Mapping[str, Any]) -> tuple[BlockRow, list[TxRow]]:
    height = _int(b, "height")
    txs = []
    for t in b["txs"]:
        index = _int(t, "index")
        txs.append(TxRow(
            _text(t, "id", f"undecodable-{height}-{index}"), height, index,
            _text(t, "contract", "?"), _text(t, "fn", "?"), _text(t, "creator", "?"),
            _text(t, "code", "unknown"), t.get("reason") or None,
        ))  # fmt: skip
    signers = b.get("signers") or []
    if not all(isinstance(s, str) for s in signers):
        raise ValueError(f"signers must be member ids, got {signers!r}")
    state = b.get("state")
    row = BlockRow(height, _text(b, "hash"), len(txs), _int(b, "time", optional=True),
                   tuple(signers), state if isinstance(state, str) else None)  # fmt: skip
    return row, txs

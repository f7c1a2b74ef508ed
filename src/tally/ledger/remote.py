"""A client of remote peers (:mod:`tally.ledger.peerservice`): one transaction end to end.

::

    rc = RemoteConsortium(genesis, {"bank": "http://10.0.0.1:7051", ...})
    r = await rc.submit("anchoring", "anchor_record", ["invoice", salted_hash], "bank", key)
    assert r.valid and len(r.final_checkpoint.signers) >= genesis.checkpoint_quorum
    await rc.close()

``submit`` = propose (:class:`~tally.ledger.client.Client`, signed with the creator's key) →
endorse by a smallest set of reachable peers satisfying the genesis policy (peers that do
not answer are left out and the set is chosen again) → ``POST /v1/submit`` to the creator's
peer (else any other) → poll ``GET /v1/tx/{id}`` on the creator's peer (else the others)
until committed → gather ``GET /v1/checkpoints/{height}`` from every peer until
``checkpoint_quorum`` members signed identical payloads. One deadline bounds all of it.

Transport: ``https://`` peers are checked against ``ca_file`` (else the system's CAs) and,
for peers that require mutual TLS, ``client_cert_file``/``client_key_file`` are presented
(or give a ready ``tls`` context, :func:`tally.crypto.tlsconf.client_tls`). A peer that refuses
the handshake counts as one that does not answer.

Endorsers are chosen by the genesis policy and checkpoints verified with the genesis keys: a
consortium whose membership contract changed policies or keys needs a client that reads them
from the chain.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tally.crypto import SigningKey
from tally.crypto.tlsconf import client_tls
from tally.ledger.checkpoint import CheckpointCollector, FinalCheckpoint
from tally.ledger.client import Client
from tally.ledger.errors import CheckpointInvalid, LedgerError, ProposalRejected, TxTimeout
from tally.ledger.genesis import Genesis
from tally.ledger.peer import VALID

__all__ = ["LogEntry", "PeerUnreachable", "RemoteConsortium", "RemoteResult"]

DEFAULT_TIMEOUT = 15.0
REQUEST_TIMEOUT = 3.0
POLL = 0.02


class PeerUnreachable(LedgerError):
    """Raised when no peer that a step needs answered: ``stage`` (``"endorse"``,
    ``"submit"``), ``orgs`` tried, ``reason`` the last failure."""

    def __init__(self, stage: str, orgs: Sequence[str], reason: str) -> None:
        self.stage = stage
        self.orgs = tuple(orgs)
        self.reason = reason
        super().__init__(f"{stage}: no answer from {', '.join(orgs) or 'any peer'}: {reason}")


@dataclass(frozen=True)
class RemoteResult:
    """A committed transaction as its creator's peer (or the first that answered) recorded it,
    with the final checkpoint of its block."""

    tx_id: bytes
    code: str
    height: int
    index: int
    final_checkpoint: FinalCheckpoint
    reason: str = ""
    error: str = ""
    log_index: int | None = None
    """The position in the transaction log (None from a peer that does not report it)."""

    @property
    def valid(self) -> bool:
        return self.code == VALID


@dataclass(frozen=True)
class LogEntry:
    """A peer's answer to ``GET /v1/log/{index}?size=N``: the transaction bytes at log
    position ``index``, its RFC 9162 inclusion ``path`` in the log of ``size`` transactions
    and that log's ``root`` — as the peer says; check them against a final checkpoint."""

    index: int
    size: int
    tx: bytes
    root: bytes
    path: tuple[bytes, ...]


class _Answer:
    """An endorsement already fetched, for :meth:`Client.endorse`'s checks."""

    def __init__(self, answer: bytes | ProposalRejected) -> None:
        self.answer = answer

    def endorse(self, proposal_cose: bytes) -> bytes:
        if isinstance(self.answer, ProposalRejected):
            raise self.answer
        return self.answer


def _rejection(resp: httpx.Response) -> ProposalRejected:
    try:
        body = resp.json()
        code = str(body.get("type", "")).rsplit(":", 1)[-1] or "malformed"
        return ProposalRejected(code, str(body.get("detail", resp.text)))
    except ValueError:
        return ProposalRejected("malformed", f"HTTP {resp.status_code}: {resp.text[:200]}")


class RemoteConsortium:
    """Peers of ``genesis``'s chain reached over HTTP or HTTPS (org → base URL; :attr:`peers`
    may be changed, e.g. when a peer restarts on another port). ``ca_file``,
    ``client_cert_file`` and ``client_key_file`` (or a ready ``tls`` context) are the TLS
    client settings (module docstring); refused with an X509Error when unfit. Always
    :meth:`close` it."""

    def __init__(
        self,
        genesis: Genesis,
        peers: Mapping[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        poll: float = POLL,
        ca_file: Path | None = None,
        client_cert_file: Path | None = None,
        client_key_file: Path | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        unknown = sorted(set(peers) - set(genesis.members))
        if unknown:
            raise ValueError(f"not members of the genesis: {', '.join(unknown)}")
        self.genesis = genesis
        self.peers = {org: url.rstrip("/") for org, url in peers.items()}
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.poll = poll
        self.invalid_checkpoints: list[CheckpointInvalid] = []
        ctx = tls or client_tls(ca_file, client_cert_file, client_key_file)
        self.http = httpx.AsyncClient(trust_env=False, verify=True if ctx is None else ctx)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> RemoteConsortium:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- HTTP ----------------------------------------------------------------------------

    async def _request(
        self, method: str, org: str, path: str, deadline: float, body: bytes | None = None
    ) -> httpx.Response | None:
        """The response of ``org``'s peer, None if it is unreachable or answers 5xx."""
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return None
        try:
            resp = await self.http.request(method, self.peers[org] + path, content=body,
                                           timeout=min(left, self.request_timeout))  # fmt: skip
        except httpx.HTTPError:
            return None
        return None if resp.status_code >= 500 else resp

    async def status(self, org: str, timeout: float | None = None) -> dict[str, Any] | None:
        """``GET /v1/status`` of ``org``'s peer, None when it does not answer."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.request_timeout)
        resp = await self._request("GET", org, "/v1/status", deadline)
        if resp is None or resp.status_code != 200:
            return None
        got: dict[str, Any] = resp.json()
        return got

    def _order(self, first: str) -> list[str]:
        return sorted(self.peers, key=lambda o: (o != first, o))

    # -- one transaction -----------------------------------------------------------------

    async def submit(
        self,
        contract: str,
        fn: str,
        args: Sequence[Any],
        creator: str,
        key: SigningKey,
        *,
        timeout: float | None = None,
    ) -> RemoteResult:
        """Propose as ``creator`` (signing with ``key``), endorse, order, wait until
        committed and its checkpoint final. Raises EndorsementFailed (a peer refused, the
        peers disagree, the reachable peers cannot satisfy the policy), PeerUnreachable,
        TxTimeout (stage ``"commit"`` or ``"checkpoint"``)."""
        seconds = self.timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + seconds
        client = Client(creator, key, self.genesis)
        proposal, tx_id = client.propose(contract, fn, args)
        endorsements = await self._endorse(client, contract, fn, proposal, deadline)
        await self._submit(Client.transaction(proposal, endorsements), creator, deadline)
        got = await self._committed(tx_id, creator, deadline, seconds)
        height = int(got["height"])
        final = await self._final(height, tx_id, deadline, seconds)
        start = got.get("start")
        log_index = None if start is None else int(start) + int(got["index"])
        return RemoteResult(tx_id, str(got["code"]), height, int(got["index"]), final,
                            str(got.get("reason", "")), str(got.get("error", "")),
                            log_index)  # fmt: skip

    async def final_checkpoint(
        self, height: int, timeout: float | None = None
    ) -> FinalCheckpoint | None:
        """The final checkpoint of ``height``, gathered from the peers until
        ``checkpoint_quorum`` members signed identical payloads; None if not within
        ``timeout`` (default :attr:`request_timeout`)."""
        seconds = self.request_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            return await self._final(height, b"", deadline, seconds)
        except TxTimeout:
            return None

    async def log_entry(
        self, org: str, index: int, size: int, timeout: float | None = None
    ) -> LogEntry | None:
        """``GET /v1/log/{index}?size={size}`` of ``org``'s peer; None when it does not
        answer or does not hold that much of the log yet."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.request_timeout)
        resp = await self._request("GET", org, f"/v1/log/{index}?size={size}", deadline)
        if resp is None or resp.status_code != 200:
            return None
        got = resp.json()
        return LogEntry(int(got["index"]), int(got["size"]), bytes.fromhex(got["tx"]),
                        bytes.fromhex(got["root"]),
                        tuple(bytes.fromhex(h) for h in got["path"]))  # fmt: skip

    async def _endorse(
        self, client: Client, contract: str, fn: str, proposal: bytes, deadline: float
    ) -> list[bytes]:
        down: set[str] = set()
        while True:
            orgs = client.endorsers(contract, fn, [o for o in self.peers if o not in down])
            answers = await asyncio.gather(
                *(self._endorse_one(o, proposal, deadline) for o in orgs)
            )
            missing = [o for o, a in zip(orgs, answers, strict=True) if a is None]
            if missing:
                if asyncio.get_running_loop().time() >= deadline:
                    raise PeerUnreachable("endorse", missing, "deadline passed")
                down.update(missing)
                continue
            fetched = {o: _Answer(a) for o, a in zip(orgs, answers, strict=True) if a is not None}
            return client.endorse(proposal, fetched)

    async def _endorse_one(
        self, org: str, proposal: bytes, deadline: float
    ) -> bytes | ProposalRejected | None:
        resp = await self._request("POST", org, "/v1/endorse", deadline, proposal)
        if resp is None:
            return None
        return resp.content if resp.status_code == 200 else _rejection(resp)

    async def _submit(self, tx: bytes, creator: str, deadline: float) -> None:
        last = "no peers"
        for org in self._order(creator):
            resp = await self._request("POST", org, "/v1/submit", deadline, tx)
            if resp is not None and resp.status_code == 202:
                return
            last = "unreachable" if resp is None else f"HTTP {resp.status_code}: {resp.text[:200]}"
        raise PeerUnreachable("submit", self._order(creator), last)

    async def _committed(
        self, tx_id: bytes, creator: str, deadline: float, seconds: float
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        path = f"/v1/tx/{tx_id.hex()}"
        while loop.time() < deadline:
            for org in self._order(creator):
                resp = await self._request("GET", org, path, deadline)
                if resp is None:
                    continue  # down: ask the next peer
                if resp.status_code == 200:
                    got: dict[str, Any] = resp.json()
                    return got
                break  # answered: not committed there yet
            await asyncio.sleep(self.poll)
        raise TxTimeout(tx_id, "commit", seconds)

    async def _final(
        self, height: int, tx_id: bytes, deadline: float, seconds: float
    ) -> FinalCheckpoint:
        loop = asyncio.get_running_loop()
        collector = CheckpointCollector(self.genesis)
        have: set[str] = set()
        while loop.time() < deadline:
            want = [o for o in self.peers if o not in have]
            resps = await asyncio.gather(
                *(self._request("GET", o, f"/v1/checkpoints/{height}", deadline) for o in want)
            )
            for org, resp in zip(want, resps, strict=True):
                if resp is None or resp.status_code != 200:
                    continue
                have.add(org)
                try:
                    collector.add(resp.content)
                except CheckpointInvalid as exc:
                    self.invalid_checkpoints.append(exc)
            final = collector.final(height)
            if final is not None:
                return final
            await asyncio.sleep(self.poll)
        raise TxTimeout(tx_id, "checkpoint", seconds)

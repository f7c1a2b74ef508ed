"""A member's client: builds and signs proposals, gathers endorsements, assembles transactions.

The flow of one transaction::

    proposal_cose, tx_id = client.propose("anchoring", "anchor", [header])
    orgs = client.endorsers("anchoring", "anchor", available=peers)   # a smallest set
    endorsements = client.endorse(proposal_cose, {o: peers[o] for o in orgs})
    tx = client.transaction(proposal_cose, endorsements)               # Transaction CBOR
    await orderer.submit(tx)

The client checks what it gathers (each endorsement is for its transaction, all agree) so
that a disagreement between peers is reported to the submitter instead of being ordered as
an ``endorsement_mismatch``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from tally.crypto import CryptoError, SigningKey, cbor, parse_sign1
from tally.ledger.errors import EndorsementFailed, ProposalRejected
from tally.ledger.formats import (
    CTY_ENDORSEMENT,
    Endorsement,
    Proposal,
    Transaction,
    decode_endorsement,
)
from tally.ledger.genesis import Genesis, Member
from tally.ledger.policy import describe, satisfied

MAX_SEARCH = 16
"""Above this many available peers, :meth:`Client.endorsers` picks greedily."""


_V1_TX = b"\xa7\x61v\x01\x62tx"  # map(7), "v": 1, "tx":
_ORG = b"\x63org"  # "org"


def agreement(payload: bytes, e: Endorsement) -> bytes:
    """``e.agreement()`` for ``e = decode_endorsement(payload)``, cut out of ``payload``.

    ``payload`` decoded strictly, so it is the deterministic encoding of ``e``'s body; its
    map entries are in the order ``v``, ``tx``, ``org``, ``error``, ``reads``, ``result``,
    ``writes`` (keys sorted by their encodings), so the agreement bytes are ``payload`` with
    the map head ``0xa7`` → ``0xa6`` and the ``"org"`` entry left out::

        a7 | 61 "v" 01 | 62 "tx" bstr(tx) | 63 "org" tstr(org) | rest
        a6 | 61 "v" 01 | 62 "tx" bstr(tx) |                       rest

    Bytes laid out otherwise fall back to re-encoding (``e.agreement()``).
    """
    cut = _org_entry(payload, e)
    if cut is not None:
        return b"\xa6" + payload[1 : cut[0]] + payload[cut[1] :]
    return e.agreement()


def _org_entry(payload: bytes, e: Endorsement) -> tuple[int, int] | None:
    """Where the ``"org"`` entry of ``e``'s payload starts and ends (see :func:`agreement`);
    None when ``payload`` is not laid out so."""
    head = _V1_TX + cbor.head(2, len(e.tx)) + e.tx
    org = _ORG + cbor.encode(e.org)
    cut = len(head) + len(org)
    if payload[: len(head)] == head and payload[len(head) : cut] == org:
        return len(head), cut
    return None


def decode_like(payload: bytes, kid: str, known: tuple[bytes, Endorsement] | None) -> Endorsement:
    """``decode_endorsement(payload)``, without decoding when ``payload`` is the payload of
    the ``known`` endorsement with only the ``"org"`` entry changed to ``kid`` (the usual
    second endorsement of a transaction): then it is the deterministic encoding of the same
    body with that org. Raises as :func:`decode_endorsement`."""
    if known is not None:
        first_payload, first = known
        cut = _org_entry(first_payload, first)
        if cut is not None and payload == b"".join(
            (first_payload[: cut[0]], _ORG, cbor.encode(kid), first_payload[cut[1] :])
        ):
            return dataclasses.replace(first, org=kid)
    return decode_endorsement(payload)


class Endorser(Protocol):
    """Anything that endorses proposals: a :class:`~tally.ledger.peer.Peer`, or a remote one."""

    def endorse(self, proposal_cose: bytes) -> bytes: ...


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Client:
    """Proposals signed by member ``org`` with ``key``, for the chain of ``genesis``."""

    def __init__(
        self,
        org: str,
        key: SigningKey,
        genesis: Genesis,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.org = org
        self.key = key
        self.genesis = genesis
        self.clock = clock

    def propose(
        self,
        contract: str,
        fn: str,
        args: Sequence[Any],
        *,
        nonce: bytes | None = None,
        t: int | None = None,
    ) -> tuple[bytes, bytes]:
        """A signed proposal and its transaction id ``H(proposal COSE bytes)``.

        ``nonce`` defaults to 16 random bytes (so equal calls are distinct transactions),
        ``t`` to the client clock in ms.
        """
        proposal = Proposal(
            chain=self.genesis.chain,
            contract=contract,
            fn=fn,
            args=tuple(args),
            creator=self.org,
            nonce=os.urandom(16) if nonce is None else nonce,
            t=self.clock() if t is None else t,
        )
        cose = proposal.sign(self.key)
        return cose, self.genesis.suite.hash(cose)

    def endorsers(
        self,
        contract: str,
        fn: str,
        available: Iterable[str],
        members: Mapping[str, Member] | None = None,
        policy: Any | None = None,
    ) -> list[str]:
        """A smallest set of the ``available`` orgs whose endorsements satisfy the policy of
        ``contract.fn`` (the genesis policy unless ``policy`` is given); this client's own
        org is preferred. Raises :class:`EndorsementFailed` when no subset satisfies it."""
        members = self.genesis.members if members is None else members
        policy = self.genesis.policy(contract, fn) if policy is None else policy
        name = f"{contract}.{fn}"
        if policy is None:
            raise EndorsementFailed(b"", f"no policy for {name}")
        orgs = sorted(set(available), key=lambda o: (o != self.org, o))
        if len(orgs) <= MAX_SEARCH:
            for n in range(1, len(orgs) + 1):
                for combo in itertools.combinations(orgs, n):
                    if satisfied(policy, set(combo), members):
                        return list(combo)
        else:
            chosen: list[str] = []
            for org in orgs:
                chosen.append(org)
                if satisfied(policy, set(chosen), members):
                    return chosen
        raise EndorsementFailed(
            b"", f"{', '.join(orgs) or 'no peers'} cannot satisfy {name}: {describe(policy)}"
        )

    def endorse(self, proposal_cose: bytes, peers: Mapping[str, Endorser]) -> list[bytes]:
        """Ask each of ``peers`` (org → endorser) to endorse; check the answers agree.

        Raises :class:`EndorsementFailed` when a peer refuses the proposal, answers with an
        endorsement that is not its own or not for this transaction, or when the peers'
        read/write sets or results differ.
        """
        tx_id = self.genesis.suite.hash(proposal_cose)
        out: list[bytes] = []
        agreed: bytes | None = None
        first = ""
        known: tuple[bytes, Endorsement] | None = None
        for org, peer in peers.items():
            try:
                cose = peer.endorse(proposal_cose)
            except ProposalRejected as exc:
                raise EndorsementFailed(tx_id, f"{org} refused: {exc.reason}") from None
            try:
                msg = parse_sign1(cose, content_type=CTY_ENDORSEMENT, suite=self.genesis.suite)
                e = decode_like(msg.payload, msg.kid, known)
            except CryptoError as exc:
                raise EndorsementFailed(tx_id, f"{org} answered garbage: {exc}") from None
            if msg.kid != org or e.org != org or e.tx != tx_id:
                raise EndorsementFailed(tx_id, f"{org} answered an endorsement not its own")
            if agreed is None:
                agreed, first, known = agreement(msg.payload, e), org, (msg.payload, e)
            elif agreement(msg.payload, e) != agreed:
                raise EndorsementFailed(tx_id, f"{org} and {first} disagree on the result")
            out.append(cose)
        return out

    @staticmethod
    def transaction(proposal_cose: bytes, endorsements: Sequence[bytes]) -> bytes:
        """The Transaction CBOR bytes of a proposal with its endorsements."""
        return Transaction(proposal_cose, tuple(endorsements)).to_cbor()

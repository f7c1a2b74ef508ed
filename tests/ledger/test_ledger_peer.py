"""Peer validation, one rule at a time: blocks are built by hand (as an orderer would) from
transactions assembled with the client, some of them doctored, and committed to one peer of a
four-member consortium whose toy contract needs any two members' endorsements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.crypto import INTL, SigningKey, parse_sign1
from tally.ledger.client import Client
from tally.ledger.contract import Context, Contract, ContractError, Registry, function
from tally.ledger.errors import (
    BlockRootMismatch,
    ProposalRejected,
    UnexpectedHeight,
    WrongBlockChain,
    WrongParent,
)
from tally.ledger.formats import (
    Block,
    Endorsement,
    Proposal,
    decode_checkpoint,
    decode_endorsement,
    decode_transaction,
    state_step,
    state_zero,
)
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis
from tally.ledger.orderer import build_block
from tally.ledger.peer import Peer
from tally.ledger.policy import parse_policy
from tally.ledger.state_sqlite import SqliteState

ORGS = {"a": "bank", "b": "core_enterprise", "c": "warehouse", "d": "logistics"}


class Toy(Contract):
    name = "toy"

    @function
    def put(self, ctx: Context, key: str, value: Any) -> Any:
        ctx.put(key, value)
        return value

    @function
    def add(self, ctx: Context, key: str, n: int) -> int:
        v: int = (ctx.get(key) or 0) + n
        ctx.put(key, v)
        return v

    @function
    def refuse(self, ctx: Context, why: str) -> None:
        raise ContractError(why)


class World:
    """A genesis, the members' keys, and peers opened on demand."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys = {o: SigningKey.generate(INTL) for o in ORGS}
        draft = Genesis(
            name="peer-test",
            suite=INTL,
            t=0,
            members={o: Member(o, (r,), self.keys[o].public.raw) for o, r in ORGS.items()},
            policies={"toy.*": parse_policy("2-OF(org:a, org:b, org:c, org:d)")},
            checkpoint_quorum=3,
            ordering=Ordering("solo", 10, 10),
        )
        self.genesis = load_genesis(draft.to_file([draft.sign(o, self.keys[o]) for o in ORGS]))
        self.peers: dict[str, Peer] = {}
        self.blocks: list[Block] = []

    def peer(self, org: str) -> Peer:
        if org not in self.peers:
            d = self.tmp / org
            d.mkdir(exist_ok=True)
            self.peers[org] = Peer(
                org, self.keys[org], self.genesis, SqliteState(d / "state.sqlite"),
                Registry(Toy()), d,
            )  # fmt: skip
        return self.peers[org]

    def reopen(self, org: str) -> Peer:
        self.peers.pop(org).close()
        return self.peer(org)

    def client(self, org: str) -> Client:
        return Client(org, self.keys[org], self.genesis, clock=lambda: 1000)

    def tx(self, fn: str, args: list[Any], creator: str = "a", by: tuple[str, ...] = ("a", "b"),
           endorse_at: str = "a") -> bytes:  # fmt: skip
        """A transaction endorsed by ``by`` (each executing at ``endorse_at``'s state)."""
        c = self.client(creator)
        proposal, _ = c.propose("toy", fn, args)
        return Client.transaction(proposal, self.endorse(proposal, by, endorse_at))

    def endorse(self, proposal: bytes, by: tuple[str, ...], at: str = "a") -> list[bytes]:
        """Endorsements by ``by``, executed once at ``at`` (the same state for all)."""
        end = decode_endorsement(parse_sign1(self.peer(at).endorse(proposal)).payload)
        return [
            Endorsement(end.tx, org, end.reads, end.writes, end.result, end.error).sign(
                self.keys[org]
            )
            for org in by
        ]

    def blind(self, proposal: bytes, by: tuple[str, ...], writes: Any) -> list[bytes]:
        """Endorsements made without executing (for proposals a peer would refuse)."""
        tx_id = INTL.hash(proposal)
        return [Endorsement(tx_id, o, (), writes, None, "").sign(self.keys[o]) for o in by]

    def block(self, txs: list[bytes], prev: bytes | None = None) -> Block:
        height = len(self.blocks) + 1
        if prev is None:
            prev = self.blocks[-1].hash(INTL) if self.blocks else self.genesis.chain
        b = build_block(self.genesis, height, prev, 1000 + height, txs)
        self.blocks.append(b)
        return b


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    for p in w.peers.values():
        p.close()


def codes(peer: Peer, block: Block) -> list[str]:
    return [s.code for s in peer.commit(block).statuses]


def test_valid_transactions_commit_with_versions_and_checkpoint(world: World) -> None:
    peer = world.peer("a")
    res = peer.commit(world.block([world.tx("put", ["k", 1]), world.tx("add", ["n", 5])]))
    assert [s.code for s in res.statuses] == ["valid", "valid"]
    assert res.statuses[1].result == 5
    assert peer.state.get("k") == (1, (1, 0))
    assert peer.state.get("n") == (5, (1, 1))
    expected = state_step(
        INTL, state_zero(INTL, world.genesis.chain), [("k", 1, (1, 0)), ("n", 5, (1, 1))]
    )
    cp = decode_checkpoint(parse_sign1(res.signed_checkpoint).payload)
    assert cp.state == expected == res.checkpoint.state
    assert (cp.height, cp.size, cp.block) == (1, 2, world.blocks[0].hash(INTL))
    assert cp.root == peer.txlog.root() and peer.txlog.size == 2


def test_endorsement_rejects_a_bad_proposal(world: World) -> None:
    peer = world.peer("a")
    outsider = SigningKey.generate(INTL)
    proposal, _ = Client("x", outsider, world.genesis).propose("toy", "put", ["k", 1])
    with pytest.raises(ProposalRejected) as err:
        peer.endorse(proposal)
    assert err.value.code == "bad_creator_signature" and "not a member" in err.value.reason
    with pytest.raises(ProposalRejected) as err:
        peer.endorse(b"\x00garbage")
    assert err.value.code == "malformed"


def test_each_invalid_transaction_gets_its_code(world: World) -> None:
    """One block with one transaction per failure, each named by the first rule it breaks."""
    peer = world.peer("a")
    keys = world.keys
    good = world.tx("put", ["k", 1])

    # not a transaction at all
    malformed = b"\x01\x02"
    # creator a, but signed with b's key
    c = Client("a", keys["b"], world.genesis)
    p, _ = c.propose("toy", "put", ["k", 2])
    forged_creator = Client.transaction(p, world.blind(p, ("a", "b"), (("k", 2),)))
    # a proposal for another chain (signed correctly)
    other = Proposal(b"\x07" * 32, "toy", "put", ("k", 3), "a", b"n", 1).sign(keys["a"])
    wrong_chain = Client.transaction(other, world.blind(other, ("a", "b"), (("k", 3),)))
    # an endorsement claiming c but signed with d's key
    p, tx_id = world.client("a").propose("toy", "put", ["k", 4])
    ok = world.endorse(p, ("a",))[0]
    genuine = world.endorse(p, ("c",))[0]
    e = decode_endorsement(parse_sign1(genuine).payload)
    forged = Endorsement(e.tx, "c", e.reads, e.writes, e.result, e.error).sign(keys["d"])
    forged_endorsement = Client.transaction(p, [ok, forged])
    # two endorsers disagree on the written value
    p, tx_id = world.client("a").propose("toy", "put", ["k", 5])
    a_end = world.endorse(p, ("a",))
    e = decode_endorsement(parse_sign1(a_end[0]).payload)
    lie = Endorsement(tx_id, "b", e.reads, (("k", 99),), 99, "").sign(keys["b"])
    mismatch = Client.transaction(p, [a_end[0], lie])
    # only one endorsement for a 2-of-4 policy
    p, _ = world.client("a").propose("toy", "put", ["k", 6])
    one = Client.transaction(p, world.endorse(p, ("a",)))
    # the contract refused
    refused = world.tx("refuse", ["no goods"])
    # an endorsement of another transaction
    p2, _ = world.client("a").propose("toy", "put", ["k", 7])
    p3, _ = world.client("a").propose("toy", "put", ["k", 7])
    crossed = Client.transaction(p2, world.endorse(p2, ("a",)) + world.endorse(p3, ("b",)))

    txs = [good, malformed, forged_creator, wrong_chain, forged_endorsement, mismatch, one,
           refused, crossed, good]  # fmt: skip
    res = peer.commit(world.block(txs))
    got = [(s.code, s.reason) for s in res.statuses]
    assert [c for c, _ in got] == [
        "valid", "malformed", "bad_creator_signature", "wrong_chain", "bad_endorsement",
        "endorsement_mismatch", "policy_not_met", "contract_error", "bad_endorsement",
        "duplicate_tx",
    ]  # fmt: skip
    assert "not signed by 'c'" in got[4][1]
    assert "another transaction" in got[8][1]
    assert got[7][1] == "no goods" and res.statuses[7].error == "no goods"
    assert "do not satisfy toy.put" in got[6][1]
    assert peer.state.get("k") == (1, (1, 0))  # only the first transaction wrote


def test_a_replayed_transaction_is_a_duplicate_even_after_restart(world: World) -> None:
    peer = world.peer("a")
    tx = world.tx("add", ["n", 1])
    assert codes(peer, world.block([tx])) == ["valid"]
    peer = world.reopen("a")  # the index of ordered ids is rebuilt from the transaction log
    assert codes(peer, world.block([tx])) == ["duplicate_tx"]
    assert peer.state.get("n") == (1, (1, 0))
    with pytest.raises(ProposalRejected) as err:
        peer.endorse(decode_transaction(tx).proposal)
    assert err.value.code == "duplicate_tx"


def test_mvcc_conflicts_within_a_block_and_with_a_stale_read(world: World) -> None:
    """Two increments endorsed against the same state: only the first in the block commits.
    A third endorsed before block 1 and ordered in block 2 has a stale read version."""
    peer = world.peer("a")
    assert codes(peer, world.block([world.tx("put", ["n", 10])])) == ["valid"]
    first, second, stale = (world.tx("add", ["n", 1]) for _ in range(3))
    res = peer.commit(world.block([first, second]))
    assert [s.code for s in res.statuses] == ["valid", "mvcc_conflict"]
    assert "read 'n' at version 1.0, now 2.0" in res.statuses[1].reason
    res = peer.commit(world.block([stale]))
    assert [s.code for s in res.statuses] == ["mvcc_conflict"]
    assert peer.state.get("n") == (11, (2, 0))


@pytest.mark.parametrize("doctor", ["parent", "height", "tx", "chain"])
def test_a_block_that_does_not_chain_is_refused_whole(world: World, doctor: str) -> None:
    peer = world.peer("a")
    peer.commit(world.block([world.tx("put", ["k", 1])]))
    before = (peer.height, peer.commitment(), peer.txlog.size)
    good = world.block([world.tx("put", ["k", 2])])
    if doctor == "parent":
        bad = Block(good.chain, good.height, b"\x00" * 32, good.t, good.root, good.txs)
        err: type[Exception] = WrongParent
    elif doctor == "height":
        bad = Block(good.chain, 3, good.prev, good.t, good.root, good.txs)
        err = UnexpectedHeight
    elif doctor == "tx":
        other = world.tx("put", ["k", 666])
        bad = Block(good.chain, good.height, good.prev, good.t, good.root, (other,))
        err = BlockRootMismatch
    else:
        bad = Block(b"\x09" * 32, good.height, good.prev, good.t, good.root, good.txs)
        err = WrongBlockChain
    with pytest.raises(err):
        peer.commit(bad)
    assert (peer.height, peer.commitment(), peer.txlog.size) == before
    assert codes(peer, good) == ["valid"]  # the genuine block still commits


def test_restart_keeps_the_log_and_cuts_a_log_ahead_of_the_state(world: World) -> None:
    peer = world.peer("a")
    for i in range(3):
        peer.commit(world.block([world.tx("put", [f"k{i}", i]), world.tx("add", ["n", 1])]))
    root, cp = peer.txlog.root(), peer.checkpoint()
    peer = world.reopen("a")
    assert peer.txlog.root() == root and peer.checkpoint() == cp
    # a crash after the log append but before the state commit: the log is ahead
    peer.txlog.append_block(4, b"\x01" * 32, [b"x"])
    peer = world.reopen("a")
    assert peer.txlog.height == 3 and peer.checkpoint() == cp
    # a torn last record is dropped on open
    with open(peer.txlog.path, "ab") as f:
        f.write(b"\x00\x00\x01\x00partial")
    peer = world.reopen("a")
    assert peer.txlog.size == 6
    assert codes(peer, world.block([world.tx("add", ["n", 1])])) == ["valid"]

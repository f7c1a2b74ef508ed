"""A consortium of four members (bank a, core enterprise b, warehouse c, logistics d) runs in
one process: a peer per member on SQLite, a solo orderer, one checkpoint collector. The toy
contract needs the endorsement of any two members; a checkpoint is final with three
signatures. Each test tells one story: do the business, break something, check that the
ledger refused exactly what it should and that the honest peers still agree.

Waits poll a condition after every commit, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tally.crypto import GM, INTL, parse_sign1
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium
from tally.ledger.contract import Context, Contract, ContractError, Registry, function
from tally.ledger.errors import BlockRootMismatch, WrongParent
from tally.ledger.formats import Block, Endorsement, decode_checkpoint, decode_endorsement
from tally.ledger.genesis import Ordering
from tally.ledger.peer import Peer
from tally.ledger.state_sqlite import SqliteState
from tally.merkle import Hasher, verify_inclusion

MEMBERS = [("a", ["bank"]), ("b", ["core_enterprise"]), ("c", ["warehouse"]), ("d", ["logistics"])]


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
    def withdraw(self, ctx: Context, key: str, n: int) -> int:
        v: int = ctx.get(key) or 0
        if v < n:
            raise ContractError(f"balance {v} is less than {n}")
        ctx.put(key, v - n)
        return v - n


@pytest.fixture
async def c(tmp_path: Path) -> AsyncIterator[Consortium]:
    cons = await Consortium.create(
        tmp_path,
        members=MEMBERS,
        policies={"toy.*": "2-OF(org:a, org:b, org:c, org:d)"},
        quorum=3,
        suite="intl",
        ordering=Ordering("solo", 50, 10),
        contracts=Registry(Toy()),
    )
    try:
        yield cons
    finally:
        await cons.close()


def reendorse(c: Consortium, proposal: bytes, endorsement: bytes, org: str) -> bytes:
    """The same endorsement content, signed as ``org`` (a peer that agreed blindly)."""
    e = decode_endorsement(parse_sign1(endorsement).payload)
    return Endorsement(e.tx, org, e.reads, e.writes, e.result, e.error).sign(c.keys[org])


async def test_transactions_commit_and_checkpoints_finalise(c: Consortium) -> None:
    """Three transactions go through endorse → order → validate; each ends in a checkpoint
    co-signed by at least three members, and the log proves it holds the transaction."""
    r1 = await c.submit("toy", "put", ["lot-7", {"kg": 1200}], creator="a")
    r2 = await c.submit("toy", "add", ["pledged", 500], creator="b")
    r3 = await c.submit("toy", "add", ["pledged", 250], creator="c")
    assert [r.code for r in (r1, r2, r3)] == ["valid"] * 3
    assert r3.result == 750 and r1.result == {"kg": 1200}
    final = r3.final_checkpoint
    assert final is not None and len(final.signers) >= 3
    assert final.checkpoint.height == r3.height
    await c.wait_height(r3.height)
    for peer in c.peers.values():
        assert peer.state.get("pledged") is not None
        assert peer.state.get("pledged")[0] == 750  # type: ignore[index]
    # the transaction is provably in the final checkpoint's log root
    log = c.peers["a"].txlog
    index = next(i for i in range(log.size) if INTL.hash(_proposal(log.tx(i))) == r3.tx_id)
    hasher = Hasher.for_name("sha256")
    cp = final.checkpoint
    verify_inclusion(hasher, index, cp.size, hasher.hash_leaf(log.tx(index)),
                     log.inclusion_proof(index, cp.size), cp.root)  # fmt: skip
    assert c.alarms == []


def _proposal(tx: bytes) -> bytes:
    from tally.ledger.formats import decode_transaction

    return decode_transaction(tx).proposal


async def test_concurrent_conflicting_transactions_one_commits(c: Consortium) -> None:
    """Two members withdraw from one balance at the same time, both endorsed against the
    same state: exactly one commits; the other fails MVCC and the balance is debited once."""
    await c.submit("toy", "put", ["balance", 100], creator="a")
    p1, e1 = c.endorse("toy", "withdraw", ["balance", 80], creator="a")
    p2, e2 = c.endorse("toy", "withdraw", ["balance", 70], creator="b")
    results = await asyncio.gather(
        c.submit_tx(Client.transaction(p1, e1)), c.submit_tx(Client.transaction(p2, e2))
    )
    assert sorted(r.code for r in results) == ["mvcc_conflict", "valid"]
    won = next(r for r in results if r.valid)
    lost = next(r for r in results if not r.valid)
    assert "read 'balance'" in lost.reason
    await c.wait_height(max(r.height for r in results))
    for peer in c.peers.values():
        assert peer.state.get("balance")[0] == won.result  # type: ignore[index]


async def test_a_forged_endorsement_is_refused(c: Consortium) -> None:
    """Member a gets b's endorsement but replaces it with one it signed itself under b's
    name: every peer marks the transaction bad_endorsement and nothing is written."""
    proposal, (ea, eb) = c.endorse("toy", "put", ["k", 1], creator="a", endorsers=["a", "b"])
    e = decode_endorsement(parse_sign1(eb).payload)
    forged = Endorsement(e.tx, "b", e.reads, e.writes, e.result, e.error).sign(c.keys["a"])
    r = await c.submit_tx(Client.transaction(proposal, [ea, forged]))
    assert r.code == "bad_endorsement" and "not signed by 'b'" in r.reason
    assert r.final_checkpoint is not None  # an invalid transaction still ends in a checkpoint
    await c.wait_height(r.height)
    assert all(p.state.get("k") is None for p in c.peers.values())


async def test_policy_not_met_with_a_missing_endorsement(c: Consortium) -> None:
    """A transaction carrying only its creator's endorsement does not meet 2-of-4."""
    proposal, ends = c.endorse("toy", "put", ["k", 1], creator="a", endorsers=["a"])
    r = await c.submit_tx(Client.transaction(proposal, ends))
    assert r.code == "policy_not_met" and "2-OF" in r.reason.upper()
    proposal, _ = c.endorse("toy", "put", ["k", 1], creator="a", endorsers=["a"])
    r = await c.submit_tx(Client.transaction(proposal, []))
    assert r.code == "policy_not_met" and r.reason == "no endorsements"


async def test_a_replayed_transaction_is_refused(c: Consortium) -> None:
    """A valid transfer is replayed with its endorsements in another order (new bytes, so the
    orderer orders it again, same transaction id): every peer marks it duplicate_tx."""
    proposal, ends = c.endorse("toy", "add", ["paid", 10], creator="a")
    first = await c.submit_tx(Client.transaction(proposal, ends))
    replay = await c.submit_tx(Client.transaction(proposal, list(reversed(ends))))
    assert (first.code, replay.code) == ("valid", "duplicate_tx")
    assert replay.tx_id == first.tx_id and replay.height > first.height
    again = await c.submit_tx(Client.transaction(proposal, ends))  # identical bytes
    assert again.height == first.height and again.code == "valid"  # ordered once only
    await c.wait_height(replay.height)
    assert all(p.state.get("paid")[0] == 10 for p in c.peers.values())  # type: ignore[index]


async def test_a_stale_read_version_is_refused(c: Consortium) -> None:
    """b endorses an increment, then a's increment of the same key commits first; b's
    transaction, read at the old version, fails MVCC."""
    await c.submit("toy", "put", ["n", 1], creator="a")
    stale_p, stale_e = c.endorse("toy", "add", ["n", 5], creator="b")
    assert (await c.submit("toy", "add", ["n", 2], creator="a")).valid
    r = await c.submit_tx(Client.transaction(stale_p, stale_e))
    assert r.code == "mvcc_conflict"
    assert c.peers["a"].state.get("n")[0] == 3  # type: ignore[index]


async def test_a_contract_refusal_is_recorded(c: Consortium) -> None:
    r = await c.submit("toy", "withdraw", ["empty", 5], creator="d")
    assert (r.code, r.error) == ("contract_error", "balance 0 is less than 5")


async def test_a_doctored_or_misparented_block_is_refused_then_the_peer_catches_up(
    c: Consortium,
) -> None:
    """d is down while a block is ordered. Handed a copy of that block with a transaction
    doctored, or naming a wrong parent, d refuses it whole; restarted, it takes the genuine
    block from the orderer and signs the same checkpoint as the others."""
    await c.submit("toy", "put", ["k", 1], creator="a")
    await c.stop_peer("d")
    r = await c.submit("toy", "put", ["k", 2], creator="a")
    genuine = await _block_at(c, r.height)
    other = Client.transaction(*c.endorse("toy", "put", ["k", 666], creator="b"))
    doctored = Block(genuine.chain, genuine.height, genuine.prev, genuine.t, genuine.root,
                     (other,))  # fmt: skip
    misparented = Block(genuine.chain, genuine.height, b"\x00" * 32, genuine.t,
                        genuine.root, genuine.txs)  # fmt: skip
    d_dir = c.peer_dir("d")
    peer = Peer("d", c.keys["d"], c.genesis, SqliteState(d_dir / "state.sqlite"),
                c.contracts, d_dir)  # fmt: skip
    try:
        before = peer.checkpoint()
        with pytest.raises(BlockRootMismatch):
            peer.commit(doctored)
        with pytest.raises(WrongParent):
            peer.commit(misparented)
        assert peer.checkpoint() == before and peer.state.get("k")[0] == 1  # type: ignore[index]
    finally:
        peer.close()
    await c.restart_peer("d")
    await c.wait_height(r.height, ["d"])
    assert c.collector.signers(r.height)["d"] == r.final_checkpoint.payload  # type: ignore[union-attr]
    assert c.alarms == []


async def _block_at(c: Consortium, height: int) -> Block:
    """The genuine block at ``height``, as the orderer delivers it."""
    blocks = c.orderer.blocks(height)
    try:
        return await anext(blocks)
    finally:
        await blocks.aclose()  # type: ignore[attr-defined]


async def test_a_peer_whose_state_diverges_is_named(c: Consortium) -> None:
    """Someone edits d's state database behind its back (the version of one key). The next
    transaction reading that key is valid at a, b and c but not at d, so d's state
    commitment diverges: the checkpoint is final without d, and d is named at once."""
    await c.submit("toy", "put", ["stock", 10], creator="a")
    with sqlite3.connect(c.peer_dir("d") / "state.sqlite") as db:
        db.execute("UPDATE kv SET height = 99 WHERE key = 'stock'")
    r = await c.submit("toy", "add", ["stock", 5], creator="a")
    assert r.valid and r.final_checkpoint is not None and "d" not in r.final_checkpoint.signers
    await c.wait_for(lambda: bool(c.collector.alarms_for("d")))
    named = [a for a in c.alarms if a.final]
    assert [a.org for a in named] == ["d"]
    alarm = named[0]
    assert alarm.height == r.height and alarm.expected_state == r.final_checkpoint.checkpoint.state
    assert alarm.state != alarm.expected_state and "state" in alarm.reason


async def test_a_restarted_peer_catches_up_and_signs_again(c: Consortium) -> None:
    """d stops; three transactions commit with a, b and c alone (quorum 3). d restarts from
    its files, replays the blocks it missed from the orderer and signs checkpoints equal to
    the final ones; later transactions are checkpointed by all four."""
    await c.submit("toy", "add", ["n", 1], creator="a")
    await c.stop_peer("d")
    missed = [await c.submit("toy", "add", ["n", 1], creator="b") for _ in range(3)]
    assert all(r.valid and "d" not in r.final_checkpoint.signers for r in missed)  # type: ignore[union-attr]
    await c.restart_peer("d")
    await c.wait_height(missed[-1].height, ["d"])
    for r in missed:
        assert c.collector.signers(r.height)["d"] == r.final_checkpoint.payload  # type: ignore[union-attr]
    later = await c.submit("toy", "add", ["n", 1], creator="d")
    await c.wait_for(lambda: "d" in c.collector.signers(later.height))
    cp = decode_checkpoint(c.collector.signers(later.height)["d"])
    assert cp == later.final_checkpoint.checkpoint  # type: ignore[union-attr]
    assert c.peers["d"].state.get("n")[0] == 5 and c.alarms == []  # type: ignore[index]


async def test_the_gm_suite_consortium_commits_and_finalises(tmp_path: Path) -> None:
    """The same flow with SM2 signatures and SM3 hashes (the gm suite)."""
    cons = await Consortium.create(
        tmp_path, members=MEMBERS, policies={"toy.*": "2-OF(org:a, org:b, org:c, org:d)"},
        quorum=3, suite="gm", ordering=Ordering("solo", 50, 10), contracts=Registry(Toy()),
    )  # fmt: skip
    try:
        r = await cons.submit("toy", "add", ["n", 2], creator="c")
        assert r.valid and r.final_checkpoint is not None
        assert r.tx_id == GM.hash(_proposal(cons.peers["c"].txlog.tx(0)))
        assert len(r.final_checkpoint.checkpoint.root) == 32
    finally:
        await cons.close()

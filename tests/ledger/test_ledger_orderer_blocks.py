"""Block building shared by every orderer: roots recomputed with tally.merkle, and the chain
checks that recovery (and any orderer's consumer) relies on."""

from __future__ import annotations

import pytest

from tally.crypto import GM, INTL, SigningKey, Suite, cbor
from tally.ledger.errors import BlockRootMismatch, UnexpectedHeight, WrongBlockChain, WrongParent
from tally.ledger.formats import Block, decode_block
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.orderer import block_root, build_block, check_block, tx_hash
from tally.merkle import Hasher, Tree


def make_genesis(suite: Suite = INTL, name: str = "orderer-test") -> Genesis:
    key = SigningKey(INTL, bytes(range(32))) if suite is INTL else SigningKey.generate(GM)
    return Genesis(
        name=name,
        suite=suite,
        t=0,
        members={"bank": Member("bank", ("bank",), key.public.raw)},
        policies={},
        checkpoint_quorum=1,
        ordering=Ordering("solo", 10, 100),
    )


def txs(n: int) -> list[bytes]:
    return [cbor.encode({"v": 1, "proposal": bytes([i]) * 8, "endorsements": []}) for i in range(n)]


@pytest.mark.parametrize("suite", [INTL, GM], ids=lambda s: s.name)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 16])
def test_root_is_rfc9162_over_the_transactions(suite: Suite, n: int) -> None:
    g = make_genesis(suite)
    tree = Tree(Hasher.for_name(suite.hash_name))
    tree.extend(txs(n))
    block = build_block(g, 1, g.chain, 1234, txs(n))
    assert block.root == tree.root()
    assert block.root == block_root(suite, txs(n))
    assert (block.chain, block.height, block.prev, block.t) == (g.chain, 1, g.chain, 1234)
    assert decode_block(block.to_cbor()) == block


def test_empty_block_root_is_hash_of_nothing() -> None:
    g = make_genesis()
    assert build_block(g, 1, g.chain, 0, []).root == INTL.hash(b"")


def test_tx_hash_is_the_suite_hash() -> None:
    assert tx_hash(INTL, b"abc") == INTL.hash(b"abc")
    assert tx_hash(GM, b"abc") == GM.hash(b"abc") != INTL.hash(b"abc")


def test_height_zero_is_refused() -> None:
    g = make_genesis()
    with pytest.raises(ValueError, match="height 0"):
        build_block(g, 0, g.chain, 0, [])


def test_check_block_accepts_a_chain_and_names_each_fault() -> None:
    g = make_genesis()
    b1 = build_block(g, 1, g.chain, 10, txs(3))
    b2 = build_block(g, 2, b1.hash(g.suite), 11, txs(2))
    check_block(g, b1, 1, g.chain)
    check_block(g, b2, 2, b1.hash(g.suite))

    other = make_genesis(name="another consortium")
    with pytest.raises(WrongBlockChain) as chain_err:
        check_block(other, b1, 1, other.chain)
    assert chain_err.value.expected == other.chain and chain_err.value.got == g.chain

    with pytest.raises(UnexpectedHeight) as height_err:
        check_block(g, b2, 3, b1.hash(g.suite))
    assert (height_err.value.height, height_err.value.expected) == (2, 3)

    with pytest.raises(WrongParent):
        check_block(g, b2, 2, g.chain)

    forged = Block(b2.chain, b2.height, b2.prev, b2.t, b2.root, tuple(reversed(b2.txs)))
    with pytest.raises(BlockRootMismatch) as root_err:
        check_block(g, forged, 2, b1.hash(g.suite))
    assert root_err.value.got == b2.root
    assert root_err.value.expected == block_root(g.suite, forged.txs)

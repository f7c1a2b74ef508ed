"""The ledger's committed test vectors: reproduced byte for byte, and they verify."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tally.crypto import INTL, parse_sign1
from tally.ledger.formats import (
    CTY_CHECKPOINT,
    CTY_ENDORSEMENT,
    decode_block,
    decode_checkpoint,
    decode_endorsement,
    decode_transaction,
)
from tally.ledger.genesis import load_genesis
from tally.merkle import Hasher
from tally.merkle.tree import root

DIR = Path(__file__).resolve().parents[1] / "vectors" / "ledger"


def _load(name: str) -> dict[str, object]:
    return dict(json.loads((DIR / f"intl-{name}.json").read_text()))


def test_the_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("ledger_generate", DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write(tmp_path)
    for f in DIR.glob("intl-*.json"):
        assert (tmp_path / f.name).read_text() == f.read_text(), f.name


def test_the_vectors_verify() -> None:
    g = load_genesis(bytes.fromhex(str(_load("genesis")["file"])))
    assert g.chain.hex() == _load("genesis")["chain"]
    tx = decode_transaction(bytes.fromhex(str(_load("transaction")["cbor"])))
    tx_id = INTL.hash(tx.proposal)
    assert tx_id.hex() == _load("proposal")["tx_id"]
    for raw in tx.endorsements:
        msg = parse_sign1(raw, content_type=CTY_ENDORSEMENT)
        key = g.key(msg.kid)
        assert key is not None
        msg.verify(key)
        assert decode_endorsement(msg.payload).tx == tx_id
    block = decode_block(bytes.fromhex(str(_load("block")["cbor"])))
    h = Hasher.for_name("sha256")
    assert block.root == root(h, [h.hash_leaf(t) for t in block.txs])
    assert block.prev == g.chain and block.height == 1
    assert block.hash(INTL).hex() == _load("block")["header_hash"]
    for raw in _load("checkpoint")["cose"]:  # type: ignore[attr-defined]
        msg = parse_sign1(bytes.fromhex(raw), content_type=CTY_CHECKPOINT)
        key = g.key(msg.kid)
        assert key is not None
        msg.verify(key)
        cp = decode_checkpoint(msg.payload)
        assert (cp.height, cp.block, cp.size, cp.root) == (1, block.hash(INTL), 1, block.root)

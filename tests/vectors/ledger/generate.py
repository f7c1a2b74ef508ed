"""Generate the ledger's test vectors (docs/formats.md §20–24) from fixed keys and times.

    python tests/vectors/ledger/generate.py          # rewrites tests/vectors/ledger/*.json

Ed25519 is deterministic, so the output is the same every time; the test
tests/ledger/test_ledger_vectors.py regenerates and compares byte for byte.
Key of a name: Ed25519 seed = SHA-256("tally test vector key: " || name).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tally.crypto import INTL, SigningKey
from tally.ledger.formats import (
    Block,
    Checkpoint,
    Endorsement,
    Proposal,
    Transaction,
    state_step,
    state_zero,
)
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.merkle import Hasher
from tally.merkle.tree import root

HERE = Path(__file__).resolve().parent
T0 = 1767225600000  # 2026-01-01T00:00:00Z


def key(name: str) -> SigningKey:
    return SigningKey(INTL, hashlib.sha256(b"tally test vector key: " + name.encode()).digest())


def vectors() -> dict[str, dict[str, Any]]:
    bank, wh = key("bank-1"), key("wh-1")
    g = Genesis(
        name="vectors",
        suite=INTL,
        t=T0,
        members={
            "bank-1": Member("bank-1", ("bank",), bank.public.raw),
            "wh-1": Member("wh-1", ("warehouse",), wh.public.raw),
        },
        policies={"demo.*": ["and", ["org", "bank-1"], ["role", "warehouse"]]},
        checkpoint_quorum=2,
        ordering=Ordering("solo", 500, 200),
    )
    sigs = [g.sign("bank-1", bank), g.sign("wh-1", wh)]
    genesis_file = g.to_file(sigs)
    chain = g.chain
    prop = Proposal(chain, "demo", "put", ("lot-7", 12), "wh-1", b"\x00" * 16, T0 + 1000)
    prop_cose = prop.sign(wh)
    tx_id = INTL.hash(prop_cose)
    ends = []
    for org, k in (("bank-1", bank), ("wh-1", wh)):
        e = Endorsement(tx_id, org, (("lot-7", None),), (("lot-7", 12),), None, "")
        ends.append(e.sign(k))
    tx = Transaction(prop_cose, tuple(ends)).to_cbor()
    h = Hasher.for_name("sha256")
    block = Block(chain, 1, chain, T0 + 1200, root(h, [h.hash_leaf(tx)]), (tx,))
    state = state_step(INTL, state_zero(INTL, chain), [("lot-7", 12, (1, 0))])
    cp = Checkpoint(chain, 1, block.hash(INTL), state, 1, block.root)
    cps = [cp.sign(bank, "bank-1"), cp.sign(wh, "wh-1")]
    hexes = {
        "genesis": {
            "body": g.body().hex(),
            "file": genesis_file.hex(),
            "chain": chain.hex(),
            "keys": {"bank-1": bank.public.raw.hex(), "wh-1": wh.public.raw.hex()},
        },
        "proposal": {
            "payload": prop.to_cbor().hex(),
            "cose": prop_cose.hex(),
            "tx_id": tx_id.hex(),
        },
        "endorsements": {"cose": [e.hex() for e in ends]},
        "transaction": {"cbor": tx.hex()},
        "block": {
            "cbor": block.to_cbor().hex(),
            "header_hash": block.hash(INTL).hex(),
            "root": block.root.hex(),
        },
        "checkpoint": {
            "payload": cp.to_cbor().hex(),
            "cose": [c.hex() for c in cps],
            "state": state.hex(),
        },
    }
    return hexes


def write(out: Path = HERE) -> None:
    for name, v in vectors().items():
        v = {"source": "tests/vectors/ledger/generate.py (fixed keys and times)", **v}
        (out / f"intl-{name}.json").write_text(json.dumps(v, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

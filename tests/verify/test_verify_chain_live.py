"""Chained bundles from a live consortium: every chain check, against transactions that are
really in the log.

A consortium of four members (acme, bank, wh-1, regulator; quorum 3; anchoring and registry
governed by ``2-OF(org:acme, org:bank, org:wh-1)``) runs in this process with the system
contracts, as ``tests/vectors/bundles/generate_chain.py`` runs it: it registers edge-1,
anchors edge-1's batches 0 and 1, and then orders crafted anchoring transactions of batch 1
that the peers mark invalid but keep in the transaction log (endorsements that disagree, by a
non-member, for another transaction, writing another hash; proposals by a non-member, of
another chain, with a forged signature). Each bundle carries one transaction with its real
RFC 9162 path to the last final checkpoint; the verifier must name exactly what is wrong.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tally.crypto import INTL, cbor, parse_sign1, sign1
from tally.ledger.consortium import Consortium
from tally.ledger.contracts.keys import batch_key
from tally.ledger.formats import (
    CTY_PROPOSAL,
    Endorsement,
    Proposal,
    Transaction,
    decode_endorsement,
    decode_proposal,
    decode_transaction,
)
from tally.ledger.genesis import load_genesis
from tally.merkle import Hasher, Tree
from tally.verify.bundle import Bundle, ChainProof
from tally.verify.verifier import verify_bundle

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
CHAIN_STEPS = ("bundle:", "checkpoint:", "quorum:", "chain inclusion:", "anchoring transaction:")


def _chain_generator() -> ModuleType:
    name = "tally_chain_vector_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BUNDLES / "generate_chain.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


GC = _chain_generator()
G = GC.G
SUITE = INTL


def _template(c: Consortium, header1: bytes) -> Endorsement:
    """The endorsement content of the valid anchoring of batch 1, read from the log."""
    log = c.peers["bank"].txlog
    for i in range(log.size):
        t = decode_transaction(log.tx(i))
        p = decode_proposal(parse_sign1(t.proposal).payload)
        if p.fn == "anchor_batch" and p.args == (header1,) and len(t.endorsements) >= 2:
            e = decode_endorsement(parse_sign1(t.endorsements[0]).payload)
            if not e.error:
                return e
    raise AssertionError("the valid anchoring of batch 1 is not in the log")


async def _crafted(c: Consortium, header1: bytes) -> dict[str, bytes]:
    tmpl = _template(c, header1)
    mallory = G.test_key(SUITE, "mallory")
    suite = c.genesis.suite

    def propose(
        creator: str = "bank",
        *,
        key: Any = None,
        kid: str | None = None,
        chain: bytes | None = None,
        args: tuple[Any, ...] = (header1,),
    ) -> bytes:
        t = G.T0 + 20 * G.MINUTE
        nonce = os.urandom(16)
        p = Proposal(chain or c.genesis.chain, "anchoring", "anchor_batch", args, creator, nonce, t)
        return sign1(key or c.keys[creator], CTY_PROPOSAL, kid or creator, p.to_cbor())

    def endorse(
        proposal: bytes, orgs: tuple[str, ...] = ("acme", "bank"), **change: Any
    ) -> list[bytes]:
        tx_id = suite.hash(proposal)
        return [dataclasses.replace(tmpl, tx=tx_id, org=o, **change).sign(c.keys[o]) for o in orgs]

    def tx(proposal: bytes, ends: list[bytes]) -> bytes:
        return Transaction(proposal, tuple(ends)).to_cbor()

    key = batch_key("edge-1", 1)
    writes = tuple((k, {**v, "hash": b"\x00" * 32} if k == key else v) for k, v in tmpl.writes)
    out: dict[str, bytes] = {}
    p = propose()
    a, b = endorse(p)
    out["disagree"] = tx(p, [a, endorse(p, ("bank",), result={"other": 1})[0]])
    p = propose()
    foreign = dataclasses.replace(tmpl, tx=suite.hash(p), org="mallory").sign(mallory)
    out["foreign-endorser"] = tx(p, [endorse(p)[0], foreign])
    p, other = propose(), propose()
    out["other-tx-endorsement"] = tx(p, [endorse(p)[0], endorse(other)[1]])
    p = propose()
    out["wrong-hash"] = tx(p, endorse(p, writes=writes))
    p = propose()
    out["no-anchor-write"] = tx(p, endorse(p, writes=tuple(w for w in tmpl.writes if w[0] != key)))
    p = propose("mallory", key=mallory)
    out["creator-not-member"] = tx(p, endorse(p))
    p = propose(chain=b"\x00" * 32)
    out["proposal-other-chain"] = tx(p, endorse(p))
    p = propose(key=c.keys["acme"])
    out["forged-proposal"] = tx(p, endorse(p))
    p = propose(key=c.keys["acme"], kid="acme")
    out["kid-mismatch"] = tx(p, endorse(p))
    p = propose()
    a, b = endorse(p)
    out["forged-endorsement"] = tx(p, [a, b[:-1] + bytes([b[-1] ^ 1])])
    p = propose()
    out["twice-by-one"] = tx(p, [endorse(p)[0]] * 2)
    p = propose()
    out["no-endorsements"] = tx(p, [])
    p = propose(args=(header1, b"more"))
    out["two-args"] = tx(p, endorse(p))
    return out


@dataclasses.dataclass
class Live:
    chain: Any
    items: list[bytes]
    header: bytes
    base: Any

    def bundle(self, proof: ChainProof | None, item: int = 0, **over: Any) -> bytes:
        tree = Tree(Hasher.for_name(SUITE.hash_name))
        tree.extend(self.items)
        regs = ("lc-03", "edge-1", "cloud-1") if item == 0 else ("edge-1", "cloud-1")
        fields: dict[str, Any] = {
            "suite": SUITE.name,
            "item": self.items[item],
            "index": item,
            "size": tree.size,
            "path": tuple(tree.inclusion_proof(item, tree.size)),
            "header": self.header,
            "registrations": tuple(self.chain.regs[r] for r in regs),
            "anchors": {},
            "receipt": G.receipt(self.base, 1, SUITE.hash(self.header), tree.size),
            "chain": proof,
        }
        fields.update(over)
        return Bundle(**fields).encode()

    def verify(self, data: bytes, **kw: Any) -> Any:
        return verify_bundle(data, None, genesis=self.chain.genesis, **kw)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = G.build_scenario(SUITE)
    _, items1, h0, h1 = GC.headers(base)
    d = tmp_path_factory.mktemp("consortium")
    chain = asyncio.run(GC.run_consortium(SUITE, d, h0, h1, _crafted))
    yield Live(chain, items1, h1, base)


def test_verify_chain_live_valid_reading_and_event(live: Live) -> None:
    good = live.chain.proofs["anchor-1"]
    for item, kind in ((0, "reading"), (5, "event")):
        v = live.verify(live.bundle(good, item))
        assert v.ok, v.reason
        assert v.item_kind == kind and v.chain == "anchored" and v.tx_index == good.index
        assert v.checkpoint_height == live.chain.final.height
        assert v.checkpoint_signers == live.chain.signers
        assert v.line().endswith(
            f" anchored in tx {good.index} of checkpoint {live.chain.final.height} (signed by"
            f" {', '.join(live.chain.signers)}, quorum 3 of 4) — genesis"
            f" {live.chain.genesis.chain.hex()[:16]}"
        )


def test_verify_chain_live_ledger_outcomes_do_not_matter_only_the_evidence(live: Live) -> None:
    # the crafted transactions are in the log, marked invalid by every peer
    codes = {n: a.code for n, a in live.chain.txs.items()}
    assert codes["anchor-1"] == "valid" and codes["weak"] == "policy_not_met"
    assert all(codes[n] != "valid" for n in ("disagree", "wrong-hash", "creator-not-member"))


H = SUITE.hash


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("disagree", "anchoring transaction: endorsements by bank disagree with 'acme'"),
        ("foreign-endorser", "anchoring transaction: endorsement 1: 'mallory' is not a genesis"
         " member"),
        ("other-tx-endorsement", "anchoring transaction: endorsement 1 by 'bank' is for another"
         " transaction"),
        ("wrong-hash", "anchoring transaction: anchor/edge-1/00000000000000000001 records hash"
         " 00000000…, the header hashes to "),
        ("no-anchor-write", "anchoring transaction: the endorsed writes do not record"
         " anchor/edge-1/00000000000000000001"),
        ("creator-not-member", "anchoring transaction: proposal creator: 'mallory' is not a"
         " genesis member"),
        ("proposal-other-chain", "anchoring transaction: proposal of chain 00000000…, genesis "),
        ("forged-proposal", "anchoring transaction: proposal: signature does not verify (signer"
         " 'bank'"),
        ("kid-mismatch", "anchoring transaction: proposal signed by 'acme' for creator 'bank'"),
        ("forged-endorsement", "anchoring transaction: endorsement 1: signature does not verify"
         " (signer 'bank'"),
        ("twice-by-one", "anchoring transaction: two endorsements by 'acme'"),
        ("no-endorsements", "anchoring transaction: no endorsements"),
        ("two-args", "anchoring transaction: anchor_batch with 2 arguments, want 1"),
        ("weak", "anchoring transaction: endorsements by bank do not satisfy 2-OF(org:acme,"
         " org:bank, org:wh-1)"),
        ("repeat", "anchoring transaction: the contract refused: batch 1 of edge-1 is already"
         " anchored"),
        ("anchor-0", "anchoring transaction: anchors batch 0 of edge-1, the bundle's header is"
         " batch 1 of edge-1"),
        ("register-edge-1", "anchoring transaction: a call of registry.register, not"
         " anchoring.anchor_batch"),
    ],
)  # fmt: skip
def test_verify_chain_live_anchoring_transaction_failures(
    live: Live, name: str, reason: str
) -> None:
    proof = live.chain.proofs[name]
    v = live.verify(live.bundle(proof))
    assert not v.ok
    assert v.reason.startswith(reason), v.reason
    assert [s.name for s in v.steps if not s.ok] == ["anchoring transaction"]


def test_verify_chain_live_inclusion_and_quorum_failures(live: Live) -> None:
    good: ChainProof = live.chain.proofs["anchor-1"]

    def reason(**over: Any) -> str:
        v = live.verify(live.bundle(dataclasses.replace(good, **over)))
        assert not v.ok
        return str(v.reason)

    assert reason(tx=live.chain.unordered).startswith("chain inclusion: root mismatch:")
    assert reason(index=good.index + 1).startswith("chain inclusion: root mismatch:")
    assert reason(size=good.size + 1) == (
        f"chain inclusion: the proof is for a log of {good.size + 1} transactions,"
        f" checkpoint {live.chain.final.height} has {good.size}"
    )
    assert reason(sigs=good.sigs[:2]).startswith("quorum: 2 distinct members signed, quorum is 3")
    assert reason(sigs=()) == "quorum: 0 distinct members signed, quorum is 3"
    forged = G.test_key(SUITE, "acme")  # a key that is not acme's genesis key
    fake = live.chain.final.sign(forged, "acme")
    assert reason(sigs=(fake, *good.sigs[1:])).startswith(
        "quorum: signature 0: signature does not verify (signer 'acme'"
    )


def test_verify_chain_live_one_flipped_byte_anywhere_in_the_chain_part(live: Live) -> None:
    good = live.chain.proofs["anchor-1"]
    data = live.bundle(good)
    part = good.encode()
    pos = data.index(part)
    assert cbor.decode(data)["chain"] == good.to_obj()
    reasons: dict[str, int] = {}
    for i in range(pos, pos + len(part)):
        flipped = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        v = live.verify(flipped)
        assert not v.ok, f"byte {i - pos} of the chain part flipped, still valid"
        assert v.reason.startswith(CHAIN_STEPS), (i - pos, v.reason)
        step = v.reason.split(":")[0]
        reasons[step] = reasons.get(step, 0) + 1
    assert {"checkpoint", "quorum", "chain inclusion"} <= set(reasons)


def test_verify_chain_live_other_genesis_and_require_anchor(live: Live, tmp_path: Path) -> None:
    good = live.chain.proofs["anchor-1"]
    data = live.bundle(good)
    other = load_genesis((BUNDLES / "intl" / "chain" / "genesis.cbor").read_bytes())
    v = verify_bundle(data, None, genesis=other)
    assert not v.ok and v.reason.startswith(
        "registration of 'site-1/lc-03': signature does not verify (signer 'acme'"
    )
    plain = live.bundle(None)
    v = live.verify(plain)
    assert v.ok and v.chain == "not anchored" and ", not anchored — genesis " in v.line()
    v = live.verify(plain, require_anchor=True)
    assert v.reason == "chain: not anchored: the bundle has no chain part"
    v = verify_bundle(data, None, accept_bundled_anchors=True, require_anchor=True)
    assert v.reason.startswith("anchors: no trust anchors")  # the bundle carries none

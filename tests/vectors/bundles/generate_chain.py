"""Write the chained proof-bundle vectors (docs/formats.md §15 "chain", §17 steps 11-15).

Run from the repository root (``tests/vectors/formats/generate.py`` runs it too)::

    python tests/vectors/bundles/generate_chain.py            # intl and gm
    python tests/vectors/bundles/generate_chain.py --suite intl

A real consortium runs in this process (``tally.ledger.consortium.Consortium`` with the
system contracts, a solo orderer cutting one block per transaction, four members ``acme``,
``bank``, ``wh-1``, ``regulator``, checkpoint quorum 3, ``registry.*`` and ``anchoring.*``
governed by ``2-OF(org:acme, org:bank, org:wh-1)``). It registers ``edge-1``, the load cell
``site-1/lc-03`` and the cloud ``cloud-1`` through the ``registry`` contract, anchors edge-1's
batch headers 0 and 1 through ``anchoring.anchor_batch``, and orders two more anchoring
transactions that peers mark invalid but that stay in the transaction log (one endorsed by
``bank`` alone, one repeating batch 1). Every chain part is then taken as the cloud takes it:
the transaction bytes and RFC 9162 path from a peer's transaction log
(:func:`tally.ledger.proofs.inclusion_proof`), the final checkpoint's payload and signatures
from the checkpoint collector. A second consortium with the same member names but other keys
supplies a chain part of another chain.

Readings, events and headers are signed with the fixed test keys of
``tests/vectors/formats/generate.py``; registrations with the consortium members' keys.

Not byte-reproducible: ``Consortium.create`` makes fresh member keys (and so a fresh genesis
and chain id) on every run, proposals carry random nonces, and which three members' checkpoint
signatures reach the collector first may vary; gm (SM2) signatures are randomised as well.
Each run writes a consistent set: the manifest's expected lines name the chain id and the
signers of that run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tally import formats as F
from tally.crypto import SigningKey, Suite, get_suite
from tally.device.registration import Assurance
from tally.device.trust import Trust, decode_trust
from tally.edge.formats import BatchHeader, sign_object
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.formats import Checkpoint, decode_transaction
from tally.ledger.genesis import Genesis, Ordering, load_genesis
from tally.ledger.proofs import inclusion_proof
from tally.merkle import Hasher, Tree
from tally.verify.bundle import Bundle, ChainProof
from tally.verify.verifier import verify_bundle

VECTORS = Path(__file__).resolve().parents[1]
SOURCE = "tests/vectors/bundles/generate_chain.py (an in-process consortium; not reproducible)"
MEMBERS = [
    ("acme", ["core_enterprise"]),
    ("bank", ["bank"]),
    ("wh-1", ["warehouse"]),
    ("regulator", ["regulator"]),
]
POLICY = "2-OF(org:acme, org:bank, org:wh-1)"
QUORUM = 3


def generator() -> ModuleType:
    """``tests/vectors/formats/generate.py``: fixed test keys, the spine scenario, helpers."""
    name = "tally_format_vector_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, VECTORS / "formats" / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


G = generator()
T0: int = G.T0
MINUTE: int = G.MINUTE


@dataclass
class ChainCase:
    """One chained bundle and what ``verify_bundle`` must answer for it."""

    file: str
    data: bytes
    expect: str  # the "VALID …" line, or the INVALID reason prefix
    genesis: str | None = "genesis.cbor"
    trust: str | None = None
    accept: bool = False
    require_anchor: bool = False
    note: str = ""


@dataclass
class Anchored:
    """A transaction in the log: its bytes, log index and ledger outcome."""

    tx: bytes
    index: int
    code: str


@dataclass
class Chain:
    """What one consortium run produced."""

    genesis_file: bytes
    genesis: Genesis
    regs: dict[str, bytes]
    final_payload: bytes
    final: Checkpoint
    sigs: tuple[bytes, ...]
    signers: tuple[str, ...]
    earlier_sigs: tuple[bytes, ...]
    txs: dict[str, Anchored]
    unordered: bytes
    proofs: dict[str, ChainProof]
    members_trust: bytes
    keys: dict[str, SigningKey]
    """The members' signing keys (test data, held in memory only)."""


def headers(sc: Any) -> tuple[list[bytes], list[bytes], bytes, bytes]:
    """Batches 0 and 1 of edge-1: (items 0, items 1, header 0, header 1), header 1 chained."""
    suite: Suite = sc.suite
    edge = sc.key("edge-1")
    items0, items1 = sc.items[:1], sc.items[1:]
    out: list[bytes] = []
    prev = b""
    for ctr, items, t1 in ((0, items0, T0), (1, items1, T0 + 5 * MINUTE)):
        tree = Tree(Hasher.for_name(suite.hash_name))
        tree.extend(items)
        h = BatchHeader("edge-1", "site-1", suite.name, ctr, prev, T0, t1, tree.size, tree.root())
        cose = sign_object(edge, F.CTY_BATCH, "edge-1", h.to_cbor())
        out.append(cose)
        prev = suite.hash(cose)
    return items0, items1, out[0], out[1]


def log_index(c: Consortium, org: str, tx: bytes) -> int:
    log = c.peers[org].txlog
    for i in range(log.size):
        if log.tx(i) == tx:
            return i
    raise SystemExit("the transaction is not in the log")


Extra = Callable[[Consortium, bytes], Awaitable[dict[str, bytes]]]
"""More transactions to order after the standard ones: ``(consortium, header 1) -> name ->
transaction bytes`` (crafted ones too: peers mark them invalid, the log keeps them)."""


async def run_consortium(
    suite: Suite, directory: Path, header0: bytes, header1: bytes, extra: Extra | None = None
) -> Chain:
    policies = {"registry.*": POLICY, "anchoring.*": POLICY}
    c = await Consortium.create(
        directory,
        MEMBERS,
        policies,
        QUORUM,
        suite,
        Ordering("solo", 1, 20),
        contracts=Registry(*system_contracts()),
        name="tally test vectors (simulated)",
        clock=lambda: T0 + 10 * MINUTE,
    )
    try:
        sc = G.Scenario(suite)
        sc.keys.update(c.keys)  # registrations are signed by the members' keys
        regs = {
            "lc-03": G.registration(
                sc, "device", "site-1/lc-03", "acme", "site-1", "load_cell", Assurance.DEVICE
            ),
            "edge-1": G.registration(sc, "edge", "edge-1", "acme", "site-1", "", Assurance.DEVICE),
            "cloud-1": G.registration(sc, "cloud", "cloud-1", "bank", "", "", Assurance.DEVICE),
        }
        results: dict[str, TxResult] = {}
        for name, creator in (("edge-1", "acme"), ("lc-03", "acme"), ("cloud-1", "bank")):
            results[f"register-{name}"] = await c.submit(
                "registry", "register", [regs[name]], creator
            )
        results["anchor-0"] = await c.submit("anchoring", "anchor_batch", [header0], "bank")
        proposal, ends = c.endorse("anchoring", "anchor_batch", [header1], "bank", ["bank"])
        weak = Client.transaction(proposal, ends)
        results["weak"] = await c.submit_tx(weak, prefer="bank")
        results["anchor-1"] = await c.submit("anchoring", "anchor_batch", [header1], "bank")
        results["repeat"] = await c.submit("anchoring", "anchor_batch", [header1], "bank")
        if extra is not None:
            for name, tx in (await extra(c, header1)).items():
                results[name] = await c.submit_tx(tx, prefer="bank")
        proposal, ends = c.endorse("anchoring", "anchor_batch", [header1], "bank")
        unordered = Client.transaction(proposal, ends)  # endorsed, never ordered
        last = list(results.values())[-1]
        assert last.final_checkpoint is not None
        fc = last.final_checkpoint
        earlier = c.collector.final(fc.checkpoint.height - 1)
        assert earlier is not None
        await c.wait_height(fc.checkpoint.height)
        txs: dict[str, Anchored] = {}
        proofs: dict[str, ChainProof] = {}
        log = c.peers["bank"].txlog
        for name, r in results.items():
            tx = next(
                log.tx(i)
                for i in range(log.size)
                if suite.hash(decode_transaction(log.tx(i)).proposal) == r.tx_id
            )
            idx = log_index(c, "bank", tx)
            txs[name] = Anchored(tx, idx, r.code)
            p = inclusion_proof(log, idx, fc.checkpoint)
            proofs[name] = ChainProof(tx, idx, p.size, p.path, fc.payload, fc.signatures)
        expected = {"anchor-0": "valid", "anchor-1": "valid", "weak": "policy_not_met",
                    "repeat": "contract_error"}  # fmt: skip
        for name, code in expected.items():
            if txs[name].code != code:
                raise SystemExit(f"{name}: ledger code {txs[name].code}, expected {code}")
        genesis_file = (directory / "genesis.cbor").read_bytes()
        trust = Trust(suite, {o: c.keys[o].public for o in ("acme", "bank")})
        return Chain(
            genesis_file=genesis_file,
            genesis=load_genesis(genesis_file),
            regs=regs,
            final_payload=fc.payload,
            final=fc.checkpoint,
            sigs=fc.signatures,
            signers=fc.signers,
            earlier_sigs=earlier.signatures,
            txs=txs,
            unordered=unordered,
            proofs=proofs,
            members_trust=trust.to_cbor(),
            keys=dict(c.keys),
        )
    finally:
        await c.close()


def chain_cases(
    suite: Suite, base: Any, items1: list[bytes], header1: bytes, ch: Chain, other: Chain
) -> list[ChainCase]:
    s = suite.name
    tree = Tree(Hasher.for_name(suite.hash_name))
    tree.extend(items1)
    anchors = {o: ch.genesis.members[o].pub for o in ("acme", "bank")}

    def bundle(item: int, regs: tuple[str, ...], chain: ChainProof | None, **over: Any) -> bytes:
        fields: dict[str, Any] = {
            "suite": s,
            "item": items1[item],
            "index": item,
            "size": tree.size,
            "path": tuple(tree.inclusion_proof(item, tree.size)),
            "header": header1,
            "registrations": tuple(ch.regs[r] for r in regs),
            "anchors": anchors,
            "receipt": G.receipt(base, 1, suite.hash(header1), tree.size),
            "chain": chain,
        }
        fields.update(over)
        return Bundle(**fields).encode()

    good = ch.proofs["anchor-1"]
    reading = ("lc-03", "edge-1", "cloud-1")

    def b(**chain_over: Any) -> bytes:
        return bundle(0, reading, ChainProof(**{**good.__dict__, **chain_over}))

    hex16 = ch.genesis.chain.hex()[:16]
    anchored = (
        f" anchored in tx {good.index} of checkpoint {ch.final.height}"
        f" (signed by {', '.join(ch.signers)}, quorum {QUORUM} of {len(MEMBERS)})"
        f" — genesis {hex16}"
    )
    head = "VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#1"
    d = f"{s}/chain"
    vb = b()
    cases = [
        ChainCase(f"{d}/valid-reading.cbor", vb, head + anchored,
                  note="a reading whose batch header is anchored up to a final checkpoint"),
        ChainCase(f"{d}/valid-event.cbor", bundle(5, ("edge-1", "cloud-1"), good),
                  "VALID event edge-1 seq 3 rule load-drop (warning) in batch edge-1#1" + anchored,
                  note="an edge event of the same batch, the same chain part"),
        ChainCase(f"{d}/valid-reading.cbor", vb,
                  f"{head} — anchors not pinned: acme, bank (taken from the bundle);"
                  " chain part not checked (no genesis)", genesis=None, accept=True,
                  note="no genesis: the chain part is not checked, and the verdict says so"),
        ChainCase(f"{d}/unanchored-reading.cbor", bundle(0, reading, None),
                  f"{head}, not anchored — genesis {hex16}",
                  note="no chain part, checked against the genesis"),
        ChainCase(f"{d}/unanchored-reading.cbor", bundle(0, reading, None),
                  "chain: not anchored: the bundle has no chain part", require_anchor=True,
                  note="the same, an anchor required (tally verify --require-anchor)"),
        ChainCase(f"{d}/too-few-signers.cbor", b(sigs=good.sigs[:2]),
                  f"quorum: 2 distinct members signed, quorum is {QUORUM}",
                  note="one of the three checkpoint signatures dropped"),
        ChainCase(f"{d}/policy-not-met.cbor", b(**ch.proofs["weak"].__dict__),
                  f"anchoring transaction: endorsements by bank do not satisfy {POLICY}",
                  note="an ordered transaction endorsed by bank alone (ledger code"
                  " policy_not_met), with its real inclusion proof"),
    ]  # fmt: skip
    if s == "gm":
        return cases
    mallory = G.test_key(suite, "mallory")
    foreign = ch.final.sign(mallory, "mallory")
    sig0 = good.sigs[0]
    first_signer = ch.signers[0]
    cases += [
        ChainCase(f"{d}/valid-reading.cbor", vb, head + anchored, trust="trust.cbor",
                  note="the genesis and a trust file that agrees with it (members acme, bank)"),
        ChainCase(f"{d}/valid-reading.cbor", vb,
                  "anchors: trust file key of 'acme' differs from the genesis member's",
                  trust="../trust.cbor", note="a trust file of other keys for the same orgs"),
        ChainCase(f"{d}/valid-reading.cbor", vb,
                  "anchors: bundle anchor 'acme' differs from the genesis member's key",
                  genesis="other-genesis.cbor",
                  note="another consortium's genesis (same member names, other keys)"),
        ChainCase(f"{d}/forged-checkpoint-sig.cbor", b(sigs=(G.flip(sig0, len(sig0) - 1),
                  *good.sigs[1:])),
                  f"quorum: signature 0: signature does not verify (signer '{first_signer}'",
                  note="low bit of the last byte of the first checkpoint signature flipped"),
        ChainCase(f"{d}/duplicate-signer.cbor", b(sigs=(sig0, sig0, good.sigs[1])),
                  f"quorum: signature 1: '{first_signer}' signed twice",
                  note="one member's signature twice instead of a third member's"),
        ChainCase(f"{d}/non-member-signer.cbor", b(sigs=(*good.sigs[:2], foreign)),
                  "quorum: signature 2: 'mallory' is not a member",
                  note="the third signature by an organisation outside the genesis"),
        ChainCase(f"{d}/other-payload-sig.cbor", b(sigs=(*good.sigs[:2], ch.earlier_sigs[2])),
                  "quorum: signature 2 is over another payload",
                  note="the third signature is of the checkpoint one height earlier"),
        ChainCase(f"{d}/other-chain.cbor", b(**other.proofs["anchor-1"].__dict__),
                  f"checkpoint: chain id {other.genesis.chain[:4].hex()}…,"
                  f" genesis {ch.genesis.chain[:4].hex()}…",
                  note="the same header anchored in another consortium's chain"),
        ChainCase(f"{d}/tx-not-in-log.cbor", b(tx=ch.unordered),
                  "chain inclusion: root mismatch: checkpoint root",
                  note="an endorsed anchoring transaction of this header that was never"
                  " ordered, with the path of the real one"),
        ChainCase(f"{d}/wrong-index.cbor", b(index=good.index - 1),
                  "chain inclusion: root mismatch: checkpoint root",
                  note=f"index {good.index - 1} instead of {good.index}"),
        ChainCase(f"{d}/index-out-of-range.cbor", b(index=good.size),
                  f"chain inclusion: index {good.size} out of range for tree size {good.size}"),
        ChainCase(f"{d}/wrong-size.cbor", b(size=good.size - 1),
                  f"chain inclusion: the proof is for a log of {good.size - 1} transactions,"
                  f" checkpoint {ch.final.height} has {good.size}"),
        ChainCase(f"{d}/short-path.cbor", b(path=good.path[:-1]),
                  f"chain inclusion: wrong proof size {len(good.path) - 1},"
                  f" want {len(good.path)}"),
        ChainCase(f"{d}/other-header.cbor", b(**ch.proofs["anchor-0"].__dict__),
                  "anchoring transaction: anchors batch 0 of edge-1, the bundle's header is"
                  " batch 1 of edge-1",
                  note="the valid, final anchoring of batch 0 offered for batch 1"),
        ChainCase(f"{d}/contract-refused.cbor", b(**ch.proofs["repeat"].__dict__),
                  "anchoring transaction: the contract refused: batch 1 of edge-1 is already"
                  " anchored",
                  note="an ordered repeat of the anchoring (ledger code contract_error)"),
        ChainCase(f"{d}/not-anchoring.cbor", b(**ch.proofs["register-edge-1"].__dict__),
                  "anchoring transaction: a call of registry.register, not"
                  " anchoring.anchor_batch",
                  note="the edge's registration transaction, with its real inclusion proof"),
        ChainCase(f"{d}/flip-checkpoint-byte.cbor",
                  b(checkpoint=G.flip(good.checkpoint, len(good.checkpoint) - 1)),
                  "quorum: signature 0 is over another payload",
                  note="low bit of the checkpoint payload's last byte (its height) flipped"),
        ChainCase(f"{d}/chain-missing-sigs.cbor",
                  vb.replace(b"\x64sigs", b"\x64sigx"),
                  "bundle: chain: missing field(s) ['sigs']",
                  note="the chain part's key \"sigs\" renamed"),
    ]  # fmt: skip
    return cases


def _load(files: dict[str, bytes], rel: str | None, d: str) -> bytes | None:
    if rel is None:
        return None
    key = os.path.normpath(f"bundles/{d}/{rel}")
    if key in files:
        return files[key]
    return (VECTORS / key).read_bytes()


def check_cases(files: dict[str, bytes], cases: list[ChainCase], d: str) -> None:
    """Stop if any case does not verify or fail as it says (catches generator mistakes)."""
    for c in cases:
        g = _load(files, c.genesis, d)
        t = _load(files, c.trust, d)
        v = verify_bundle(
            c.data,
            decode_trust(t) if t is not None else None,
            c.accept,
            genesis=load_genesis(g) if g is not None else None,
            require_anchor=c.require_anchor,
        )
        got = v.line() if v.ok else v.reason
        if not (got == c.expect if c.expect.startswith("VALID") else got.startswith(c.expect)):
            raise SystemExit(f"{c.file}: expected {c.expect!r}, got {got!r}")


def build_chain(suite_name: str) -> dict[str, bytes]:
    """Every chained vector file of one suite: path relative to tests/vectors → bytes."""
    suite = get_suite(suite_name)
    base = G.build_scenario(suite)
    _, items1, h0, h1 = headers(base)
    with tempfile.TemporaryDirectory(prefix="tally-chain-vectors-") as tmp:
        ch = asyncio.run(run_consortium(suite, Path(tmp) / "a", h0, h1))
        other = asyncio.run(run_consortium(suite, Path(tmp) / "b", h0, h1))
    cases = chain_cases(suite, base, items1, h1, ch, other)
    d = f"{suite_name}/chain"
    files: dict[str, bytes] = {
        f"bundles/{d}/genesis.cbor": ch.genesis_file,
        f"bundles/{d}/other-genesis.cbor": other.genesis_file,
        f"bundles/{d}/trust.cbor": ch.members_trust,
    }
    for c in cases:
        files[f"bundles/{c.file}"] = c.data
    check_cases(files, cases, d)
    manifest = {
        "source": SOURCE,
        "suite": suite_name,
        "chain_id": ch.genesis.chain.hex(),
        "cases": [
            {
                "file": c.file,
                "genesis": f"{d}/{c.genesis}" if c.genesis else None,
                "trust": os.path.normpath(f"{d}/{c.trust}") if c.trust else None,
                "accept_bundled_anchors": c.accept,
                "require_anchor": c.require_anchor,
                "valid": c.expect.startswith("VALID"),
                ("line" if c.expect.startswith("VALID") else "reason_prefix"): c.expect,
                "note": c.note,
            }
            for c in cases
        ],
    }
    files[f"bundles/manifest-chain-{suite_name}.json"] = G.dump_json(manifest)
    return files


def write(files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = VECTORS / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(VECTORS.parents[1])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=["intl", "gm", "all"], default="all")
    args = ap.parse_args()
    for s in ("intl", "gm") if args.suite == "all" else (args.suite,):
        write(build_chain(s))


if __name__ == "__main__":
    main()

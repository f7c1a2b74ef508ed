"""Transaction bundles: built by the cloud's ledger links for any committed transaction (a
price a bank set, a refused call, one that lost an MVCC race, one short of its policy) and
checked offline with nothing but the genesis; every single-byte change, a wrong
genesis, a bundle of the other kind, a block that is not the transaction's: INVALID with the
precise reason. The format's test vector is read from the formats documentation.

The in-process consortium runs the finance contracts (members ``bank``, ``wh``, ``reg``; a
quorum of two signs a final checkpoint). The remote case runs two peer services in this
process over a one-server JetStream cluster; without a ``nats-server`` binary it is skipped,
or fails when ``CI=true``.

Simulated data: the commodity and its prices are made up.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services import require_nats_server
from tally.cloud.anchoring import ConsortiumLink, RemoteLedgerLink
from tally.crypto import GM, SigningKey, cbor
from tally.crypto.errors import DecodeError
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import create_consortium
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium, TxResult
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis
from tally.ledger.natscluster import NatsCluster
from tally.ledger.peer import CONTRACT_ERROR, MVCC_CONFLICT, POLICY_NOT_MET, VALID
from tally.ledger.peerservice import PeerConfig, PeerService
from tally.ledger.proofs import ProofError, inclusion_proof
from tally.ledger.remote import RemoteConsortium
from tally.verify.bundle import ChainProof
from tally.verify.cli import run_verify
from tally.verify.txbundle import (
    PrevCheckpoint,
    TxBundle,
    bundle_kind,
    decode_tx_bundle,
    make_tx_bundle,
)
from tally.verify.txverify import VALIDITY_NOTE, show, verify_tx_bundle
from tally.verify.verifier import verify_bundle

ROOT = Path(__file__).resolve().parents[2]
LEDGER_VECTORS = ROOT / "tests" / "vectors" / "ledger"
CHAIN = ROOT / "tests" / "vectors" / "bundles" / "intl" / "chain"
ORGS = {"bank": ["bank"], "wh": ["warehouse"], "reg": ["regulator"]}
STEEL = "steel coil"
STEPS = ("bundle", "suite", "checkpoint", "quorum", "chain inclusion", "block", "transaction",
         "policy")  # fmt: skip
READING_IN_TX = (
    "bundle: kind 'tally.bundle' is a reading's proof bundle, not a transaction bundle"
    " ('tally.txbundle')"
)
TX_IN_READING = (
    "bundle: kind 'tally.txbundle' is a transaction bundle, not a reading's proof bundle"
    " ('tally.bundle')"
)


@dataclass
class Fin:
    c: Consortium
    link: ConsortiumLink
    genesis: Genesis
    """Loaded from the genesis file, as an offline verifier has it."""
    genesis_path: Path

    async def price(self, value: str, currency: str = "CNY") -> TxResult:
        return await self.c.submit("market", "set_price", [STEEL, Decimal(value), currency],
                                   creator="bank")  # fmt: skip

    def log_index(self, r: TxResult) -> int:
        return self.c.peers["bank"].txlog.size_at(r.height - 1) + r.index


@pytest.fixture
async def fin(tmp_path: Path) -> AsyncIterator[Fin]:
    c = await Consortium.create(
        tmp_path / "ledger",
        members=list(ORGS.items()),
        policies={**system_policies(ORGS), **default_policies(ORGS)},
        quorum=2,
        ordering=Ordering("solo", 50, 5),
        contracts=Registry(*system_contracts(), *finance_contracts()),
    )
    try:
        r = await c.submit("market", "set_commodity", [STEEL, "t", Decimal("0.005")], "bank")
        assert r.valid, r.error
        path = c.directory / "genesis.cbor"
        yield Fin(c, ConsortiumLink(c, "bank"), load_genesis(path.read_bytes()), path)
    finally:
        await c.close()


def vector_genesis() -> Genesis:
    v = json.loads((LEDGER_VECTORS / "intl-genesis.json").read_text())
    return load_genesis(bytes.fromhex(v["file"]))


def vector_bundle() -> bytes:
    """The transaction bundle of the ledger vectors' one transaction (block 1)."""
    tx = json.loads((LEDGER_VECTORS / "intl-transaction.json").read_text())
    cp = json.loads((LEDGER_VECTORS / "intl-checkpoint.json").read_text())
    sigs = tuple(bytes.fromhex(c) for c in cp["cose"])
    chain = ChainProof(bytes.fromhex(tx["cbor"]), 0, 1, (), bytes.fromhex(cp["payload"]), sigs)
    return TxBundle("intl", chain).encode()


def reencode(data: bytes, **change: Any) -> bytes:
    """``data`` with top-level fields replaced (None deletes), deterministically encoded."""
    obj = cbor.decode(data, max_size=4 << 20)
    for k, v in change.items():
        if v is None:
            obj.pop(k, None)
        else:
            obj[k] = v
    return cbor.encode(obj)


# -- a valid bundle ---------------------------------------------------------------------------


async def test_a_price_the_bank_set_verifies_offline_with_the_genesis_alone(fin: Fin) -> None:
    r = await fin.price("3800.00")
    assert r.code == VALID and r.height > 1
    data = await fin.link.tx_bundle(r.tx_id)
    assert bundle_kind(data) == "tally.txbundle"
    b = decode_tx_bundle(data)
    assert b.prev is not None and b.encode() == data
    v = verify_tx_bundle(data, fin.genesis)
    assert v.ok, v.reason
    assert tuple(s.name for s in v.steps) == STEPS
    index = fin.log_index(r)
    final = fin.c.collector.final(r.height)
    assert final is not None
    assert (v.checkpoint_height, v.tx_index, v.tx_id) == (r.height, index, r.tx_id)
    assert v.block_start == fin.c.peers["bank"].txlog.size_at(r.height - 1)
    t = r.result["t"]
    assert v.line() == (
        f'VALID transaction {r.tx_id[:4].hex()}… market.set_price("steel coil", 3800, "CNY")'
        f' by bank → {{t: {t}, by: "bank", price: 3800, currency: "CNY", commodity:'
        f' "steel coil"}}: ordered and endorsed under final checkpoint {r.height} (block'
        f" {r.height}, log position {index}; signed by {', '.join(final.signers)}, quorum 2"
        f" of 3; endorsed by bank under role:bank); {VALIDITY_NOTE} — genesis"
        f" {fin.genesis.chain.hex()[:16]}"
    )
    out = v.to_json()
    assert (out["kind"], out["creator"], out["args"]) == (
        "transaction", "bank", ['"steel coil"', "3800", '"CNY"'],
    )  # fmt: skip
    assert json.loads(json.dumps(out)) == out
    # with the current time: fine now, refused when the proposal is dated 10 minutes ahead
    assert verify_tx_bundle(data, fin.genesis, now_ms=t).ok
    early = verify_tx_bundle(data, fin.genesis, now_ms=t - 600_000)
    assert early.reason == f"time: proposal t {t} is 600000 ms after now {t - 600_000}"


def test_show_summarises_values_deterministically() -> None:
    assert show([Decimal("-0.001"), None, True, b"\x01\x02"]) == (
        "[-0.001, null, true, h'0102' (2 bytes)]"
    )
    assert show(cbor.decode(cbor.encode(Decimal("1.50")))) == "1.5"
    assert show(Decimal("3.8E+3")) == "3800"
    assert show("x" * 50) == f'"{"x" * 39}…"'
    assert show({"a": [1, [2, [3]]], "b": {"c": {"d": 1}}}) == (
        "{a: [1, [2 item(s)]], b: {c: {1 field(s)}}}"
    )
    assert show(list(range(9))) == "[0, 1, 2, 3, … 5 more]"
    tx = json.loads((LEDGER_VECTORS / "intl-proposal.json").read_text())
    assert show(bytes.fromhex(tx["cose"])).startswith("<signed proposal by wh-1, ")
    assert len(show("y" * 500)) <= 120


# -- whatever was changed is refused ----------------------------------------------------------


async def test_every_single_byte_change_is_invalid(fin: Fin) -> None:
    r = await fin.price("3810")
    data = await fin.link.tx_bundle(r.tx_id)
    failed: set[str] = set()
    for pos in range(len(data)):  # cheap enough to try every position
        for flip in (0x01, 0xFF):
            mutated = bytearray(data)
            mutated[pos] ^= flip
            v = verify_tx_bundle(bytes(mutated), fin.genesis)
            assert not v.ok, f"byte {pos} ^ {flip:#x} still verifies"
            name, _, detail = v.reason.partition(": ")
            assert name in STEPS and detail, v.reason
            assert v.steps[-1].ok is False and all(s.ok for s in v.steps[:-1])
            failed.add(name)
    assert verify_tx_bundle(data, fin.genesis).ok  # checking changed nothing
    assert {"bundle", "quorum", "chain inclusion", "block"} <= failed, failed


async def test_a_wrong_genesis_is_refused(fin: Fin) -> None:
    r = await fin.price("3820")
    data = await fin.link.tx_bundle(r.tx_id)
    other = vector_genesis()
    v = verify_tx_bundle(data, other)
    assert v.reason == (
        f"checkpoint: chain id {fin.genesis.chain[:4].hex()}…, genesis {other.chain[:4].hex()}…"
    )
    gm = SigningKey.generate(GM)
    gm_genesis = Genesis("gm", GM, 0, {"bank": Member("bank", ("bank",), gm.public.raw)}, {}, 1)
    assert verify_tx_bundle(data, gm_genesis).reason == (
        "suite: bundle suite 'intl', genesis suite 'gm'"
    )


# -- one kind is never read as the other ------------------------------------------------------


async def test_reading_and_transaction_bundles_never_mix(
    fin: Fin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reading = (CHAIN / "valid-reading.cbor").read_bytes()
    reading_genesis = load_genesis((CHAIN / "genesis.cbor").read_bytes())
    assert verify_tx_bundle(reading, reading_genesis).reason == READING_IN_TX
    with pytest.raises(DecodeError) as err:
        decode_tx_bundle(reading)
    assert str(err.value) == READING_IN_TX
    r = await fin.price("3830")
    data = await fin.link.tx_bundle(r.tx_id)
    assert verify_bundle(data, None, genesis=fin.genesis).reason == TX_IN_READING
    assert verify_bundle(data, None, accept_bundled_anchors=True).reason == TX_IN_READING

    # tally verify tells them apart by their kind
    shutil.copy(fin.genesis_path, tmp_path / "genesis.cbor")
    path = tmp_path / "price.cbor"
    path.write_bytes(data)
    assert run_verify(path, None, False) == 0
    assert capsys.readouterr().out == verify_tx_bundle(data, fin.genesis).line() + "\n"
    assert run_verify(path, None, True, fin.genesis_path) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["valid"], out["kind"], out["genesis_file"]) == (
        True, "transaction", str(fin.genesis_path),
    )  # fmt: skip
    assert run_verify(CHAIN / "valid-reading.cbor", None, False) == 0
    assert capsys.readouterr().out.startswith("VALID reading ")
    # without a genesis a transaction bundle cannot be checked: an error, not a verdict
    alone = tmp_path / "alone" / "here" / "price.cbor"  # no genesis.cbor here or one up
    alone.parent.mkdir(parents=True)
    alone.write_bytes(data)
    shutil.copy(CHAIN.parent / "trust.cbor", alone.parent / "trust.cbor")
    assert run_verify(alone, None, False) == 2
    got = capsys.readouterr()
    assert got.out == ""
    assert got.err == (
        "error: a transaction bundle is checked against the consortium's genesis (--genesis"
        " FILE, or genesis.cbor beside the bundle)\n"
    )


# -- what the endorsements say ----------------------------------------------------------------


async def test_endorsements_short_of_the_policy_are_refused_naming_it(fin: Fin) -> None:
    args = [STEEL, Decimal("3900"), "CNY"]
    proposal, ends = fin.c.endorse("market", "set_price", args, "bank", endorsers=["wh"])
    r = await fin.c.submit_tx(Client.transaction(proposal, ends))
    assert r.code == POLICY_NOT_MET  # ordered, in the log, and under a final checkpoint
    v = verify_tx_bundle(await fin.link.tx_bundle(r.tx_id), fin.genesis)
    assert v.reason == (
        "policy: endorsements by wh do not satisfy role:bank, the genesis policy of"
        " market.set_price"
    )
    # every endorsement stripped
    proposal, _ = fin.c.endorse("market", "set_price", args, "bank")
    stripped = await fin.c.submit_tx(Client.transaction(proposal, []))
    assert stripped.code != VALID
    v = verify_tx_bundle(await fin.link.tx_bundle(stripped.tx_id), fin.genesis)
    assert v.reason == "transaction: no endorsements"


async def test_a_refused_call_is_refused(fin: Fin) -> None:
    r = await fin.price("3900", currency="USD")
    assert r.code == CONTRACT_ERROR and r.error
    v = verify_tx_bundle(await fin.link.tx_bundle(r.tx_id), fin.genesis)
    assert v.reason == (
        f"transaction: the contract refused: {r.error} (the transaction changed nothing)"
    )


async def test_an_mvcc_loser_is_ordered_and_endorsed_and_says_validity_is_not_proven(
    fin: Fin,
) -> None:
    """The limit of the proof: a transaction the peers marked ``mvcc_conflict`` verifies as
    ordered and endorsed — and the verdict says its validity is the peers' word."""
    args = [STEEL, Decimal("4000"), "CNY"]
    late = fin.c.endorse("market", "set_price", args, "bank")  # reads the commodity now
    first = await fin.c.submit("market", "set_commodity", [STEEL, "t", Decimal("0.01")], "bank")
    assert first.valid
    r = await fin.c.submit_tx(Client.transaction(*late))
    assert r.code == MVCC_CONFLICT
    v = verify_tx_bundle(await fin.link.tx_bundle(r.tx_id), fin.genesis)
    assert v.ok, v.reason
    assert f"ordered and endorsed under final checkpoint {r.height} " in v.line()
    assert v.line().endswith(f"; {VALIDITY_NOTE} — genesis {fin.genesis.chain.hex()[:16]}")
    assert v.to_json()["validity"] == "not proven: the peers' verdict (MVCC)"


# -- the block is proven ----------------------------------------------------------------------


async def test_the_block_of_the_transaction_is_proven(fin: Fin) -> None:
    assert (await fin.price("3690")).valid  # r1's block is then at least block 3
    r1 = await fin.price("3700")
    r2 = await fin.price("3710")
    assert 3 <= r1.height < r2.height
    data = await fin.link.tx_bundle(r1.tx_id)
    b = decode_tx_bundle(data)
    assert b.prev is not None
    index, h = fin.log_index(r1), r1.height
    col = fin.c.collector

    def check(bundle: TxBundle) -> str:
        return verify_tx_bundle(bundle.encode(), fin.genesis).reason

    assert check(replace(b, prev=None)) == (
        f"block: the bundle has no checkpoint of block {h - 1}, needed to place log position"
        f" {index} in block {h}"
    )
    older = col.final(h - 2)
    assert older is not None
    assert check(replace(b, prev=PrevCheckpoint(older.payload, older.signatures))) == (
        f"block: the previous checkpoint is of block {h - 2}, want {h - 1}"
    )
    one = PrevCheckpoint(b.prev.checkpoint, b.prev.sigs[:1])
    signer = fin.c.collector.final(h - 1)
    assert signer is not None
    assert check(replace(b, prev=one)) == (
        f"block: previous checkpoint: 1 distinct members signed, quorum is 2 ({signer.signers[0]})"
    )
    # the same transaction claimed for a later block, with true checkpoints: refused
    later, before = col.final(r2.height), col.final(r2.height - 1)
    assert later is not None and before is not None
    txlog = fin.c.peers["bank"].txlog
    proof = inclusion_proof(txlog, index, later.checkpoint)
    chain = ChainProof(txlog.tx(index), index, proof.size, proof.path, later.payload,
                       later.signatures)  # fmt: skip
    moved = TxBundle("intl", chain, PrevCheckpoint(before.payload, before.signatures))
    assert check(moved) == (
        f"block: log position {index} is not in block {r2.height}: block {r2.height - 1}"
        f" ends at log size {before.checkpoint.size}"
    )
    with pytest.raises(ProofError, match=f"log position {index} is before block {r2.height}"):
        make_tx_bundle(fin.genesis.suite, r1.tx_id, chain, before)
    # block 1 has no block before it
    vector = decode_tx_bundle(vector_bundle())
    assert (
        verify_tx_bundle(replace(vector, prev=b.prev).encode(), vector_genesis()).reason
        == "block: the bundle carries a previous checkpoint, but block 1 has none before it"
    )


# -- decoding ---------------------------------------------------------------------------------

_PREV = {"checkpoint": b"c", "sigs": [b"s"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"extra": 1}, "unknown field(s) ['extra']"),
        ({"chain": None}, "missing field(s) ['chain']"),
        ({"v": 2}, "unsupported format version 2"),
        ({"kind": "tally.genesis"}, "kind 'tally.genesis' is not 'tally.txbundle'"),
        ({"suite": 1}, "field 'suite' must be str, got int"),
        ({"prev": [1]}, "prev: must be a map, got list"),
        ({"prev": {"checkpoint": b"c"}}, "prev: missing field(s) ['sigs']"),
        ({"prev": {**_PREV, "x": 1}}, "prev: unknown field(s) ['x']"),
        ({"prev": {**_PREV, "checkpoint": "c"}}, "prev: field 'checkpoint' must be bytes, got str"),
        ({"prev": {**_PREV, "sigs": b"s"}}, "prev: field 'sigs' must be list, got bytes"),
        ({"prev": {**_PREV, "sigs": [b"s", 2]}}, "prev: sigs must be byte strings"),
        ({"chain": {"tx": b""}},
         "chain: missing field(s) ['checkpoint', 'index', 'path', 'sigs', 'size']"),
    ],
)  # fmt: skip
def test_decode_errors_are_precise(change: dict[str, Any], reason: str) -> None:
    data = reencode(vector_bundle(), **change)
    with pytest.raises(DecodeError) as err:
        decode_tx_bundle(data)
    assert (err.value.where, err.value.reason) == ("bundle", reason)
    assert verify_tx_bundle(data, vector_genesis()).reason == f"bundle: {reason}"


def test_not_a_map_not_cbor_and_an_unknown_suite_are_refused() -> None:
    assert verify_tx_bundle(cbor.encode([1]), vector_genesis()).reason == (
        "bundle: must be a map, got list"
    )
    assert verify_tx_bundle(reencode(vector_bundle(), suite="xx"), vector_genesis()).reason == (
        "suite: unknown crypto suite or algorithm 'xx' (known: intl, gm)"
    )
    assert bundle_kind(b"\xff") is None and bundle_kind(cbor.encode([1])) is None
    assert verify_tx_bundle(vector_bundle() + b"\x00", vector_genesis()).reason == (
        "bundle: 1 trailing bytes"
    )


# -- the builders -----------------------------------------------------------------------------


async def test_builders_refuse_what_they_cannot_prove(fin: Fin) -> None:
    heights = {o: p.height for o, p in fin.c.peers.items()}
    with pytest.raises(ProofError) as err:
        await fin.link.tx_bundle(b"\x00" * 32)
    assert str(err.value) == "transaction 0000000000000000… is not committed at bank"
    r = await fin.price("3600")
    b = decode_tx_bundle(await fin.link.tx_bundle(r.tx_id))
    other = b"\x07" * 32
    with pytest.raises(ProofError) as err:
        make_tx_bundle(fin.genesis.suite, other, b.chain, None)
    assert str(err.value) == (
        f"log position {b.chain.index} holds transaction {r.tx_id.hex()[:16]}…,"
        f" not {other.hex()[:16]}…"
    )
    with pytest.raises(ProofError) as err:
        make_tx_bundle(fin.genesis.suite, r.tx_id, b.chain, None)
    assert str(err.value) == (
        f"transaction {r.tx_id.hex()[:16]}…: no final checkpoint of block {r.height - 1}"
    )
    assert {o: p.height for o, p in fin.c.peers.items()} == {
        o: h + 1 for o, h in heights.items()
    }  # only the one price was added


# -- the documented test vector ---------------------------------------------------------------


def _txbundle_section() -> str:
    """The "Transaction bundles" section of docs/formats.md."""
    for name in ("formats.md",):
        text = (ROOT / "docs" / name).read_text()
        m = re.search(r"^(#+) [^\n]*Transaction bundles[^\n]*$", text, re.MULTILINE)
        if m is None:
            continue
        level = len(m.group(1))
        rest = text[m.end() :]
        end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
        return rest[: end.start()] if end else rest
    raise AssertionError("no section titled 'Transaction bundles' in the formats docs")


def test_the_documented_vector_is_the_bundle_of_the_ledger_vectors() -> None:
    blocks = re.findall(r"```\n(.*?)```", _txbundle_section(), re.DOTALL)
    hexes = [b for b in blocks if re.fullmatch(r"[0-9a-f\n]+", b)]
    lines = [b.strip() for b in blocks if b.startswith("VALID transaction 8c31")]
    assert len(hexes) == 1 and len(lines) == 1
    data = bytes.fromhex(hexes[0].replace("\n", ""))
    assert data == vector_bundle()
    v = verify_tx_bundle(data, vector_genesis())
    assert v.ok, v.reason
    assert v.line() == lines[0]
    assert v.tx_id is not None
    assert v.tx_id.hex() == json.loads((LEDGER_VECTORS / "intl-proposal.json").read_text())["tx_id"]


# -- through peers over HTTP ------------------------------------------------------------------

PASS = "txbundle-test-passphrase"


async def test_remote_ledger_link_builds_bundles_from_peers_over_http(tmp_path: Path) -> None:
    require_nats_server()
    created = create_consortium(
        tmp_path / "consortium", {"bank": ["bank"], "wh": ["warehouse"]}, PASS,
        name="txbundle-remote", quorum=2, ordering=Ordering("jetstream", 20, 20),
        scrypt_n=1 << 10,
    )  # fmt: skip
    async with NatsCluster(tmp_path / "nats", size=1) as nats:
        services: list[PeerService] = []
        try:
            for org in sorted(created.genesis.members):
                cfg = PeerConfig(org=org, key_file=created.key_path(org),
                                 genesis=created.genesis_path, data_dir=tmp_path / "peers" / org,
                                 nats=nats.urls)  # fmt: skip
                services.append(PeerService(cfg, PASS))
                await services[-1].start()
            remote = RemoteConsortium(created.genesis, {s.peer.org: s.url for s in services})
            link = RemoteLedgerLink(remote, "bank", created.keys["bank"])
            try:
                key = created.keys["bank"]
                rs = [await remote.submit("anchoring", "anchor_record",
                                          ["invoice", bytes([i]) * 32], "bank", key)
                      for i in (1, 2)]  # fmt: skip
                assert all(r.valid for r in rs) and rs[1].height > rs[0].height
                for i, r in enumerate(rs, start=1):
                    data = await link.tx_bundle(r.tx_id)
                    assert (decode_tx_bundle(data).prev is None) == (r.height == 1)
                    v = verify_tx_bundle(data, load_genesis(created.genesis_path.read_bytes()))
                    assert v.ok, v.reason
                    assert (v.checkpoint_height, v.tx_index) == (r.height, r.log_index)
                    call = f"anchoring.anchor_record(\"invoice\", h'{f'{i:02x}' * 4}…' (32 bytes))"
                    assert f" {call} by bank → " in v.line()
                with pytest.raises(ProofError) as err:
                    await link.tx_bundle(b"\x01" * 32)
                assert str(err.value) == (
                    "transaction 0101010101010101… is not committed at any peer"
                )
            finally:
                await link.close()
        finally:
            for s in services:
                await s.stop()

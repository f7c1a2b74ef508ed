"""Inclusion and consistency proofs over the transaction log, and checkpoint finality."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tally.crypto import GM, INTL, SigningKey, Suite, cbor, sign1
from tally.ledger.errors import CheckpointInvalid, NotFinal
from tally.ledger.formats import CTY_CHECKPOINT, Checkpoint
from tally.ledger.genesis import Genesis, Member
from tally.ledger.proofs import (
    Consistency,
    ConsistencyError,
    InclusionError,
    ProofError,
    TxInclusion,
    consistency_proof,
    decode_consistency,
    decode_tx_inclusion,
    inclusion_proof,
    verify_consistency,
    verify_final_checkpoint,
    verify_tx_inclusion,
)
from tally.ledger.txlog import TxLog
from tally.merkle import Hasher, ProofSizeError, RootMismatchError, Tree

CHAIN = bytes(range(32))


def _txs(n: int, tag: bytes = b"") -> list[bytes]:
    return [cbor.encode({"v": 1, "proposal": tag + bytes([i]) * 7, "endorsements": []})
            for i in range(n)]  # fmt: skip


def _log(suite: Suite, txs: list[bytes]) -> Tree:
    tree = Tree(Hasher.for_name(suite.hash_name))
    tree.extend(txs)
    return tree


def _cp(log: Tree, height: int, size: int, chain: bytes = CHAIN) -> Checkpoint:
    return Checkpoint(chain, height, b"b" * 32, b"s" * 32, size, log.root_at(size))


def _flip(data: bytes, i: int = 0) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.fixture(params=[INTL, GM], ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


# -- inclusion -------------------------------------------------------------------------------


def test_every_transaction_is_proven_in_every_later_checkpoint(suite: Suite) -> None:
    txs = _txs(13)
    log = _log(suite, txs)
    for size in (1, 2, 5, 8, 13):
        cp = _cp(log, size, size)
        for i in range(size):
            proof = inclusion_proof(log, i, cp)
            assert (proof.index, proof.size) == (i, size)
            verify_tx_inclusion(suite, txs[i], proof, cp)
            assert decode_tx_inclusion(proof.to_cbor()) == proof


def test_a_changed_transaction_is_not_proven(suite: Suite) -> None:
    txs = _txs(9)
    log = _log(suite, txs)
    cp = _cp(log, 3, 9)
    proof = inclusion_proof(log, 4, cp)
    for i in (0, len(txs[4]) // 2, len(txs[4]) - 1):
        with pytest.raises(InclusionError, match="is not proven at index 4 of checkpoint 3") as ei:
            verify_tx_inclusion(suite, _flip(txs[4], i), proof, cp)
        assert isinstance(ei.value.cause, RootMismatchError)
    with pytest.raises(InclusionError):  # the right bytes at the wrong place
        verify_tx_inclusion(suite, txs[5], proof, cp)


def test_a_changed_path_or_index_is_not_proven(suite: Suite) -> None:
    txs = _txs(9)
    log = _log(suite, txs)
    cp = _cp(log, 3, 9)
    proof = inclusion_proof(log, 4, cp)
    for k in range(len(proof.path)):
        path = list(proof.path)
        path[k] = _flip(path[k], 31)
        with pytest.raises(InclusionError, match="does not match expected root"):
            verify_tx_inclusion(suite, txs[4], replace(proof, path=tuple(path)), cp)
    with pytest.raises(InclusionError, match="wrong proof size") as ei:
        verify_tx_inclusion(suite, txs[4], replace(proof, path=proof.path[:-1]), cp)
    assert isinstance(ei.value.cause, ProofSizeError)
    with pytest.raises(InclusionError, match="out of range"):
        verify_tx_inclusion(suite, txs[4], replace(proof, index=9), cp)
    with pytest.raises(InclusionError):
        verify_tx_inclusion(suite, txs[4], replace(proof, index=5), cp)
    with pytest.raises(InclusionError, match="has 31 bytes"):
        bad = (proof.path[0][:31], *proof.path[1:])
        verify_tx_inclusion(suite, txs[4], replace(proof, path=bad), cp)


def test_a_proof_for_another_size_is_refused(suite: Suite) -> None:
    txs = _txs(9)
    log = _log(suite, txs)
    small, big = _cp(log, 2, 6), _cp(log, 3, 9)
    proof = inclusion_proof(log, 1, small)
    with pytest.raises(InclusionError, match="log of 6 transactions, checkpoint 3 has 9"):
        verify_tx_inclusion(suite, txs[1], proof, big)
    with pytest.raises(InclusionError):  # the size claimed to match, the path is for 6
        verify_tx_inclusion(suite, txs[1], replace(proof, size=9), big)


def test_no_proof_from_a_log_that_is_not_the_checkpoints() -> None:
    log = _log(INTL, _txs(6))
    other = _log(INTL, _txs(6, b"x"))
    cp = _cp(other, 2, 6)
    with pytest.raises(ProofError, match="root at size 6 is not the root of checkpoint 2"):
        inclusion_proof(log, 0, cp)
    with pytest.raises(ProofError, match="covers 7 transactions, the log holds 6"):
        inclusion_proof(log, 0, replace(cp, size=7))
    with pytest.raises(ProofError, match=r"transactions 0\.\.5"):
        inclusion_proof(log, 6, _cp(log, 2, 6))


# -- consistency -----------------------------------------------------------------------------


def test_consistency_between_every_pair_of_checkpoints(suite: Suite) -> None:
    log = _log(suite, _txs(17))
    sizes = [0, 1, 3, 4, 8, 11, 17]
    cps = [_cp(log, h, s) for h, s in enumerate(sizes, start=1)]
    for a in range(len(cps)):
        for b in range(a, len(cps)):
            proof = consistency_proof(log, cps[a], cps[b])
            verify_consistency(suite, cps[a], cps[b], proof)
            assert decode_consistency(proof.to_cbor()) == proof


def test_a_rewritten_log_is_inconsistent(suite: Suite) -> None:
    txs = _txs(11)
    log = _log(suite, txs)
    forked = _log(suite, [*txs[:2], _flip(txs[2]), *txs[3:]])
    cp1 = _cp(log, 1, 5)
    cp2 = _cp(forked, 2, 11)
    proof = consistency_proof(forked, _cp(forked, 1, 5), cp2)
    with pytest.raises(ConsistencyError, match="checkpoint 2 does not extend") as ei:
        verify_consistency(suite, cp1, cp2, proof)
    assert isinstance(ei.value.cause, RootMismatchError)


def test_a_changed_consistency_proof_fails(suite: Suite) -> None:
    log = _log(suite, _txs(11))
    cp1, cp2 = _cp(log, 1, 5), _cp(log, 2, 11)
    proof = consistency_proof(log, cp1, cp2)
    for k in range(len(proof.path)):
        path = list(proof.path)
        path[k] = _flip(path[k], 7)
        with pytest.raises(ConsistencyError, match="does not match expected"):
            verify_consistency(suite, cp1, cp2, replace(proof, path=tuple(path)))
    with pytest.raises(ConsistencyError, match="wrong proof size"):
        verify_consistency(suite, cp1, cp2, replace(proof, path=proof.path[1:]))
    with pytest.raises(ConsistencyError, match="sizes 4 → 11, the checkpoints have 5 → 11"):
        verify_consistency(suite, cp1, cp2, replace(proof, size1=4))


def test_checkpoints_that_cannot_be_consistent() -> None:
    log = _log(INTL, _txs(11))
    cp1, cp2 = _cp(log, 1, 5), _cp(log, 2, 11)
    proof = consistency_proof(log, cp1, cp2)
    with pytest.raises(ConsistencyError, match="checkpoint 2 is after checkpoint 1"):
        verify_consistency(INTL, cp2, cp1, Consistency(11, 5, proof.path))
    with pytest.raises(ConsistencyError, match="is of chain"):
        verify_consistency(INTL, cp1, replace(cp2, chain=b"\x00" * 32), proof)
    with pytest.raises(ConsistencyError, match="two different checkpoints at height 2"):
        verify_consistency(INTL, replace(cp2, state=b"t" * 32), cp2, Consistency(11, 11, ()))
    with pytest.raises(ConsistencyError, match="log shrank from 11 transactions"):
        verify_consistency(INTL, replace(cp2, height=1), replace(cp1, height=2), proof)
    with pytest.raises(ProofError, match="is not before"):
        consistency_proof(log, cp2, cp1)


# -- finality --------------------------------------------------------------------------------

ORGS = ("bank", "core", "logistics", "warehouse")


def _genesis(suite: Suite, quorum: int = 3) -> tuple[Genesis, dict[str, SigningKey]]:
    keys = {o: SigningKey.generate(suite) for o in ORGS}
    g = Genesis(
        name="test consortium",
        suite=suite,
        t=1_700_000_000_000,
        members={o: Member(o, ("bank",), k.public.raw) for o, k in keys.items()},
        policies={},
        checkpoint_quorum=quorum,
    )
    return g, keys


def _payload(g: Genesis, height: int = 7) -> bytes:
    return Checkpoint(g.chain, height, b"b" * 32, b"s" * 32, 40, b"r" * 32).to_cbor()


def _sign(key: SigningKey, org: str, payload: bytes) -> bytes:
    return sign1(key, CTY_CHECKPOINT, org, payload)


def test_a_quorum_of_distinct_members_makes_a_checkpoint_final(suite: Suite) -> None:
    g, keys = _genesis(suite)
    payload = _payload(g)
    sigs = [_sign(keys[o], o, payload) for o in ORGS]
    cp = verify_final_checkpoint(g, payload, sigs[:3])
    assert (cp.height, cp.size, cp.chain) == (7, 40, g.chain)
    assert verify_final_checkpoint(g, payload, sigs) == cp


def test_too_few_signers_is_not_final() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    sigs = [_sign(keys[o], o, payload) for o in ("logistics", "bank")]
    with pytest.raises(NotFinal, match="checkpoint 7: 2 of 3 signatures") as ei:
        verify_final_checkpoint(g, payload, sigs)
    assert ei.value.signers == ("bank", "logistics")
    with pytest.raises(NotFinal):
        verify_final_checkpoint(g, payload, [])


def test_a_duplicate_signer_is_refused_not_counted() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    sigs = [_sign(keys["bank"], "bank", payload), _sign(keys["core"], "core", payload)]
    with pytest.raises(CheckpointInvalid, match="'bank' signed twice") as ei:
        verify_final_checkpoint(g, payload, [*sigs, _sign(keys["bank"], "bank", payload)])
    assert ei.value.signer == "bank"


def test_a_non_member_signer_is_refused() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    mallory = SigningKey.generate(INTL)
    sigs = [_sign(keys[o], o, payload) for o in ORGS[:2]] + [_sign(mallory, "mallory", payload)]
    with pytest.raises(CheckpointInvalid, match="'mallory' is not a member") as ei:
        verify_final_checkpoint(g, payload, sigs)
    assert ei.value.signer == "mallory"
    # a member's name with another key: a bad signature
    sigs[-1] = _sign(mallory, "warehouse", payload)
    with pytest.raises(CheckpointInvalid, match="signature does not verify") as ei:
        verify_final_checkpoint(g, payload, sigs)
    assert ei.value.signer == "warehouse"


def test_a_flipped_bit_anywhere_is_refused() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    good = [_sign(keys[o], o, payload) for o in ORGS[:3]]
    for i in range(0, len(good[0]), 5):
        bad = [*good[:2], _flip(good[2], i)]
        with pytest.raises(CheckpointInvalid):
            verify_final_checkpoint(g, payload, bad)


def test_signatures_over_another_payload_or_chain_are_refused() -> None:
    g, keys = _genesis(INTL)
    payload, other = _payload(g, 7), _payload(g, 8)
    sigs = [_sign(keys[o], o, payload) for o in ORGS[:3]]
    with pytest.raises(CheckpointInvalid, match="signature 0 is over another payload"):
        verify_final_checkpoint(g, other, sigs)
    g2, _ = _genesis(INTL)
    with pytest.raises(CheckpointInvalid, match="is of chain"):
        verify_final_checkpoint(g2, payload, sigs)
    with pytest.raises(CheckpointInvalid, match="checkpoint"):
        verify_final_checkpoint(g, payload[:-1], sigs)


def test_a_signature_of_another_suite_is_refused() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    gm_key = SigningKey.generate(GM)
    sigs = [_sign(keys[o], o, payload) for o in ORGS[:2]] + [_sign(gm_key, "warehouse", payload)]
    with pytest.raises(CheckpointInvalid, match="wrong crypto suite"):
        verify_final_checkpoint(g, payload, sigs)


def test_a_rotated_key_counts_with_the_current_membership() -> None:
    g, keys = _genesis(INTL)
    payload = _payload(g)
    new = SigningKey.generate(INTL)
    sigs = [_sign(keys[o], o, payload) for o in ORGS[:2]] + [_sign(new, "logistics", payload)]
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verify_final_checkpoint(g, payload, sigs)
    members = {**g.members, "logistics": Member("logistics", ("bank",), new.public.raw)}
    assert verify_final_checkpoint(g, payload, sigs, members).height == 7


def test_encodings_are_strict() -> None:
    p = TxInclusion(1, 2, (b"a" * 32,))
    data = p.to_cbor()
    assert cbor.decode(data) == {"v": 1, "index": 1, "size": 2, "path": [b"a" * 32]}
    with pytest.raises(Exception, match="unknown field"):
        decode_tx_inclusion(cbor.encode({**cbor.decode(data), "x": 1}))
    with pytest.raises(Exception, match="must not be negative"):
        decode_consistency(cbor.encode({"v": 1, "size1": -1, "size2": 2, "path": []}))


def test_proofs_from_a_peers_transaction_log(tmp_path: Path) -> None:
    hasher = Hasher.for_name(INTL.hash_name)
    log = TxLog(tmp_path / "txlog.bin", hasher)
    try:
        txs = _txs(7)
        log.append_block(1, b"h1" * 16, txs[:3])
        cp1 = Checkpoint(CHAIN, 1, b"h1" * 16, b"s" * 32, log.size, log.root())
        log.append_block(2, b"h2" * 16, txs[3:])
        cp2 = Checkpoint(CHAIN, 2, b"h2" * 16, b"s" * 32, log.size, log.root())
        verify_tx_inclusion(INTL, txs[1], inclusion_proof(log, 1, cp1), cp1)
        verify_tx_inclusion(INTL, txs[1], inclusion_proof(log, 1, cp2), cp2)
        verify_tx_inclusion(INTL, txs[6], inclusion_proof(log, 6, cp2), cp2)
        verify_consistency(INTL, cp1, cp2, consistency_proof(log, cp1, cp2))
    finally:
        log.close()

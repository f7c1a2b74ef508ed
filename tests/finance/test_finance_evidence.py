"""Proven readings: a device-signed reading inside an anchored edge batch at the site is
accepted (device- or edge-signed, both suites; from a batch's leaves or from the cloud's
proof bundle); every other case is refused saying which check failed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import SITE, T0, FinanceChain

from tally.crypto import GM, INTL, SigningKey, Suite
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Revocation, sign_revocation
from tally.finance.evidence import ProvenReading, evidence_for, from_bundle, verify_reading
from tally.ledger.contract import Context, ContractError
from tally.ledger.contracts import members_view
from tally.merkle import Hasher
from tally.verify.bundle import Bundle


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[FinanceChain]:
    c = FinanceChain(tmp_path / "state.sqlite")
    yield c
    c.close()


def check(chain: FinanceChain, evidence: Any, site: str | None = SITE) -> ProvenReading:
    members = members_view(chain.state, chain.genesis)
    ctx = Context(chain.state, "bank", b"tx", chain.t, members, chain=chain.genesis.chain)
    p = verify_reading(ctx, evidence, site)
    assert ctx.writes() == ()
    return p


def refusal(chain: FinanceChain, evidence: Any, site: str | None = SITE) -> str:
    with pytest.raises(ContractError) as err:
        check(chain, evidence, site)
    return err.value.reason


@pytest.mark.parametrize("suite", [INTL, GM], ids=lambda s: s.name)
def test_a_proven_weight_reading_is_accepted(tmp_path: Path, suite: Suite) -> None:
    chain = FinanceChain(tmp_path / "s.sqlite", suite)
    try:
        cell = chain.site.cells["A1"]
        other = chain.site.scan("LOT-9", chain.t - 5)
        reading = chain.site.weigh("A1", "100.25", chain.t)
        evs = chain.anchor([other, reading, chain.site.weigh("A2", "3", chain.t)])
        p = check(chain, evs[1])
        assert isinstance(p, ProvenReading)
        assert (p.dev, p.site, p.edge, p.batch, p.profile) == (cell.dev, SITE, "edge-S", 0,
                                                               "load_cell")  # fmt: skip
        assert p.value("weight") == Decimal("100.25") and p.label("location") == "A1"
        assert p.hash == suite.hash(reading)
        assert check(chain, evs[1], None) == p  # the site defaults to the device's
        scan = check(chain, evs[0])
        assert (scan.profile, scan.label("lot"), scan.label("direction")) == (
            "rfid_gate",
            "LOT-9",
            "in",
        )
    finally:
        chain.close()


def test_an_edge_signed_reading_is_accepted(chain: FinanceChain) -> None:
    """A device that cannot sign (assurance edge): the edge signs its readings."""
    site = chain.site
    scale = DeviceSigner("wb-1", site.edge_key, b"\x02" * 32, signer=site.edge)
    reg = site.registration("device", "wb-1", site.edge_key, "weighbridge", Assurance.EDGE)
    chain.ok("registry", "register", reg, creator="wh")
    m = (Measurement("weight", Decimal("80.5"), "t"),)
    reading = scale.next(chain.t, m, (("location", "Y1"),))
    (ev,) = chain.anchor([reading])
    p = check(chain, ev)
    assert (p.dev, p.profile, p.value("weight")) == ("wb-1", "weighbridge", Decimal("80.5"))
    # a reading of wb-1 signed by anyone but a registered edge of the site is refused
    rogue = DeviceSigner("wb-1", SigningKey.generate(INTL), b"\x02" * 32, signer="lc-S-A1")
    (ev2,) = chain.anchor([rogue.next(chain.t, m, (("location", "Y1"),))])
    assert refusal(chain, ev2) == (
        "evidence (reading 0.0 of 'wb-1'): 'lc-S-A1' is registered as a device, not a edge"
    )


def test_the_cloud_proof_bundle_gives_the_same_evidence(chain: FinanceChain) -> None:
    leaves = [chain.site.weigh("A1", "10", chain.t), chain.site.weigh("A2", "20", chain.t)]
    evs = chain.anchor(leaves)
    header = chain.site.headers[-1]
    hasher = Hasher.for_name(INTL.hash_name)
    for i, leaf in enumerate(leaves):
        ev = evidence_for(leaf, leaves, "edge-S", 0, hasher)
        bundle = Bundle(suite="intl", item=leaf, index=i, size=2, path=tuple(ev["path"]),
                        header=header, registrations=())  # fmt: skip
        assert from_bundle(bundle.encode()) == ev == evs[i]
        assert from_bundle(bundle) == ev
        assert check(chain, from_bundle(bundle)).value("weight") == Decimal(10 * (i + 1))


def test_the_shape_is_checked(chain: FinanceChain) -> None:
    (ev,) = chain.anchor([chain.site.weigh("A1", "10", chain.t)])
    cases: list[tuple[Any, str]] = [
        ([1], "evidence: must be a map of reading, edge, ctr, index, path, got list"),
        ({**ev, "x": 1},
         "evidence: must be a map of reading, edge, ctr, index, path, got "
         "['ctr', 'edge', 'index', 'path', 'reading', 'x']"),
        ({**ev, "reading": "r"}, "evidence: reading must be bytes, got str"),
        ({**ev, "edge": ""}, "evidence: edge must be non-empty text, got ''"),
        ({**ev, "ctr": -1}, "evidence: ctr must be an unsigned integer, got -1"),
        ({**ev, "index": True}, "evidence: index must be an unsigned integer, got True"),
        ({**ev, "path": [1]}, "evidence: path must be a list of byte strings"),
        ({**ev, "reading": b"\xa0"}, "evidence: COSE_Sign1: not tagged 18 (COSE_Sign1)"),
    ]  # fmt: skip
    for given, message in cases:
        assert refusal(chain, given) == message


def test_a_heartbeat_is_not_a_reading(chain: FinanceChain) -> None:
    hb = chain.site.cells["A1"].next(chain.t, heartbeat=True)
    (ev,) = chain.anchor([hb])
    assert refusal(chain, ev) == "evidence: a heartbeat of 'lc-S-A1' is not a reading"


def test_the_device_must_be_registered_at_the_site(chain: FinanceChain) -> None:
    m = (Measurement("weight", Decimal("5"), "t"),)
    stranger = DeviceSigner("lc-x", SigningKey.generate(INTL), b"\x01" * 32)
    (ev,) = chain.anchor([stranger.next(chain.t, m, (("location", "A1"),))])
    assert refusal(chain, ev) == "evidence (reading 0.0 of 'lc-x'): device 'lc-x' is not registered"
    assert refusal(chain, ev, None) == (
        "evidence (reading 0.0 of 'lc-x'): device 'lc-x' is not registered"
    )
    (ev,) = chain.anchor([chain.site.weigh("A1", "10", chain.t)])
    assert refusal(chain, ev, "T") == (
        "evidence (reading 0.0 of 'lc-S-A1'): device 'lc-S-A1' is registered at site 'S', not 'T'"
    )
    edge_as_device = DeviceSigner("edge-S", chain.site.edge_key, b"\x01" * 32)
    (ev,) = chain.anchor([edge_as_device.next(chain.t, m)])
    assert refusal(chain, ev) == (
        "evidence (reading 0.0 of 'edge-S'): 'edge-S' is registered as a edge, not a device"
    )


def test_a_reading_after_the_device_revocation_is_refused(chain: FinanceChain) -> None:
    t = chain.t
    evs = chain.anchor([chain.site.weigh("A1", "10", t - 100), chain.site.weigh("A1", "10", t)])
    rev = Revocation("lc-S-A1", "wh", t - 1, "tampered")
    chain.ok("registry", "revoke", sign_revocation(chain.keys["wh"], rev), creator="wh")
    assert check(chain, evs[0]).value("weight") == Decimal(10)
    assert refusal(chain, evs[1]) == (
        f"evidence (reading 0.1 of 'lc-S-A1'): taken at t={t}, the device was revoked at "
        f"t={t - 1} (tampered)"
    )


def test_the_signature_must_be_the_device_s(chain: FinanceChain) -> None:
    m = (Measurement("weight", Decimal("5"), "t"),)
    forged = DeviceSigner("lc-S-A1", SigningKey.generate(INTL), b"\x01" * 32)
    by_gate = DeviceSigner("lc-S-A1", chain.site.gate.key, b"\x01" * 32, signer="gate-S")
    evs = chain.anchor([forged.next(chain.t, m), by_gate.next(chain.t, m)])
    assert refusal(chain, evs[0]) == (
        "evidence (reading 0.0 of 'lc-S-A1'): the signature does not verify with the registered "
        "key of 'lc-S-A1'"
    )
    assert refusal(chain, evs[1]) == (
        "evidence (reading 0.0 of 'lc-S-A1'): signed by 'gate-S', the device signs its own readings"
    )
    gm = DeviceSigner("lc-S-A1", SigningKey.generate(GM), b"\x01" * 32)
    (ev,) = chain.anchor([gm.next(chain.t, m)])
    assert refusal(chain, ev) == (
        "evidence (reading 0.0 of 'lc-S-A1'): signed with suite gm, the key of 'lc-S-A1' is intl"
    )


def test_a_hand_entered_reading_is_not_evidence(chain: FinanceChain) -> None:
    key = SigningKey.generate(INTL)
    reg = chain.site.registration("device", "manual-1", key, "load_cell", Assurance.MANUAL)
    chain.ok("registry", "register", reg, creator="wh")
    m = (Measurement("weight", Decimal("5"), "t"),)
    (ev,) = chain.anchor([DeviceSigner("manual-1", key, b"\x01" * 32).next(chain.t, m)])
    assert refusal(chain, ev) == (
        "evidence (reading 0.0 of 'manual-1'): device 'manual-1' has assurance 'manual': a "
        "hand-entered reading is not IoT evidence"
    )


def test_the_batch_must_be_anchored_and_hold_the_reading(chain: FinanceChain) -> None:
    leaves = [chain.site.weigh("A1", "10", chain.t), chain.site.weigh("A2", "20", chain.t)]
    evs = chain.anchor(leaves)
    what = "evidence (reading 0.0 of 'lc-S-A1')"
    assert (
        refusal(chain, {**evs[0], "ctr": 1}) == f"{what}: batch 1 of edge 'edge-S' is not anchored"
    )
    assert refusal(chain, {**evs[0], "index": 1}).startswith(
        f"{what}: not proven inside batch 0 of edge 'edge-S' at index 1: "
    )
    assert refusal(chain, {**evs[0], "index": 2}) == (
        f"{what}: not proven inside batch 0 of edge 'edge-S' at index 2: index 2 out of range "
        "for tree size 2"
    )
    assert refusal(chain, {**evs[0], "path": []}) == (
        f"{what}: not proven inside batch 0 of edge 'edge-S' at index 0: wrong proof size 0, want 1"
    )
    # a reading that was never in the batch
    stray = chain.site.weigh("A1", "999", chain.t)
    assert refusal(chain, {**evs[0], "reading": stray}).startswith(
        "evidence (reading 0.1 of 'lc-S-A1'): not proven inside batch 0 of edge 'edge-S' at "
        "index 0: "
    )
    assert (
        refusal(chain, {**evs[0], "edge": "edge-T"}) == f"{what}: edge 'edge-T' is not registered"
    )


def test_the_edge_must_be_at_the_site(chain: FinanceChain) -> None:
    other = SigningKey.generate(INTL)
    reg = chain.site.registration("edge", "edge-T", other, site="T")
    chain.ok("registry", "register", reg, creator="wh")
    (ev,) = chain.anchor([chain.site.weigh("A1", "10", chain.t)])
    assert refusal(chain, {**ev, "edge": "edge-T"}) == (
        "evidence (reading 0.0 of 'lc-S-A1'): edge 'edge-T' is registered at site 'T', not 'S'"
    )


def test_readings_are_dated_by_the_device(chain: FinanceChain) -> None:
    (ev,) = chain.anchor([chain.site.weigh("A1", "10", T0 + 5)])
    assert check(chain, ev).t == T0 + 5

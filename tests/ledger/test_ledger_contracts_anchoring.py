"""The anchoring system contract: edge batch headers checked against the edge's registered
key with counter and hash-chain continuity per edge, and salted record hashes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from contract_chain import T0, ContractChain

from tally import formats as F
from tally.crypto import GM, INTL, SigningKey, Suite
from tally.device.registration import (
    Assurance,
    Registration,
    Revocation,
    sign_registration,
    sign_revocation,
)
from tally.edge.formats import BatchHeader, sign_object
from tally.ledger.contracts.keys import batch_key

ORGS = {"bank": ("bank",), "wh": ("warehouse",)}


class Chain(ContractChain):
    """Proposals executed with :func:`execute` and committed one per block, as a peer does;
    with a registered edge ``edge-1`` of org ``wh`` at ``site-1``."""

    def __init__(self, path: Path, suite: Suite = INTL) -> None:
        policies = {"anchoring.*": ["org", "bank"], "registry.*": ["org", "bank"]}
        super().__init__(path, ORGS, policies, suite)
        self.edge_key = SigningKey.generate(suite)
        self.ok("registry", "register", self.registration("edge-1", self.edge_key))
        self.headers: list[bytes] = []

    def registration(self, subject: str, key: SigningKey, kind: str = "edge") -> bytes:
        reg = Registration(kind, subject, "wh", "site-1", "", self.suite.name, key.public.raw,
                           Assurance.DEVICE, T0)  # fmt: skip
        return sign_registration(self.keys["wh"], reg)

    def header(self, ctr: int, prev: bytes | None = None, **kw: Any) -> bytes:
        """Batch ``ctr`` of edge-1, chained to the header made for ``ctr - 1``."""
        if prev is None:
            prev = self.suite.hash(self.headers[ctr - 1]) if ctr else b""
        h = BatchHeader(edge="edge-1", site="site-1", suite=self.suite.name, ctr=ctr, prev=prev,
                        t0=T0 + 1000 * ctr, t1=T0 + 1000 * ctr + 999, n=9,
                        root=bytes([ctr]) * 32)  # fmt: skip
        h = replace(h, **kw)
        cose = sign_object(self.edge_key, F.CTY_BATCH, h.edge, h.to_cbor())
        if len(self.headers) == ctr:
            self.headers.append(cose)
        return cose


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    c = Chain(tmp_path / "state.sqlite")
    yield c
    c.state.close()


@pytest.mark.parametrize("suite", [INTL, GM], ids=lambda s: s.name)
def test_a_chain_of_batches_is_anchored(tmp_path: Path, suite: Suite) -> None:
    chain = Chain(tmp_path / "s.sqlite", suite)
    try:
        for ctr in range(3):
            cose = chain.header(ctr)
            ex = chain.ok("anchoring", "anchor_batch", cose)
            digest = suite.hash(cose)
            assert ex.result == {"edge": "edge-1", "ctr": ctr, "hash": digest}
            assert ex.writes == (
                ("anchor/edge-1", {"ctr": ctr, "hash": digest}),
                (f"anchor/edge-1/{ctr:020d}", {"hash": digest, "root": bytes([ctr]) * 32,
                 "n": 9, "t0": T0 + 1000 * ctr, "t1": T0 + 1000 * ctr + 999}),
            )  # fmt: skip
            last = None if ctr == 0 else (chain.height - 1, 0)
            assert ("anchor/edge-1", last) in ex.reads
            assert ("reg/edge-1", (1, 0)) in ex.reads
        assert [k for k, _, _ in chain.state.range("anchor/edge-1/")] == [
            batch_key("edge-1", c) for c in range(3)
        ]
    finally:
        chain.state.close()


def test_a_missing_batch_is_refused_with_the_reason(chain: Chain) -> None:
    chain.header(0)
    chain.header(1)
    chain.header(2)
    assert chain.refused("anchoring", "anchor_batch", chain.headers[2]) == (
        "batch 0 of edge-1 is missing: nothing anchored yet, got batch 2"
    )
    chain.ok("anchoring", "anchor_batch", chain.headers[0])
    assert chain.refused("anchoring", "anchor_batch", chain.headers[2]) == (
        "batch 1 of edge-1 is missing: last anchored is 0, got batch 2"
    )
    chain.ok("anchoring", "anchor_batch", chain.headers[1])
    chain.ok("anchoring", "anchor_batch", chain.headers[2])


def test_a_repeated_batch_is_refused(chain: Chain) -> None:
    for ctr in range(3):
        chain.ok("anchoring", "anchor_batch", chain.header(ctr))
    assert chain.refused("anchoring", "anchor_batch", chain.headers[2]) == (
        "batch 2 of edge-1 is already anchored"
    )
    assert chain.refused("anchoring", "anchor_batch", chain.headers[0]) == (
        "batch 0 of edge-1 is already anchored"
    )
    # a different header claiming an anchored counter is refused the same way
    other = chain.header(1, prev=chain.suite.hash(chain.headers[0]), n=10)
    assert chain.refused("anchoring", "anchor_batch", other) == (
        "batch 1 of edge-1 is already anchored"
    )


def test_a_header_that_does_not_chain_is_refused(chain: Chain) -> None:
    chain.ok("anchoring", "anchor_batch", chain.header(0))
    chain.ok("anchoring", "anchor_batch", chain.header(1))
    fork = chain.header(2, prev=chain.suite.hash(chain.headers[0]))
    assert chain.refused("anchoring", "anchor_batch", fork) == (
        "batch 2 of edge-1 does not chain: its prev is not the hash of anchored batch 1"
    )


def test_the_edge_signature_is_checked(chain: Chain) -> None:
    rogue = SigningKey.generate(INTL)
    h = BatchHeader("edge-1", "site-1", "intl", 0, b"", T0, T0 + 1, 9, b"\x00" * 32)
    forged = sign_object(rogue, F.CTY_BATCH, "edge-1", h.to_cbor())
    assert chain.refused("anchoring", "anchor_batch", forged) == (
        "batch 0 of edge-1: the signature does not verify with the edge's registered key"
    )
    good = chain.header(0)
    flipped = good[:-3] + bytes([good[-3] ^ 0x10]) + good[-2:]
    assert "does not verify" in chain.refused("anchoring", "anchor_batch", flipped)
    i = good.index(bytes([0]) * 32)  # the root
    tampered = good[:i] + b"\x01" + good[i + 1 :]
    assert "does not verify" in chain.refused("anchoring", "anchor_batch", tampered)
    kid = sign_object(chain.edge_key, F.CTY_BATCH, "edge-2", h.to_cbor())
    assert (
        chain.refused("anchoring", "anchor_batch", kid) == "batch 0 of edge-1: signed by 'edge-2'"
    )
    gm = sign_object(SigningKey.generate(GM), F.CTY_BATCH, "edge-1", h.to_cbor())
    assert chain.refused("anchoring", "anchor_batch", gm) == (
        "batch 0 of edge-1: uses suite 'intl' (signed with 'gm'), the edge's key is 'intl'"
    )


def test_the_edge_must_be_a_registered_edge_at_the_site(chain: Chain) -> None:
    h = BatchHeader("edge-9", "site-1", "intl", 0, b"", T0, T0 + 1, 9, b"\x00" * 32)
    cose = sign_object(chain.edge_key, F.CTY_BATCH, "edge-9", h.to_cbor())
    assert chain.refused("anchoring", "anchor_batch", cose) == (
        "batch 0 of edge-9: edge 'edge-9' is not registered"
    )
    dev_key = SigningKey.generate(INTL)
    chain.ok("registry", "register", chain.registration("dev-1", dev_key, kind="device"))
    h = replace(h, edge="dev-1")
    cose = sign_object(dev_key, F.CTY_BATCH, "dev-1", h.to_cbor())
    assert chain.refused("anchoring", "anchor_batch", cose) == (
        "batch 0 of dev-1: 'dev-1' is registered as a device, not an edge"
    )
    wrong_site = chain.header(0, site="site-2")
    assert chain.refused("anchoring", "anchor_batch", wrong_site) == (
        "batch 0 of edge-1: the header names site 'site-2', the edge is registered at site 'site-1'"
    )
    h = replace(h, edge="a/b")
    cose = sign_object(dev_key, F.CTY_BATCH, "a/b", h.to_cbor())
    assert chain.refused("anchoring", "anchor_batch", cose) == (
        "batch 0 of a/b: an edge id must not contain '/'"
    )


def test_a_revoked_edge_anchors_only_what_it_sealed_before(chain: Chain) -> None:
    chain.ok("anchoring", "anchor_batch", chain.header(0))
    chain.header(1)
    chain.header(2)
    rev = Revocation("edge-1", "wh", T0 + 1999, "decommissioned")
    chain.ok("registry", "revoke", sign_revocation(chain.keys["wh"], rev))
    chain.ok("anchoring", "anchor_batch", chain.headers[1])  # t1 = T0 + 1999
    assert chain.refused("anchoring", "anchor_batch", chain.headers[2]) == (
        f"batch 2 of edge-1: ends at t1={T0 + 2999}, the edge was revoked at t={T0 + 1999} "
        "(decommissioned)"
    )


def test_malformed_headers_are_refused(chain: Chain) -> None:
    assert chain.refused("anchoring", "anchor_batch", 5) == (
        "batch header: must be COSE_Sign1 bytes, got int"
    )
    reg = chain.registration("edge-1", chain.edge_key)
    assert chain.refused("anchoring", "anchor_batch", reg).startswith(
        "batch header: COSE_Sign1: content type 'application/tally.registration+cbor'"
    )
    bad = sign_object(chain.edge_key, F.CTY_BATCH, "edge-1", b"\xa1avb")
    assert chain.refused("anchoring", "anchor_batch", bad).startswith("batch header: ")


def test_records_are_anchored_once(chain: Chain) -> None:
    h = INTL.hash(b"salt" + b"warehouse receipt 42")
    ex = chain.ok("anchoring", "anchor_record", "warehouse_receipt", h)
    assert ex.result == f"record/{h.hex()}"
    assert ex.reads == ((f"record/{h.hex()}", None),)
    assert ex.writes == ((f"record/{h.hex()}", {"kind": "warehouse_receipt", "by": "bank",
                                                "t": chain.t}),)  # fmt: skip
    assert chain.refused("anchoring", "anchor_record", "invoice", h) == (
        f"record {h.hex()[:16]}… is already anchored (kind 'warehouse_receipt')"
    )
    assert chain.refused("anchoring", "anchor_record", "invoice", h[:31]) == (
        "anchor_record: the salted hash must be 32 bytes, got 31"
    )
    assert chain.refused("anchoring", "anchor_record", "invoice", h.hex()) == (
        "anchor_record: the salted hash must be 32 bytes, got str"
    )
    assert chain.refused("anchoring", "anchor_record", "", h) == (
        "anchor_record: kind must be non-empty text, got ''"
    )


def test_edges_count_their_batches_independently(chain: Chain) -> None:
    key2 = SigningKey.generate(INTL)
    chain.ok("registry", "register", chain.registration("edge-2", key2))
    chain.ok("anchoring", "anchor_batch", chain.header(0))
    h = BatchHeader("edge-2", "site-1", "intl", 0, b"", T0, T0 + 1, 1, b"\x02" * 32)
    ex = chain.ok(
        "anchoring", "anchor_batch", sign_object(key2, F.CTY_BATCH, "edge-2", h.to_cbor())
    )
    assert ex.result["ctr"] == 0
    assert chain.state.get("anchor/edge-1") is not None
    assert chain.state.get("anchor/edge-2") is not None

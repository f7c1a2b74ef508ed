"""The cloud anchors what it stores on a real in-process consortium (bank, acme, other; any
two endorse, two of three sign a final checkpoint): each edge's batches in counter order,
refusals recorded with the contract's reason, and proof bundles that carry the chain part up
to a final checkpoint, checked with the ledger's own proof functions and the offline verifier.

Simulated data: every reading carries the label ``sim = "1"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World, make_consortium

from tally.cloud.anchoring import Anchorer, ConsortiumLink
from tally.cloud.app import create_app
from tally.cloud.ingest import Ingestor
from tally.cloud.storage.api import ANCHORED, PENDING, REFUSED, ItemQuery, Storage
from tally.crypto import parse_sign1
from tally.ledger.consortium import Consortium
from tally.ledger.formats import decode_proposal, decode_transaction
from tally.ledger.proofs import TxInclusion, verify_final_checkpoint, verify_tx_inclusion
from tally.verify.bundle import decode_bundle
from tally.verify.verifier import verify_bundle


@dataclass
class Setup:
    world: World
    storage: Storage
    consortium: Consortium
    link: ConsortiumLink
    ingestor: Ingestor

    def upload(self, edge: str, n: int = 3, **kw: object) -> int:
        """Ingest a batch of ``n`` readings of d1 (plus nothing else); return its row id."""
        items = [self.world.reading("d1", T0 + 1000 * i) for i in range(n)]
        header = self.world.header(edge, items, **kw)  # type: ignore[arg-type]
        return self.ingestor.ingest(header, items).batch_id


@pytest.fixture
async def setup(world: World, sqlite_storage: Storage, tmp_path: Path) -> AsyncIterator[Setup]:
    c = await make_consortium(world, tmp_path / "ledger")
    try:
        world.register_all(sqlite_storage)
        link = ConsortiumLink(c, "bank", timeout=2.0, attempts=1)
        edge_e1 = world.registrations[1]  # e9 stays unknown to the chain
        assert parse_sign1(edge_e1).kid == "acme"
        for reg in [world.registrations[0], edge_e1, *world.registrations[3:]]:
            assert (await link.register(reg)).valid
        ingestor = Ingestor(sqlite_storage, world.trust, world.identity, lambda: T0 + 30_000)
        yield Setup(world, sqlite_storage, c, link, ingestor)
    finally:
        await c.close()


def test_the_genesis_members_keys_are_the_trust_anchors(setup: Setup) -> None:
    g = setup.consortium.genesis
    assert {o: m.pub for o, m in g.members.items()} == {
        o: k.raw for o, k in setup.world.trust.orgs.items()
    }


async def test_batches_are_anchored_in_counter_order_and_prove_to_a_final_checkpoint(
    setup: Setup, world: World, tmp_path: Path
) -> None:
    s = setup
    ids = [s.upload("e1") for _ in range(3)]
    anchorer = Anchorer(s.storage, s.link, clock=lambda: T0 + 30_000, hold_ms=60_000)
    assert await anchorer.step() == 3
    recs = s.storage.anchors(ids)
    assert [recs[i].state for i in ids] == [ANCHORED] * 3
    heights = [recs[i].height or 0 for i in ids]
    indexes = [recs[i].log_index or 0 for i in ids]
    assert heights == sorted(heights) and indexes == sorted(set(indexes))
    assert s.storage.batches_to_anchor() == []
    assert anchorer.stats.anchored == 3 and anchorer.stats.refused == 0

    # the proof bundle of a reading of batch 1, through the API
    app = create_app(world.settings(str(tmp_path)), s.storage, world.trust, world.identity,
                     clock=lambda: T0 + 30_000, ledger=s.link)  # fmt: skip
    batch = s.storage.batch_by_id(ids[1])
    assert batch is not None
    reading = next(
        r for r in s.storage.items(ItemQuery(device="d1", limit=100)).items
        if r.batch_id == ids[1]
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        resp = await client.get(
            f"/v1/proofs/items/{reading.hash.hex()}",
            headers={"authorization": f"Bearer {TOKENS['acme']}"},
        )
        assert resp.status_code == 200, resp.text
        counts = await client.get(
            "/v1/anchors", headers={"authorization": f"Bearer {TOKENS['regulator']}"}
        )
    assert counts.json()["anchored"] == 3 and counts.json()["batches"] == 3
    bundle = decode_bundle(resp.content)
    chain = bundle.chain
    assert chain is not None and chain.index == recs[ids[1]].log_index

    # the chain part checked with the ledger's own functions
    g = s.consortium.genesis
    cp = verify_final_checkpoint(g, chain.checkpoint, chain.sigs)
    assert cp.size == chain.size > chain.index and cp.height >= heights[1]
    verify_tx_inclusion(g.suite, chain.tx, TxInclusion(chain.index, chain.size, chain.path), cp)
    tx = decode_transaction(chain.tx)
    proposal = decode_proposal(parse_sign1(tx.proposal).payload)
    assert (proposal.contract, proposal.fn, proposal.creator) == (
        "anchoring",
        "anchor_batch",
        "bank",
    )
    assert proposal.args[0] == bundle.header == batch.header
    assert g.suite.hash(tx.proposal) == recs[ids[1]].tx_id

    # and by the offline verifier, with nothing but the genesis
    verdict = verify_bundle(resp.content, None, genesis=g, require_anchor=True)
    assert verdict.ok, verdict.reason
    assert f"anchored in tx {chain.index} of checkpoint {cp.height}" in verdict.line()
    # a changed signature over the checkpoint is caught
    bad = bytearray(chain.sigs[0])
    bad[-1] ^= 1
    forged = replace(bundle, chain=replace(chain, sigs=(bytes(bad), *chain.sigs[1:])))
    assert not verify_bundle(forged.encode(), None, genesis=g, require_anchor=True).ok


async def test_refusals_are_recorded_with_the_contracts_reason(setup: Setup) -> None:
    s = setup
    unknown = s.upload("e9")  # e9 is registered with the cloud, not on the chain
    s.world.edges["e1"].ctr = 1  # batch 0 of e1 never reaches the cloud
    skipped = s.upload("e1")
    after = s.upload("e1")
    anchorer = Anchorer(s.storage, s.link, clock=lambda: T0 + 30_000, hold_ms=60_000)
    # batch 1 of e1 waits for batch 0 while it may still arrive
    assert await anchorer.step() == 1
    got = s.storage.anchors([unknown, skipped, after])
    assert got[unknown].state == REFUSED
    assert "edge 'e9' is not registered" in got[unknown].reason
    assert skipped not in got and after not in got
    anchorer.hold_ms = 0  # then it is submitted, and the ledger says what is missing
    assert await anchorer.step() == 2
    got = s.storage.anchors([unknown, skipped, after])
    assert got[skipped].state == REFUSED
    assert got[skipped].reason == "batch 0 of e1 is missing: nothing anchored yet, got batch 1"
    assert got[skipped].tx_id is not None and got[skipped].log_index is not None
    assert got[after].state == REFUSED and "batch 0 of e1 is missing" in got[after].reason
    assert anchorer.stats.refused == 3 and len(anchorer.stats.refusals) == 3
    assert s.storage.anchor_counts() == {"refused": 3}
    # a refused batch carries no chain part in its proofs
    assert s.storage.batches_to_anchor() == []


async def test_a_ledger_failure_leaves_the_batch_pending_until_it_succeeds(setup: Setup) -> None:
    s = setup
    first = s.upload("e1")
    for org in ("acme", "other"):  # the bank alone cannot satisfy any two of three
        await s.consortium.stop_peer(org)
    anchorer = Anchorer(s.storage, s.link, clock=lambda: T0 + 30_000, hold_ms=60_000)
    assert await anchorer.step() == 0
    rec = s.storage.anchors([first])[first]
    assert rec.state == PENDING and "cannot satisfy" in rec.reason
    assert anchorer.stats.retries == 1
    for org in ("acme", "other"):
        await s.consortium.restart_peer(org)
    second = s.upload("e1")
    assert await anchorer.step() == 2
    got = s.storage.anchors([first, second])
    assert (got[first].state, got[second].state) == (ANCHORED, ANCHORED)

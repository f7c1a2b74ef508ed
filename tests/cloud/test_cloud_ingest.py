"""Ingest: a good batch is stored with a signed receipt; every failure rejects it whole."""

from __future__ import annotations

import json

import pytest
from cloud_factory import T0, World, make_world

from tally.cloud.errors import IngestRejected
from tally.cloud.ingest import Ingestor
from tally.cloud.registry import accept_signed
from tally.cloud.storage.api import ItemQuery, Storage
from tally.crypto import SigningKey, cbor, get_suite, parse_sign1
from tally.device.registration import Assurance
from tally.edge.formats import decode_receipt, encode_upload
from tally.formats import CTY_RECEIPT


@pytest.fixture
def ready(world: World, sqlite_storage: Storage) -> tuple[World, Storage, Ingestor]:
    world.register_all(sqlite_storage)
    return world, sqlite_storage, Ingestor(sqlite_storage, world.trust, world.identity, lambda: T0)


def rejected(ingestor: Ingestor, upload: bytes) -> IngestRejected:
    with pytest.raises(IngestRejected) as e:
        ingestor.ingest_upload(upload)
    return e.value


def nothing_stored(storage: Storage) -> bool:
    return storage.edge_status("e1") is None and storage.items(ItemQuery()).items == []


def test_good_batch_is_stored_and_receipted(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    items = [
        w.reading("d1", T0 + 1, "21.50"),
        w.reading("d2", T0 + 2, "3.1"),
        w.reading("d3", T0 + 3, "7"),
        w.reading("d1", T0 + 4, heartbeat=True),
        w.event("e1", T0 + 5),
        w.gap("e1", "d1", 10, 12, T0 + 6),
    ]
    res = ing.ingest_upload(w.upload("e1", items))
    assert not res.dup and res.n == 6
    msg = parse_sign1(res.receipt, content_type=CTY_RECEIPT)
    msg.verify(w.identity.key.public)
    receipt = decode_receipt(msg.payload)
    batch = storage.batch("e1", 0)
    assert batch is not None and batch.receipt == res.receipt
    assert receipt.header == w.suite.hash(batch.header) and receipt.n == 6 and not receipt.dup
    got = {r.device: r for r in storage.items(ItemQuery(kinds=("reading",))).items}
    assert {d: Assurance(r.assurance) for d, r in got.items()} == {
        "d1": Assurance.DEVICE,
        "d2": Assurance.EDGE,
        "d3": Assurance.MANUAL,
    }
    assert json.loads(got["d1"].measurements) == [{"q": "temperature", "v": "21.5", "u": "Cel"}]
    assert got["d1"].cose == items[0] and got["d1"].hash == w.suite.hash(items[0])
    [ev] = storage.items(ItemQuery(kinds=("event",))).items
    assert ev.rule == "cold-chain" and ev.org == "acme" and ev.site == "s1"
    [gap] = storage.gaps("d1")
    assert (gap.first, gap.last, gap.item_hash) == (10, 12, w.suite.hash(items[5]))


def test_repeated_batch_gives_dup_receipt_and_stores_nothing_twice(
    ready: tuple[World, Storage, Ingestor],
) -> None:
    w, storage, ing = ready
    upload = w.upload("e1", [w.reading("d1", T0)])
    first = ing.ingest_upload(upload)
    again = ing.ingest_upload(upload)
    assert again.dup and again.batch_id == first.batch_id
    assert decode_receipt(parse_sign1(again.receipt).payload).dup is True
    assert len(storage.items(ItemQuery()).items) == 1
    st = storage.edge_status("e1")
    assert st is not None and st.batches == 1


def test_out_of_order_batches_are_accepted(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    up0 = w.upload("e1", [w.reading("d1", T0)])
    up1 = w.upload("e1", [w.reading("d1", T0 + 1)])
    ing.ingest_upload(up1)
    ing.ingest_upload(up0)
    st = storage.edge_status("e1")
    assert st is not None and (st.last_ctr, st.batches) == (1, 2)


def test_broken_prev_chain(ready: tuple[World, Storage, Ingestor]) -> None:
    w, _storage, ing = ready
    ing.ingest_upload(w.upload("e1", [w.reading("d1", T0)]))
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0 + 1)], ctr=1, prev=b"\x00" * 32))
    assert e.reason == "broken_chain" and e.status == 409
    # a later batch already stored must name this header as its prev
    ing.ingest_upload(w.upload("e1", [w.reading("d1", T0 + 2)], ctr=3, prev=b"\x11" * 32))
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0 + 3)], ctr=2, prev=b"\x22" * 32))
    assert e.reason == "broken_chain" and "stored batch 3" in e.detail


def test_another_header_for_a_stored_counter_conflicts(
    ready: tuple[World, Storage, Ingestor],
) -> None:
    w, _storage, ing = ready
    ing.ingest_upload(w.upload("e1", [w.reading("d1", T0)]))
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0 + 1)], ctr=0, prev=b""))
    assert e.reason == "batch_conflict"


def test_forged_header_signature(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    forger = SigningKey.generate(w.suite)
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0)], key=forger))
    assert e.reason == "bad_header_signature" and e.status == 403
    assert nothing_stored(storage)


def test_root_mismatch_and_tampered_item(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    good = [w.reading("d1", T0), w.reading("d1", T0 + 1)]
    e = rejected(ing, w.upload("e1", good, root_over=good[:1], ctr=0, prev=b""))
    assert e.reason == "root_mismatch"
    header = w.header("e1", good, ctr=0, prev=b"")
    tampered = good[0][:-1] + bytes([good[0][-1] ^ 1])
    e = rejected(ing, encode_upload(header, [tampered, good[1]]))
    assert e.reason == "root_mismatch"
    assert nothing_stored(storage)


def test_bad_item_signature_names_the_index(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    good = w.reading("d1", T0)
    tampered = good[:-1] + bytes([good[-1] ^ 1])  # last signature byte flipped
    e = rejected(ing, w.upload("e1", [w.reading("d2", T0), tampered]))
    assert (e.reason, e.index, e.status) == ("bad_item_signature", 1, 422)
    assert "item 1" in str(e)
    assert nothing_stored(storage)


def test_unknown_edge(ready: tuple[World, Storage, Ingestor]) -> None:
    w, _storage, ing = ready
    w2 = make_world()  # same names, keys the cloud never saw registered... but e1 is known
    w2.edges["eX"] = w2.edges.pop("e1")
    w2.edges["eX"].id = "eX"
    e = rejected(ing, w2.upload("eX", [w.reading("d1", T0)]))
    assert e.reason == "unknown_edge"
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0)], signer="e9", ctr=0, prev=b""))
    assert e.reason == "wrong_signer"


def test_unknown_device(ready: tuple[World, Storage, Ingestor]) -> None:
    w, _storage, ing = ready
    stranger = make_world()
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0), stranger.reading("d1", T0)]))
    assert (e.reason, e.index) == ("bad_item_signature", 1)  # known id, other key
    stranger.signers["dZ"] = stranger.signers["d1"]
    stranger.signers["dZ"].dev = "dZ"
    e = rejected(ing, w.upload("e1", [stranger.reading("dZ", T0)], ctr=0, prev=b""))
    assert (e.reason, e.index) == ("unknown_device", 0)


def test_revoked_device(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    accept_signed(w.revocation("d1", T0 + 10), w.trust, storage, T0)
    ing.ingest_upload(w.upload("e1", [w.reading("d1", T0 + 10)]))  # signed before revocation
    e = rejected(ing, w.upload("e1", [w.reading("d2", T0), w.reading("d1", T0 + 11)]))
    assert (e.reason, e.index) == ("revoked_device", 1)


def test_revoked_edge(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    accept_signed(w.revocation("e1", T0), w.trust, storage, T0)
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0)]))
    assert e.reason == "revoked_edge"


def test_wrong_suite(ready: tuple[World, Storage, Ingestor]) -> None:
    w, _storage, ing = ready
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0)], suite="gm"))
    assert e.reason == "wrong_suite"
    gm = make_world("gm")
    item = gm.reading("d1", T0)
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0), item], ctr=0, prev=b""))
    assert (e.reason, e.index) == ("wrong_suite", 1)


def test_wrong_signer_and_duplicates(ready: tuple[World, Storage, Ingestor]) -> None:
    w, storage, ing = ready
    # a device-assurance reading signed by the edge instead of the device
    w.signers["d1"].key, w.signers["d1"].signer = w.edges["e1"].key, "e1"
    e = rejected(ing, w.upload("e1", [w.reading("d1", T0)], ctr=0, prev=b""))
    assert (e.reason, e.index) == ("wrong_signer", 0)
    # an event of another edge
    e = rejected(ing, w.upload("e1", [w.event("e9", T0)], ctr=0, prev=b""))
    assert (e.reason, e.index) == ("wrong_signer", 0)
    r = w.reading("d2", T0)
    e = rejected(ing, w.upload("e1", [r, r], ctr=0, prev=b""))
    assert (e.reason, e.index) == ("duplicate_item", 1)
    ing.ingest_upload(w.upload("e1", [r], ctr=0, prev=b""))
    stored = storage.batch("e1", 0)
    assert stored is not None
    e = rejected(ing, w.upload("e1", [r], ctr=1, prev=stored.header_hash))
    assert (e.reason, e.index) == ("duplicate_item", 0)
    assert "batch 0 of edge 'e1'" in e.detail


def test_malformed_and_count_mismatch(ready: tuple[World, Storage, Ingestor]) -> None:
    w, _storage, ing = ready
    assert rejected(ing, b"\xa0").reason == "malformed"
    assert rejected(ing, cbor.encode({"v": 1})).reason == "malformed"
    items = [w.reading("d1", T0)]
    e = rejected(ing, w.upload("e1", items, n=2, ctr=0, prev=b""))
    assert e.reason == "count_mismatch"
    e = rejected(ing, encode_upload(w.header("e1", [b"junk"], ctr=0, prev=b""), [b"junk"]))
    assert (e.reason, e.index) == ("malformed", 0)


def test_gm_suite_end_to_end(sqlite_storage: Storage) -> None:
    w = make_world("gm")
    w.register_all(sqlite_storage)
    ing = Ingestor(sqlite_storage, w.trust, w.identity, lambda: T0)
    res = ing.ingest_upload(w.upload("e1", [w.reading("d1", T0), w.event("e1", T0)]))
    parse_sign1(res.receipt, suite=get_suite("gm")).verify(w.identity.key.public)
    assert len(sqlite_storage.items(ItemQuery(kinds=("reading", "event"))).items) == 2

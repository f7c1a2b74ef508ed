"""verify_bundle step by step: order of the steps, signer rules, reasons, time, speed.

Bundles are built here with tally's own code and the fixed test keys of
``tests/vectors/formats/generate.py``; each test changes one thing and checks the reason.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tally import formats as F
from tally.crypto import INTL, SigningKey
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust
from tally.edge.formats import BatchHeader, sign_object
from tally.merkle import SHA256, Tree
from tally.verify.bundle import Bundle
from tally.verify.verifier import MAX_CLOCK_SKEW_MS, verify_bundle

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _generator() -> ModuleType:
    name = "tally_format_vector_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, VECTORS / "formats" / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gen = _generator()
T0: int = gen.T0


def key(name: str) -> SigningKey:
    k: SigningKey = gen.test_key(INTL, name)
    return k


TRUST = Trust(INTL, {"acme": key("acme").public})


def reg(id_: str, kind: str = "device", level: Assurance = Assurance.DEVICE, **kw: Any) -> bytes:
    fields: dict[str, Any] = dict(
        kind=kind,
        id=id_,
        org="acme",
        site="site-1",
        profile="",
        suite="intl",
        pub=key(id_).public.raw,
        assurance=level,
        t=T0,
    )
    fields.update(kw)
    return sign_registration(key(fields["org"]), Registration(**fields))


def batch_bundle(items: list[bytes], index: int, regs: list[bytes], **over: Any) -> bytes:
    tree = Tree(SHA256)
    tree.extend(items)
    hdr = BatchHeader("edge-1", "site-1", "intl", 0, b"", T0, T0 + 1000, tree.size, tree.root())
    header = sign_object(key("edge-1"), F.CTY_BATCH, "edge-1", hdr.to_cbor())
    fields: dict[str, Any] = dict(
        suite="intl",
        item=items[index],
        index=index,
        size=tree.size,
        path=tuple(tree.inclusion_proof(index, tree.size)),
        header=header,
        registrations=tuple(regs),
        anchors={},
    )
    fields.update(over)
    return Bundle(**fields).encode()


def reading(signer_key: SigningKey, kid: str, dev: str = "site-1/lc-03", t: int = T0) -> bytes:
    d = DeviceSigner(dev, signer_key, b"\x01" * 32, signer=kid)
    return d.next(t, (Measurement("mass", Decimal("12.5"), "kg"),))


EDGE = reg("edge-1", kind="edge")


def test_verify_valid_reading_runs_every_step_in_order() -> None:
    data = (VECTORS / "bundles/intl/valid-reading.cbor").read_bytes()
    v = verify_bundle(data, gen.build_scenario(INTL).trust)
    assert v.ok and v.reason == "valid"
    assert [s.name for s in v.steps] == [
        "bundle",
        "suite",
        "anchors",
        "registration of 'site-1/lc-03'",
        "registration of 'edge-1'",
        "registration of 'cloud-1'",
        "batch header",
        "item",
        "item signature",
        "device site",
        "inclusion proof",
        "receipt",
    ]
    assert (v.item_kind, v.signer, v.device, v.assurance) == (
        "reading",
        "site-1/lc-03",
        "site-1/lc-03",
        "device",
    )
    assert (v.boot, v.ctr, v.edge, v.batch, v.index, v.size) == (0, 41, "edge-1", 12, 1, 9)
    assert v.receipt_cloud == "cloud-1" and v.anchors == ("acme", "bank") and v.anchors_pinned
    js = v.to_json()
    assert js["valid"] is True and js["steps"][0]["name"] == "bundle" and len(js["root"]) == 64


def test_verify_one_bundle_takes_under_two_ms_median() -> None:
    data = (VECTORS / "bundles/intl/valid-reading.cbor").read_bytes()
    trust = gen.build_scenario(INTL).trust
    times = []
    for _ in range(200):
        start = time.perf_counter()
        assert verify_bundle(data, trust).ok
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.002


def test_verify_edge_assured_reading_is_signed_by_the_edge() -> None:
    scale = reg("site-1/scale-07", level=Assurance.EDGE, pub=b"")
    item = reading(key("edge-1"), "edge-1", "site-1/scale-07")
    v = verify_bundle(batch_bundle([item], 0, [scale, EDGE]), TRUST)
    assert v.ok, v.reason
    assert v.assurance == "edge" and v.signer == "edge-1" and v.index == 0 and v.size == 1


def test_verify_manual_reading_is_signed_by_the_organisation() -> None:
    manual = reg("site-1/book-1", level=Assurance.MANUAL, pub=b"")
    item = reading(key("acme"), "acme", "site-1/book-1")
    v = verify_bundle(batch_bundle([item, EDGE], 0, [manual, EDGE]), TRUST)
    assert v.ok, v.reason
    assert "(assurance manual)" in v.line()


@pytest.mark.parametrize(
    ("signer", "kid", "level", "reason"),
    [
        (
            "edge-1",
            "edge-1",
            Assurance.DEVICE,
            "item: reading of 'site-1/lc-03' signed by 'edge-1'; assurance device requires",
        ),
        (
            "site-1/lc-03",
            "site-1/lc-03",
            Assurance.EDGE,
            "item: signing edge 'site-1/lc-03' has no registration in the bundle",
        ),
        (
            "acme",
            "bank",
            Assurance.MANUAL,
            "item: manual reading of 'site-1/lc-03' signed by 'bank', not by its organisation",
        ),
        (
            "site-1/lc-09",
            "site-1/lc-03",
            Assurance.DEVICE,
            "item signature: signature does not verify (signer 'site-1/lc-03', alg -8)",
        ),
    ],
)
def test_verify_reading_signer_must_match_assurance(
    signer: str, kid: str, level: Assurance, reason: str
) -> None:
    dev = reg("site-1/lc-03", level=level)
    v = verify_bundle(batch_bundle([reading(key(signer), kid)], 0, [dev, EDGE]), TRUST)
    assert not v.ok and v.reason.startswith(reason), v.reason


def test_verify_rejects_a_second_registration_of_the_same_subject() -> None:
    item = reading(key("site-1/lc-03"), "site-1/lc-03")
    dev = reg("site-1/lc-03")
    v = verify_bundle(batch_bundle([item], 0, [dev, EDGE, reg("site-1/lc-03", t=T0 + 1)]), TRUST)
    assert v.reason == (
        "registration of 'site-1/lc-03': second registration of device 'site-1/lc-03' in the bundle"
    )


def test_verify_rejects_a_registration_as_batch_item() -> None:
    dev = reg("site-1/lc-03")
    v = verify_bundle(batch_bundle([dev], 0, [dev, EDGE]), TRUST)
    assert v.reason.startswith(
        "item: content type 'application/tally.registration+cbor' is not a batch item"
    )


def test_verify_rejects_an_undecodable_registration_by_position() -> None:
    item = reading(key("site-1/lc-03"), "site-1/lc-03")
    v = verify_bundle(batch_bundle([item], 0, [b"\x00", EDGE]), TRUST)
    assert v.reason == "registration #0: COSE_Sign1: not tagged 18 (COSE_Sign1)"


def test_verify_time_rejects_what_is_dated_in_the_future() -> None:
    item = reading(key("site-1/lc-03"), "site-1/lc-03", t=T0 + 10 * MAX_CLOCK_SKEW_MS)
    data = batch_bundle([item], 0, [reg("site-1/lc-03"), EDGE])
    assert verify_bundle(data, TRUST).ok
    assert verify_bundle(data, TRUST, now_ms=T0 + 10 * MAX_CLOCK_SKEW_MS).ok
    v = verify_bundle(data, TRUST, now_ms=T0)
    t = T0 + 10 * MAX_CLOCK_SKEW_MS
    assert v.reason == f"time: reading t {t} is {t - T0} ms after now {T0}"
    assert v.steps[-1].name == "time"


def test_verify_edge_object_must_belong_to_the_batch_edge() -> None:
    gap = gen.Gap("edge-2", "site-1/lc-03", 0, 1, 2, "not received", T0)
    item = sign_object(key("edge-2"), F.CTY_GAP, "edge-2", gap.to_cbor())
    v = verify_bundle(batch_bundle([item], 0, [EDGE, reg("edge-2", kind="edge")]), TRUST)
    assert v.reason == "item: gap of edge 'edge-2' in a batch of edge 'edge-1'"


def test_verify_a_decoder_flaw_becomes_an_invalid_verdict() -> None:
    # An event whose detail map mixes key types: whatever the decoder raises, the verifier
    # must answer with a verdict naming the item, never an exception.
    from tally.crypto import cbor

    payload = cbor.encode(
        {
            "v": 1,
            "edge": "edge-1",
            "site": "site-1",
            "seq": 1,
            "rule": "r",
            "kind": "k",
            "sev": "info",
            "t": T0,
            "devs": [],
            "refs": [],
            "detail": {1: 1, "a": 2},
        }
    )
    item = sign_object(key("edge-1"), F.CTY_EVENT, "edge-1", payload)
    v = verify_bundle(batch_bundle([item], 0, [EDGE]), TRUST)
    assert not v.ok and v.reason.startswith("item: ")


@pytest.mark.parametrize("data", [b"", "not bytes", None, b"\xa0"])
def test_verify_never_raises_on_junk(data: Any) -> None:
    v = verify_bundle(data, TRUST)
    assert not v.ok and v.reason.startswith("bundle: ")
    assert v.line().startswith("INVALID: bundle: ")

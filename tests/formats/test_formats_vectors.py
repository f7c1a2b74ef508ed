"""The format vectors of docs/formats.md: each file decodes, verifies and re-encodes as it says.

``tests/vectors/formats/*.json`` hold one object each (payload CBOR, COSE bytes, key,
expected decoded fields); ``cbor-deterministic.json`` holds encodings and rejections. The
intl files must equal what the generator writes; the gm ones are verify-only (SM2 signatures
are randomised).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tally import formats as F
from tally.crypto import DecodeError, VerifyKey, cbor, get_suite, parse_sign1
from tally.crypto.cose import sig_structure
from tally.crypto.keystore import open_key
from tally.device.envelope import decode_reading
from tally.device.registration import decode_registration, decode_revocation
from tally.device.trust import decode_trust
from tally.edge.formats import (
    decode_batch_header,
    decode_event,
    decode_gap,
    decode_receipt,
    decode_summary,
    decode_upload,
)
from tally.merkle import Hasher, verify_inclusion
from tally.verify.bundle import decode_bundle

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
FORMATS = VECTORS / "formats"


def _generator() -> ModuleType:
    name = "tally_format_vector_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FORMATS / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gen = _generator()
DECODERS: dict[str, Callable[[bytes], Any]] = {
    F.CTY_READING: decode_reading,
    F.CTY_HEARTBEAT: lambda p: decode_reading(p, heartbeat=True),
    F.CTY_REGISTRATION: decode_registration,
    F.CTY_REVOCATION: decode_revocation,
    F.CTY_EVENT: decode_event,
    F.CTY_GAP: decode_gap,
    F.CTY_SUMMARY: decode_summary,
    F.CTY_BATCH: decode_batch_header,
    F.CTY_RECEIPT: decode_receipt,
}
SIGNED = sorted(p.name for p in FORMATS.glob("*.json") if "cose" in json.loads(p.read_text()))


def _load(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((FORMATS / name).read_text())
    return obj


def test_formats_vectors_cover_every_format_in_both_suites() -> None:
    names = {p.stem for p in FORMATS.glob("*.json")}
    for suite in ("intl", "gm"):
        for obj in (
            "trust",
            "registration-lc-03",
            "registration-edge-1",
            "registration-cloud-1",
            "revocation",
            "reading-41",
            "heartbeat",
            "reading-edge-signed-1",
            "event",
            "gap",
            "summary",
            "batch-header",
            "upload",
            "receipt",
            "bundle",
            "keyfile",
        ):
            assert f"{suite}-{obj}" in names
    assert "cbor-deterministic" in names


@pytest.mark.parametrize("name", SIGNED)
def test_formats_signed_vector(name: str) -> None:
    v = _load(name)
    suite = get_suite(v["suite"])
    cose = bytes.fromhex(v["cose"])
    msg = parse_sign1(cose, content_type=v["cty"], suite=suite)
    assert (msg.alg, msg.kid) == (v["key"]["alg"], v["kid"])
    assert msg.payload.hex() == v["payload"] and msg.protected.hex() == v["protected"]
    assert msg.signature.hex() == v["signature"]
    assert sig_structure(msg.protected, msg.payload).hex() == v["sig_structure"]
    public = VerifyKey(suite, bytes.fromhex(v["key"]["public"]))
    msg.verify(public)  # the SM2 case: verify-only (public key, message, signature)
    public.verify(bytes.fromhex(v["signature"]), bytes.fromhex(v["sig_structure"]))
    assert suite.hash(cose).hex() == v["hash"]
    decoded = gen.from_jsonable(v["decoded"])
    assert cbor.decode(msg.payload) == decoded
    assert cbor.encode(decoded) == msg.payload
    DECODERS[v["cty"]](msg.payload)  # the typed decoder accepts it


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_formats_unsigned_vectors(suite: str) -> None:
    trust = _load(f"{suite}-trust.json")
    t = decode_trust(bytes.fromhex(trust["cbor"]))
    assert t.suite.name == suite and sorted(t.orgs) == ["acme", "bank"]
    up = _load(f"{suite}-upload.json")
    header, items = decode_upload(bytes.fromhex(up["cbor"]))
    assert header.hex() == _load(f"{suite}-batch-header.json")["cose"] and len(items) == 9
    kf = _load(f"{suite}-keyfile.json")
    key = open_key(bytes.fromhex(kf["cbor"]), kf["passphrase"])
    assert (
        key.public.raw.hex()
        == kf["public"]
        == _load(f"{suite}-registration-edge-1.json")["decoded"]["pub"]["hex"]
    )
    bv = _load(f"{suite}-bundle.json")
    b = decode_bundle(bytes.fromhex(bv["cbor"]))
    hasher = Hasher.for_name(get_suite(suite).hash_name)
    assert hasher.hash_leaf(b.item).hex() == bv["leaf_hash"]
    verify_inclusion(
        hasher, b.index, b.size, hasher.hash_leaf(b.item), b.path, bytes.fromhex(bv["root"])
    )
    for v in (trust, up, kf, bv):
        assert cbor.decode(bytes.fromhex(v["cbor"])) == gen.from_jsonable(v["decoded"])


def test_formats_cbor_vectors() -> None:
    v = _load("cbor-deterministic.json")
    for case in v["encode"]:
        value = gen.from_jsonable(case["value"])
        assert cbor.encode(value).hex() == case["cbor"], case["what"]
        assert cbor.decode(bytes.fromhex(case["cbor"])) == value
    for case in v["reject"]:
        with pytest.raises(DecodeError, match=case["reason"]):
            cbor.decode(bytes.fromhex(case["cbor"]))


def test_formats_generator_reproduces_intl_vectors_byte_for_byte() -> None:
    files = {k: d for k, d in gen.build("intl").items() if k.startswith("formats/")}
    assert len(files) >= 17
    for rel, data in files.items():
        assert (VECTORS / rel).read_bytes() == data, rel

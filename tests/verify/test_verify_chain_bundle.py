"""The bundle's optional "chain" part: encoding, decoding, and the precise decode errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tally.crypto import DecodeError, cbor
from tally.verify.bundle import ChainProof, decode_bundle, decode_chain, decode_chain_proof

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
PROOF = ChainProof(b"tx", 5, 7, (b"\x01" * 32, b"\x02" * 32), b"cp", (b"s1", b"s2", b"s3"))


def test_verify_chain_proof_round_trips_alone_and_in_a_bundle() -> None:
    assert decode_chain_proof(PROOF.encode()) == PROOF
    data = (BUNDLES / "intl" / "chain" / "valid-reading.cbor").read_bytes()
    b = decode_bundle(data)
    assert b.chain is not None and b.chain.index < b.chain.size
    assert b.encode() == data  # the chain part re-encodes to the same bytes
    assert set(cbor.decode(data)["chain"]) == {"tx", "index", "size", "path", "checkpoint", "sigs"}


def test_verify_bundle_without_chain_part_has_none() -> None:
    b = decode_bundle((BUNDLES / "intl" / "valid-reading.cbor").read_bytes())
    assert b.chain is None
    assert "chain" not in cbor.decode(b.encode())


def _with(**over: Any) -> dict[str, Any]:
    obj = PROOF.to_obj()
    for k, v in over.items():
        if v is None:
            del obj[k]
        else:
            obj[k] = v
    return obj


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "chain: must be a map, got list"),
        (_with(sigs=None), "chain: missing field(s) ['sigs']"),
        ({**PROOF.to_obj(), "extra": 1}, "chain: unknown field(s) ['extra']"),
        (_with(tx="text"), "chain: field 'tx' must be bytes, got str"),
        (_with(index=True), "chain: field 'index' must be int, got bool"),
        (_with(size=b"7"), "chain: field 'size' must be int, got bytes"),
        (_with(path=b"p"), "chain: field 'path' must be list, got bytes"),
        (_with(checkpoint=[]), "chain: field 'checkpoint' must be bytes, got list"),
        (_with(index=-1), "chain: index and size must not be negative"),
        (_with(path=[b"x", 3]), "chain: path elements must be byte strings"),
        (_with(sigs=[b"s", "t"]), "chain: sigs must be byte strings"),
    ],
)
def test_verify_chain_part_decode_errors_are_precise(obj: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_chain(obj)
    assert (err.value.where, err.value.reason) == ("bundle", reason)


def test_verify_chain_decode_error_inside_a_bundle_names_the_chain_part() -> None:
    data = (BUNDLES / "intl" / "chain" / "valid-reading.cbor").read_bytes()
    obj = cbor.decode(data)
    obj["chain"]["index"] = -3
    with pytest.raises(DecodeError) as err:
        decode_bundle(cbor.encode(obj))
    assert str(err.value) == "bundle: chain: index and size must not be negative"


def test_verify_standalone_chain_proof_errors_name_chain() -> None:
    with pytest.raises(DecodeError) as err:
        decode_chain_proof(cbor.encode(_with(tx=None)))
    assert str(err.value) == "chain: missing field(s) ['tx']"

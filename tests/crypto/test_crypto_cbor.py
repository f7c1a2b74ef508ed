"""Deterministic CBOR (tally.crypto.cbor) against RFC 8949 and against malformed input.

Known answers: Appendix A examples for the types tally allows, the integer head boundaries,
the §4.2.1 key-order example and the §3.4.4 decimal example, each also cross-checked with
``cbor2``'s own encoder. Rejections: every input in cbor_rejects.json must raise
DecodeError, and so must nesting bombs and oversized input.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import cbor2
import pytest
from crypto_vectors import load_vectors

from tally.crypto import DecodeError
from tally.crypto.cbor import Tag, decode, encode

V = load_vectors("cbor_rfc8949")
REJECTS = load_vectors("cbor_rejects")["cases"]


def build(v: dict[str, Any]) -> Any:
    """Turn the vector files' value notation into a Python value."""
    if "int" in v:
        return int(v["int"])
    if "bytes" in v:
        return bytes.fromhex(v["bytes"])
    if "text" in v:
        return v["text"]
    if "array" in v:
        return [build(x) for x in v["array"]]
    if "map" in v:
        return {_key(build(k)): build(x) for k, x in v["map"]}
    if "bool" in v:
        return v["bool"]
    if "null" in v:
        return None
    if "decimal" in v:
        return Decimal(v["decimal"])
    if "tag" in v:
        return Tag(v["tag"], build(v["value"]))
    raise AssertionError(f"unknown notation {v}")


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def _cbor2_value(x: Any) -> Any:
    if isinstance(x, Tag):
        return cbor2.CBORTag(x.number, _cbor2_value(x.value))
    if isinstance(x, list):
        return [_cbor2_value(i) for i in x]
    if isinstance(x, dict):
        return {k: _cbor2_value(i) for k, i in x.items()}
    return x


EXAMPLES = V["appendix_a"] + V["head_boundaries"]


@pytest.mark.parametrize("case", EXAMPLES, ids=[c["encoded"][:20] for c in EXAMPLES])
def test_encode_matches_rfc(case: dict[str, Any]) -> None:
    value = build(case["value"])
    assert encode(value).hex() == case["encoded"]
    # an independent encoder agrees (single-key maps and scalars: no ordering question)
    assert cbor2.dumps(_cbor2_value(value), canonical=True).hex() == case["encoded"]


@pytest.mark.parametrize("case", EXAMPLES, ids=[c["encoded"][:20] for c in EXAMPLES])
def test_decode_round_trips_rfc(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["encoded"])
    value = build(case["value"])
    if isinstance(value, Tag) and value.number == 1:
        # the decoder reads tag 1 as a datetime, which tally does not re-encode: it is
        # refused rather than misread
        with pytest.raises(DecodeError):
            decode(data)
        return
    got = decode(data)
    assert encode(got) == data
    assert got == value or got == _tupled(value)


def _tupled(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _tupled(v) for k, v in x.items()}
    return x


@pytest.mark.parametrize("case", V["decimals"], ids=[c["value"]["decimal"] for c in V["decimals"]])
def test_decimal_tag4_is_normalised(case: dict[str, Any]) -> None:
    d = Decimal(case["value"]["decimal"])
    data = encode(d)
    assert data.hex() == case["encoded"]
    back = decode(data)
    assert isinstance(back, Decimal)
    assert back == d
    assert encode(back) == data


def test_decimal_rfc_example_agrees_with_cbor2() -> None:
    assert cbor2.dumps(Decimal("273.15")).hex() == "c48221196ab3"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_decimals_cannot_be_encoded(bad: str) -> None:
    with pytest.raises(ValueError):
        encode(Decimal(bad))


def test_decimal_mantissa_beyond_64_bits_cannot_be_encoded() -> None:
    """tally uses no bignums (tag 2/3): a mantissa of 2^64 or more has no encoding."""
    assert encode(Decimal(2**64 - 1)).hex() == "c482001bffffffffffffffff"
    with pytest.raises(ValueError):
        encode(Decimal("18446744073709551617"))
    with pytest.raises(DecodeError):
        decode(bytes.fromhex("c48200c249010000000000000001"))


def test_map_key_order_is_rfc8949_4_2_1() -> None:
    order = V["map_key_order"]
    keys = [_key(build(k)) for k in order["keys_in_order"]]
    assert [encode(list(k) if isinstance(k, tuple) else k).hex() for k in keys] == order[
        "encoded_keys"
    ]
    shuffled = dict.fromkeys(reversed(keys), 0)
    data = encode(shuffled)
    want = "a8" + "".join(k + "00" for k in order["encoded_keys"])
    assert data.hex() == want
    assert list(decode(data)) == keys


def test_key_order_is_bytewise_not_length_first() -> None:
    # length-first (RFC 7049 canonical) would put -1 (0x20) before 100 (0x18 0x64)
    assert encode({-1: 0, 100: 0, 10: 0}).hex() == "a30a00186400" + "2000"


@pytest.mark.parametrize("case", REJECTS, ids=[c["reason"] for c in REJECTS])
def test_decode_rejects(case: dict[str, str]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(case["encoded"]))
    assert info.value.where == "CBOR"


def test_decode_error_names_the_object() -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"\xf7", where="reading")
    assert info.value.where == "reading"
    assert "reading" in str(info.value)


@pytest.mark.parametrize(
    ("opener", "closer"),
    [(b"\x81", b"\x00"), (b"\xa1\x00", b"\x00"), (b"\xd8\x12", b"\x00"), (b"\x9f", b"")],
    ids=["arrays", "maps", "tags", "indefinite arrays"],
)
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_nesting_bombs_are_decode_errors(opener: bytes, closer: bytes, depth: int) -> None:
    data = opener * depth + closer
    with pytest.raises(DecodeError):  # not RecursionError, not MemoryError
        decode(data, max_size=len(data) + 1)


def test_moderate_nesting_is_fine() -> None:
    value: Any = 0
    for _ in range(100):
        value = [value]
    assert decode(encode(value)) == value


def test_oversized_input_is_refused_before_parsing() -> None:
    data = encode(b"\x00" * 2000)
    assert decode(data, max_size=len(data)) == b"\x00" * 2000
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode(data, max_size=len(data) - 1)
    big = encode(b"\x00" * (1 << 20))
    with pytest.raises(DecodeError):
        decode(big)  # default limit is 1 MiB


@pytest.mark.parametrize("bad", [None, "00", 0, [0]])
def test_decode_needs_bytes(bad: Any) -> None:
    with pytest.raises(DecodeError):
        decode(bad)


def test_bytearray_and_memoryview_are_accepted() -> None:
    # typed as bytes, but any bytes-like object is accepted at run time
    assert decode(bytearray(b"\x01")) == 1  # type: ignore[arg-type]
    assert decode(memoryview(b"\x01")) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [1.0, 0.5, float("nan"), {1.0: 1}, [1, 2.5], set(), object(), 2**64, -(2**64) - 1, "\ud800"],
    ids=repr,
)
def test_encode_refuses_what_tally_does_not_allow(value: Any) -> None:
    with pytest.raises(ValueError):
        encode(value)


def test_encode_refuses_keys_that_collide_when_encoded() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        encode({Tag(7, 1): 0, cbor2.CBORTag(7, 1): 1})


def test_every_truncation_of_a_valid_item_is_refused() -> None:
    data = encode({"a": [1, 2, {"b": b"\x00" * 30}], "ccc": Decimal("1.25"), 7: None})
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:n])
    for extra in (b"\x00", b"\xff", data):
        with pytest.raises(DecodeError, match="trailing"):
            decode(data + extra)

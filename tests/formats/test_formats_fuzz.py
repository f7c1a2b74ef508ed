"""Property tests of the strict decoders: bad bytes raise DecodeError/CryptoError, nothing else.

Targets: ``cbor.decode``, ``parse_sign1``, ``parse_envelope`` and ``decode_bundle``, fed
random bytes, mutations of valid bytes, and well-formed CBOR of arbitrary shape. Whatever
``cbor.decode`` accepts must re-encode to exactly the input (one canonical encoding).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.crypto import CryptoError, cbor, parse_sign1
from tally.device.envelope import parse_envelope
from tally.edge.formats import decode_event, decode_summary
from tally.verify.bundle import decode_bundle

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
BUNDLE = (VECTORS / "bundles" / "intl" / "valid-reading.cbor").read_bytes()
ENVELOPE = decode_bundle(BUNDLE).item
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "cbor.decode": cbor.decode,
    "parse_sign1": parse_sign1,
    "parse_envelope": parse_envelope,
    "decode_bundle": decode_bundle,
}


def _only_crypto_errors(fn: Callable[[bytes], Any], data: bytes) -> None:
    # DecodeError, WrongSuite, UnknownSuite, KeyError_ … all derive from CryptoError
    with suppress(CryptoError):
        fn(data)


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, val in edits:
        if not out:
            break
        pos %= len(out)
        if kind == 0:
            out[pos] ^= 1 << (val % 8)
        elif kind == 1:
            out[pos] = val
        elif kind == 2:
            out.insert(pos, val)
        else:
            del out[pos]
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 64), (1 << 64) - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(Decimal),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-30, 30), children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_formats_decoders_on_random_bytes(name: str, data: bytes) -> None:
    _only_crypto_errors(DECODERS[name], data)


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(edits=EDITS)
def test_formats_decoders_on_mutated_valid_bytes(name: str, edits: list[Any]) -> None:
    base = BUNDLE if name == "decode_bundle" else ENVELOPE
    _only_crypto_errors(DECODERS[name], _mutate(base, edits))


@FUZZ
@given(data=st.binary(max_size=200))
def test_formats_cbor_accepts_only_canonical_bytes(data: bytes) -> None:
    try:
        obj = cbor.decode(data)
    except CryptoError:
        return
    assert cbor.encode(obj) == data


@FUZZ
@given(value=cbor_values)
def test_formats_cbor_round_trip(value: Any) -> None:
    try:
        data = cbor.encode(value)
    except ValueError:  # e.g. integers beyond 64 bits, or two keys with one encoding
        return
    assert cbor.encode(cbor.decode(data)) == data
    for name, fn in DECODERS.items():
        if name != "cbor.decode":
            _only_crypto_errors(fn, data)


@FUZZ
@given(value=cbor_values)
def test_formats_envelope_with_arbitrary_fields(value: Any) -> None:
    """A validly framed COSE_Sign1 whose reading payload holds arbitrary values."""
    from tally.crypto import INTL, SigningKey, sign1
    from tally.formats import CTY_READING

    fields = {"v": 1, "dev": "d", "boot": 0, "ctr": 1, "prev": b"p", "t": 0, "fw": b"", "m": []}
    for name in sorted(fields):
        try:
            payload = cbor.encode({**fields, name: value})
        except ValueError:  # not encodable at all (e.g. a mantissa beyond 64 bits)
            return
        env = sign1(SigningKey(INTL, bytes(32)), CTY_READING, "d", payload)
        _only_crypto_errors(parse_envelope, env)


# Edge decoders once let these through as TypeError / decimal.InvalidOperation.
def test_formats_event_detail_with_mixed_key_types_is_a_decode_error() -> None:
    payload = cbor.encode(
        {
            "v": 1,
            "edge": "e",
            "site": "s",
            "seq": 1,
            "rule": "r",
            "kind": "k",
            "sev": "info",
            "t": 1,
            "devs": [],
            "refs": [],
            "detail": {1: 1, "a": 2},
        }
    )
    _only_crypto_errors(decode_event, payload)


def test_formats_summary_with_text_stat_is_a_decode_error() -> None:
    payload = cbor.encode(
        {
            "v": 1,
            "edge": "e",
            "dev": "d",
            "boot": 0,
            "from": 0,
            "to": 1,
            "n": 1,
            "root": b"",
            "stats": [["q", "x", 1, 1, "u"]],
            "t": 1,
        }
    )
    _only_crypto_errors(decode_summary, payload)

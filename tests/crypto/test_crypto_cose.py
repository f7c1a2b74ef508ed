"""COSE_Sign1 (RFC 9052 §4.2, §4.4) as tally uses it: round trips and every refusal.

Each malformed message is built with deterministic CBOR, so it passes the decoding layer
and reaches the check under test. The Sig_structure is rebuilt by hand, byte by byte, from
RFC 9052 §4.4 and compared with what the signer signs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tally.crypto import (
    GM,
    INTL,
    DecodeError,
    InvalidSignature,
    SigningKey,
    Suite,
    UnknownSuite,
    WrongSuite,
    cbor,
    parse_sign1,
    sign1,
)
from tally.crypto.cose import COSE_SIGN1_TAG, sig_structure

CTY = "application/tally.reading+cbor"
KEYS = {s.name: SigningKey.generate(s) for s in (INTL, GM)}
SUITES = [INTL, GM]


def _msg(suite: Suite, payload: bytes = b"\xa1\x01\x02", kid: str = "dev-1") -> bytes:
    return sign1(KEYS[suite.name], CTY, kid, payload)


def _parts(data: bytes) -> list[Any]:
    tag = cbor.decode(data)
    assert isinstance(tag, cbor.Tag)
    return list(tag.value)


def _rebuild(parts: list[Any], number: int = COSE_SIGN1_TAG) -> bytes:
    return cbor.encode(cbor.Tag(number, parts))


def _resign(suite: Suite, header: dict[int, Any], payload: bytes = b"p") -> bytes:
    """A message with an arbitrary protected header, correctly signed over it."""
    protected = cbor.encode(header)
    sig = KEYS[suite.name].sign(sig_structure(protected, payload))
    return _rebuild([protected, {}, payload, sig])


def _bstr(b: bytes) -> bytes:
    assert len(b) < 256
    return (bytes((0x40 | len(b),)) if len(b) < 24 else bytes((0x58, len(b)))) + b


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_round_trip(suite: Suite) -> None:
    data = _msg(suite, b"\xa1\x01\x02", kid="dev-1")
    msg = parse_sign1(data, content_type=CTY, suite=suite)
    assert (msg.alg, msg.content_type, msg.kid) == (suite.alg, CTY, "dev-1")
    assert msg.payload == b"\xa1\x01\x02"
    assert msg.payload_obj() == {1: 2}
    assert msg.suite is suite
    assert msg.encoded == data
    msg.verify(KEYS[suite.name].public)  # raises InvalidSignature otherwise


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_layout_and_sig_structure_by_hand(suite: Suite) -> None:
    data = _msg(suite, b"payload", kid="k1")
    msg = parse_sign1(data)
    # protected = {1: alg, 3: cty, 4: kid}; RFC 9052 §3.1 labels, keys in deterministic order
    alg = b"\x27" if suite is INTL else b"\x3a\x00\x01\x00\x40"  # -8, -65601
    cty = CTY.encode()
    protected = b"\xa3" + b"\x01" + alg + b"\x03" + bytes((0x78, len(cty))) + cty + b"\x04\x42k1"
    assert msg.protected == protected
    # Sig_structure = ["Signature1", body_protected, external_aad = h'', payload]
    by_hand = b"\x84" + b"\x6aSignature1" + _bstr(protected) + b"\x40" + _bstr(b"payload")
    assert sig_structure(msg.protected, msg.payload) == by_hand
    KEYS[suite.name].public.verify(msg.signature, by_hand)
    # COSE_Sign1 = 18([protected, {}, payload, signature]): d2 84 ...
    sig = b"\x58\x40" + msg.signature
    assert data == b"\xd2\x84" + _bstr(protected) + b"\xa0" + _bstr(b"payload") + sig


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize("number", [98, 17, 19, 61])
def test_wrong_tag(suite: Suite, number: int) -> None:
    with pytest.raises(DecodeError, match="tagged 18"):
        parse_sign1(_rebuild(_parts(_msg(suite)), number))


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_untagged_is_refused(suite: Suite) -> None:
    with pytest.raises(DecodeError):
        parse_sign1(cbor.encode(_parts(_msg(suite))))


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize("count", [0, 3, 5])
def test_not_four_elements(suite: Suite, count: int) -> None:
    parts = _parts(_msg(suite))
    parts = [*parts, b""][:count]
    with pytest.raises(DecodeError, match="4 items"):
        parse_sign1(_rebuild(parts))


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize("unprotected", [{4: b"other"}, {1: -8}, [], b""])
def test_unprotected_header_must_be_an_empty_map(suite: Suite, unprotected: Any) -> None:
    parts = _parts(_msg(suite))
    parts[1] = unprotected
    with pytest.raises(DecodeError, match="unprotected"):
        parse_sign1(_rebuild(parts))


@pytest.mark.parametrize("alg", [-7, -35, -8 - 65536, 0, -65600, -65602])
def test_unknown_alg(alg: int) -> None:
    data = _resign(INTL, {1: alg, 3: CTY, 4: b"k"})
    with pytest.raises(UnknownSuite) as info:
        parse_sign1(data)
    assert info.value.name == str(alg)


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize(
    "header",
    [
        {1: None, 3: CTY},  # missing kid (alg patched below)
        {1: None, 4: b"k"},  # missing cty
        {3: CTY, 4: b"k"},  # missing alg
        {1: None, 3: CTY, 4: b"k", 2: [1]},  # crit
        {1: None, 3: CTY, 4: b"k", 5: b"\x00" * 12},  # IV
        {1: None, 3: CTY, 4: b"k", "x": 1},  # private text label
        {},
    ],
    ids=["no-kid", "no-cty", "no-alg", "crit", "iv", "text-label", "empty"],
)
def test_protected_header_must_hold_exactly_alg_cty_kid(
    suite: Suite, header: dict[Any, Any]
) -> None:
    header = {k: (suite.alg if k == 1 else v) for k, v in header.items()}
    with pytest.raises(DecodeError, match="exactly alg, cty and kid"):
        parse_sign1(_resign(suite, header))


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({1: "EdDSA", 3: CTY, 4: b"k"}, "alg must be an integer"),
        ({1: True, 3: CTY, 4: b"k"}, "alg must be an integer"),
        ({1: -8, 3: 60, 4: b"k"}, "cty must be text"),
        ({1: -8, 3: CTY, 4: "k"}, "kid a byte string"),
        ({1: -8, 3: CTY, 4: b"\xff\xfe"}, "kid is not UTF-8"),
    ],
)
def test_header_value_types(header: dict[int, Any], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        parse_sign1(_resign(INTL, header))


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_protected_header_must_be_deterministic(suite: Suite) -> None:
    """Same three entries, cty first: valid CBOR, correctly signed, but not deterministic."""
    e = cbor.encode
    protected = b"\xa3" + e(3) + e(CTY) + e(1) + e(suite.alg) + e(4) + e(b"k")
    sig = KEYS[suite.name].sign(sig_structure(protected, b"p"))
    with pytest.raises(DecodeError, match="deterministic") as info:
        parse_sign1(_rebuild([protected, {}, b"p", sig]))
    assert info.value.where == "COSE_Sign1 protected header"


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize("index", [0, 2, 3])
def test_byte_string_fields_must_be_byte_strings(suite: Suite, index: int) -> None:
    parts = _parts(_msg(suite))
    parts[index] = "text"
    with pytest.raises(DecodeError):
        parse_sign1(_rebuild(parts))


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_content_type_mismatch(suite: Suite) -> None:
    data = _msg(suite)
    with pytest.raises(DecodeError, match="content type"):
        parse_sign1(data, content_type="application/tally.event+cbor")
    parse_sign1(data, content_type=CTY)


def test_wrong_suite_on_parse_and_on_verify() -> None:
    intl, gm = _msg(INTL), _msg(GM)
    with pytest.raises(WrongSuite) as info:
        parse_sign1(intl, suite=GM)
    assert (info.value.expected, info.value.got) == ("gm", "intl")
    with pytest.raises(WrongSuite):
        parse_sign1(gm, suite=INTL)
    with pytest.raises(WrongSuite):
        parse_sign1(intl).verify(KEYS["gm"].public)
    with pytest.raises(WrongSuite):
        parse_sign1(gm).verify(KEYS["intl"].public)


@pytest.mark.parametrize("suite", SUITES, ids=str)
@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_signature_of_wrong_length(suite: Suite, length: int) -> None:
    parts = _parts(_msg(suite))
    parts[3] = (parts[3] * 3)[:length]
    msg = parse_sign1(_rebuild(parts))
    with pytest.raises(InvalidSignature, match=f"{length} bytes") as info:
        msg.verify(KEYS[suite.name].public)
    assert info.value.signer == "dev-1"


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_payload_swapped_between_two_valid_messages(suite: Suite) -> None:
    a, b = _parts(_msg(suite, b"\x01")), _parts(_msg(suite, b"\x02"))
    a[2], b[2] = b[2], a[2]
    for parts in (a, b):
        with pytest.raises(InvalidSignature):
            parse_sign1(_rebuild(parts)).verify(KEYS[suite.name].public)


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_signature_swapped_or_header_swapped(suite: Suite) -> None:
    a, b = _parts(_msg(suite, b"\x01", kid="a")), _parts(_msg(suite, b"\x01", kid="b"))
    a[0], b[0] = b[0], a[0]
    for parts in (a, b):
        with pytest.raises(InvalidSignature):
            parse_sign1(_rebuild(parts)).verify(KEYS[suite.name].public)


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_other_key_and_flipped_bits(suite: Suite) -> None:
    data = _msg(suite)
    with pytest.raises(InvalidSignature):
        parse_sign1(data).verify(SigningKey.generate(suite).public)
    # flip one bit in each byte of the encoding: never accepted, never another error type
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x04
        try:
            parse_sign1(bytes(bad)).verify(KEYS[suite.name].public)
        except (DecodeError, InvalidSignature, UnknownSuite, WrongSuite):
            continue
        pytest.fail(f"altered byte {i} verified")


def test_size_limit() -> None:
    data = _msg(INTL, b"\x00" * 5000)
    parse_sign1(data)
    with pytest.raises(DecodeError, match="exceeds"):
        parse_sign1(data, max_size=1000)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        parse_sign1(_msg(INTL) + b"\x00")

"""SM2 (suite ``gm``) through SigningKey/VerifyKey: round trips and the DER <-> r||s bridge.

gmssl returns DER ``SEQUENCE {r, s}``; tally carries 64-byte ``r || s``. DER integers drop
leading zero bytes and add a 0x00 when the high bit is set, so over many signatures every
shape occurs (31- and 33-byte INTEGERs); each must round-trip exactly.
"""

from __future__ import annotations

import os

import gmssl_pyx
import pytest

from tally.crypto import GM, INTL, InvalidSignature, SigningKey, VerifyKey
from tally.crypto.errors import KeyError_
from tally.crypto.keys import SM2_SIGNER_ID, _der_to_rs, _rs_to_der

N = int("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123", 16)


def _strict_der(r: int, s: int) -> bytes:
    """Minimal DER of SEQUENCE {INTEGER r, INTEGER s}, written from X.690 §8.3 directly."""

    def integer(v: int) -> bytes:
        body = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
        if body[0] & 0x80:
            body = b"\x00" + body
        return bytes((0x02, len(body))) + body

    inner = integer(r) + integer(s)
    return bytes((0x30, len(inner))) + inner


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate(GM)


def test_round_trip_and_tamper(key: SigningKey) -> None:
    msg = b"warehouse receipt 42"
    sig = key.sign(msg)
    assert len(sig) == GM.signature_size
    key.public.verify(sig, msg)
    with pytest.raises(InvalidSignature):
        key.public.verify(sig, msg + b" ")
    other = SigningKey.generate(GM)
    with pytest.raises(InvalidSignature):
        other.public.verify(sig, msg)


def test_signatures_are_randomised_but_all_verify(key: SigningKey) -> None:
    sigs = {key.sign(b"same message") for _ in range(5)}
    assert len(sigs) == 5
    for s in sigs:
        key.public.verify(s, b"same message")


def test_der_bridge_over_many_signatures(key: SigningKey) -> None:
    """Half of all r and s have the high bit set (33-byte INTEGER); each must round-trip."""
    seen_long = False
    for i in range(600):
        msg = i.to_bytes(4, "big")
        der = gmssl_pyx.sm2_sign(key.secret_bytes(), key.public.raw, msg, SM2_SIGNER_ID)
        rs = _der_to_rs(der)
        r, s = int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")
        assert 0 < r < N and 0 < s < N
        assert _rs_to_der(rs) == der == _strict_der(r, s)
        seen_long |= 33 in (der[3], der[5 + der[3]])
        if i < 100:
            key.public.verify(rs, msg)
    assert seen_long, "no r or s with the high bit set in 600 signatures"


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (1, 1),
        (0x7F, 0x80),
        (0xFF, 0x100),
        (2**247, 2**248 - 1),
        (2**255 - 1, 2**255),
        (N - 1, N - 2),
        (0x00FF << 240, 0x80 << 248),
    ],
)
def test_der_bridge_edge_values(r: int, s: int) -> None:
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = _rs_to_der(rs)
    assert der == _strict_der(r, s)
    assert _der_to_rs(der) == rs


def test_signature_with_small_r_verifies() -> None:
    """Find a real signature whose r has a leading zero byte and verify it end to end."""
    key = SigningKey.generate(GM)
    for i in range(5000):
        msg = b"lead-zero %d" % i
        sig = key.sign(msg)
        if sig[0] == 0 or sig[32] == 0:
            key.public.verify(sig, msg)
            der = _rs_to_der(sig)
            assert gmssl_pyx.sm2_verify(key.public.raw, msg, der, SM2_SIGNER_ID)
            return
    pytest.fail("no signature with a leading zero byte in 5000 tries")  # p ~ 1e-17


@pytest.mark.parametrize(
    "sig",
    [b"\x00" * 64, b"\xff" * 64, N.to_bytes(32, "big") * 2, (1).to_bytes(32, "big") * 2],
)
def test_degenerate_signatures_are_refused(key: SigningKey, sig: bytes) -> None:
    with pytest.raises(InvalidSignature):
        key.public.verify(sig, b"m")


@pytest.mark.parametrize("length", [0, 63, 65, 72])
def test_wrong_length_signature(key: SigningKey, length: int) -> None:
    with pytest.raises(InvalidSignature):
        key.public.verify(b"\x01" * length, b"m")


def test_public_key_not_on_curve_is_refused(key: SigningKey) -> None:
    sig = key.sign(b"m")
    bad = bytearray(key.public.raw)
    bad[-1] ^= 0x01
    with pytest.raises(InvalidSignature):
        VerifyKey(GM, bytes(bad)).verify(sig, b"m")
    with pytest.raises(InvalidSignature):
        VerifyKey(GM, b"\x00" * 64).verify(sig, b"m")


def test_key_sizes_are_checked() -> None:
    with pytest.raises(KeyError_):
        VerifyKey(GM, os.urandom(32))
    with pytest.raises(KeyError_):
        SigningKey(GM, os.urandom(32))  # an SM2 private key needs its public key
    with pytest.raises(KeyError_):
        SigningKey(GM, os.urandom(31), os.urandom(64))


def test_keys_of_one_suite_do_not_verify_the_other() -> None:
    gm, intl = SigningKey.generate(GM), SigningKey.generate(INTL)
    msg = b"m"
    with pytest.raises(InvalidSignature):
        intl.public.verify(gm.sign(msg), msg)
    with pytest.raises(InvalidSignature):
        gm.public.verify(intl.sign(msg), msg)

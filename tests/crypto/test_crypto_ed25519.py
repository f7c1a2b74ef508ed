"""Ed25519 (suite ``intl``) against RFC 8032 §7.1 and Project Wycheproof, through our wrappers.

Every RFC vector is checked three ways: our SigningKey derives the public key and the exact
signature, ``cryptography`` (OpenSSL) agrees, and our VerifyKey accepts it but refuses any
single flipped bit. Adversarial inputs (Wycheproof's special values and malleated S, and
public keys of small order) must raise InvalidSignature, never anything else.
"""

from __future__ import annotations

from typing import Any

import pytest
from crypto_vectors import load_vectors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tally.crypto import INTL, InvalidSignature, SigningKey, VerifyKey
from tally.crypto.errors import KeyError_

RFC = load_vectors("ed25519_rfc8032")["cases"]
WYCHE = load_vectors("ed25519_wycheproof")
SMALL = load_vectors("ed25519_small_order")["points"]

L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P


def _ids(cases: list[dict[str, Any]], key: str) -> list[str]:
    return [str(c[key]) for c in cases]


@pytest.mark.parametrize("case", RFC, ids=_ids(RFC, "name"))
def test_rfc8032_sign_derives_key_and_exact_signature(case: dict[str, str]) -> None:
    seed, pub = bytes.fromhex(case["secret_key"]), bytes.fromhex(case["public_key"])
    msg, sig = bytes.fromhex(case["message"]), bytes.fromhex(case["signature"])
    key = SigningKey(INTL, seed)
    assert key.public.raw == pub
    assert key.sign(msg) == sig
    # an independent implementation (OpenSSL through cryptography) agrees on every byte
    other = Ed25519PrivateKey.from_private_bytes(seed)
    raw = other.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert raw == pub
    assert other.sign(msg) == sig


def test_rfc8032_message_lengths_are_as_published() -> None:
    assert [len(bytes.fromhex(c["message"])) for c in RFC] == [0, 1, 2, 1023, 64]


@pytest.mark.parametrize("case", RFC, ids=_ids(RFC, "name"))
def test_rfc8032_verify_accepts_and_every_flipped_bit_fails(case: dict[str, str]) -> None:
    vk = VerifyKey(INTL, bytes.fromhex(case["public_key"]))
    msg, sig = bytes.fromhex(case["message"]), bytes.fromhex(case["signature"])
    vk.verify(sig, msg)  # returns None; raises InvalidSignature otherwise
    for i in range(len(sig) * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(InvalidSignature):
            vk.verify(bytes(bad), msg)
    if msg:
        bad_msg = bytearray(msg)
        bad_msg[-1] ^= 0x01
        with pytest.raises(InvalidSignature):
            vk.verify(sig, bytes(bad_msg))
    with pytest.raises(InvalidSignature):
        vk.verify(sig, msg + b"\x00")


def test_invalid_signature_carries_signer_and_alg() -> None:
    case = RFC[0]
    vk = VerifyKey(INTL, bytes.fromhex(case["public_key"]))
    with pytest.raises(InvalidSignature) as info:
        vk.verify(b"\x00" * 64, b"x", signer="device-7")
    assert info.value.signer == "device-7"
    assert info.value.alg == INTL.alg


@pytest.mark.parametrize("test", WYCHE["tests"], ids=_ids(WYCHE["tests"], "tcId"))
def test_wycheproof_eddsa_verify(test: dict[str, Any]) -> None:
    vk = VerifyKey(INTL, bytes.fromhex(WYCHE["public_key"]))
    msg, sig = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    if test["result"] == "valid":
        vk.verify(sig, msg)
    else:
        with pytest.raises(InvalidSignature):
            vk.verify(sig, msg)


def test_wycheproof_key_pair_matches() -> None:
    key = SigningKey(INTL, bytes.fromhex(WYCHE["secret_key"]))
    assert key.public.raw.hex() == WYCHE["public_key"]
    valid = [t for t in WYCHE["tests"] if t["result"] == "valid"]
    for t in valid:  # Ed25519 is deterministic: the published valid signatures are ours too
        assert key.sign(bytes.fromhex(t["msg"])).hex() == t["sig"]


def test_wycheproof_transcription_relations() -> None:
    """tcId 10-29 and 63-70 are built from simple rules; check the file follows them."""
    by_id = {t["tcId"]: t for t in WYCHE["tests"]}
    le = {"0": 0, "1": 1, "L-1": L - 1, "L": L, "p": P}
    tc = 10
    for r in ("0", "1", "L", "p"):
        for s in ("0", "1", "L-1", "L", "p"):
            want = le[r].to_bytes(32, "little") + le[s].to_bytes(32, "little")
            assert by_id[tc]["sig"] == want.hex()
            tc += 1
    sig3 = bytes.fromhex(by_id[3]["sig"])
    s3 = int.from_bytes(sig3[32:], "little")
    adds = {63: L, 64: 2 * L, 65: 4 * L, 66: 8 * L, 67: 2**253, 68: 2**254, 69: 2**255, 70: P}
    for tc, add in adds.items():
        sig = bytes.fromhex(by_id[tc]["sig"])
        assert sig[:32] == sig3[:32]
        assert int.from_bytes(sig[32:], "little") == (s3 + add) % 2**256


def test_non_canonical_s_of_our_own_signature_is_refused() -> None:
    key = SigningKey(INTL, bytes(range(32)))
    msg = b"tally: non-canonical S"
    sig = key.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    assert s + L < 2**256
    malleated = sig[:32] + (s + L).to_bytes(32, "little")
    with pytest.raises(InvalidSignature):
        key.public.verify(malleated, msg)


# --- small-order public keys -------------------------------------------------------------


def _decode_point(b: bytes) -> tuple[int, int] | None:
    """RFC 8032 §5.1.3 point decoding; None where the encoding is not a point."""
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else (0, y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


def _add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P


def _order(pt: tuple[int, int]) -> int:
    acc, n = pt, 1
    while acc != (0, 1):
        acc, n = _add(acc, pt), n + 1
        assert n <= 8, "not a point of small order"
    return n


@pytest.mark.parametrize("point", SMALL, ids=[p["encoding"][:8] for p in SMALL])
def test_small_order_points_are_of_the_stated_order(point: dict[str, Any]) -> None:
    pt = _decode_point(bytes.fromhex(point["encoding"]))
    assert pt is not None
    assert _order(pt) == point["order"]


@pytest.mark.parametrize("point", SMALL, ids=[p["encoding"][:8] for p in SMALL])
def test_small_order_public_keys_are_refused(point: dict[str, Any]) -> None:
    """With A of small order, R = A or the neutral point and S = 0 'verifies' in a lax
    cofactored check for many messages; libsodium refuses such keys outright."""
    vk = VerifyKey(INTL, bytes.fromhex(point["encoding"]))
    neutral = bytes.fromhex(SMALL[0]["encoding"])
    for r in (neutral, vk.raw):
        for msg in (b"", b"pay 1000000 to mallory", bytes(range(64))):
            with pytest.raises(InvalidSignature):
                vk.verify(r + b"\x00" * 32, msg)


@pytest.mark.parametrize("raw", [b"\xff" * 32, bytes.fromhex("ed" + "ff" * 30 + "7f")])
def test_non_canonical_or_off_curve_public_keys_are_refused(raw: bytes) -> None:
    vk = VerifyKey(INTL, raw)
    with pytest.raises(InvalidSignature):
        vk.verify(b"\x01" + b"\x00" * 63, b"m")


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_public_key_of_wrong_length_is_a_key_error(length: int) -> None:
    with pytest.raises(KeyError_):
        VerifyKey(INTL, b"\x01" * length)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_seed_of_wrong_length_is_a_key_error(length: int) -> None:
    with pytest.raises(KeyError_):
        SigningKey(INTL, b"\x01" * length)

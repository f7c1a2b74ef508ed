"""SM3, SM4 and SM2 (suite ``gm``) against the Chinese national standards' own examples.

SM3 goes through the suite's hash, SM4 through ``cryptography`` (the library our AEAD uses),
SM2 through our VerifyKey and through ``gmssl_pyx`` directly. The SM2 example is also
recomputed here from the curve equation, so the public key, Z_A, e and (r, s) are checked
by an implementation that shares no code with the library under test.
"""

from __future__ import annotations

import hashlib

import gmssl_pyx
import pytest
from crypto_vectors import load_vectors
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tally.crypto import GM, InvalidSignature, VerifyKey
from tally.crypto.keys import SM2_SIGNER_ID, _rs_to_der

SM3 = load_vectors("sm3_gbt32905")["cases"]
SM4 = load_vectors("sm4_gbt32907")["cases"]
SM2 = load_vectors("sm2_gbt32918")


@pytest.mark.parametrize("case", SM3, ids=[c["name"] for c in SM3])
def test_sm3_appendix_a(case: dict[str, str]) -> None:
    msg = bytes.fromhex(case["message"])
    assert GM.hash(msg).hex() == case["digest"]
    assert gmssl_pyx.sm3_hash(msg).hex() == case["digest"]


def test_sm3_messages_are_the_published_ones() -> None:
    assert bytes.fromhex(SM3[0]["message"]) == b"abc"
    assert bytes.fromhex(SM3[1]["message"]) == b"abcd" * 16


@pytest.mark.parametrize("case", SM4, ids=[c["name"] for c in SM4])
def test_sm4_appendix_a(case: dict[str, object]) -> None:
    key = bytes.fromhex(str(case["key"]))
    block = bytes.fromhex(str(case["plaintext"]))
    n = int(str(case["iterations"]))
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    for _ in range(n):  # 10^6 single-block calls take well under a second
        block = enc.update(block)
    assert block.hex() == case["ciphertext"]
    if n == 1:
        dec = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
        assert dec.update(block) == bytes.fromhex(str(case["plaintext"]))


# --- SM2 ----------------------------------------------------------------------------------

_C = {k: int(v, 16) for k, v in SM2["curve"].items()}
_Pt = tuple[int, int] | None


def _add(p1: _Pt, p2: _Pt) -> _Pt:
    p = _C["p"]
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % p == 0:
        return None
    if p1 == p2:
        lam = (3 * p1[0] * p1[0] + _C["a"]) * pow(2 * p1[1], -1, p) % p
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, p) % p
    x = (lam * lam - p1[0] - p2[0]) % p
    return x, (lam * (p1[0] - x) - p1[1]) % p


def _mul(k: int, pt: _Pt) -> _Pt:
    acc: _Pt = None
    while k:
        if k & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        k >>= 1
    return acc


G = (_C["gx"], _C["gy"])


def _i(name: str) -> int:
    return int(SM2[name], 16)


def _b32(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _pub() -> bytes:
    return bytes.fromhex(SM2["public_key_x"] + SM2["public_key_y"])


def test_sm2_curve_parameters_are_consistent() -> None:
    p, a, b, n = _C["p"], _C["a"], _C["b"], _C["n"]
    assert (G[1] ** 2 - G[0] ** 3 - a * G[0] - b) % p == 0
    assert _mul(n, G) is None
    assert a == p - 3


def test_sm2_example_public_key_is_d_times_g() -> None:
    q = _mul(_i("private_key"), G)
    assert q == (_i("public_key_x"), _i("public_key_y"))


def test_sm2_example_za_e_and_signature_recomputed() -> None:
    """GB/T 32918.2 §6.1: Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA),
    e = SM3(Z_A || M), (x1, y1) = [k]G, r = (e + x1) mod n, s = (1 + d)^-1 (k - r d) mod n."""
    ident = bytes.fromhex(SM2["signer_id"])
    assert ident == SM2_SIGNER_ID
    fields = (_C["a"], _C["b"], G[0], G[1], _i("public_key_x"), _i("public_key_y"))
    za = GM.hash((len(ident) * 8).to_bytes(2, "big") + ident + b"".join(map(_b32, fields)))
    assert za.hex() == SM2["za"]
    msg = bytes.fromhex(SM2["message"])
    assert msg == b"message digest"
    e = GM.hash(za + msg)
    assert e.hex() == SM2["e"]
    n, d, k = _C["n"], _i("private_key"), _i("k")
    kg = _mul(k, G)
    assert kg is not None
    r = (int.from_bytes(e, "big") + kg[0]) % n
    s = pow(1 + d, -1, n) * (k - r * d) % n
    assert (r, s) == (_i("r"), _i("s"))


def test_sm2_published_signature_verifies_with_our_verify_key() -> None:
    sig = bytes.fromhex(SM2["r"] + SM2["s"])
    msg = bytes.fromhex(SM2["message"])
    vk = VerifyKey(GM, _pub())
    vk.verify(sig, msg)  # returns None; raises InvalidSignature otherwise
    with pytest.raises(InvalidSignature):
        vk.verify(sig, msg + b".")
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        with pytest.raises(InvalidSignature):
            vk.verify(bytes(bad), msg)


def test_sm2_published_signature_through_gmssl_directly() -> None:
    der = _rs_to_der(bytes.fromhex(SM2["r"] + SM2["s"]))
    msg = bytes.fromhex(SM2["message"])
    assert gmssl_pyx.sm2_verify(_pub(), msg, der, bytes.fromhex(SM2["signer_id"]))
    # the Z value binds the identity: another ID must not verify
    assert not gmssl_pyx.sm2_verify(_pub(), msg, der, b"ALICE123@YAHOO.COM")


def test_sm2_signing_with_the_example_key_verifies() -> None:
    from tally.crypto import SigningKey

    key = SigningKey(GM, bytes.fromhex(SM2["private_key"]), _pub())
    msg = bytes.fromhex(SM2["message"])
    sig = key.sign(msg)  # k is random, so (r, s) differs from the example's
    assert len(sig) == 64
    VerifyKey(GM, _pub()).verify(sig, msg)


def test_sm3_of_za_message_uses_hashlib_sm3() -> None:
    assert hashlib.new("sm3", b"abc").hexdigest() == SM3[0]["digest"]

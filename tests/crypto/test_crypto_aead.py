"""AEAD per suite against published vectors, and the ``nonce || ciphertext || tag`` layout.

Known answers go through our own :func:`tally.crypto.aead.decrypt` by building the layout
from the vector (the encrypt side draws a random nonce, so it is checked by round trip and
by the layout's lengths).
"""

from __future__ import annotations

import gmssl_pyx
import pytest
from crypto_vectors import load_vectors
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tally.crypto import GM, INTL, DecryptionError, Suite, aead
from tally.crypto.errors import KeyError_

GCM = load_vectors("aes256_gcm_mcgrew_viega")["cases"]
SM4GCM = load_vectors("sm4_gcm_rfc8998")


def _h(s: str) -> bytes:
    return bytes.fromhex(s)


@pytest.mark.parametrize("case", GCM, ids=[c["name"] for c in GCM])
def test_aes256_gcm_known_answer_through_our_decrypt(case: dict[str, str]) -> None:
    key, iv, aad = _h(case["key"]), _h(case["iv"]), _h(case["aad"])
    pt, ct, tag = _h(case["plaintext"]), _h(case["ciphertext"]), _h(case["tag"])
    assert AESGCM(key).encrypt(iv, pt, aad) == ct + tag
    assert aead.decrypt(INTL, key, iv + ct + tag, aad) == pt
    bad = bytearray(iv + ct + tag)
    bad[-1] ^= 0x80
    with pytest.raises(DecryptionError):
        aead.decrypt(INTL, key, bytes(bad), aad)


def test_sm4_gcm_rfc8998_known_answer() -> None:
    key, iv, aad = _h(SM4GCM["key"]), _h(SM4GCM["iv"]), _h(SM4GCM["aad"])
    pt, ct, tag = _h(SM4GCM["plaintext"]), _h(SM4GCM["ciphertext"]), _h(SM4GCM["tag"])
    enc = Cipher(algorithms.SM4(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad)
    assert enc.update(pt) + enc.finalize() == ct
    assert enc.tag == tag
    assert gmssl_pyx.sm4_gcm_encrypt(key, iv, aad, pt) == (ct, tag)  # a second implementation
    assert aead.decrypt(GM, key, iv + ct + tag, aad) == pt
    with pytest.raises(DecryptionError):
        aead.decrypt(GM, key, iv + ct + tag, aad[:-1])


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000])
def test_round_trip_and_layout(suite: Suite, size: int) -> None:
    key = aead.generate_key(suite)
    assert len(key) == suite.aead_key_size
    pt = bytes(range(256)) * 4
    pt = pt[:size]
    data = aead.encrypt(suite, key, pt, b"ctx")
    assert len(data) == aead.NONCE_SIZE + size + aead.TAG_SIZE
    assert aead.decrypt(suite, key, data, b"ctx") == pt


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
def test_every_altered_byte_is_refused(suite: Suite) -> None:
    key = aead.generate_key(suite)
    data = aead.encrypt(suite, key, b"collateral: 120 t of copper", b"loan-9")
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(DecryptionError):
            aead.decrypt(suite, key, bytes(bad), b"loan-9")


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
def test_wrong_aad_wrong_key_truncation(suite: Suite) -> None:
    key = aead.generate_key(suite)
    data = aead.encrypt(suite, key, b"secret", b"loan-9")
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, key, data, b"loan-8")
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, key, data)
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, aead.generate_key(suite), data, b"loan-9")
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, key, data[:-1], b"loan-9")
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, key, data + b"\x00", b"loan-9")


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
@pytest.mark.parametrize("size", [0, 1, 12, 27])
def test_short_ciphertext_is_a_decryption_error(suite: Suite, size: int) -> None:
    key = aead.generate_key(suite)
    with pytest.raises(DecryptionError, match="fewer than nonce"):
        aead.decrypt(suite, key, b"\x00" * size)


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
def test_empty_body_with_valid_tag_length_is_checked(suite: Suite) -> None:
    key = aead.generate_key(suite)
    with pytest.raises(DecryptionError):
        aead.decrypt(suite, key, b"\x00" * (aead.NONCE_SIZE + aead.TAG_SIZE))


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
def test_nonces_are_unique_over_many_encryptions(suite: Suite) -> None:
    key = aead.generate_key(suite)
    n = 20000
    nonces = {aead.encrypt(suite, key, b"x")[: aead.NONCE_SIZE] for _ in range(n)}
    assert len(nonces) == n
    # the same plaintext never gives the same ciphertext
    assert aead.encrypt(suite, key, b"x") != aead.encrypt(suite, key, b"x")


@pytest.mark.parametrize("suite", [INTL, GM], ids=str)
def test_wrong_key_size_is_a_key_error(suite: Suite) -> None:
    for size in (0, 15, 17, 31, 33):
        if size == suite.aead_key_size:
            continue
        with pytest.raises(KeyError_):
            aead.encrypt(suite, b"\x00" * size, b"x")
        with pytest.raises(KeyError_):
            aead.decrypt(suite, b"\x00" * size, b"\x00" * 40)

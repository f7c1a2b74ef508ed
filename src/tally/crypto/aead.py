"""Authenticated encryption per suite: AES-256-GCM (``intl``) and SM4-GCM (``gm``).

Ciphertext layout everywhere: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tally.crypto.errors import DecryptionError, KeyError_
from tally.crypto.suite import INTL, Suite

NONCE_SIZE = 12
TAG_SIZE = 16


def generate_key(suite: Suite) -> bytes:
    return os.urandom(suite.aead_key_size)


def _check_key(suite: Suite, key: bytes) -> None:
    if len(key) != suite.aead_key_size:
        raise KeyError_(f"{suite.aead_name} key has {len(key)} bytes, want {suite.aead_key_size}")


def encrypt(suite: Suite, key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt with a fresh random nonce; return ``nonce || ciphertext || tag``."""
    _check_key(suite, key)
    nonce = os.urandom(NONCE_SIZE)
    if suite is INTL:
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    ct = enc.update(plaintext) + enc.finalize()
    return nonce + ct + enc.tag


def decrypt(suite: Suite, key: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Decrypt ``nonce || ciphertext || tag``; raise DecryptionError on any mismatch."""
    _check_key(suite, key)
    if len(data) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(f"ciphertext has {len(data)} bytes, fewer than nonce + tag")
    nonce, body = data[:NONCE_SIZE], data[NONCE_SIZE:]
    try:
        if suite is INTL:
            return AESGCM(key).decrypt(nonce, body, aad)
        dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, body[-TAG_SIZE:])).decryptor()
        dec.authenticate_additional_data(aad)
        return dec.update(body[:-TAG_SIZE]) + dec.finalize()
    except InvalidTag:
        raise DecryptionError(
            f"{suite.aead_name}: authentication failed (wrong key, wrong context or altered data)"
        ) from None

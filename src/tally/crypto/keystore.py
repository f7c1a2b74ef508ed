"""Private keys at rest: encrypted key files.

A key file is deterministic CBOR::

    {"v": 1, "kind": "tally.key", "suite": "intl"|"gm", "pub": bstr,
     "kdf": {"alg": "scrypt", "n": int, "r": int, "p": int, "salt": bstr(16)},
     "ct": bstr}   ; AEAD(suite)(KEK, secret, aad = "tally.key" || pub)

The key-encryption key is scrypt(passphrase) of the suite's AEAD key size. The passphrase
comes from configuration (``TALLY_KEY_PASSPHRASE``); it is never written to disk or logs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tally.crypto import aead, cbor
from tally.crypto.errors import DecodeError, DecryptionError, KeyError_, UnknownSuite
from tally.crypto.keys import SigningKey
from tally.crypto.suite import get_suite

DEFAULT_SCRYPT_N = 1 << 15


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        passphrase.encode(), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * 1024 * 1024
    )


def seal_key(key: SigningKey, passphrase: str, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
    """Return the encrypted key file bytes for ``key``."""
    if not passphrase:
        raise KeyError_("refusing to store a private key without a passphrase")
    salt = os.urandom(16)
    r, p = 8, 1
    kek = _kek(passphrase, salt, scrypt_n, r, p, key.suite.aead_key_size)
    pub = key.public.raw
    ct = aead.encrypt(key.suite, kek, key.secret_bytes(), b"tally.key" + pub)
    return cbor.encode(
        {
            "v": 1,
            "kind": "tally.key",
            "suite": key.suite.name,
            "pub": pub,
            "kdf": {"alg": "scrypt", "n": scrypt_n, "r": r, "p": p, "salt": salt},
            "ct": ct,
        }
    )


def open_key(data: bytes, passphrase: str) -> SigningKey:
    """Decrypt key file bytes; raise KeyError_ with the reason when that is impossible."""
    try:
        obj = cbor.decode(data, where="key file")
    except DecodeError as exc:
        raise KeyError_(f"not a tally key file: {exc.reason}") from None
    if not isinstance(obj, dict) or obj.get("kind") != "tally.key" or obj.get("v") != 1:
        raise KeyError_("not a tally key file (version 1)")
    try:
        suite = get_suite(str(obj["suite"]))
        kdf, pub, ct = obj["kdf"], obj["pub"], obj["ct"]
        if not isinstance(kdf, dict) or not isinstance(pub, bytes) or not isinstance(ct, bytes):
            raise KeyError_("key file fields kdf, pub and ct have the wrong types")
        if kdf.get("alg") != "scrypt":
            raise KeyError_(f"unknown key derivation {kdf.get('alg')!r}")
        kek = _kek(passphrase, kdf["salt"], kdf["n"], kdf["r"], kdf["p"], suite.aead_key_size)
    except (KeyError, TypeError, ValueError, UnknownSuite) as exc:
        raise KeyError_(f"malformed key file: {type(exc).__name__} {exc}") from None
    try:
        secret = aead.decrypt(suite, kek, ct, b"tally.key" + pub)
    except DecryptionError:
        raise KeyError_("cannot decrypt key file: wrong passphrase or altered file") from None
    key = SigningKey(suite, secret, pub)
    if key.public.raw != pub:
        raise KeyError_("key file's public key does not match its private key")
    return key


def save_key(
    path: Path, key: SigningKey, passphrase: str, scrypt_n: int = DEFAULT_SCRYPT_N
) -> None:
    """Write an encrypted key file with mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover temporary file
    with os.fdopen(fd, "wb") as f:
        f.write(seal_key(key, passphrase, scrypt_n))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_key(path: Path, passphrase: str) -> SigningKey:
    return open_key(path.read_bytes(), passphrase)

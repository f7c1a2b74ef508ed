"""Crypto suites: one per consortium, fixed at deployment and carried in every format.

=======  ============================  ========  ===========  ======================
suite    signature (COSE alg)          hash      AEAD         key sizes
=======  ============================  ========  ===========  ======================
intl     Ed25519 / EdDSA (-8)          SHA-256   AES-256-GCM  pub 32, sig 64, key 32
gm       SM2 with SM3 (-65601, private SM3       SM4-GCM      pub 64, sig 64, key 16
         use; see docs/formats.md)
=======  ============================  ========  ===========  ======================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from tally.crypto.errors import UnknownSuite

ALG_EDDSA = -8
"""COSE algorithm EdDSA (RFC 9053 §2.2), used with Ed25519 keys only."""

ALG_SM2_SM3 = -65601
"""Private-use COSE algorithm (below -65536, RFC 9052 §16.4): SM2 signature (GB/T 32918.2)
over the message with SM3 and the Z value of signer id ``1234567812345678``; signature is the
64-byte ``r || s``, each big-endian and left-padded to 32 bytes."""


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Suite:
    """A named set of algorithms: signature, hash and AEAD."""

    name: str
    alg: int
    hash_name: str
    hash: Callable[[bytes], bytes]
    aead_name: str
    aead_key_size: int
    public_key_size: int
    signature_size: int

    def __str__(self) -> str:
        return self.name


INTL = Suite("intl", ALG_EDDSA, "sha256", _sha256, "A256GCM", 32, 32, 64)
GM = Suite("gm", ALG_SM2_SM3, "sm3", _sm3, "SM4-GCM", 16, 64, 64)

SUITES: dict[str, Suite] = {s.name: s for s in (INTL, GM)}
_BY_ALG: dict[int, Suite] = {s.alg: s for s in (INTL, GM)}


def get_suite(name: str) -> Suite:
    """Return the suite called ``name`` (``intl`` or ``gm``); raise :class:`UnknownSuite`."""
    try:
        return SUITES[name]
    except KeyError:
        raise UnknownSuite(name) from None


def suite_for_alg(alg: int) -> Suite:
    """Return the suite whose signature algorithm is COSE ``alg``."""
    try:
        return _BY_ALG[alg]
    except KeyError:
        raise UnknownSuite(str(alg)) from None

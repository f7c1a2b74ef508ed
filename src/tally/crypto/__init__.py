"""Crypto suites, keys, deterministic CBOR, COSE_Sign1 and AEAD."""

from tally.crypto.cose import Sign1, parse_sign1, sign1
from tally.crypto.errors import (
    CryptoError,
    DecodeError,
    DecryptionError,
    InvalidSignature,
    UnknownSuite,
    WrongSuite,
)
from tally.crypto.keys import SigningKey, VerifyKey
from tally.crypto.suite import GM, INTL, SUITES, Suite, get_suite

__all__ = [
    "GM",
    "INTL",
    "SUITES",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "InvalidSignature",
    "Sign1",
    "SigningKey",
    "Suite",
    "UnknownSuite",
    "VerifyKey",
    "WrongSuite",
    "get_suite",
    "parse_sign1",
    "sign1",
]

"""The crypto tier's errors. Each says when it is raised and carries its data."""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by :mod:`tally.crypto`."""


class DecodeError(CryptoError):
    """Raised when bytes are not the one canonical encoding of an allowed object.

    ``where`` names the object being decoded (e.g. ``"COSE_Sign1"``), ``reason`` what is wrong.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class InvalidSignature(CryptoError):
    """Raised when a signature does not verify under the given key.

    ``signer`` is the key id the envelope claims, ``alg`` the COSE algorithm.
    """

    def __init__(self, signer: str, alg: int, detail: str = "signature does not verify") -> None:
        self.signer = signer
        self.alg = alg
        super().__init__(f"{detail} (signer {signer!r}, alg {alg})")


class WrongSuite(CryptoError):
    """Raised when an object uses another crypto suite or algorithm than the one expected."""

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"wrong crypto suite: expected {expected}, got {got}")


class UnknownSuite(CryptoError):
    """Raised when a suite name or COSE algorithm identifier is not one tally knows."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown crypto suite or algorithm {name!r} (known: intl, gm)")


class KeyError_(CryptoError):
    """Raised when key material is malformed, of the wrong length or cannot be unwrapped."""


class DecryptionError(CryptoError):
    """Raised when AEAD decryption fails: wrong key, wrong associated data or tampered bytes."""

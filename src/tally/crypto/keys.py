"""Signing and verifying keys for both suites.

Ed25519 (``intl``) uses libsodium through PyNaCl, the fastest verifier available here;
SM2 (``gm``) uses GmSSL 3 through ``gmssl-pyx``. Both follow one shape: :class:`SigningKey`
signs bytes, :class:`VerifyKey` verifies and raises :class:`InvalidSignature` — it never
returns False.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.signing

from tally.crypto.errors import InvalidSignature, KeyError_
from tally.crypto.suite import GM, INTL, Suite, get_suite

SM2_SIGNER_ID = b"1234567812345678"
"""Default SM2 user identity (GB/T 35276), hashed into Z for every tally SM2 signature."""


def _der_to_rs(der: bytes) -> bytes:
    """Convert an ASN.1 DER ``SEQUENCE { r INTEGER, s INTEGER }`` to 64-byte ``r || s``."""
    if len(der) < 8 or der[0] != 0x30:
        raise KeyError_("SM2 signature is not a DER sequence")
    pos = 2
    parts: list[int] = []
    for _ in range(2):
        if der[pos] != 0x02:
            raise KeyError_("SM2 signature component is not an INTEGER")
        ln = der[pos + 1]
        parts.append(int.from_bytes(der[pos + 2 : pos + 2 + ln], "big"))
        pos += 2 + ln
    return parts[0].to_bytes(32, "big") + parts[1].to_bytes(32, "big")


def _int_der(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big")
    return b"\x02" + bytes((len(b),)) + b


def _rs_to_der(rs: bytes) -> bytes:
    body = _int_der(int.from_bytes(rs[:32], "big")) + _int_der(int.from_bytes(rs[32:], "big"))
    return b"\x30" + bytes((len(body),)) + body


class VerifyKey:
    """A public key of one suite. ``raw`` is 32 bytes (Ed25519) or 64 bytes ``x || y`` (SM2)."""

    __slots__ = ("_nacl", "raw", "suite")

    def __init__(self, suite: Suite, raw: bytes) -> None:
        if len(raw) != suite.public_key_size:
            raise KeyError_(
                f"{suite.name} public key has {len(raw)} bytes, want {suite.public_key_size}"
            )
        self.suite = suite
        self.raw = bytes(raw)
        self._nacl = nacl.signing.VerifyKey(self.raw) if suite is INTL else None

    def verify(self, signature: bytes, message: bytes, signer: str = "") -> None:
        """Return None if ``signature`` is valid for ``message``; raise InvalidSignature."""
        if len(signature) != self.suite.signature_size:
            raise InvalidSignature(
                signer,
                self.suite.alg,
                f"signature has {len(signature)} bytes, want {self.suite.signature_size}",
            )
        if self._nacl is not None:
            try:
                self._nacl.verify(message, signature)
            except nacl.exceptions.BadSignatureError:
                raise InvalidSignature(signer, self.suite.alg) from None
            return
        import gmssl_pyx

        try:
            ok = gmssl_pyx.sm2_verify(self.raw, message, _rs_to_der(signature), SM2_SIGNER_ID)
        except Exception:
            ok = False
        if not ok:
            raise InvalidSignature(signer, self.suite.alg)

    def fingerprint(self) -> str:
        """Hex of the suite hash of the raw key, first 16 bytes: a short stable key name."""
        return self.suite.hash(self.raw)[:16].hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and (self.suite, self.raw) == (other.suite, other.raw)

    def __hash__(self) -> int:
        return hash((self.suite.name, self.raw))

    def __repr__(self) -> str:
        return f"VerifyKey({self.suite.name}, {self.fingerprint()})"


class SigningKey:
    """A private key of one suite. ``secret`` is the 32-byte seed (Ed25519) or scalar (SM2).

    The secret never appears in ``repr`` or ``str``.
    """

    __slots__ = ("_nacl", "_secret", "public", "suite")

    def __init__(self, suite: Suite, secret: bytes, public: bytes | None = None) -> None:
        if len(secret) != 32:
            raise KeyError_(f"{suite.name} private key has {len(secret)} bytes, want 32")
        self.suite = suite
        self._secret = bytes(secret)
        if suite is INTL:
            self._nacl: nacl.signing.SigningKey | None = nacl.signing.SigningKey(self._secret)
            pub = bytes(self._nacl.verify_key)
        else:
            self._nacl = None
            if public is None:
                raise KeyError_("an SM2 private key needs its public key")
            pub = public
        self.public = VerifyKey(suite, pub)

    @classmethod
    def generate(cls, suite: Suite | str) -> SigningKey:
        """Make a fresh key pair from the operating system's CSPRNG."""
        s = get_suite(suite) if isinstance(suite, str) else suite
        if s is INTL:
            return cls(s, bytes(nacl.signing.SigningKey.generate()))
        import gmssl_pyx

        pub, sec = gmssl_pyx.sm2_key_generate()
        return cls(GM, sec, pub)

    def sign(self, message: bytes) -> bytes:
        """Return the suite's fixed-size signature over ``message``."""
        if self._nacl is not None:
            return self._nacl.sign(message).signature
        import gmssl_pyx

        der = gmssl_pyx.sm2_sign(self._secret, self.public.raw, message, SM2_SIGNER_ID)
        return _der_to_rs(der)

    def secret_bytes(self) -> bytes:
        """The raw secret, for encrypted storage only (see :mod:`tally.crypto.keystore`)."""
        return self._secret

    def __repr__(self) -> str:
        return f"SigningKey({self.suite.name}, public={self.public.fingerprint()})"


def key_id(public: VerifyKey) -> bytes:
    """A 16-byte identifier of a public key: SHA-256 of suite name, NUL and the raw key."""
    return hashlib.sha256(public.suite.name.encode() + b"\x00" + public.raw).digest()[:16]

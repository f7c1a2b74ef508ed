"""COSE_Sign1 (RFC 9052 §4.2) over deterministic CBOR: the envelope of every signed object.

Layout, all deterministic CBOR::

    COSE_Sign1 = #6.18([ protected: bstr .cbor {1: alg, 3: content_type, 4: kid},
                         unprotected: {},
                         payload: bstr,
                         signature: bstr ])
    Sig_structure = ["Signature1", protected, h'', payload]     ; the bytes that are signed

``alg`` is -8 (EdDSA/Ed25519, suite ``intl``) or -65601 (SM2/SM3, suite ``gm``);
``content_type`` is a text media type naming the tally object (e.g.
``application/tally.reading+cbor``), so a signature over one kind of object can never be
passed off as another; ``kid`` is the signer's identifier as UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tally.crypto import cbor
from tally.crypto.errors import DecodeError, WrongSuite
from tally.crypto.keys import SigningKey, VerifyKey
from tally.crypto.suite import Suite, suite_for_alg

COSE_SIGN1_TAG = 18
_H_ALG = 1
_H_CTY = 3
_H_KID = 4


_SIG1_PREFIX = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"
_TAG18_ARRAY4 = b"\xd2\x84"  # tag(18), array(4)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The Sig_structure bytes for a COSE_Sign1 with empty external AAD:
    ``["Signature1", protected, h'', payload]`` in deterministic CBOR."""
    return b"".join(
        (_SIG1_PREFIX, cbor.head(2, len(protected)), protected, b"\x40",
         cbor.head(2, len(payload)), payload)
    )  # fmt: skip


def encode_sign1(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    """The deterministic encoding of ``#6.18([protected, {}, payload, signature])``."""
    return b"".join(
        (_TAG18_ARRAY4, cbor.head(2, len(protected)), protected, b"\xa0",
         cbor.head(2, len(payload)), payload, cbor.head(2, len(signature)), signature)
    )  # fmt: skip


@dataclass(frozen=True)
class Sign1:
    """A parsed, not yet verified, COSE_Sign1 message."""

    alg: int
    content_type: str
    kid: str
    protected: bytes
    payload: bytes
    signature: bytes
    encoded: bytes

    @property
    def suite(self) -> Suite:
        return suite_for_alg(self.alg)

    def verify(self, key: VerifyKey) -> None:
        """Return None if the signature is valid under ``key``; raise InvalidSignature."""
        if key.suite.alg != self.alg:
            raise WrongSuite(key.suite.name, f"alg {self.alg}")
        key.verify(self.signature, sig_structure(self.protected, self.payload), self.kid)

    def payload_obj(self) -> Any:
        """The payload decoded as deterministic CBOR."""
        return cbor.decode(self.payload, where=self.content_type)


def sign1(key: SigningKey, content_type: str, kid: str, payload: bytes) -> bytes:
    """Sign ``payload`` and return the encoded COSE_Sign1 bytes."""
    protected = cbor.encode({_H_ALG: key.suite.alg, _H_CTY: content_type, _H_KID: kid.encode()})
    signature = key.sign(sig_structure(protected, payload))
    return encode_sign1(protected, payload, signature)


_HEADERS: dict[bytes, tuple[int, str, str]] = {}
_HEADERS_MAX = 65536


def _protected_header(protected: bytes) -> tuple[int, str, str]:
    """Decode and check a protected header: (alg, content type, kid as text).

    Valid headers are remembered (a device sends the same one every time), bounded in number.
    """
    known = _HEADERS.get(protected)
    if known is not None:
        return known
    hdr = cbor.decode(protected, where="COSE_Sign1 protected header")
    if not isinstance(hdr, dict) or set(hdr) != {_H_ALG, _H_CTY, _H_KID}:
        raise DecodeError("COSE_Sign1", "protected header must hold exactly alg, cty and kid")
    alg, cty, kid = hdr[_H_ALG], hdr[_H_CTY], hdr[_H_KID]
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise DecodeError("COSE_Sign1", "alg must be an integer")
    if not isinstance(cty, str) or not isinstance(kid, bytes):
        raise DecodeError("COSE_Sign1", "cty must be text and kid a byte string")
    try:
        kid_text = kid.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("COSE_Sign1", "kid is not UTF-8") from None
    out = (alg, cty, kid_text)
    if len(_HEADERS) < _HEADERS_MAX:
        _HEADERS[protected] = out
    return out


def parse_sign1(
    data: bytes,
    content_type: str | None = None,
    suite: Suite | None = None,
    max_size: int = 64 * 1024,
) -> Sign1:
    """Parse COSE_Sign1 bytes strictly; check the content type and suite when given.

    Raises :class:`DecodeError` for anything that is not exactly a tally COSE_Sign1 and
    :class:`WrongSuite` for another algorithm than ``suite``'s. Does not verify.
    """
    obj = cbor.decode_structure(data, where="COSE_Sign1", max_size=max_size)
    if not isinstance(obj, cbor.Tag) or obj.number != COSE_SIGN1_TAG:
        raise DecodeError("COSE_Sign1", "not tagged 18 (COSE_Sign1)")
    arr = obj.value
    if not isinstance(arr, list | tuple) or len(arr) != 4:
        raise DecodeError("COSE_Sign1", "not an array of 4 items")
    protected, unprotected, payload, signature = arr
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise DecodeError("COSE_Sign1", "protected header and payload must be byte strings")
    if not isinstance(signature, bytes):
        raise DecodeError("COSE_Sign1", "signature must be a byte string")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise DecodeError("COSE_Sign1", "unprotected header must be empty")
    canonical = encode_sign1(protected, payload, signature)
    if canonical != data:
        if data.startswith(canonical):
            raise DecodeError("COSE_Sign1", f"{len(data) - len(canonical)} trailing bytes")
        raise DecodeError("COSE_Sign1", "not the deterministic encoding (RFC 8949 §4.2.1)")
    alg, cty, kid_text = _protected_header(protected)
    msg_suite = suite_for_alg(alg)
    if suite is not None and msg_suite is not suite:
        raise WrongSuite(suite.name, msg_suite.name)
    if content_type is not None and cty != content_type:
        raise DecodeError("COSE_Sign1", f"content type {cty!r}, expected {content_type!r}")
    return Sign1(alg, cty, kid_text, protected, payload, signature, bytes(data))

"""Interoperability: our Ed25519 COSE_Sign1 against pycose, an independent implementation.

A message we sign verifies in pycose, and a message pycose signs with the same headers is
byte-for-byte ours and verifies with parse_sign1 + Sign1.verify (Ed25519 is deterministic).
"""

from __future__ import annotations

import os
from typing import Any

import cbor2
import pytest

from tally.crypto import INTL, InvalidSignature, SigningKey, parse_sign1, sign1

try:
    from pycose.algorithms import EdDSA
    from pycose.headers import KID, Algorithm, ContentType
    from pycose.keys.curves import Ed25519
    from pycose.keys.okp import OKPKey
    from pycose.messages.sign1message import Sign1Message
except ImportError:  # a test dependency; missing it is a failure in CI
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("pycose is not installed", allow_module_level=True)

CTY = "application/tally.reading+cbor"
SEED = bytes(range(32))
KEY = SigningKey(INTL, SEED)


def _pycose_decode(data: bytes) -> Any:
    # pycose's own decode() expects lists and dicts where cbor2 6 returns a tuple and a
    # frozendict inside a tag; hand it the four fields as it wants them
    tag = cbor2.loads(data)
    assert tag.tag == 18
    fields = list(tag.value)
    fields[1] = dict(fields[1])
    return Sign1Message.from_cose_obj(fields, True)


@pytest.mark.parametrize("payload", [b"", b"\xa1\x01\x02", bytes(range(256)) * 4])
def test_ours_verifies_in_pycose(payload: bytes) -> None:
    data = sign1(KEY, CTY, "dev-1", payload)
    msg = _pycose_decode(data)
    msg.key = OKPKey(crv=Ed25519, x=KEY.public.raw)
    assert msg.verify_signature() is True
    assert msg.payload == payload
    tampered = _pycose_decode(data[:-1] + bytes((data[-1] ^ 1,)))
    tampered.key = OKPKey(crv=Ed25519, x=KEY.public.raw)
    assert tampered.verify_signature() is False


@pytest.mark.parametrize("payload", [b"", b"\xa1\x01\x02"])
def test_pycose_signed_verifies_in_ours(payload: bytes) -> None:
    okp = OKPKey(crv=Ed25519, d=SEED, x=KEY.public.raw)
    theirs = Sign1Message(
        phdr={Algorithm: EdDSA, ContentType: CTY, KID: b"dev-1"},
        uhdr={},
        payload=payload,
        key=okp,
    ).encode()
    assert theirs == sign1(KEY, CTY, "dev-1", payload)
    msg = parse_sign1(theirs, content_type=CTY, suite=INTL)
    msg.verify(KEY.public)
    other = SigningKey(INTL, bytes(32))
    with pytest.raises(InvalidSignature):
        msg.verify(other.public)

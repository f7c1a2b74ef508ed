"""Mutated bundles are never accepted, and verify_bundle never raises.

Every single-byte change of a small valid bundle (each position, three different changes)
is rejected, with the anchors pinned and with the bundle's own anchors accepted. Hypothesis
then throws random bytes and multi-byte mutations of a full bundle at the verifier.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally import formats as F
from tally.crypto import INTL, SigningKey
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust, load_trust
from tally.edge.formats import BatchHeader, Event, sign_object
from tally.merkle import SHA256
from tally.verify.bundle import Bundle
from tally.verify.verdict import Verdict
from tally.verify.verifier import verify_bundle

BUNDLES = Path(__file__).resolve().parents[1] / "vectors" / "bundles"
VALID = (BUNDLES / "intl" / "valid-reading.cbor").read_bytes()
TRUST = load_trust(BUNDLES / "intl" / "trust.cbor")
T0 = 1_767_225_600_000


def _key(name: str) -> SigningKey:
    import hashlib

    return SigningKey(INTL, hashlib.sha256(f"tally test vector key: {name}".encode()).digest())


def _small_bundle() -> tuple[bytes, Trust]:
    """One edge event in a one-leaf batch: the smallest complete bundle (empty path)."""
    acme, edge = _key("acme"), _key("edge-1")
    reg = Registration(
        "edge", "edge-1", "acme", "site-1", "", "intl", edge.public.raw, Assurance.DEVICE, T0
    )
    ev = Event("edge-1", "site-1", 0, "r", "k", "info", T0, (), (), ())
    item = sign_object(edge, F.CTY_EVENT, "edge-1", ev.to_cbor())
    root = SHA256.hash_leaf(item)
    hdr = BatchHeader("edge-1", "site-1", "intl", 0, b"", T0, T0, 1, root)
    header = sign_object(edge, F.CTY_BATCH, "edge-1", hdr.to_cbor())
    data = Bundle(
        "intl", item, 0, 1, (), header, (sign_registration(acme, reg),), {"acme": acme.public.raw}
    ).encode()
    return data, Trust(INTL, {"acme": acme.public})


def _rejected(v: Verdict) -> bool:
    """Rejected cleanly: not ok, and no decoder failed in an unforeseen way."""
    return not v.ok and "malformed data (" not in v.reason


def test_verify_every_single_byte_change_is_rejected() -> None:
    data, trust = _small_bundle()
    assert verify_bundle(data, trust).ok
    assert verify_bundle(data, None, accept_bundled_anchors=True).ok
    accepted = []
    for pos in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            mutated = data[:pos] + bytes((data[pos] ^ mask,)) + data[pos + 1 :]
            for v in (verify_bundle(mutated, trust), verify_bundle(mutated, None, True)):
                if not _rejected(v):
                    accepted.append((pos, mask, v.reason))
    assert accepted == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_verify_random_bytes_are_rejected(data: bytes) -> None:
    assert _rejected(verify_bundle(data, TRUST))


@st.composite
def _mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[pos:]
        else:
            data += draw(st.binary(min_size=1, max_size=4))
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_verify_mutated_bundles_are_rejected(mutated: bytes) -> None:
    if mutated == VALID:
        return
    assert _rejected(verify_bundle(mutated, TRUST))
    assert _rejected(verify_bundle(mutated, None, accept_bundled_anchors=True))

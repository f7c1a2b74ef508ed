"""Registrations: which key speaks for which device or edge, signed by the owning organisation.

Payload, signed as COSE_Sign1 with ``cty`` ``application/tally.registration+cbor`` and
``kid`` = the organisation id::

    {"v": 1,
     "kind": "device" | "edge" | "cloud",
     "id": tstr,             ; device, edge or cloud id
     "org": tstr,            ; owning organisation (the signer)
     "site": tstr,           ; site id ("" for a cloud)
     "profile": tstr,        ; sensor profile (devices), "" otherwise
     "suite": "intl" | "gm",
     "pub": bstr,            ; raw public key; h'' for a device that cannot sign
     "assurance": "device" | "edge" | "manual",   ; who signs this subject's readings
     "t": int}               ; issue time, ms since the Unix epoch

A revocation (``cty`` ``application/tally.revocation+cbor``, same signer) is
``{"v": 1, "id": tstr, "org": tstr, "t": int, "reason": tstr}``: readings of the subject
signed after ``t`` are rejected.

Organisation root keys are the trust anchors: a *trust file* names them (see
:mod:`tally.device.trust`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tally import formats as F
from tally.crypto import DecodeError, SigningKey, VerifyKey, cbor, get_suite, parse_sign1, sign1


class Assurance(IntEnum):
    """How much a stored reading can be trusted, lowest first; consumers can demand a minimum."""

    MANUAL = 1
    """Entered by hand, signed by the person's organisation."""
    EDGE = 2
    """Measured by a device that cannot sign; signed by the edge that polled it."""
    DEVICE = 3
    """Signed by the device's own key at the source."""

    @classmethod
    def parse(cls, name: str) -> Assurance:
        try:
            return cls[name.upper()]
        except KeyError:
            raise DecodeError("assurance", f"unknown assurance level {name!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


KINDS = ("device", "edge", "cloud")


@dataclass(frozen=True)
class Registration:
    kind: str
    id: str
    org: str
    site: str
    profile: str
    suite: str
    pub: bytes
    assurance: Assurance
    t: int

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "kind": self.kind,
                "id": self.id,
                "org": self.org,
                "site": self.site,
                "profile": self.profile,
                "suite": self.suite,
                "pub": self.pub,
                "assurance": self.assurance.label,
                "t": self.t,
            }
        )

    def verify_key(self) -> VerifyKey | None:
        """The subject's public key, or None for a device that cannot sign."""
        if not self.pub:
            return None
        return VerifyKey(get_suite(self.suite), self.pub)


@dataclass(frozen=True)
class Revocation:
    id: str
    org: str
    t: int
    reason: str

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "id": self.id,
                "org": self.org,
                "t": self.t,
                "reason": self.reason,
            }
        )


_REG_KEYS = {"v", "kind", "id", "org", "site", "profile", "suite", "pub", "assurance", "t"}


def decode_registration(payload: bytes) -> Registration:
    where = "registration"
    obj: dict[str, Any] = F.check_keys(cbor.decode(payload, where=where), _REG_KEYS, set(), where)
    kind = F.field(obj, "kind", str, where)
    if kind not in KINDS:
        raise DecodeError(where, f"unknown kind {kind!r}")
    suite = F.field(obj, "suite", str, where)
    get_suite(suite)
    reg = Registration(
        kind=kind,
        id=F.field(obj, "id", str, where),
        org=F.field(obj, "org", str, where),
        site=F.field(obj, "site", str, where),
        profile=F.field(obj, "profile", str, where),
        suite=suite,
        pub=F.field(obj, "pub", bytes, where),
        assurance=Assurance.parse(F.field(obj, "assurance", str, where)),
        t=F.field(obj, "t", int, where),
    )
    if reg.pub:
        reg.verify_key()  # checks the length for the suite
    elif reg.assurance is Assurance.DEVICE:
        raise DecodeError(where, "a device-signed subject must have a public key")
    return reg


def decode_revocation(payload: bytes) -> Revocation:
    where = "revocation"
    obj = F.check_keys(
        cbor.decode(payload, where=where), {"v", "id", "org", "t", "reason"}, set(), where
    )
    return Revocation(
        id=F.field(obj, "id", str, where),
        org=F.field(obj, "org", str, where),
        t=F.field(obj, "t", int, where),
        reason=F.field(obj, "reason", str, where),
    )


def sign_registration(org_key: SigningKey, reg: Registration) -> bytes:
    return sign1(org_key, F.CTY_REGISTRATION, reg.org, reg.to_cbor())


def sign_revocation(org_key: SigningKey, rev: Revocation) -> bytes:
    return sign1(org_key, F.CTY_REVOCATION, rev.org, rev.to_cbor())


def verify_registration(data: bytes, anchors: dict[str, VerifyKey]) -> Registration:
    """Parse and verify a registration against organisation root keys ``anchors``.

    Raises DecodeError, InvalidSignature, or :class:`UnknownOrganisation`.
    """
    msg = parse_sign1(data, content_type=F.CTY_REGISTRATION)
    reg = decode_registration(msg.payload)
    if msg.kid != reg.org:
        raise DecodeError("registration", f"signed by {msg.kid!r} but names org {reg.org!r}")
    key = anchors.get(reg.org)
    if key is None:
        raise UnknownOrganisation(reg.org)
    msg.verify(key)
    return reg


def verify_revocation(data: bytes, anchors: dict[str, VerifyKey]) -> Revocation:
    msg = parse_sign1(data, content_type=F.CTY_REVOCATION)
    rev = decode_revocation(msg.payload)
    if msg.kid != rev.org:
        raise DecodeError("revocation", f"signed by {msg.kid!r} but names org {rev.org!r}")
    key = anchors.get(rev.org)
    if key is None:
        raise UnknownOrganisation(rev.org)
    msg.verify(key)
    return rev


class UnknownOrganisation(DecodeError):
    """Raised when a registration is signed by an organisation that is not a trust anchor."""

    def __init__(self, org: str) -> None:
        self.org = org
        super().__init__("registration", f"organisation {org!r} is not a trust anchor")

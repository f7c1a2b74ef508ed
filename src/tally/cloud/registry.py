"""Accepting signed registrations and revocations into storage.

A registration must be signed by its organisation's root key (a trust anchor). A subject id
belongs to the organisation that first registered it: another organisation may neither
re-register nor revoke it; the owner may re-register it (e.g. a new key), and the newest wins.
"""

from __future__ import annotations

from tally.cloud.errors import Conflict, Forbidden, NotFound, RegistrationRejected
from tally.cloud.storage.api import RegistrationRecord, RevocationRecord, Storage
from tally.crypto import CryptoError, parse_sign1
from tally.device.registration import (
    UnknownOrganisation,
    verify_registration,
    verify_revocation,
)
from tally.device.trust import Trust
from tally.formats import CTY_REGISTRATION, CTY_REVOCATION


def accept_signed(
    data: bytes, trust: Trust, storage: Storage, now_ms: int
) -> tuple[RegistrationRecord | RevocationRecord, bool]:
    """Verify a signed registration or revocation and store it; return it and whether it is new.

    Raises RegistrationRejected (malformed, wrong suite, bad signature), Forbidden (the
    organisation is not a trust anchor, or the subject is another organisation's), Conflict
    (a re-registration under another kind) and NotFound (revoking an unknown subject).
    """
    try:
        cty = parse_sign1(data).content_type
    except CryptoError as exc:
        raise RegistrationRejected(f"not a signed registration: {exc}") from None
    if cty == CTY_REGISTRATION:
        return _registration(data, trust, storage, now_ms)
    if cty == CTY_REVOCATION:
        return _revocation(data, trust, storage, now_ms)
    raise RegistrationRejected(f"content type {cty!r} is neither a registration nor a revocation")


def _registration(
    data: bytes, trust: Trust, storage: Storage, now_ms: int
) -> tuple[RegistrationRecord, bool]:
    try:
        reg = verify_registration(data, trust.orgs)
    except UnknownOrganisation as exc:
        raise Forbidden(str(exc)) from None
    except CryptoError as exc:
        raise RegistrationRejected(str(exc)) from None
    if reg.suite != trust.suite.name:
        raise RegistrationRejected(
            f"registration of {reg.id!r} uses suite {reg.suite!r}, not {trust.suite.name!r}"
        )
    old = storage.registrations([reg.id]).get(reg.id)
    if old is not None and old.org != reg.org:
        raise Forbidden(f"{reg.id!r} is registered by organisation {old.org!r}")
    if old is not None and old.kind != reg.kind:
        raise Conflict(f"{reg.id!r} is registered as a {old.kind}, not a {reg.kind}")
    rec = RegistrationRecord(
        subject=reg.id,
        kind=reg.kind,
        org=reg.org,
        site=reg.site,
        profile=reg.profile,
        suite=reg.suite,
        pub=reg.pub,
        assurance=int(reg.assurance),
        t=reg.t,
        raw=bytes(data),
        hash=trust.suite.hash(data),
        received=now_ms,
    )
    return rec, storage.add_registration(rec)


def _revocation(
    data: bytes, trust: Trust, storage: Storage, now_ms: int
) -> tuple[RevocationRecord, bool]:
    try:
        rev = verify_revocation(data, trust.orgs)
    except UnknownOrganisation as exc:
        raise Forbidden(str(exc)) from None
    except CryptoError as exc:
        raise RegistrationRejected(str(exc)) from None
    old = storage.registrations([rev.id]).get(rev.id)
    if old is None:
        raise NotFound(f"no registration of {rev.id!r} to revoke")
    if old.org != rev.org:
        raise Forbidden(f"{rev.id!r} is registered by organisation {old.org!r}")
    rec = RevocationRecord(
        subject=rev.id,
        org=rev.org,
        t=rev.t,
        reason=rev.reason,
        raw=bytes(data),
        hash=trust.suite.hash(data),
        received=now_ms,
    )
    return rec, storage.add_revocation(rec)

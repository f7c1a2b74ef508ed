"""The ``registry`` system contract: which key speaks for which device, edge or cloud.

The chain, not the cloud, says which keys are genuine. A registration (and a revocation) is
the signed object of :mod:`tally.device.registration` (``docs/formats.md`` §6), signed by the
owning organisation, which must be a consortium member: the signature is checked against the
member's current key in the membership view (``member/<org>``, else the genesis).

Functions:

==================================  ==========================================================
``register(registration_cose)``     record a registration; a *newer* registration (greater
                                    ``t``) of the same id by the same org replaces it: that is
                                    how a subject's key is rotated, or a revoked subject
                                    re-registered
``revoke(revocation_cose)``         mark the current registration revoked: the subject's
                                    objects signed after the revocation's ``t`` are refused
==================================  ==========================================================

State key::

    reg/<id>  => {"kind": tstr, "org": tstr, "site": tstr, "profile": tstr,
                  "suite": tstr, "pub": bstr, "assurance": tstr, "t": int,
                  "cose": bstr,                                   ; the signed registration
                  "revoked": null / {"t": int, "reason": tstr, "cose": bstr}}

Refusals (the endorsement's ``error``), for a registration of ``ID`` by ``ORG``:
``registration: <decode error>``, ``registration of 'ID': signed by 'K' but names org
'ORG'``, ``registration of 'ID': organisation 'ORG' is not a consortium member``,
``registration of 'ID': the key of organisation 'ORG' is revoked``, ``registration of 'ID':
the signature does not verify with the key of 'ORG'``, ``registration of 'ID': 'ID' is
registered to 'OTHER'``, ``registration of 'ID' (t=T) is not newer than the current one
(t=T0)``, ``registration of 'ID' is already recorded``; and the same for ``revocation``, plus
``revocation of 'ID': 'ID' is not registered``, ``… is already revoked``, ``revocation of
'ID' (t=T) is older than its registration (t=T0)``.
"""

from __future__ import annotations

from typing import Any

from tally import formats as F
from tally.crypto import CryptoError, DecodeError, InvalidSignature, Sign1, parse_sign1
from tally.device.registration import (
    Registration,
    Revocation,
    decode_registration,
    decode_revocation,
)
from tally.ledger.contract import Context, Contract, ContractError, function
from tally.ledger.contracts.keys import reg_key
from tally.ledger.contracts.membership import member_verify_key


def parse_signed(data: Any, cty: str, what: str) -> Sign1:
    """Parse a COSE_Sign1 argument of content type ``cty``; refuse with ContractError."""
    if not isinstance(data, bytes):
        raise ContractError(f"{what}: must be COSE_Sign1 bytes, got {type(data).__name__}")
    try:
        return parse_sign1(data, content_type=cty)
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None


def _decode_error(what: str, exc: CryptoError) -> str:
    if isinstance(exc, DecodeError) and exc.where == what:
        return str(exc)  # already "<what>: <reason>"
    return f"{what}: {exc}"


def _check_signer(ctx: Context, msg: Sign1, org: str, what: str) -> None:
    if msg.kid != org:
        raise ContractError(f"{what}: signed by {msg.kid!r} but names org {org!r}")
    key = member_verify_key(ctx, org, msg.suite.name, what)
    try:
        msg.verify(key)
    except InvalidSignature:
        raise ContractError(
            f"{what}: the signature does not verify with the key of {org!r}"
        ) from None
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None


def registration_value(reg: Registration, cose: bytes) -> dict[str, Any]:
    """The ``reg/<id>`` value of a fresh (not revoked) registration."""
    return {
        "kind": reg.kind,
        "org": reg.org,
        "site": reg.site,
        "profile": reg.profile,
        "suite": reg.suite,
        "pub": reg.pub,
        "assurance": reg.assurance.label,
        "t": reg.t,
        "cose": cose,
        "revoked": None,
    }


class DeviceRegistry(Contract):
    """Registrations of devices, edges and clouds (see the module docstring)."""

    name = "registry"

    @function
    def register(self, ctx: Context, registration_cose: Any) -> dict[str, Any]:
        msg = parse_signed(registration_cose, F.CTY_REGISTRATION, "registration")
        try:
            reg = decode_registration(msg.payload)
        except CryptoError as exc:
            raise ContractError(_decode_error("registration", exc)) from None
        what = f"registration of {reg.id!r}"
        _check_signer(ctx, msg, reg.org, what)
        current = ctx.get(reg_key(reg.id))
        if current is not None:
            if current["org"] != reg.org:
                raise ContractError(f"{what}: {reg.id!r} is registered to {current['org']!r}")
            if current["cose"] == msg.encoded:
                raise ContractError(f"{what} is already recorded")
            if reg.t <= current["t"]:
                raise ContractError(
                    f"{what} (t={reg.t}) is not newer than the current one (t={current['t']})"
                )
        ctx.put(reg_key(reg.id), registration_value(reg, msg.encoded))
        return {"id": reg.id, "kind": reg.kind, "replaced": current is not None}

    @function
    def revoke(self, ctx: Context, revocation_cose: Any) -> dict[str, Any]:
        msg = parse_signed(revocation_cose, F.CTY_REVOCATION, "revocation")
        try:
            rev: Revocation = decode_revocation(msg.payload)
        except CryptoError as exc:
            raise ContractError(_decode_error("revocation", exc)) from None
        what = f"revocation of {rev.id!r}"
        _check_signer(ctx, msg, rev.org, what)
        current = ctx.get(reg_key(rev.id))
        if current is None:
            raise ContractError(f"{what}: {rev.id!r} is not registered")
        if current["org"] != rev.org:
            raise ContractError(f"{what}: {rev.id!r} is registered to {current['org']!r}")
        if current["revoked"] is not None:
            raise ContractError(f"{what}: {rev.id!r} is already revoked")
        if rev.t < current["t"]:
            raise ContractError(
                f"{what} (t={rev.t}) is older than its registration (t={current['t']})"
            )
        revoked = {"t": rev.t, "reason": rev.reason, "cose": msg.encoded}
        ctx.put(reg_key(rev.id), {**current, "revoked": revoked})
        return {"id": rev.id, "t": rev.t}

"""The ``parties`` contract: firms that act through consents without being members.

A bank registers its KYC'd customer (an SME depositor, holder or borrower) with the key the
customer signs consents with (:mod:`tally.finance.consent`); only that sponsoring bank can
revoke it. Functions:

==========================================  =================================================
``register(id, name, kind, suite, pub)``    creator has role ``bank``; ``id`` non-empty, no
                                            "/", at most 64 characters, not a member org and
                                            not registered (a revoked party may be registered
                                            again by its sponsor, with a new key)
``revoke(id, reason)``                      by the sponsoring org; its consents stop counting
==========================================  =================================================

State key::

    party/<id>  => {"id", "name", "kind": one of tally.ledger.formats.ROLES, "suite",
                    "pub": bstr, "by": the sponsoring member, "t": int,
                    "revoked": null | {"t": int, "reason": tstr}}

Refusals: ``parties.register: 'ORG' is not a bank member``, ``party id must not contain
'/', got 'a/b'``, ``party 'ID' is a member organisation``, ``party 'ID' is already
registered by 'BANK'``, ``party kind must be one of …, got 'X'``, ``party 'ID': unknown
crypto suite 'X'``, ``party 'ID': key: <reason>``, ``party 'ID' is not registered``,
``party 'ID' was registered by 'BANK', not 'ORG'``, ``party 'ID' is already revoked``.
"""

from __future__ import annotations

from typing import Any

from tally.crypto import SUITES, CryptoError, VerifyKey
from tally.finance.keys import party_key
from tally.finance.receipt import ReceiptFieldError, check_id, check_text
from tally.ledger.contract import Context, Contract, ContractError, function
from tally.ledger.contracts.membership import current_member
from tally.ledger.formats import ROLES


def has_role(ctx: Context, org: str, role: str) -> bool:
    """Whether member ``org`` has ``role`` now."""
    rec = current_member(ctx, org)
    return rec is not None and role in rec.member.roles


def require_role(ctx: Context, role: str, what: str) -> None:
    """Refuse unless the proposal's creator is a member with ``role``."""
    if not has_role(ctx, ctx.creator, role):
        raise ContractError(f"{what}: {ctx.creator!r} is not a {role} member")


def known_party(ctx: Context, party: Any, what: str) -> str:
    """``party`` if it is a member org or a registered, unrevoked party; else refuse."""
    if not isinstance(party, str) or not party:
        raise ContractError(f"{what}: a party id must be non-empty text, got {party!r}")
    if current_member(ctx, party) is not None:
        return party
    rec = ctx.get(party_key(party))
    if rec is None:
        raise ContractError(f"{what}: {party!r} is neither a registered party nor a member")
    if rec["revoked"] is not None:
        raise ContractError(
            f"{what}: party {party!r} was revoked at t={rec['revoked']['t']} "
            f"({rec['revoked']['reason']})"
        )
    return party


def _text(name: str, value: Any, check: Any) -> str:
    try:
        return str(check(name, value))
    except ReceiptFieldError as exc:
        raise ContractError(f"party {exc.field} {exc.reason}") from None


class Parties(Contract):
    """Registered parties (see the module docstring)."""

    name = "parties"

    @function
    def register(
        self, ctx: Context, id: Any, name: Any, kind: Any, suite: Any, pub: Any
    ) -> dict[str, Any]:
        require_role(ctx, "bank", "parties.register")
        party = _text("id", id, check_id)
        _text("name", name, check_text)
        if current_member(ctx, party) is not None:
            raise ContractError(f"party {party!r} is a member organisation")
        if kind not in ROLES:
            raise ContractError(f"party kind must be one of {', '.join(ROLES)}, got {kind!r}")
        if not isinstance(suite, str) or suite not in SUITES:
            raise ContractError(f"party {party!r}: unknown crypto suite {suite!r}")
        if not isinstance(pub, bytes):
            raise ContractError(f"party {party!r}: key must be bytes, got {type(pub).__name__}")
        try:
            VerifyKey(SUITES[suite], pub)
        except CryptoError as exc:
            raise ContractError(f"party {party!r}: key: {exc}") from None
        current = ctx.get(party_key(party))
        if current is not None and (current["revoked"] is None or current["by"] != ctx.creator):
            raise ContractError(f"party {party!r} is already registered by {current['by']!r}")
        ctx.put(
            party_key(party),
            {"id": party, "name": name, "kind": kind, "suite": suite, "pub": pub,
             "by": ctx.creator, "t": ctx.time, "revoked": None},
        )  # fmt: skip
        return {"id": party, "replaced": current is not None}

    @function
    def revoke(self, ctx: Context, id: Any, reason: Any) -> dict[str, Any]:
        party = _text("id", id, check_id)
        why = _text("reason", reason, check_text)
        current = ctx.get(party_key(party))
        if current is None:
            raise ContractError(f"party {party!r} is not registered")
        if current["by"] != ctx.creator:
            raise ContractError(
                f"party {party!r} was registered by {current['by']!r}, not {ctx.creator!r}"
            )
        if current["revoked"] is not None:
            raise ContractError(f"party {party!r} is already revoked")
        ctx.put(party_key(party), {**current, "revoked": {"t": ctx.time, "reason": why}})
        return {"id": party, "t": ctx.time}

"""The ``membership`` system contract: members, their keys and the endorsement policies.

Governed by the policy named ``membership.*`` in the genesis (or a later ``set_policy`` of
that name). The genesis members and policies are the starting point; this contract records
only changes, and :func:`members_view` / :func:`policy_view` merge the two.

Functions (proposal ``fn`` and ``args``):

=================================  ============================================================
``add_member(org, roles, pub)``    a new member organisation with roles (from
                                   ``tally.ledger.formats.ROLES``) and its raw public key
``rotate_key(org, new_pub)``       replace a member's key; also lifts a revocation
``revoke_key(org)``                withdraw a member's key: it can no longer create, endorse or
                                   sign checkpoints until a ``rotate_key``
``set_policy(name, policy)``       set the policy of ``contract.fn`` (or ``contract.*``):
                                   CBOR form, or the text form of :mod:`tally.ledger.policy`
=================================  ============================================================

State keys::

    member/<org>   => {"roles": [tstr], "pub": bstr, "revoked": bool, "t": int}
    policy/<name>  => policy (CBOR form)

``member/<org>`` is written for every member changed or added after the genesis and then
replaces the genesis entry of ``org``; ``t`` is the proposal time of the change (informative
only: it is chosen by the proposal's creator). A member is never removed; revoking its key is
how it is shut out.

When a revocation takes effect: a contract does not know the height at endorsement, so the
revocation is just ``"revoked": true`` in state, effective from the transaction that commits
it. The version of ``member/<org>`` (``(height, index)``, as every state value has) says
where: :func:`revoked_view` gives the height. A peer refuses proposals, endorsements and
checkpoint signatures by a revoked key from then on (code ``revoked_key``). Keys that were
replaced by ``rotate_key`` are not kept in state; the transaction log holds every change.

New keys must have the length of the consortium's keys (the genesis suite: 32 bytes for
``intl``, 64 for ``gm``; every member key has it) and may not be another member's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tally.crypto import SUITES, CryptoError, VerifyKey
from tally.ledger.contract import Context, Contract, ContractError, function
from tally.ledger.contracts.keys import MEMBER, member_key, policy_key
from tally.ledger.errors import LedgerError
from tally.ledger.formats import ROLES, Version
from tally.ledger.genesis import Genesis, GenesisError, Member
from tally.ledger.policy import check_policy, parse_policy
from tally.ledger.state import StateView


@dataclass(frozen=True)
class MemberRecord:
    """A member as the state says it is now."""

    member: Member
    revoked: bool
    version: Version | None
    """The version of ``member/<org>`` (the transaction of the last change); None for a
    member unchanged since the genesis."""


def _record(org: str, value: Any, version: Version | None) -> MemberRecord:
    """Decode a ``member/<org>`` value (as this contract wrote it)."""
    return MemberRecord(
        Member(org, tuple(value["roles"]), bytes(value["pub"])), bool(value["revoked"]), version
    )


def member_records(state: StateView, genesis: Genesis) -> dict[str, MemberRecord]:
    """Every member, genesis merged with ``member/*`` state, by org."""
    out = {org: MemberRecord(m, False, None) for org, m in genesis.members.items()}
    for key, value, version in state.range(MEMBER):
        org = key[len(MEMBER) :]
        out[org] = _record(org, value, version)
    return dict(sorted(out.items()))


def members_view(state: StateView, genesis: Genesis) -> dict[str, Member]:
    """Every member with its current roles and key, revoked ones included (their roles still
    count in policies; check :func:`revoked_view` before accepting a signature)."""
    return {org: r.member for org, r in member_records(state, genesis).items()}


def revoked_view(state: StateView, genesis: Genesis) -> dict[str, int]:
    """Members whose current key is revoked → the height of the block that committed the
    revocation (the key is invalid from that block on)."""
    return {
        org: r.version[0]
        for org, r in member_records(state, genesis).items()
        if r.revoked and r.version is not None
    }


def policy_view(state: StateView, genesis: Genesis, contract: str, fn: str) -> Any | None:
    """The policy of ``contract.fn``: the most specific name wins (``contract.fn`` before
    ``contract.*``), and for one name a ``set_policy`` in state replaces the genesis entry."""
    for name in (f"{contract}.{fn}", f"{contract}.*"):
        found = state.get(policy_key(name))
        if found is not None:
            return found[0]
        if name in genesis.policies:
            return genesis.policies[name]
    return None


# -- inside a contract -------------------------------------------------------------------------


def current_member(ctx: Context, org: str) -> MemberRecord | None:
    """``org``'s record as seen by a contract: ``member/<org>`` (a read recorded, so a
    concurrent change conflicts) or else the genesis entry in ``ctx.members``. Its
    ``version`` is None: a contract does not see versions."""
    value = ctx.get(member_key(org))
    if value is not None:
        return _record(org, value, None)
    m = ctx.members.get(org)
    return MemberRecord(m, False, None) if m is not None else None


def member_verify_key(ctx: Context, org: str, suite_name: str, what: str) -> VerifyKey:
    """The key of member ``org`` for checking ``what`` (signed with suite ``suite_name``).

    Raises ContractError if ``org`` is not a member, its key is revoked, or the signature's
    suite is not the consortium's.
    """
    rec = current_member(ctx, org)
    if rec is None:
        raise ContractError(f"{what}: organisation {org!r} is not a consortium member")
    if rec.revoked:
        raise ContractError(f"{what}: the key of organisation {org!r} is revoked")
    try:
        return VerifyKey(SUITES[suite_name], rec.member.pub)
    except (KeyError, CryptoError):
        raise ContractError(
            f"{what}: signed with suite {suite_name}, but {org!r} holds a key of another suite"
        ) from None


def _text(value: Any, name: str, fn: str) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{fn}: {name} must be non-empty text, got {value!r}")
    return value


def _key_size(members: Mapping[str, Member]) -> int:
    sizes = {len(m.pub) for m in members.values()}
    if len(sizes) != 1:  # cannot happen: every key is checked on the way in
        raise ContractError(f"member keys have mixed lengths {sorted(sizes)}")
    return sizes.pop()


def _new_pub(ctx: Context, pub: Any, org: str, fn: str) -> bytes:
    if not isinstance(pub, bytes):
        raise ContractError(f"{fn}: the key must be bytes, got {type(pub).__name__}")
    size = _key_size(ctx.members)
    if len(pub) != size:
        raise ContractError(f"{fn}: the key has {len(pub)} bytes, consortium keys have {size}")
    for other, m in sorted(ctx.members.items()):
        if other != org and m.pub == pub:
            raise ContractError(f"{fn}: the key is already the key of {other!r}")
    return pub


def _roles(roles: Any, fn: str) -> list[str]:
    if not isinstance(roles, list | tuple) or not roles:
        raise ContractError(f"{fn}: roles must be a non-empty list")
    out: list[str] = []
    for r in roles:
        if r not in ROLES:
            raise ContractError(f"{fn}: unknown role {r!r} (one of {', '.join(ROLES)})")
        if r in out:
            raise ContractError(f"{fn}: role {r!r} given twice")
        out.append(r)
    return out


def _put(ctx: Context, m: Member, revoked: bool) -> None:
    value = {"roles": list(m.roles), "pub": m.pub, "revoked": revoked, "t": ctx.time}
    ctx.put(member_key(m.org), value)


class Membership(Contract):
    """Members, their keys, revocations and policies (see the module docstring)."""

    name = "membership"

    @function
    def add_member(self, ctx: Context, org: Any, roles: Any, pub: Any) -> str:
        who = _text(org, "org", "add_member")
        if current_member(ctx, who) is not None:
            raise ContractError(f"add_member: {who!r} is already a member")
        if "/" in who:
            raise ContractError(f"add_member: organisation id {who!r} must not contain '/'")
        m = Member(who, tuple(_roles(roles, "add_member")), _new_pub(ctx, pub, who, "add_member"))
        _put(ctx, m, False)
        return who

    @function
    def rotate_key(self, ctx: Context, org: Any, new_pub: Any) -> str:
        who = _text(org, "org", "rotate_key")
        rec = current_member(ctx, who)
        if rec is None:
            raise ContractError(f"rotate_key: {who!r} is not a member")
        pub = _new_pub(ctx, new_pub, who, "rotate_key")
        if pub == rec.member.pub:
            raise ContractError(f"rotate_key: the new key of {who!r} is its current key")
        _put(ctx, Member(who, rec.member.roles, pub), False)
        return who

    @function
    def revoke_key(self, ctx: Context, org: Any) -> str:
        who = _text(org, "org", "revoke_key")
        rec = current_member(ctx, who)
        if rec is None:
            raise ContractError(f"revoke_key: {who!r} is not a member")
        if rec.revoked:
            raise ContractError(f"revoke_key: the key of {who!r} is already revoked")
        _put(ctx, rec.member, True)
        return who

    @function
    def set_policy(self, ctx: Context, name: Any, policy: Any) -> Any:
        name = _text(name, "name", "set_policy")
        contract, _, fn = name.partition(".")
        if not contract or not fn or "/" in name:
            raise ContractError(f"set_policy: policy name {name!r} is not contract.function")
        if isinstance(policy, str):
            try:
                policy = parse_policy(policy)
            except LedgerError as exc:
                raise ContractError(f"set_policy {name}: {exc}") from None
        try:
            check_policy(policy, ctx.members, where=f"policy {name}")
        except GenesisError as exc:
            raise ContractError(f"set_policy: {exc.reason}") from None
        ctx.put(policy_key(name), policy)
        return policy

"""Consents: how a party that is not the proposal's creator agrees to one transition.

Small firms (the depositor, holder or borrower) are usually not consortium members: a bank
registers them as parties (``party/<id>``, contract ``parties``) with their own key, and they
act through a signed consent that a member carries as a proposal argument. A member that is
itself a party (a warehouse consenting to a pledge, a member supplier) signs consents with
its member key, or needs none when it creates the proposal itself.

A consent is a COSE_Sign1 with ``cty`` ``application/tally.consent+cbor`` and ``kid`` = the
party id, over the deterministic CBOR map::

    {"v": 1,
     "chain": bstr,      ; the consortium's chain id (the genesis hash, as in proposals)
     "party": tstr,      ; the consenting party (= kid)
     "act": tstr,        ; the transition, "<contract>.<fn>", e.g. "receipts.pledge"
     "on": tstr,         ; its subject: a receipt number, a loan id
     "seq": uint,        ; the subject's "seq" now; every transition bumps it, so a
                         ; consent is good for one transition only
     "terms": any}       ; action-specific, equal to what the proposal itself asks

:func:`require` is what a contract calls: nothing is needed when the party is the creator
and no consent is given; otherwise the consent must verify with the party's key (its
``party/<id>`` record, not revoked, or the member's current key) and name exactly this chain
(``ctx.chain``), act, subject, seq and terms. The chain id binds a consent to one
consortium: a party using one key on two chains (a test chain and the production chain, say)
with the same receipt numbers cannot have a consent replayed from one to the other. Each
refusal says which of these failed, e.g. ``receipts.pledge of W-1: consent of 'sme-1': it is
for seq 2, W-1 is at seq 3 (a consent is good for one transition)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tally import formats as F
from tally.crypto import (
    SUITES,
    CryptoError,
    DecodeError,
    InvalidSignature,
    Sign1,
    SigningKey,
    VerifyKey,
    cbor,
    parse_sign1,
    sign1,
)
from tally.finance.keys import party_key
from tally.ledger.contract import Context, ContractError, normalise
from tally.ledger.contracts.membership import current_member, member_verify_key

CTY_CONSENT = "application/tally.consent+cbor"
_KEYS = {"v", "chain", "party", "act", "on", "seq", "terms"}


@dataclass(frozen=True)
class Consent:
    """The decoded payload of a consent."""

    chain: bytes
    party: str
    act: str
    on: str
    seq: int
    terms: Any

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "chain": self.chain,
                "party": self.party,
                "act": self.act,
                "on": self.on,
                "seq": self.seq,
                "terms": self.terms,
            }
        )


def make_consent(
    key: SigningKey, chain: bytes, party: str, act: str, on: str, seq: int, terms: Any
) -> bytes:
    """The COSE_Sign1 bytes of ``party``'s consent to ``act`` on ``on`` at ``seq``, on the
    chain whose id (the genesis chain id) is ``chain``."""
    return sign1(key, CTY_CONSENT, party, Consent(chain, party, act, on, seq, terms).to_cbor())


def decode_consent(payload: bytes) -> Consent:
    """Decode a consent payload; raise DecodeError naming the bad field."""
    where = "consent"
    obj = F.check_keys(cbor.decode(payload, where=where), _KEYS, set(), where)
    seq = F.field(obj, "seq", int, where)
    if seq < 0:
        raise DecodeError(where, f"field 'seq' must not be negative, got {seq}")
    return Consent(
        chain=F.field(obj, "chain", bytes, where),
        party=F.field(obj, "party", str, where),
        act=F.field(obj, "act", str, where),
        on=F.field(obj, "on", str, where),
        seq=seq,
        terms=obj["terms"],
    )


def parse_consent(data: bytes) -> tuple[Sign1, Consent]:
    """Parse consent bytes (the signature not yet verified); raise CryptoError."""
    msg = parse_sign1(data, content_type=CTY_CONSENT)
    return msg, decode_consent(msg.payload)


def _party_verify_key(ctx: Context, party: str, suite_name: str, what: str) -> VerifyKey:
    if current_member(ctx, party) is not None:
        return member_verify_key(ctx, party, suite_name, what)
    rec = ctx.get(party_key(party))
    if rec is None:
        raise ContractError(f"{what}: {party!r} is neither a registered party nor a member")
    revoked = rec["revoked"]
    if revoked is not None:
        raise ContractError(
            f"{what}: party {party!r} was revoked at t={revoked['t']} ({revoked['reason']})"
        )
    if rec["suite"] != suite_name:
        raise ContractError(
            f"{what}: signed with suite {suite_name}, the key of party {party!r} is {rec['suite']}"
        )
    try:
        return VerifyKey(SUITES[suite_name], rec["pub"])
    except CryptoError as exc:  # cannot happen: checked at registration
        raise ContractError(f"{what}: the registered key of {party!r}: {exc}") from None


def _short(chain: bytes) -> str:
    """A chain id as its first 8 bytes in hex and an ellipsis (the whole id if no longer)."""
    if not chain:
        return "(empty)"
    return chain.hex() if len(chain) <= 8 else f"{chain[:8].hex()}…"


def _same(a: Any, b: Any) -> bool:
    return cbor.encode(normalise(a)) == cbor.encode(normalise(b))


def require(
    ctx: Context, party: str, act: str, on: str, seq: int, terms: Any, consent: Any
) -> None:
    """Refuse (ContractError) unless ``party`` agrees to ``act`` on ``on`` at ``seq`` with
    ``terms``: it is the creator and gives no consent, or ``consent`` is its valid consent
    for this chain (``ctx.chain``)."""
    what = f"{act} of {on}: consent of {party!r}"
    if consent is None:
        if party == ctx.creator:
            return
        raise ContractError(f"{what} is missing")
    if not isinstance(consent, bytes):
        raise ContractError(f"{what}: must be COSE_Sign1 bytes, got {type(consent).__name__}")
    try:
        msg, c = parse_consent(consent)
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None
    if msg.kid != party:
        raise ContractError(f"{what}: it is signed by {msg.kid!r}")
    key = _party_verify_key(ctx, party, msg.suite.name, what)
    try:
        msg.verify(key)
    except InvalidSignature:
        raise ContractError(
            f"{what}: the signature does not verify with the key of {party!r}"
        ) from None
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None
    if c.party != party:
        raise ContractError(f"{what}: it names party {c.party!r}")
    if c.chain != ctx.chain:
        raise ContractError(
            f"{what}: it is for chain {_short(c.chain)}, this is {_short(ctx.chain)}"
        )
    if c.act != act:
        raise ContractError(f"{what}: it is a consent to {c.act!r}")
    if c.on != on:
        raise ContractError(f"{what}: it is for {c.on!r}")
    if c.seq != seq:
        raise ContractError(
            f"{what}: it is for seq {c.seq}, {on} is at seq {seq} "
            "(a consent is good for one transition)"
        )
    if not _same(c.terms, terms):
        raise ContractError(f"{what}: it agrees to terms {c.terms!r}, the proposal has {terms!r}")


__all__ = [
    "CTY_CONSENT",
    "Consent",
    "decode_consent",
    "make_consent",
    "parse_consent",
    "require",
]

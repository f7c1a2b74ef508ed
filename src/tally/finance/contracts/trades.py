"""The ``trades`` contract: four-flow documents anchored by salted hash, each trade's
reconciliation attested by a bank, and the registry that stops an invoice or a waybill from
financing twice (docs/finance-documents.md, docs/formats.md §34).

The documents themselves stay off chain (:mod:`tally.finance.documents`,
:mod:`tally.finance.docstore`); the chain holds ``H(salt ‖ COSE bytes)`` of each, the
reconciler's verdict on each trade, and which note or loan each invoice and waybill backs.

=========================================  ===================  ==============================
function                                   creator              consent (terms)
=========================================  ===================  ==============================
``anchor(kind, salted_hash, trade[,        any member           the owner, when it is not the
consent])``                                                     creator: act ``trades.anchor``,
                                                                on = hex of the hash, seq 0,
                                                                {"kind", "hash", "trade"}
``attest(trade_id, record)``               role bank (the       —
                                           reconciler)
=========================================  ===================  ==============================

State keys (:mod:`tally.finance.keys`)::

    doc/<hex salted hash>   {"kind", "by", "trade", "t"}     by = the consenting owner, or the
                                                             creator when it gave no consent
    trade/<id>              {"v": 1, "id", "seller", "buyer", "status", "amount", "currency",
                             "invoiced", "paid", "invoices", "waybills", "docs", "result",
                             "reasons", "by", "t", "seq"}
    use/<hex identity>      {"kind", "backs": "note:<id>" | "loan:<id>", "by", "t"}

``attest`` checks every field's shape, that the parties are members or registered parties,
``amount`` ≤ max(0, invoiced − paid), that a reconciled trade names an invoice and gives no
reasons while any other status gives some, that every document is anchored for this trade
and there are at least as many invoice (waybill) documents as invoice (waybill) identities.
Only the bank that attested a trade attests it again, with the same seller, buyer and
currency; once an invoice or waybill of the trade backs a note or loan, the trade stays
``reconciled`` and keeps that identity.

Other contracts call :func:`reconciled_trade`, then :func:`claim_uses` (or
:func:`claim_trade`) in the same transaction before financing; :func:`release_uses` frees
identities again when what they backed is gone without being financed. Because an identity
hash has no salt, an invoice anchored twice under two salts, on two trades, by two banks, is
still one ``use/`` key: the second claim is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tally.crypto import CryptoError
from tally.finance.consent import parse_consent, require
from tally.finance.contracts.market import ident, shown
from tally.finance.contracts.parties import known_party, require_role
from tally.finance.document_bodies import KINDS
from tally.finance.keys import doc_key, trade_key, use_key
from tally.ledger.contract import Context, Contract, ContractError, function

HASH_SIZE = 32
STATUSES = ("reconciled", "mismatch", "flagged")
RECORD_FIELDS = ("v", "id", "seller", "buyer", "status", "amount", "currency", "invoiced",
                 "paid", "invoices", "waybills", "docs", "result", "reasons")  # fmt: skip
"""The fields ``attest`` takes; it adds ``by``, ``t`` and ``seq``."""
MAX_AMOUNT = 10**15
MAX_DOCS = 256
MAX_REASONS = 64
MAX_REASON = 256
_BACKS = re.compile(r"(note|loan):[^/\x00-\x1f\x7f]{1,64}")


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


def _hash(what: str, name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ContractError(f"{what}: {name} must be a {HASH_SIZE}-byte hash, got {shown(value)}")
    return value


def _hashes(what: str, name: str, value: Any, least: int) -> list[bytes]:
    if not isinstance(value, list | tuple) or not least <= len(value) <= MAX_DOCS:
        raise ContractError(
            f"{what}: {name} must be a list of {least} to {MAX_DOCS} hashes, got {shown(value)}"
        )
    out: list[bytes] = []
    for i, h in enumerate(value):
        out.append(_hash(what, f"{name}[{i}]", h))
        if h in out[:-1]:
            raise ContractError(f"{what}: {name}[{i}] repeats {_short(h)}")
    return out


def _amount(what: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT:
        raise ContractError(
            f"{what}: {name} must be an integer in [0, {MAX_AMOUNT}] minor units, got "
            f"{shown(value)}"
        )
    return value


def _field(name: str) -> str:
    """How a refusal names a field of the record."""
    return f"record field {name!r}"


def _reasons(what: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_REASONS:
        raise ContractError(
            f"{what}: record field 'reasons' must be a list of at most {MAX_REASONS} texts, got "
            f"{shown(value)}"
        )
    for i, r in enumerate(value):
        if not isinstance(r, str) or not r.strip() or len(r) > MAX_REASON:
            raise ContractError(
                f"{what}: record field 'reasons'[{i}] must be non-empty text of at most "
                f"{MAX_REASON} characters, got {shown(r)}"
            )
    return list(value)


def check_record(ctx: Context, what: str, trade_id: str, record: Any) -> dict[str, Any]:
    """An attested trade's record as ``attest`` takes it, checked (not yet its documents)."""
    if not isinstance(record, Mapping):
        raise ContractError(f"{what}: the record must be a map, got {shown(record)}")
    unknown = sorted(str(k) for k in record if k not in RECORD_FIELDS)
    if unknown:
        raise ContractError(
            f"{what}: record field {unknown[0]!r} is unknown (the fields are "
            f"{', '.join(RECORD_FIELDS)}; by, t and seq are set by the contract)"
        )
    for name in RECORD_FIELDS:
        if name not in record:
            raise ContractError(f"{what}: record field {name!r} is missing")
    r = dict(record)
    if r["v"] != 1 or isinstance(r["v"], bool):
        raise ContractError(f"{what}: {_field('v')} must be 1, got {shown(r['v'])}")
    if r["id"] != trade_id:
        raise ContractError(
            f"{what}: {_field('id')} must be the trade id {trade_id!r}, got {shown(r['id'])}"
        )
    for name in ("seller", "buyer"):
        known_party(ctx, r[name], f"{what}: {_field(name)}")
    if r["seller"] == r["buyer"]:
        raise ContractError(f"{what}: seller and buyer are both {r['seller']!r}")
    status = r["status"]
    if status not in STATUSES:
        raise ContractError(
            f"{what}: {_field('status')} must be one of {', '.join(STATUSES)}, got {shown(status)}"
        )
    for name in ("amount", "invoiced", "paid"):
        _amount(what, _field(name), r[name])
    cur = r["currency"]
    if not isinstance(cur, str) or len(cur) != 3 or not cur.isascii() or not cur.isupper():
        raise ContractError(
            f"{what}: {_field('currency')} must be an ISO 4217 code, got {shown(cur)}"
        )
    room = max(0, r["invoiced"] - r["paid"])
    if r["amount"] > room:
        raise ContractError(
            f"{what}: {_field('amount')} must be at most invoiced − paid = {r['invoiced']} − "
            f"{r['paid']} = {room}, got {r['amount']}"
        )
    r["invoices"] = _hashes(what, _field("invoices"), r["invoices"], 0)
    r["waybills"] = _hashes(what, _field("waybills"), r["waybills"], 0)
    r["docs"] = _hashes(what, _field("docs"), r["docs"], 1)
    _hash(what, _field("result"), r["result"])
    r["reasons"] = reasons = _reasons(what, r["reasons"])
    if status == "reconciled" and reasons:
        raise ContractError(f"{what}: a reconciled trade has no reasons, got {len(reasons)}")
    if status != "reconciled" and not reasons:
        raise ContractError(f"{what}: a {status!r} trade must say why: reasons is empty")
    if status == "reconciled" and not r["invoices"]:
        raise ContractError(f"{what}: a reconciled trade names at least one invoice")
    return r


def _check_docs(ctx: Context, what: str, trade_id: str, r: dict[str, Any]) -> None:
    kinds: dict[str, int] = {}
    for h in r["docs"]:
        rec = ctx.get(doc_key(h))
        if rec is None:
            raise ContractError(f"{what}: document {_short(h)} is not anchored")
        if rec["trade"] != trade_id:
            raise ContractError(
                f"{what}: document {_short(h)} is anchored for trade {rec['trade']!r}"
            )
        kinds[rec["kind"]] = kinds.get(rec["kind"], 0) + 1
    for kind, name in (("invoice", "invoices"), ("waybill", "waybills")):
        if len(r[name]) > kinds.get(kind, 0):
            raise ContractError(
                f"{what}: names {len(r[name])} {kind} identities but only "
                f"{kinds.get(kind, 0)} {kind} documents"
            )


def _uses(ctx: Context, identities: Iterable[bytes]) -> list[tuple[bytes, dict[str, Any]]]:
    return [(h, dict(u)) for h in identities if (u := ctx.get(use_key(h))) is not None]


def _keep_financed(ctx: Context, what: str, prev: Mapping[str, Any], r: dict[str, Any]) -> None:
    """Refuse to re-attest a trade that backs financing as anything but reconciled with the
    identities in use."""
    for h, use in _uses(ctx, [*prev["invoices"], *prev["waybills"]]):
        if r["status"] != "reconciled":
            raise ContractError(
                f"{what}: its {use['kind']} {_short(h)} backs {use['backs']}; the trade cannot "
                f"become {r['status']!r}"
            )
        if h not in r["invoices"] and h not in r["waybills"]:
            raise ContractError(
                f"{what}: its {use['kind']} {_short(h)} backs {use['backs']}; it cannot be "
                "dropped from the trade"
            )


class Trades(Contract):
    """Anchored documents and attested trades (see the module docstring)."""

    name = "trades"

    @function
    def anchor(
        self, ctx: Context, kind: Any, salted_hash: Any, trade: Any, consent: Any = None
    ) -> dict[str, Any]:
        fn = "trades.anchor"
        if kind not in KINDS:
            raise ContractError(f"{fn}: kind must be one of {', '.join(KINDS)}, got {shown(kind)}")
        h = _hash(fn, "salted_hash", salted_hash)
        tid = ident(fn, "trade", trade)
        current = ctx.get(doc_key(h))
        if current is not None:
            raise ContractError(
                f"{fn}: document {_short(h)} is already anchored ({current['kind']} of trade "
                f"{current['trade']!r} by {current['by']!r})"
            )
        by = ctx.creator
        if consent is not None:
            if not isinstance(consent, bytes):
                raise ContractError(
                    f"{fn} of {h.hex()}: the consent must be COSE_Sign1 bytes, got {shown(consent)}"
                )
            try:
                by = parse_consent(consent)[1].party
            except CryptoError as exc:
                raise ContractError(f"{fn} of {h.hex()}: consent: {exc}") from None
            terms = {"kind": kind, "hash": h, "trade": tid}
            require(ctx, by, fn, h.hex(), 0, terms, consent)
        ctx.put(doc_key(h), {"kind": kind, "by": by, "trade": tid, "t": ctx.time})
        return {"doc": h.hex(), "kind": kind, "trade": tid, "by": by}

    @function
    def attest(self, ctx: Context, trade_id: Any, record: Any) -> dict[str, Any]:
        fn = "trades.attest"
        require_role(ctx, "bank", fn)
        tid = ident(fn, "trade_id", trade_id)
        what = f"{fn} of {tid}"
        r = check_record(ctx, what, tid, record)
        _check_docs(ctx, what, tid, r)
        prev = ctx.get(trade_key(tid))
        seq = 0
        if prev is not None:
            if prev["by"] != ctx.creator:
                raise ContractError(
                    f"{what}: attested by {prev['by']!r}; only it can attest the trade again"
                )
            for name in ("seller", "buyer", "currency"):
                if r[name] != prev[name]:
                    raise ContractError(
                        f"{what}: {name} is {r[name]!r}, attested before as {prev[name]!r}"
                    )
            _keep_financed(ctx, what, prev, r)
            seq = prev["seq"] + 1
        ctx.put(trade_key(tid), {**r, "by": ctx.creator, "t": ctx.time, "seq": seq})
        return {"id": tid, "status": r["status"], "amount": r["amount"], "seq": seq}


# -- for the contracts that finance a trade --------------------------------------------------


def reconciled_trade(ctx: Context, trade_id: Any, what: str) -> dict[str, Any]:
    """The ``trade/<id>`` record of a reconciled trade; refuse ``<what>: trade T is not
    attested`` or ``<what>: trade T is not reconciled: <reasons>``."""
    tid = ident(what, "trade", trade_id)
    rec = ctx.get(trade_key(tid))
    if rec is None:
        raise ContractError(f"{what}: trade {tid} is not attested")
    if rec["status"] != "reconciled":
        raise ContractError(f"{what}: trade {tid} is not reconciled: {'; '.join(rec['reasons'])}")
    return dict(rec)


def _backs(what: str, backs: Any) -> str:
    if not isinstance(backs, str) or _BACKS.fullmatch(backs) is None:
        raise ContractError(f"{what}: backs must be 'note:<id>' or 'loan:<id>', got {shown(backs)}")
    return backs


def claim_uses(
    ctx: Context, identities: Sequence[bytes], backs: str, what: str, kind: str = "invoice"
) -> None:
    """Record that each identity hash (of ``kind``) backs ``backs`` (``note:<id>`` or
    ``loan:<id>``); refuse ``<what>: invoice <hex16>… already backs note:N`` when one backs
    something else. Claiming again for the same ``backs`` changes nothing."""
    b = _backs(what, backs)
    hashes = _hashes(what, "identities", list(dict.fromkeys(identities)), 0)
    for h, use in _uses(ctx, hashes):
        if use["backs"] != b:
            raise ContractError(f"{what}: {use['kind']} {_short(h)} already backs {use['backs']}")
    for h in hashes:
        if ctx.get(use_key(h)) is None:
            ctx.put(use_key(h), {"kind": kind, "backs": b, "by": ctx.creator, "t": ctx.time})


def claim_trade(ctx: Context, trade: Mapping[str, Any], backs: str, what: str) -> None:
    """:func:`claim_uses` for every invoice and waybill of a ``trade/<id>`` record."""
    claim_uses(ctx, trade["invoices"], backs, what, "invoice")
    claim_uses(ctx, trade["waybills"], backs, what, "waybill")


def release_uses(ctx: Context, identities: Sequence[bytes], backs: str, what: str) -> None:
    """Delete the ``use/`` entries of ``identities`` that back ``backs`` (a note refused, a
    loan rejected); refuse if one backs something else. Absent entries are skipped."""
    b = _backs(what, backs)
    for h, use in _uses(ctx, _hashes(what, "identities", list(dict.fromkeys(identities)), 0)):
        if use["backs"] != b:
            raise ContractError(f"{what}: {use['kind']} {_short(h)} backs {use['backs']}, not {b}")
        ctx.delete(use_key(h))


__all__ = [
    "STATUSES",
    "Trades",
    "check_record",
    "claim_trade",
    "claim_uses",
    "reconciled_trade",
    "release_uses",
]

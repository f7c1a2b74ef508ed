"""The ``notes`` contract: receivable certificates (应收账款电子凭证) as spend-once notes.

A core enterprise (a member with role ``core_enterprise``) issues a note to its supplier
against a reconciled trade; the supplier accepts it, may split it and pass parts down to its
own suppliers, or finance it at a bank; at maturity the core enterprise pays whoever holds
it, or the bank that financed it. A note is spent once: a transfer replaces its holder, a
split consumes it into children whose amounts sum exactly to it, and every transition reads
and rewrites ``note/<id>``, so two transitions of one note cannot both commit (MVCC).

==============================================  ==================  =====================
function                                        creator             consents (terms)
==============================================  ==================  =====================
``issue(id, holder, amount, due, trade)``       the issuer (role    —
                                                core_enterprise)
``accept(id, consent)``                         any member          holder (null)
``refuse(id, consent)``                         any member          holder (null)
``confirm(id)``                                 a bank              —
``split(id, children, consent)``                any member          holder ({"children"})
``transfer(id, to, consent)``                   any member          holder ({"to"})
``finance(id, bank, kind, consent)``            ``bank`` (role      holder ({"bank",
                                                bank)               "kind", "rate"})
``settle(id, posting_hash)``                    the issuer, the     —
                                                confirming or the
                                                financing bank
``overdue(id)``                                 any member          —
==============================================  ==================  =====================

States: ``offered`` → ``live`` (accept) or ``refused``; a live note → ``split`` (its
children live), stays ``live`` with a new holder (transfer), → ``financed``; live, financed
or overdue → ``settled`` at or after its due time; live or financed → ``overdue`` after its
due day. Rules (docs/finance-notes.md): the trade is reconciled with buyer = issuer and
seller = holder; the amount is at most the trade's invoiced − paid − already issued on it (and its
reconciled amount);
the term is at most :data:`~.notes_ops.DEFAULT_MAX_TERM_DAYS` business days (a consortium may
register ``Notes(max_term_days=…)`` up to :data:`~.notes_ops.HARD_MAX_TERM_DAYS`, never
more); the first note of a trade claims its invoices and waybills in the double-financing
registry (``use/``); confirming uses the bank's credit line for the issuer (``credit``) and
settling gives it back; financing, before the due time, discounts the note at the line's
rate (ACT/360) and locks it to the bank; a refused offer frees the trade's claims when no
other note of the trade was issued. ``noteroot/<root>`` keeps each family's issued, settled
and live amounts.
"""

from __future__ import annotations

from typing import Any

from tally.finance import interest as i
from tally.finance.consent import require
from tally.finance.contracts import credit
from tally.finance.contracts import notes_ops as ops
from tally.finance.contracts.market import ident, integer, require_role, shown
from tally.finance.contracts.parties import known_party
from tally.finance.contracts.trades import claim_uses, reconciled_trade, release_uses
from tally.finance.keys import note_key, trade_key
from tally.finance.receipt import iso
from tally.ledger.contract import Context, Contract, ContractError, function

MAX_AMOUNT = 10**15
"""The largest note in minor units (10 trillion CNY)."""
MAX_CHILDREN = 100
POSTING_HASH_SIZE = 32
KINDS = ("discount", "pledge")


def _amount(fn: str, name: str, value: Any) -> int:
    n = integer(fn, name, value, 1)
    if n > MAX_AMOUNT:
        raise ContractError(f"{fn}: {name} must be at most {MAX_AMOUNT}, got {n}")
    return n


def _children(ctx: Context, fn: str, rec: dict[str, Any], value: Any) -> list[tuple[str, int]]:
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= MAX_CHILDREN:
        raise ContractError(
            f"{fn}: children must be a list of 2 to {MAX_CHILDREN} parts, got {shown(value)}"
        )
    out: list[tuple[str, int]] = []
    for k, c in enumerate(value):
        if not isinstance(c, dict) or set(c) != {"id", "amount"}:
            raise ContractError(f"{fn}: child {k} must be a map of id and amount")
        cid = ops.new_id(ctx, fn, f"child {k} id", c["id"])
        if any(cid == seen for seen, _ in out):
            raise ContractError(f"{fn}: child id {cid} appears twice")
        out.append((cid, _amount(fn, f"child {k} amount", c["amount"])))
    total = sum(a for _, a in out)
    if total != rec["amount"]:
        raise ContractError(
            f"{fn}: the children sum to {credit.amount_text(total, rec['currency'])}, note "
            f"{rec['id']} holds {ops.show(rec)}"
        )
    return out


class Notes(Contract):
    """Receivable notes (see the module docstring)."""

    name = "notes"

    def __init__(self, max_term_days: int = ops.DEFAULT_MAX_TERM_DAYS) -> None:
        if not 1 <= max_term_days <= ops.HARD_MAX_TERM_DAYS:
            raise ValueError(
                f"max_term_days must be 1 to {ops.HARD_MAX_TERM_DAYS} (one year at most), "
                f"got {max_term_days}"
            )
        self.max_term_days = max_term_days

    @function
    def issue(
        self, ctx: Context, note_id: Any, holder: Any, amount: Any, due: Any, trade: Any
    ) -> dict[str, Any]:
        fn = "notes.issue"
        require_role(ctx, fn, "core_enterprise")
        nid = ops.new_id(ctx, fn, "id", note_id)
        who = known_party(ctx, ident(fn, "holder", holder), fn)
        amt = _amount(fn, "amount", amount)
        when = integer(fn, "due", due, 0)
        days = ops.term_days(fn, ctx.time, when, self.max_term_days)
        tr = reconciled_trade(ctx, trade, fn)
        if tr["buyer"] != ctx.creator:
            raise ContractError(
                f"{fn}: trade {tr['id']}'s buyer is {tr['buyer']!r}, not the issuer {ctx.creator!r}"
            )
        if tr["seller"] != who:
            raise ContractError(
                f"{fn}: the holder must be trade {tr['id']}'s seller {tr['seller']!r}, got {who!r}"
            )
        cur = tr["currency"]
        root, fresh = ops.family_of(ctx, tr)
        issued = ops.issued_on(ctx, root)
        due_now = tr["invoiced"] - tr["paid"]
        room = min(tr["amount"], due_now) - issued
        if amt > room:
            m = credit.amount_text
            raise ContractError(
                f"{fn}: amount {m(amt, cur)} exceeds what trade {tr['id']} leaves to issue: "
                f"{m(room, cur)} (invoiced {m(tr['invoiced'], cur)} − paid {m(tr['paid'], cur)}"
                f" = {m(due_now, cur)}, reconciled {m(tr['amount'], cur)}, already issued "
                f"{m(issued, cur)})"
            )
        for kind, hashes in fresh.items():
            claim_uses(ctx, hashes, f"note:{nid}", fn, kind)
        family = root or nid
        rec: dict[str, Any] = {
            "v": 1, "id": nid, "root": family, "parent": None, "issuer": ctx.creator,
            "holder": who, "amount": amt, "currency": cur, "issued": ctx.time, "due": when,
            "trade": tr["id"], "state": "offered", "confirmed": None, "financed": None,
            "endorsers": [], "children": [], "seq": 0, "settlement": None,
        }  # fmt: skip
        ctx.put(note_key(nid), rec)
        ops.book(ctx, family, issued=amt, notes=1)
        return {"id": nid, "root": family, "state": "offered", "amount": amt,
                "currency": cur, "term_days": days,
                "claimed": sum(len(h) for h in fresh.values())}  # fmt: skip

    def _answer(self, ctx: Context, note_id: Any, consent: Any, act: str) -> dict[str, Any]:
        fn = f"notes.{act}"
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "offered")
        require(ctx, rec["holder"], fn, rec["id"], rec["seq"], None, consent)
        return rec

    @function
    def accept(self, ctx: Context, note_id: Any, consent: Any) -> dict[str, Any]:
        rec = self._answer(ctx, note_id, consent, "accept")
        rec["state"] = "live"
        ops.save(ctx, rec)
        return {"id": rec["id"], "state": "live", "holder": rec["holder"]}

    @function
    def refuse(self, ctx: Context, note_id: Any, consent: Any) -> dict[str, Any]:
        rec = self._answer(ctx, note_id, consent, "refuse")
        rec["state"] = "refused"
        ops.save(ctx, rec)
        family = ops.book(ctx, rec["root"], issued=-rec["amount"])
        released: list[bytes] = []
        if family["issued"] == 0:  # no other note of the trade relies on this one's claims
            trade = ctx.get(trade_key(rec["trade"]))
            if trade is not None:
                released = ops.claimed_by(ctx, dict(trade), rec["id"])
                release_uses(ctx, released, f"note:{rec['id']}", "notes.refuse")
        return {"id": rec["id"], "state": "refused", "amount": rec["amount"],
                "released": len(released)}  # fmt: skip

    @function
    def confirm(self, ctx: Context, note_id: Any) -> dict[str, Any]:
        fn = "notes.confirm"
        require_role(ctx, fn, "bank")
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live")
        if rec["confirmed"] is not None:
            raise ContractError(
                f"{fn}: note {rec['id']} is already confirmed by {rec['confirmed']!r}"
            )
        line = credit.line(ctx, ctx.creator, rec["issuer"], fn)
        if line["currency"] != rec["currency"]:
            raise ContractError(
                f"{fn}: note {rec['id']} is in {rec['currency']}, the credit line of "
                f"{ctx.creator!r} for {rec['issuer']!r} in {line['currency']}"
            )
        after = credit.consume(ctx, ctx.creator, rec["issuer"], rec["amount"], fn)
        rec["confirmed"] = ctx.creator
        ops.save(ctx, rec)
        return {"id": rec["id"], "confirmed": ctx.creator, "used": after["used"],
                "limit": after["limit"]}  # fmt: skip

    @function
    def split(self, ctx: Context, note_id: Any, children: Any, consent: Any) -> list[str]:
        fn = "notes.split"
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live")
        parts = _children(ctx, fn, rec, children)
        require(ctx, rec["holder"], fn, rec["id"], rec["seq"], {"children": list(children)},
                consent)  # fmt: skip
        for cid, amt in parts:
            child = {**rec, "id": cid, "parent": rec["id"], "amount": amt, "children": [],
                     "seq": 0}  # fmt: skip
            ctx.put(note_key(cid), child)
        ids = [cid for cid, _ in parts]
        rec["state"] = "split"
        rec["children"] = ids
        ops.save(ctx, rec)
        ops.book(ctx, rec["root"], notes=len(parts))
        return ids

    @function
    def transfer(self, ctx: Context, note_id: Any, to: Any, consent: Any) -> dict[str, Any]:
        fn = "notes.transfer"
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live")
        who = known_party(ctx, ident(fn, "to", to), fn)
        if who == rec["holder"]:
            raise ContractError(f"{fn}: {who!r} already holds note {rec['id']}")
        require(ctx, rec["holder"], fn, rec["id"], rec["seq"], {"to": who}, consent)
        rec["endorsers"] = [*rec["endorsers"], rec["holder"]]
        rec["holder"] = who
        ops.save(ctx, rec)
        return {"id": rec["id"], "holder": who, "endorsers": rec["endorsers"]}

    @function
    def finance(
        self, ctx: Context, note_id: Any, bank: Any, kind: Any, consent: Any
    ) -> dict[str, Any]:
        fn = "notes.finance"
        require_role(ctx, fn, "bank")
        if bank != ctx.creator:
            raise ContractError(f"{fn}: the financing bank {bank!r} must be the creator")
        if kind not in KINDS:
            raise ContractError(f"{fn}: kind must be one of {', '.join(KINDS)}, got {shown(kind)}")
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live")
        if ctx.time >= rec["due"]:
            raise ContractError(
                f"{fn}: note {rec['id']} fell due at {iso(rec['due'])}; it is {iso(ctx.time)}: "
                "too late to finance"
            )
        line = credit.line(ctx, ctx.creator, rec["issuer"], fn)
        if line["currency"] != rec["currency"]:
            raise ContractError(
                f"{fn}: note {rec['id']} is in {rec['currency']}, the credit line of "
                f"{ctx.creator!r} for {rec['issuer']!r} in {line['currency']}"
            )
        rate = line["discount_rate"]
        days = i.day(rec["due"]) - i.day(ctx.time)  # 0 on the due day: no discount
        cut, advance = ops.discount(rec["amount"], rate, days)
        if advance <= 0:
            raise ContractError(
                f"{fn}: discounting {ops.show(rec)} for {days} days at {rate:f} leaves no advance"
            )
        terms = {"bank": ctx.creator, "kind": kind, "rate": rate}
        require(ctx, rec["holder"], fn, rec["id"], rec["seq"], terms, consent)
        rec["financed"] = {"bank": ctx.creator, "kind": kind, "rate": rate, "advance": advance,
                           "t": ctx.time}  # fmt: skip
        rec["state"] = "financed"
        ops.save(ctx, rec)
        return {"id": rec["id"], "bank": ctx.creator, "kind": kind, "rate": rate,
                "days": days, "discount": cut, "advance": advance}  # fmt: skip

    @function
    def settle(self, ctx: Context, note_id: Any, posting_hash: Any) -> dict[str, Any]:
        fn = "notes.settle"
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live", "financed", "overdue")
        financier = rec["financed"]["bank"] if rec["financed"] is not None else None
        allowed = {rec["issuer"], rec["confirmed"], financier} - {None}
        if ctx.creator not in allowed:
            raise ContractError(
                f"{fn}: {ctx.creator!r} may not settle note {rec['id']}: only its issuer, its "
                f"confirming bank or its financing bank ({', '.join(map(repr, sorted(allowed)))})"
            )
        if not isinstance(posting_hash, bytes) or len(posting_hash) != POSTING_HASH_SIZE:
            got = (
                f"{len(posting_hash)} bytes"
                if isinstance(posting_hash, bytes)
                else shown(posting_hash)
            )
            raise ContractError(
                f"{fn}: posting_hash must be {POSTING_HASH_SIZE} bytes (the book posting's "
                f"anchored hash), got {got}"
            )
        if ctx.time < rec["due"]:
            raise ContractError(
                f"{fn}: note {rec['id']} is due at {iso(rec['due'])}; it is {iso(ctx.time)}"
            )
        payee = financier or rec["holder"]
        restored = None
        if rec["confirmed"] is not None:
            restored = credit.restore(ctx, rec["confirmed"], rec["issuer"], rec["amount"])["used"]
        was = rec["state"]
        rec["state"] = "settled"
        rec["settlement"] = {"to": payee, "posting": posting_hash, "by": ctx.creator,
                             "t": ctx.time}  # fmt: skip
        ops.save(ctx, rec)
        family = ops.book(ctx, rec["root"], settled=rec["amount"])
        return {"id": rec["id"], "state": "settled", "was": was, "paid_to": payee,
                "amount": rec["amount"], "credit_used": restored,
                "family_live": family["live"]}  # fmt: skip

    @function
    def overdue(self, ctx: Context, note_id: Any) -> dict[str, Any]:
        fn = "notes.overdue"
        rec = ops.get_note(ctx, fn, note_id)
        ops.require_state(fn, rec, "live", "financed")
        today, due_day = i.day(ctx.time), i.day(rec["due"])
        if today <= due_day:
            raise ContractError(
                f"{fn}: note {rec['id']} is due on {i.date_of(due_day)}; it is "
                f"{i.date_of(today)}: not overdue before the day after"
            )
        rec["state"] = "overdue"
        ops.save(ctx, rec)
        chain = list(reversed(rec["endorsers"]))  # the nearest endorser first
        if rec["financed"] is not None:  # the bank's recourse starts at the holder it financed
            payee, recourse = rec["financed"]["bank"], [rec["holder"], *chain]
        else:
            payee, recourse = rec["holder"], chain
        return {"id": rec["id"], "state": "overdue", "owed": rec["amount"], "to": payee,
                "issuer": rec["issuer"], "confirmed": rec["confirmed"],
                "recourse": recourse}  # fmt: skip


__all__ = ["KINDS", "MAX_AMOUNT", "MAX_CHILDREN", "Notes"]

"""Reading and writing receivable notes for the ``notes`` contract.

They keep the note records and the family bookkeeping right; who may act, and which
consents are needed, the contract checks (:mod:`tally.finance.contracts.notes`):

* :func:`get_note` reads ``note/<id>`` ("note N does not exist");
* :func:`require_state` refuses a note not in one of the given states, saying why: split
  (spent), financed (locked to its bank), offered, refused, settled or overdue;
* :func:`save` bumps the note's ``seq`` (a consent is good for one transition) and writes it;
* :func:`family_of` finds the family a new note of a trade joins, and which of the trade's
  invoice and waybill identities it still has to claim;
* :func:`book` keeps ``noteroot/<root>`` = {"issued", "settled", "live", "notes"};
* :func:`term_days` and :func:`discount`: the note's term in business days and the discount
  of a financing (ACT/360, exact).

A family (root) is every note of one trade: the first note issued on the trade names it,
later issues on the trade join it, split children inherit it. Its bookkeeping holds
``live = issued − settled`` = Σ amounts of its notes in a live state (offered, live,
financed, overdue). A refused offer takes its amount off ``issued``; a split changes no
amount.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.finance import interest as i
from tally.finance.contracts.credit import amount_text
from tally.finance.contracts.market import ident
from tally.finance.keys import note_key, noteroot_key, use_key
from tally.finance.receipt import iso
from tally.ledger.contract import Context, ContractError

STATES = ("offered", "live", "split", "financed", "settled", "overdue", "refused")
LIVE_STATES = ("offered", "live", "financed", "overdue")
"""States whose amount counts as live in the family's bookkeeping."""
DEFAULT_MAX_TERM_DAYS = 183
"""The longest payment term by default: six months (the 2025 notice's rule in principle)."""
HARD_MAX_TERM_DAYS = 366
"""No policy may allow a longer term: one year at most (the 2025 notice)."""
YEAR_BASIS = i.YEAR_BASIS
RATE_SCALE = 10**6
"""Rates have at most six decimal places: ``rate × RATE_SCALE`` is an integer."""


def get_note(ctx: Context, fn: str, note_id: Any) -> dict[str, Any]:
    """The note ``note/<id>``; refuse a malformed id or an unknown note."""
    nid = ident(fn, "id", note_id)
    rec = ctx.get(note_key(nid))
    if rec is None:
        raise ContractError(f"{fn}: note {nid} does not exist")
    return dict(rec)


def why_not(rec: dict[str, Any]) -> str:
    """Why a note in its current state cannot move as asked."""
    nid, state = rec["id"], rec["state"]
    if state == "split":
        return f"note {nid} was split into {', '.join(rec['children'])}: it is spent"
    if state == "financed":
        f = rec["financed"]
        return f"note {nid} is financed by {f['bank']!r} ({f['kind']}): it is locked to the bank"
    if state == "offered":
        return f"note {nid} is offered to {rec['holder']!r} and not accepted yet"
    if state == "refused":
        return f"note {nid} was refused by {rec['holder']!r}"
    if state == "settled":
        s = rec.get("settlement") or {}
        return f"note {nid} is settled (paid to {s.get('to')!r})"
    if state == "overdue":
        return f"note {nid} is overdue: it was due on {i.date_of(i.day(rec['due']))}"
    return f"note {nid} is {state}"


def require_state(fn: str, rec: dict[str, Any], *states: str) -> None:
    """Refuse unless the note is in one of ``states``."""
    if rec["state"] not in states:
        raise ContractError(f"{fn}: {why_not(rec)}")


def save(ctx: Context, rec: dict[str, Any]) -> dict[str, Any]:
    """Write the note with ``seq`` bumped; return it."""
    rec["seq"] += 1
    ctx.put(note_key(rec["id"]), rec)
    return rec


def new_id(ctx: Context, fn: str, name: str, value: Any) -> str:
    """A note id no note has taken."""
    nid = ident(fn, name, value)
    if ctx.get(note_key(nid)) is not None:
        raise ContractError(f"{fn}: note {nid} already exists")
    return nid


def family_of(ctx: Context, trade: dict[str, Any]) -> tuple[str | None, dict[str, list[bytes]]]:
    """(root of the family the trade's notes form, or None before its first note; the
    trade's identities a note of this trade has not claimed yet, by kind: ``invoice``,
    ``waybill``)."""
    root: str | None = None
    fresh: dict[str, list[bytes]] = {"invoice": [], "waybill": []}
    for kind, name in (("invoice", "invoices"), ("waybill", "waybills")):
        for h in trade[name]:
            use = ctx.get(use_key(h))
            backs = None if use is None else str(use["backs"])
            if backs is not None and backs.startswith("note:"):
                other = ctx.get(note_key(backs[len("note:") :]))
                if other is not None and other["trade"] == trade["id"]:
                    root = root or str(other["root"])
                    continue
            fresh[kind].append(h)
    return root, fresh


def claimed_by(ctx: Context, trade: dict[str, Any], note_id: str) -> list[bytes]:
    """The trade's identities whose ``use/`` entry backs ``note:<note_id>``."""
    backs = f"note:{note_id}"
    out: list[bytes] = []
    for h in [*trade["invoices"], *trade["waybills"]]:
        use = ctx.get(use_key(h))
        if use is not None and use["backs"] == backs:
            out.append(h)
    return out


def book(
    ctx: Context, root: str, *, issued: int = 0, settled: int = 0, notes: int = 0
) -> dict[str, Any]:
    """Add to ``noteroot/<root>`` (created at the first issue); return it."""
    rec = ctx.get(noteroot_key(root))
    cur = {"issued": 0, "settled": 0, "live": 0, "notes": 0} if rec is None else dict(rec)
    cur["issued"] += issued
    cur["settled"] += settled
    cur["live"] = cur["issued"] - cur["settled"]
    cur["notes"] += notes
    ctx.put(noteroot_key(root), cur)
    return cur


def issued_on(ctx: Context, root: str | None) -> int:
    """What the family ``root`` has issued (0 for a trade without notes)."""
    if root is None:
        return 0
    rec = ctx.get(noteroot_key(root))
    return 0 if rec is None else int(rec["issued"])


def term_days(fn: str, t: int, due: int, most: int) -> int:
    """The term from ``t`` to ``due`` in business days (Beijing dates); refuse a due time not
    after ``t`` or a term above ``most`` days."""
    if due <= t:
        raise ContractError(f"{fn}: due {iso(due)} is not after the issue at {iso(t)}")
    days = i.day(due) - i.day(t)
    if days > most:
        raise ContractError(
            f"{fn}: term of {days} days ({i.date_of(i.day(t))} to {i.date_of(i.day(due))}) "
            f"exceeds the maximum of {most} days (payment terms: 6 months in principle, "
            f"1 year at most)"
        )
    return days


def discount(amount: int, rate: Decimal, days: int) -> tuple[int, int]:
    """(discount, advance) of financing ``amount`` minor units ``days`` days before it is
    due at annual ``rate``: discount = amount × rate × days / 360 exactly, rounded half up to
    a minor unit (integer arithmetic: no intermediate rounding); advance = amount − discount."""
    scaled = rate * RATE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"rate {rate} has more than six decimal places")
    num = amount * int(scaled) * days
    den = YEAR_BASIS * RATE_SCALE
    q, r = divmod(num, den)
    d = q + 1 if 2 * r >= den else q
    return d, amount - d


def show(rec: dict[str, Any]) -> str:
    """A note's amount as refusals show it."""
    return amount_text(rec["amount"], rec["currency"])


__all__ = [
    "DEFAULT_MAX_TERM_DAYS",
    "HARD_MAX_TERM_DAYS",
    "LIVE_STATES",
    "STATES",
    "book",
    "claimed_by",
    "discount",
    "family_of",
    "get_note",
    "issued_on",
    "new_id",
    "require_state",
    "save",
    "show",
    "term_days",
    "why_not",
]

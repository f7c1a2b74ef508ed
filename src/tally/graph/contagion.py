"""The contagion of one firm's default through the graph: who loses what, round by round.

The origin defaults in round 0. When a firm ``D`` defaults in round ``k``, round ``k + 1``
books these losses, each an :class:`Loss` naming the record it comes through:

``loan``        each loan to ``D`` not closed: its guarantors (active guarantees of that
                loan, by guarantee id, not themselves defaulted) are called for up to their
                guaranteed amount (``guarantee`` losses of the guarantors), and the bank loses
                the rest of the outstanding principal (a guarantee of a loan the graph does not
                hold is not called);
``note``        each live note ``D`` issued: the financing bank loses it; else the confirming
                bank (it pays the holder); else the holder, a firm;
``receivable``  each trade sold to ``D`` and not fully paid: the seller loses what is unpaid.

A firm that is not yet in default and whose losses so far reach ``absorb`` × its registered
capital defaults in the round it reached them, and its own failure spreads the next round.
Banks absorb their losses (they are not made to default). The cascade stops when a round
adds no default or after ``max_rounds``. ``by_tier`` sums the firms' losses by their supplier
tier relative to the origin (:func:`~tally.graph.queries.supplier_tiers`; ``"other"`` for
firms outside its chain); ``by_round`` gives the defaults and losses of each round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tally.graph.queries import supplier_tiers, tier_of
from tally.graph.store import LIVE_NOTE_STATES, Graph


@dataclass(frozen=True, slots=True)
class Loss:
    """``who`` (a firm or bank) loses ``amount`` in ``round`` because ``debtor`` defaulted,
    through ``path`` (loan, guarantee, note, receivable) of the record ``ref``."""

    who: str
    is_bank: bool
    amount: int
    round: int
    path: str
    ref: str
    debtor: str


@dataclass(slots=True)
class Contagion:
    origin: str
    defaults: dict[str, int] = field(default_factory=dict)
    losses: list[Loss] = field(default_factory=list)
    firm_losses: dict[str, int] = field(default_factory=dict)
    bank_losses: dict[str, int] = field(default_factory=dict)
    by_tier: dict[str, int] = field(default_factory=dict)

    def by_round(self) -> list[dict[str, Any]]:
        rounds = max([*self.defaults.values(), *(x.round for x in self.losses), 0])
        out = []
        for r in range(rounds + 1):
            out.append(
                {
                    "round": r,
                    "defaults": sorted(f for f, k in self.defaults.items() if k == r),
                    "firm_loss": sum(
                        x.amount for x in self.losses if x.round == r and not x.is_bank
                    ),
                    "bank_loss": sum(x.amount for x in self.losses if x.round == r and x.is_bank),
                }
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "defaults": dict(sorted(self.defaults.items())),
            "firm_losses": dict(sorted(self.firm_losses.items())),
            "bank_losses": dict(sorted(self.bank_losses.items())),
            "by_tier": self.by_tier,
            "by_round": self.by_round(),
            "losses": [
                {
                    "who": x.who,
                    "bank": x.is_bank,
                    "amount": x.amount,
                    "round": x.round,
                    "path": x.path,
                    "ref": x.ref,
                    "debtor": x.debtor,
                }
                for x in self.losses
            ],
        }


def _fail(graph: Graph, d: str, r: int, c: Contagion) -> None:
    """Book round ``r``'s losses from ``d``'s default (see the module docstring)."""

    def lose(who: str, bank: bool, amount: int, path: str, ref: str) -> None:
        if amount <= 0:
            return
        c.losses.append(Loss(who, bank, amount, r, path, ref, d))
        book = c.bank_losses if bank else c.firm_losses
        book[who] = book.get(who, 0) + amount

    calls: dict[str, list[str]] = {}  # loan → guarantee ids
    for e in sorted(graph.in_edges("guarantees", d), key=lambda e: e.ref):
        g = graph.guarantees[e.ref]
        calls.setdefault(g.loan, []).append(g.id)
    for e in sorted(graph.in_edges("loans", d), key=lambda e: e.ref):
        left = e.amount
        for gid in calls.get(e.ref, ()):
            g = graph.guarantees[gid]
            if g.guarantor in c.defaults or g.guarantor == d:
                continue
            pay = min(g.amount, left)
            lose(g.guarantor, False, pay, "guarantee", g.id)
            left -= pay
        lose(e.src, True, left, "loan", e.ref)
    for e in sorted(graph.out_edges("notes", d), key=lambda e: e.ref):
        note = graph.notes[e.ref]
        if note.state not in LIVE_NOTE_STATES:
            continue
        if note.financed:
            lose(note.financed, True, note.amount, "note", note.id)
        elif note.confirmed:
            lose(note.confirmed, True, note.amount, "note", note.id)
        elif note.holder not in c.defaults:
            lose(note.holder, False, note.amount, "note", note.id)
    for e in sorted(graph.in_edges("trades", d), key=lambda e: e.ref):
        t = graph.trades[e.ref]
        if t.seller not in c.defaults:
            lose(t.seller, False, t.amount - t.paid, "receivable", t.id)


def _tier_order(kv: tuple[str, int]) -> tuple[bool, int]:
    return (kv[0] == "other", 0 if kv[0] == "other" else int(kv[0]))


def contagion(graph: Graph, firm: str, absorb: float = 1.0, max_rounds: int = 10) -> Contagion:
    """The cascade from ``firm``'s default (see the module docstring)."""
    if firm not in graph.firms:
        raise KeyError(f"no firm {firm!r} in the graph")
    if not absorb > 0:
        raise ValueError(f"absorb must be > 0, got {absorb}")
    c = Contagion(firm, {firm: 0})
    frontier = [firm]
    for r in range(1, max_rounds + 1):
        for d in frontier:
            _fail(graph, d, r, c)
        frontier = []
        for who in sorted(c.firm_losses):
            rec = graph.firms.get(who)
            if who in c.defaults or rec is None or rec.capital <= 0:
                continue
            if c.firm_losses[who] >= absorb * rec.capital:
                c.defaults[who] = r
                frontier.append(who)
        if not frontier:
            break
    tiers = tier_of(supplier_tiers(graph, firm))
    for who, amount in sorted(c.firm_losses.items()):
        key = str(tiers[who]) if who in tiers else "other"
        c.by_tier[key] = c.by_tier.get(key, 0) + amount
    c.by_tier = dict(sorted(c.by_tier.items(), key=_tier_order))
    return c


__all__ = ["Contagion", "Loss", "contagion"]

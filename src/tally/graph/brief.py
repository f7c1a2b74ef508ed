"""The digital risk manager's daily brief, per bank portfolio and per core-enterprise chain.

:func:`daily_brief` returns a JSON-able dict: for each bank and for each core enterprise's
chain, six sections of items, each item with ``evidence`` — references ``{"kind", "id"}`` to
the records it rests on (``kind`` a file stem of :mod:`tally.graph.records`, or ``score``):

``coverage_below_lines``  receipt loans whose coverage is below the warning line (1.30; below
                          the disposal line 1.20 it says so)
``devices_dark``          firms with devices not reporting, since when
``fourflow_mismatches``   trades dated in the window whose four flows disagree, with the rules
``notes_near_maturity``   live or financed notes due within ``near_days`` (7)
``new_guarantee_circles`` guarantee circles not in yesterday's state — or, without a state,
                          closed (newest guarantee) within the window
``scores_moved``          scores that moved by at least ``moved`` points (20) since the state

A bank's portfolio: its borrowers (loans not closed), the issuers and holders of notes it
financed or confirmed, and the guarantors of its loans; its sections keep its own loans,
notes and circles with one of its guarantees. A chain: the core enterprise and its supplier
tiers up to ``max_tier`` (4); its notes are the core's. Chains with nothing to report are
left out. ``state`` is what tomorrow's brief compares with (circles and scores): keep it.
The window is the ``days`` (1) before ``as_of``. The platform renders the structure in the
console and as a PDF (``tally.cloud.graph_pdf``, ``GET /v1/graph/brief.pdf``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tally.graph.queries import Circle, guarantee_circles, supplier_tiers
from tally.graph.store import Graph

DAY = 86_400_000
WARNING_LINE = 1.30
DISPOSAL_LINE = 1.20
SECTIONS = (
    "coverage_below_lines",
    "devices_dark",
    "fourflow_mismatches",
    "notes_near_maturity",
    "new_guarantee_circles",
    "scores_moved",
)
Item = dict[str, Any]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ev(kind: str, ident: str) -> dict[str, str]:
    return {"kind": kind, "id": ident}


def _coverage(graph: Graph, loan_ids: Iterable[str]) -> list[Item]:
    out = []
    for lid in loan_ids:
        loan = graph.loans[lid]
        if loan.coverage is None or loan.coverage >= WARNING_LINE or loan.state == "closed":
            continue
        line = "disposal" if loan.coverage < DISPOSAL_LINE else "warning"
        out.append(
            {
                "firm": loan.borrower,
                "loan": loan.id,
                "bank": loan.bank,
                "coverage": loan.coverage,
                "below": line,
                "outstanding": loan.outstanding,
                "evidence": [_ev("loans", loan.id), *(_ev("receipts", r) for r in loan.receipts)],
            }
        )
    return out


def _dark(graph: Graph, firms: Iterable[str]) -> list[Item]:
    out = []
    for f in firms:
        tel = graph.telemetry.get(f)
        if tel is None or tel.online >= tel.devices:
            continue
        out.append(
            {
                "firm": f,
                "dark": tel.devices - tel.online,
                "devices": tel.devices,
                "dark_since": iso(tel.dark_since) if tel.dark_since is not None else None,
                "evidence": [_ev("telemetry", f)],
            }
        )
    return out


def _mismatches(graph: Graph, firms: set[str], since: int, until: int) -> list[Item]:
    seen: dict[str, Item] = {}
    for f in sorted(firms):
        for kind in ("out", "in"):
            edges = graph.out_edges("trades", f) if kind == "out" else graph.in_edges("trades", f)
            for e in edges:
                t = graph.trades[e.ref]
                if t.mismatches and since <= t.t < until and t.id not in seen:
                    seen[t.id] = {
                        "trade": t.id,
                        "seller": t.seller,
                        "buyer": t.buyer,
                        "amount": t.amount,
                        "rules": list(t.mismatches),
                        "date": iso(t.t),
                        "evidence": [_ev("trades", t.id)],
                    }
    return [seen[k] for k in sorted(seen)]


def _notes(graph: Graph, note_ids: Iterable[str], since: int, until: int) -> list[Item]:
    out = []
    for nid in sorted(note_ids):
        n = graph.notes[nid]
        if n.state in ("live", "financed") and since <= n.due < until:
            out.append(
                {
                    "note": n.id,
                    "issuer": n.issuer,
                    "holder": n.holder,
                    "amount": n.amount,
                    "due": iso(n.due),
                    "financed": n.financed or None,
                    "confirmed": n.confirmed or None,
                    "evidence": [_ev("notes", n.id)],
                }
            )
    return out


def _circle(c: Circle) -> Item:
    return {
        "firms": list(c.firms),
        "text": c.text(),
        "amount": c.amount,
        "closed": iso(c.closed),
        "evidence": [_ev("guarantees", g) for hop in c.hops for g in hop],
    }


def _moved(
    firms: Iterable[str], scores: Mapping[str, int], before: Mapping[str, int], moved: int
) -> list[Item]:
    out = []
    for f in sorted(firms):
        if f in scores and f in before and abs(scores[f] - before[f]) >= moved:
            out.append(
                {
                    "firm": f,
                    "from": before[f],
                    "to": scores[f],
                    "delta": scores[f] - before[f],
                    "evidence": [_ev("score", f)],
                }
            )
    return out


def _section_counts(sections: dict[str, list[Item]]) -> dict[str, int]:
    return {k: len(v) for k, v in sections.items()}


def _portfolios(graph: Graph) -> dict[str, dict[str, set[str]]]:
    """bank → {"firms", "loans", "notes"}."""
    out: dict[str, dict[str, set[str]]] = {}

    def get(bank: str) -> dict[str, set[str]]:
        return out.setdefault(bank, {"firms": set(), "loans": set(), "notes": set()})

    for loan in graph.loans.values():
        if loan.state != "closed":
            p = get(loan.bank)
            p["firms"].add(loan.borrower)
            p["loans"].add(loan.id)
    for note in graph.notes.values():
        for bank in {note.financed, note.confirmed} - {""}:
            p = get(bank)
            p["notes"].add(note.id)
            p["firms"].update((note.issuer, note.holder))
    for g in graph.guarantees.values():
        if g.active:
            get(g.bank)["firms"].add(g.guarantor)
    return out


def daily_brief(
    graph: Graph,
    *,
    as_of: int | None = None,
    scores: Mapping[str, int] | None = None,
    previous: Mapping[str, Any] | None = None,
    banks: Iterable[str] | None = None,
    cores: Iterable[str] | None = None,
    days: int = 1,
    near_days: int = 7,
    moved: int = 20,
    max_tier: int = 4,
) -> dict[str, Any]:
    """The brief (see the module docstring). ``previous``: yesterday's ``state``;
    ``scores``: today's scores by firm; ``banks``/``cores``: only these (default: all)."""
    if days < 1 or near_days < 0 or moved < 1:
        raise ValueError("days must be >= 1, near_days >= 0 and moved >= 1")
    now = graph.as_of if as_of is None else as_of
    since = now - days * DAY
    today = scores or {}
    before: Mapping[str, int] = (previous or {}).get("scores", {})
    circles = guarantee_circles(graph)
    if previous is not None and "circles" in previous:
        known = {tuple(c) for c in previous["circles"]}
        new = [c for c in circles if c.firms not in known]
    else:
        new = [c for c in circles if c.closed >= since]
    ports = _portfolios(graph)
    chosen_banks = sorted(ports) if banks is None else sorted(set(banks))
    out_banks: dict[str, Any] = {}
    for bank in chosen_banks:
        p = ports.get(bank, {"firms": set(), "loans": set(), "notes": set()})
        firms = sorted(p["firms"])
        sections = {
            "coverage_below_lines": _coverage(graph, sorted(p["loans"])),
            "devices_dark": _dark(graph, firms),
            "fourflow_mismatches": _mismatches(graph, p["firms"], since, now),
            "notes_near_maturity": _notes(graph, p["notes"], now, now + near_days * DAY),
            "new_guarantee_circles": [
                _circle(c)
                for c in new
                if any(graph.guarantees[g].bank == bank for hop in c.hops for g in hop)
            ],
            "scores_moved": _moved(firms, today, before, moved),
        }
        out_banks[bank] = {"firms": len(firms), "counts": _section_counts(sections), **sections}
    core_ids = (
        sorted(f.id for f in graph.firms.values() if f.kind == "core")
        if cores is None
        else sorted(set(cores))
    )
    chains: dict[str, Any] = {}
    for core in core_ids:
        tiers = supplier_tiers(graph, core, max_tier)
        members = {core, *(f for fs in tiers.values() for f in fs)}
        ordered = sorted(members)
        loans = sorted(e.ref for f in ordered for e in graph.in_edges("loans", f))
        issued = [e.ref for e in graph.out_edges("notes", core)]
        sections = {
            "coverage_below_lines": _coverage(graph, loans),
            "devices_dark": _dark(graph, ordered),
            "fourflow_mismatches": _mismatches(graph, members, since, now),
            "notes_near_maturity": _notes(graph, issued, now, now + near_days * DAY),
            "new_guarantee_circles": [_circle(c) for c in new if members & set(c.firms)],
            "scores_moved": _moved(ordered, today, before, moved),
        }
        if cores is not None or any(sections.values()):
            sizes = {str(k): len(v) for k, v in tiers.items()}
            counts = _section_counts(sections)
            chains[core] = {"firms": len(members), "tiers": sizes, "counts": counts, **sections}
    return {
        "as_of": iso(now),
        "window": {"from": iso(since), "to": iso(now), "days": days, "near_days": near_days},
        "banks": out_banks,
        "chains": chains,
        "state": {
            "as_of": now,
            "circles": [list(c.firms) for c in circles],
            "scores": dict(sorted(today.items())),
        },
    }


__all__ = ["DISPOSAL_LINE", "SECTIONS", "WARNING_LINE", "daily_brief", "iso"]

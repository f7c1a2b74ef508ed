"""The knowledge graph as a service of the cloud: one :class:`~tally.graph.store.Graph`,
kept current from the chain, read by the API (:mod:`tally.cloud.api.graph`) and the console.

:class:`GraphService` holds the graph and what is computed from it:

* **Sources.** :meth:`GraphService.load_economy` adds a synthetic economy directory
  (``tally sim generate``; the service is then labelled ``simulated``), its ids optionally
  renamed (``aliases``: an economy's bank or firm becomes a platform tenant, so the tenant's
  console shows the economy around it). :meth:`GraphService.register` adds a platform
  organisation's registration (a firm or a bank) when the graph has none.
  :meth:`GraphService.apply_state` takes one committed state entry (``note/``, ``loan/``,
  ``trade/``, ``rcpt/``; :func:`tally.graph.ledger_state.record_from_state`) and
  :meth:`GraphService.refresh` re-reads those prefixes from a chain source (idempotent: an
  unchanged record changes nothing). :meth:`GraphService.follow` refreshes after every
  ``block``, ``loan``, ``note`` or ``receipt`` event the projector publishes on the
  :class:`~tally.cloud.live.EventHub`, until stopped.
* **Reads.** Every read and change holds one lock (reads are short at the demo's scale; the
  seed's scale builds in seconds). Computed results — guarantee circles, financing needs,
  every SME's score, each firm's banks — are cached against :attr:`Graph.version
  <tally.graph.store.Graph.version>` and recomputed after any change.
* **Who a firm's banks are** (:meth:`GraphService.banks_of`, for the authorisation): the
  banks of its accounts, of its loans, of the notes it issued, holds or endorsed (financing
  or confirming), of the guarantees it gave or received, and the bank of its platform
  profile (``register(bank=)``).

Money is fen, times ms since the epoch (as :mod:`tally.graph`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tally.cloud.live import EventHub
from tally.finance.keys import LOAN, NOTE, RCPT, TRADE
from tally.graph.brief import DAY, daily_brief
from tally.graph.contagion import Contagion, contagion
from tally.graph.exposure import Exposure, exposure, exposures
from tally.graph.features import context, row
from tally.graph.ledger_state import record_from_state
from tally.graph.load import manifest, read_records
from tally.graph.mining import Need, financing_needs
from tally.graph.queries import Circle, Relative, guarantee_circles, relatives, supplier_tiers
from tally.graph.records import Bank, Firm
from tally.graph.scorecard import Score, Weights, load_weights, score_row
from tally.graph.store import Graph

log = logging.getLogger(__name__)

PREFIXES = (NOTE, LOAN, TRADE, RCPT)
"""The state prefixes the graph follows."""
FOLLOWED = frozenset({"block", "loan", "note", "receipt"})
"""Events after which :meth:`GraphService.follow` refreshes."""
T = TypeVar("T")


def renamed(rec: Any, aliases: Mapping[str, str]) -> Any:
    """``rec`` with every id field (text, or a tuple of text) found in ``aliases`` renamed."""
    if not aliases:
        return rec
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(rec):
        v = getattr(rec, f.name)
        if isinstance(v, str) and v in aliases:
            changes[f.name] = aliases[v]
        elif isinstance(v, tuple) and any(isinstance(x, str) and x in aliases for x in v):
            changes[f.name] = tuple(aliases.get(x, x) if isinstance(x, str) else x for x in v)
    return dataclasses.replace(rec, **changes) if changes else rec


class GraphService:
    """The cloud's knowledge graph (see the module docstring)."""

    def __init__(self, *, weights: Weights | None = None, simulated: bool = False) -> None:
        self.graph = Graph()
        self.simulated = simulated
        self.weights = weights if weights is not None else load_weights()
        self.applied = 0
        """State entries that became graph records (:meth:`apply_state`)."""
        self.refreshes = 0
        self._as_of = 0
        self._profile_bank: dict[str, str] = {}
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._version = -1
        self._briefed: dict[str, dict[int, Mapping[str, Any]]] = {}
        """Per brief (its banks and cores): the ``state`` of the last brief of each of the
        latest two days, so that the next day's brief says which scores moved and which
        circles are new (kept in memory: a restart starts the comparison afresh)."""

    # -- sources ------------------------------------------------------------------------------
    def load_economy(self, directory: Path, aliases: Mapping[str, str] | None = None) -> int:
        """Add every record of a synthetic economy directory (ids renamed by ``aliases``);
        how many. Its manifest's ``as_of`` becomes the graph's "now" (when later)."""
        meta = manifest(directory)
        names = dict(aliases or {})
        with self._lock:
            n = self.graph.add_all(renamed(r, names) for r in read_records(directory))
            as_of = meta.get("as_of")
            if isinstance(as_of, int) and not isinstance(as_of, bool):
                self._as_of = max(self._as_of, as_of)
            self.simulated = self.simulated or bool(meta.get("simulated", False))
        return n

    def register(
        self, org: str, kind: str, name: str, *, industry: str = "", bank: str | None = None
    ) -> None:
        """A platform organisation's registration: a ``bank`` becomes a :class:`Bank`, a
        ``core_enterprise`` a core :class:`Firm`, a ``supplier`` an SME; other kinds are not
        in the graph. A record the graph already has is kept. ``bank``: its profile's bank."""
        with self._lock:
            if bank:
                self._profile_bank[org] = bank
                self._version = -1
            if kind == "bank" and org not in self.graph.banks:
                self.graph.add(Bank(org, name))
            elif kind in ("core_enterprise", "supplier") and org not in self.graph.firms:
                rating = "AA" if kind == "core_enterprise" else ""
                sort = "core" if kind == "core_enterprise" else "sme"
                self.graph.add(Firm(org, name, sort, industry or "other", 0, 0, rating))

    def apply_state(self, key: str, value: Mapping[str, Any] | None) -> bool:
        """Add the record of one committed state entry; whether it is one the graph keeps."""
        rec = record_from_state(key, value)
        if rec is None:
            return False
        with self._lock:
            self.graph.add(rec)
            self.applied += 1
        return True

    def refresh(self, source: Any) -> int:
        """Re-read the followed prefixes from ``source`` (``scan(prefix)``); entries applied."""
        n = 0
        for prefix in PREFIXES:
            for key, value in source.scan(prefix):
                n += self.apply_state(key, value)
        self.refreshes += 1
        return n

    async def follow(self, hub: EventHub, source: Any, stop: asyncio.Event) -> None:
        """Refresh now, then after every followed event on ``hub`` until ``stop`` is set."""
        sub = hub.subscribe()
        try:
            await asyncio.to_thread(self.refresh, source)
            while not stop.is_set() and not sub.closed:
                event = await sub.next(timeout=0.5)
                if event is None or event.kind not in FOLLOWED:
                    continue
                while sub.pending():  # one refresh for a burst of events
                    if await sub.next(timeout=0.05) is None:
                        break
                try:
                    await asyncio.to_thread(self.refresh, source)
                except Exception:  # a failed refresh is tried again at the next event
                    log.exception("the graph could not follow the chain")
        finally:
            sub.close()

    # -- reads --------------------------------------------------------------------------------
    @property
    def as_of(self) -> int:
        """The graph's "now": the economy's date or the newest record, whichever is later."""
        with self._lock:
            return max(self._as_of, self.graph.as_of)

    def read(self, fn: Callable[[Graph], T]) -> T:
        """``fn(graph)`` under the lock."""
        with self._lock:
            return fn(self.graph)

    def _cached(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if self._version != self.graph.version:
                self._cache.clear()
                self._version = self.graph.version
            if name not in self._cache:
                self._cache[name] = make()
            got: T = self._cache[name]
            return got

    def has_firm(self, firm: str) -> bool:
        with self._lock:
            return firm in self.graph.firms

    def is_core(self, firm: str) -> bool:
        with self._lock:
            return self.graph.is_core(firm)

    def is_bank(self, org: str) -> bool:
        with self._lock:
            return org in self.graph.banks

    def banks_of(self, firm: str) -> frozenset[str]:
        """The banks of ``firm`` (see the module docstring)."""
        return self._cached("banks", self._banks).get(firm, frozenset())

    def _banks(self) -> dict[str, frozenset[str]]:
        g = self.graph
        out: dict[str, set[str]] = {}

        def link(firm: str, bank: str) -> None:
            if firm and bank:
                out.setdefault(firm, set()).add(bank)

        for f in g.firms.values():
            for acct in f.accounts:
                a = g.accounts.get(acct)
                if a is not None:
                    link(f.id, a.bank)
        for loan in g.loans.values():
            link(loan.borrower, loan.bank)
        for n in g.notes.values():
            for bank in (n.financed, n.confirmed):
                for firm in (n.issuer, n.holder, *n.endorsers):
                    link(firm, bank)
        for gu in g.guarantees.values():
            link(gu.guarantor, gu.bank)
            link(gu.debtor, gu.bank)
        for firm, bank in self._profile_bank.items():
            link(firm, bank)
        return {f: frozenset(b) for f, b in out.items()}

    def tiers(self, core: str, max_tier: int) -> dict[int, list[str]]:
        return self.read(lambda g: supplier_tiers(g, core, max_tier))

    def supply_edges(self, firms: Iterable[str]) -> list[tuple[str, str]]:
        """Distinct ``(supplier, buyer)`` pairs among ``firms`` (supplies and trades)."""
        chosen = set(firms)

        def pairs(g: Graph) -> list[tuple[str, str]]:
            out: set[tuple[str, str]] = set()
            for f in chosen:
                for kind in ("supplies", "trades"):
                    out.update((f, e.dst) for e in g.out_edges(kind, f) if e.dst in chosen)
            return sorted(out)

        return self.read(pairs)

    def relatives(self, firm: str) -> list[Relative]:
        return self.read(lambda g: relatives(g, firm))

    def firm(self, firm: str) -> Firm | None:
        with self._lock:
            return self.graph.firms.get(firm)

    def circles(self) -> list[Circle]:
        return self._cached("circles", lambda: guarantee_circles(self.graph))

    def circle_banks(self, c: Circle) -> list[str]:
        """The banks of the guarantees of a circle, sorted."""
        with self._lock:
            g = self.graph.guarantees
            return sorted({g[ref].bank for hop in c.hops for ref in hop if ref in g})

    def exposure(self, bank: str, firm: str) -> Exposure:
        return self.read(lambda g: exposure(g, bank, firm))

    def exposures_of(self, firm: str) -> list[Exposure]:
        """Every bank's exposure to ``firm``, by bank."""
        every = self._cached("exposures", lambda: exposures(self.graph))
        return [ex for _, ex in sorted(every.get(firm, {}).items())]

    def contagion(self, firm: str, absorb: float) -> Contagion:
        return self.read(lambda g: contagion(g, firm, absorb))

    def needs(self) -> list[Need]:
        return self._cached("needs", lambda: financing_needs(self.graph))

    def scores(self) -> dict[str, Score]:
        """Every SME's score (and a platform supplier's), by firm."""

        def make() -> dict[str, Score]:
            g = self.graph
            ctx = context(g, self.as_of)
            smes = sorted(f.id for f in g.firms.values() if f.kind == "sme")
            return {f: score_row(row(g, f, ctx), self.weights) for f in smes}

        return self._cached("scores", make)

    def score(self, firm: str) -> Score:
        """``firm``'s score (a core enterprise's too); KeyError when it is not a firm."""
        got = self.scores().get(firm)
        if got is not None:
            return got

        def one(g: Graph) -> Score:
            if firm not in g.firms:
                raise KeyError(f"no firm {firm!r} in the graph")
            return score_row(row(g, firm, context(g, self.as_of)), self.weights)

        return self._cached(f"score:{firm}", lambda: one(self.graph))

    def brief(self, banks: list[str] | None, cores: list[str] | None) -> dict[str, Any]:
        """The daily brief of these banks' portfolios and cores' chains, compared with the
        last brief of the same banks and cores on an earlier day (scores moved, new circles);
        without one, circles closed within the day count as new."""
        scores = {f: s.score for f, s in self.scores().items()}
        key = f"brief:{banks}:{cores}"
        now = self.as_of
        day = now // DAY
        with self._lock:
            days = self._briefed.setdefault(key, {})
            earlier = [d for d in days if d < day]
            previous = days[max(earlier)] if earlier else None
            got: dict[str, Any] = self._cached(
                f"{key}:{previous is not None}",
                lambda: daily_brief(self.graph, as_of=now, scores=scores, banks=banks,
                                    cores=cores, previous=previous),
            )  # fmt: skip
            days[day] = got["state"]
            for d in sorted(days)[:-2]:
                del days[d]
            return got

    def counts(self) -> dict[str, int]:
        """Records and edges, for reports."""
        return self.read(lambda g: g.counts())


__all__ = ["FOLLOWED", "PREFIXES", "GraphService", "renamed"]

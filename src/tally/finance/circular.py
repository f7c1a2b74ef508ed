"""Circular trades and related-party self-dealing among the trades a bank reconciles.

Two signals of fake trade that no single trade's documents show:

* **Circular trade** (循环贸易): goods or invoices go round — A sells to B, B to C, C back to
  A — so that each sale creates a receivable to finance while nothing leaves the circle.
  :class:`TradeGraph` is the directed graph of trades (an edge seller → buyer per trade, with
  the contract date). A trade is *circular* when its edge lies on a directed cycle of at most
  ``max_len`` parties (default 6) whose trades all fall within ``window_ms`` (default 365
  days) of its own contract date. :meth:`TradeGraph.cycle` reports the shortest such cycle,
  starting at the trade's seller: a bidirectional breadth-first search from the buyer back to
  the seller, bounded in depth, expanding the smaller frontier, ties broken by party id so the
  answer depends only on the graph, never on the order trades arrived in. When a trade is
  added or removed, :meth:`TradeGraph.add` and :meth:`TradeGraph.remove` return every trade
  whose verdict may have changed (those on a short path from the buyer back to the seller),
  so an incremental reconciler re-judges only those.
* **Related-party self-dealing** (关联交易): seller and buyer are the same enterprise under
  two names — they share a person (legal representative, shareholder, director), a
  registered or operating address, or a bank account. :class:`KycIndex` keeps each party's
  :class:`KycRecord` and an inverted index from each fact to the parties holding it;
  :meth:`KycIndex.links` lists the facts two parties share. Facts are compared after
  normalisation: surrounding blanks removed, inner runs of blanks made one, case folded;
  for accounts, blanks and hyphens removed.

:class:`Related` is what :func:`tally.finance.fourflow.reconcile` takes for one trade: the
cycle (or none) and the shared facts. Everything here is pure and deterministic: no clock
(times are the contracts' dates), iteration in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

MAX_CYCLE = 6
"""Default longest cycle looked for, in parties (A→B→C→A has 3)."""
WINDOW_MS = 365 * 86_400_000
"""Default window: the trades of a cycle are within this of the judged trade's date."""
LINK_KINDS = ("person", "address", "account")


@dataclass(frozen=True, slots=True)
class Cycle:
    """A circle of trades: ``parties[i]`` sells to ``parties[i + 1]`` in ``trades[i]``, and the
    last party sells to the first in the last trade. It starts at the judged trade's seller."""

    parties: tuple[str, ...]
    trades: tuple[str, ...]

    def text(self) -> str:
        """``"A → B → C → A"``."""
        return " → ".join((*self.parties, self.parties[0]))


@dataclass(frozen=True, slots=True)
class KycRecord:
    """What the bank's KYC file holds on a party: the persons behind it (legal
    representative, shareholders, directors; by identity document number), its addresses
    and its bank accounts."""

    party: str
    persons: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    """A fact two parties share: ``kind`` is ``person``, ``address``, ``account`` or
    ``same_party`` (seller and buyer are one party), ``value`` the normalised fact."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Related:
    """The related-party facts of one trade, as :func:`~tally.finance.fourflow.reconcile`
    judges them: the shortest recent cycle through the trade (``None``: none) and the facts
    its seller and buyer share; ``max_len`` and ``window_ms`` say how far the search looked."""

    cycle: Cycle | None = None
    links: tuple[Link, ...] = ()
    max_len: int = MAX_CYCLE
    window_ms: int = WINDOW_MS


def _positive_int(value: object, what: str, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{what} must be an integer >= {least}, got {value!r}")
    return value


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be non-empty text, got {value!r}")
    return value


def check_edge(trade: str, seller: str, buyer: str, t: int) -> None:
    """Refuse (ValueError) a trade edge with an empty id or party or a negative date."""
    _name(trade, "trade")
    _name(seller, f"trade {trade!r}: seller")
    _name(buyer, f"trade {trade!r}: buyer")
    _positive_int(t, f"trade {trade!r}: date", 0)


# -- the trade graph ----------------------------------------------------------------------------

Adjacency = dict[str, dict[str, dict[str, int]]]
"""party -> neighbour -> {trade id: contract date}."""


class TradeGraph:
    """The directed graph of trades (seller → buyer), searched for short recent cycles."""

    def __init__(self, max_len: int = MAX_CYCLE, window_ms: int = WINDOW_MS) -> None:
        self.max_len = _positive_int(max_len, "max_len", 2)
        self.window_ms = _positive_int(window_ms, "window_ms", 0)
        self._out: Adjacency = {}
        self._in: Adjacency = {}
        self._edges: dict[str, tuple[str, str, int]] = {}

    def __len__(self) -> int:
        return len(self._edges)

    def edge(self, trade: str) -> tuple[str, str, int] | None:
        """``(seller, buyer, date)`` of a trade in the graph."""
        return self._edges.get(trade)

    def add(self, trade: str, seller: str, buyer: str, t: int) -> set[str]:
        """Add a trade; return the trades whose cycle may have changed (itself included).

        Adding a trade already in the graph with the same edge changes nothing; with another
        edge it is refused (remove it first)."""
        check_edge(trade, seller, buyer, t)
        old = self._edges.get(trade)
        if old is not None:
            if old == (seller, buyer, t):
                return set()
            raise ValueError(
                f"trade {trade!r} is already in the graph as {old[0]} → {old[1]} at {old[2]}, "
                f"not {seller} → {buyer} at {t}: remove it first"
            )
        self._edges[trade] = (seller, buyer, t)
        if seller != buyer:  # a party trading with itself is related-party, not a cycle
            self._out.setdefault(seller, {}).setdefault(buyer, {})[trade] = t
            self._in.setdefault(buyer, {}).setdefault(seller, {})[trade] = t
        return self._affected(seller, buyer, t) | {trade}

    def remove(self, trade: str) -> set[str]:
        """Remove a trade; return the other trades whose cycle may have changed."""
        old = self._edges.pop(trade, None)
        if old is None:
            return set()
        seller, buyer, t = old
        if seller != buyer:
            for adj, a, b in ((self._out, seller, buyer), (self._in, buyer, seller)):
                trades = adj[a][b]
                del trades[trade]
                if not trades:
                    del adj[a][b]
                    if not adj[a]:
                        del adj[a]
        return self._affected(seller, buyer, t)

    def cycle(self, trade: str) -> Cycle | None:
        """The shortest recent cycle through ``trade`` (see the module docstring), or None."""
        edge = self._edges.get(trade)
        if edge is None:
            raise ValueError(f"trade {trade!r} is not in the graph")
        seller, buyer, t0 = edge
        if seller == buyer:
            return None
        path = self._path(buyer, seller, t0, self.window_ms, self.max_len - 1)
        if path is None:
            return None
        parties = (seller, *path[:-1])
        hops = [trade]
        for a, b in pairwise(path):
            hops.append(
                min(x for x, tx in self._out[a][b].items() if abs(tx - t0) <= self.window_ms)
            )
        return Cycle(parties, tuple(hops))

    def related(self, trade: str, kyc: KycIndex | None = None) -> Related:
        """The :class:`Related` of a trade: its cycle and, with ``kyc``, the shared facts."""
        cyc = self.cycle(trade)
        seller, buyer, _ = self._edges[trade]
        links = kyc.links(seller, buyer) if kyc is not None else _same(seller, buyer)
        return Related(cyc, links, self.max_len, self.window_ms)

    # -- search -------------------------------------------------------------------------------

    def _steps(self, adj: Adjacency, u: str, t0: int, window: int) -> list[str]:
        nbrs = adj.get(u)
        if not nbrs:
            return []
        return [v for v in sorted(nbrs) if any(abs(t - t0) <= window for t in nbrs[v].values())]

    def _path(self, src: str, dst: str, t0: int, window: int, limit: int) -> list[str] | None:
        """A shortest path src → … → dst of at most ``limit`` edges over edges dated within
        ``window`` of ``t0``; deterministic (sorted frontiers, smallest meeting party)."""
        fwd: dict[str, tuple[str | None, int]] = {src: (None, 0)}
        bwd: dict[str, tuple[str | None, int]] = {dst: (None, 0)}
        ff, bf, df, db = [src], [dst], 0, 0
        while ff and bf and df + db < limit:
            forward = len(ff) <= len(bf)
            seen, other = (fwd, bwd) if forward else (bwd, fwd)
            frontier, adj = (ff, self._out) if forward else (bf, self._in)
            depth = (df if forward else db) + 1
            nxt: list[str] = []
            for u in frontier:
                for v in self._steps(adj, u, t0, window):
                    if v not in seen:
                        seen[v] = (u, depth)
                        nxt.append(v)
            nxt.sort()
            if forward:
                ff, df = nxt, depth
            else:
                bf, db = nxt, depth
            meets = [(depth + other[v][1], v) for v in nxt if v in other]
            if meets:
                _, m = min(meets)
                head: list[str] = []
                x: str | None = m
                while x is not None:
                    head.append(x)
                    x = fwd[x][0]
                head.reverse()
                x = bwd[m][0]
                while x is not None:
                    head.append(x)
                    x = bwd[x][0]
                return head
        return None

    def _reach(self, adj: Adjacency, start: str, t0: int, window: int) -> dict[str, int]:
        dist = {start: 0}
        frontier = [start]
        for d in range(1, self.max_len):
            nxt = []
            for u in frontier:
                for v in self._steps(adj, u, t0, window):
                    if v not in dist:
                        dist[v] = d
                        nxt.append(v)
            frontier = nxt
        return dist

    def _affected(self, seller: str, buyer: str, t: int) -> set[str]:
        """Trades on a short path buyer → … → seller (the cycles an edge seller → buyer makes
        or made), dated within twice the window of ``t``: any trade whose own window could
        hold a cycle through this edge."""
        if seller == buyer:
            return set()
        window, limit = 2 * self.window_ms, self.max_len - 1
        if self._path(buyer, seller, t, window, limit) is None:
            return set()
        df = self._reach(self._out, buyer, t, window)
        db = self._reach(self._in, seller, t, window)
        out: set[str] = set()
        for u, du in df.items():
            for v, trades in self._out.get(u, {}).items():
                dv = db.get(v)
                if dv is not None and du + 1 + dv <= limit:
                    out.update(x for x, tx in trades.items() if abs(tx - t) <= window)
        return out


# -- KYC facts ----------------------------------------------------------------------------------


def _norm(kind: str, value: str) -> str:
    v = " ".join(value.split()).casefold()
    if kind == "account":
        v = v.replace(" ", "").replace("-", "")
    return v


def _same(seller: str, buyer: str) -> tuple[Link, ...]:
    return (Link("same_party", seller),) if seller == buyer else ()


def check_kyc(record: KycRecord) -> dict[str, frozenset[str]]:
    """The normalised facts of a record by kind; raise ValueError naming the bad field."""
    _name(record.party, "KYC record: party")
    out: dict[str, frozenset[str]] = {}
    for kind, name in zip(LINK_KINDS, ("persons", "addresses", "accounts"), strict=True):
        values = getattr(record, name)
        what = f"KYC record of {record.party!r}: {name}"
        if not isinstance(values, tuple):
            raise ValueError(f"{what} must be a tuple of text, got {values!r}")
        norm = []
        for i, v in enumerate(values):
            _name(v, f"{what}[{i}]")
            n = _norm(kind, v)
            if not n:
                raise ValueError(f"{what}[{i}] is empty once normalised, got {v!r}")
            norm.append(n)
        out[kind] = frozenset(norm)
    return out


class KycIndex:
    """Each party's KYC facts and, per fact, the parties that hold it."""

    def __init__(self, records: Iterable[KycRecord] = ()) -> None:
        self._facts: dict[str, dict[str, frozenset[str]]] = {}
        self._holders: dict[tuple[str, str], set[str]] = {}
        for r in records:
            self.put(r)

    def __len__(self) -> int:
        return len(self._facts)

    def put(self, record: KycRecord) -> set[str]:
        """Set (or replace) a party's record; return the parties whose links may have changed:
        the party and every party sharing a fact with its old or new record. A bad record is
        refused (ValueError) and changes nothing."""
        facts = check_kyc(record)
        party = record.party
        touched = {party}
        for kind, values in self._facts.pop(party, {}).items():
            for v in values:
                holders = self._holders[(kind, v)]
                holders.discard(party)
                touched |= holders
                if not holders:
                    del self._holders[(kind, v)]
        self._facts[party] = facts
        for kind, values in facts.items():
            for v in values:
                holders = self._holders.setdefault((kind, v), set())
                touched |= holders
                holders.add(party)
        return touched

    def record(self, party: str) -> dict[str, frozenset[str]] | None:
        """The normalised facts of a party, or None."""
        return self._facts.get(party)

    def links(self, seller: str, buyer: str) -> tuple[Link, ...]:
        """The facts seller and buyer share, sorted by kind then value."""
        if seller == buyer:
            return _same(seller, buyer)
        a, b = self._facts.get(seller), self._facts.get(buyer)
        if a is None or b is None:
            return ()
        return tuple(Link(k, v) for k in LINK_KINDS for v in sorted(a[k] & b[k]))

    def related_parties(self, party: str) -> list[str]:
        """Every other party sharing at least one fact with ``party``, sorted."""
        out: set[str] = set()
        for kind, values in self._facts.get(party, {}).items():
            for v in values:
                out |= self._holders[(kind, v)]
        out.discard(party)
        return sorted(out)

"""Incremental four-flow reconciliation: trades judged again as their documents arrive.

:class:`Reconciler` is the incremental form of :func:`tally.finance.fourflow.reconcile`
(re-exported by :mod:`tally.finance.fourflow`): documents arrive one by one in any order, each
marks its trade (and a contract, the trades its new edge may close a cycle with) to be judged
again; :meth:`Reconciler.judge` re-judges the marked trades that have every required kind. It
keeps the trade graph and KYC index of :mod:`tally.finance.circular` up to date as contracts
and KYC records come in. Nothing here reads a clock or iterates in an unsorted order.
"""

from __future__ import annotations

from typing import Any

from tally.finance.circular import KycIndex, KycRecord, TradeGraph, check_edge
from tally.finance.fourflow import (
    ContractView,
    DocView,
    ReconResult,
    TradeDocs,
    _order,
    reconcile,
)
from tally.finance.fourflow_rules import KINDS, Tolerances

__all__ = ["Reconciler"]


class Reconciler:
    """Judges trades as their documents arrive (see the module docstring)."""

    def __init__(
        self,
        tolerances: Tolerances = Tolerances(),
        graph: TradeGraph | None = None,
        kyc: KycIndex | None = None,
    ) -> None:
        self.tolerances = tolerances
        self.graph = graph if graph is not None else TradeGraph()
        self.kyc = kyc if kyc is not None else KycIndex()
        self._docs: dict[str, dict[Any, DocView]] = {}
        self._kinds: dict[str, dict[str, int]] = {}
        self._edge: dict[str, ContractView] = {}
        self._by_party: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._results: dict[str, ReconResult] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc: DocView) -> None:
        """Take a document (the same salted hash again, or for an unsigned view the same kind
        and number, replaces it) and mark its trade to be judged again."""
        trade = doc.trade
        if isinstance(doc, ContractView):
            check_edge(trade, doc.seller, doc.buyer, doc.t)
        key: Any = doc.ref or (doc.kind, _order(doc)[0])
        docs = self._docs.setdefault(trade, {})
        kinds = self._kinds.setdefault(trade, dict.fromkeys(KINDS, 0))
        if key not in docs:
            kinds[doc.kind] += 1
        docs[key] = doc
        self._dirty.add(trade)
        if doc.kind == "contract":
            first = min((d for d in docs.values() if isinstance(d, ContractView)), key=_order)
            if self._edge.get(trade) is not first:
                self._set_edge(trade, first)

    def _set_edge(self, trade: str, c: ContractView) -> None:
        old = self._edge.get(trade)
        if old is not None:
            self._dirty |= self.graph.remove(trade)
            for p in (old.seller, old.buyer):
                self._by_party[p].discard(trade)
        self._edge[trade] = c
        for p in (c.seller, c.buyer):
            self._by_party.setdefault(p, set()).add(trade)
        self._dirty |= self.graph.add(trade, c.seller, c.buyer, c.t)

    def put_kyc(self, record: KycRecord) -> None:
        """Set a party's KYC record; marks the trades of every party whose links changed."""
        for p in self.kyc.put(record):
            self._dirty |= self._by_party.get(p, set())

    def missing(self, trade: str) -> list[str]:
        """The required kinds the trade still lacks."""
        kinds = self._kinds.get(trade)
        return [k for k in self.tolerances.required if kinds is None or kinds[k] == 0]

    def judge(self) -> dict[str, ReconResult]:
        """Re-judge every marked trade that has all required kinds; return the new results.
        A marked trade still lacking a kind stays pending (:meth:`missing` says what)."""
        out: dict[str, ReconResult] = {}
        required = self.tolerances.required
        for trade in sorted(self._dirty):
            kinds = self._kinds.get(trade)
            if kinds is None or any(kinds[k] == 0 for k in required):
                continue
            docs = TradeDocs.of(trade, self._docs[trade].values())
            related = self.graph.related(trade, self.kyc)
            out[trade] = self._results[trade] = reconcile(docs, related, self.tolerances)
        self._dirty.clear()
        return out

    def result(self, trade: str) -> ReconResult | None:
        """The latest judgement of a trade (None while it is pending)."""
        return self._results.get(trade)

    def results(self) -> dict[str, ReconResult]:
        """Every trade's latest judgement."""
        return dict(self._results)

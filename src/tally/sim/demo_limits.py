"""Objective credit feeding the chain in ``tally demo``: the bank records its suppliers'
limits from the knowledge graph's scorecard.

For each supplier the bank scores (:meth:`tally.cloud.graphsvc.GraphService.score`: points and
reason codes from what the bank can see), the limit policy
(:func:`tally.graph.scorecard.limit_for`) turns the score, the supplier's outstanding
receivable notes and its last year's sales into a limit, and the bank records it on chain with
``credit.set_limit`` — the interface finance already has. The projector then carries the
``limit/<bank>/<party>`` entry into the read model, so the supplier's workspace shows the
limit and the regulator can trace it to its transaction. A score below the policy's cutoff
records a limit of 0 (a decision too). Simulated, like everything in the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from tally.cloud.graphsvc import GraphService
from tally.graph.scorecard import limit_for
from tally.graph.store import Graph
from tally.sim.finance_chain import FinanceChain

YEAR_MS = 365 * 86_400_000
SETTLED = "settled"


def receivables_and_sales(graph: Graph, party: str) -> tuple[int, int]:
    """The party's outstanding receivable notes and its sales over the year to the graph's
    "now", in fen."""
    since = graph.as_of - YEAR_MS
    notes = sum(n.amount for n in graph.notes.values() if n.holder == party and n.state != SETTLED)
    sales = sum(t.amount for t in graph.trades.values() if t.seller == party and t.t >= since)
    return notes, sales


async def record_scored_limits(
    graph: GraphService, chain: FinanceChain, bank: str, parties: Sequence[str]
) -> list[dict[str, Any]]:
    """Score each party, record its limit as ``bank``; one report entry per party: the
    score, its reasons, the limit and the transaction's outcome."""
    out: list[dict[str, Any]] = []
    for party in parties:
        if not graph.has_firm(party):
            out.append({"party": party, "recorded": False, "why": "not in the knowledge graph"})
            continue
        score = graph.score(party)
        notes, sales = graph.read(partial(receivables_and_sales, party=party))
        advice = limit_for(score.score, party, receivables=notes, annual_sales=sales)
        res = await chain.call("credit", "set_limit", [party, advice.limit, advice.currency], bank)
        out.append({
            "party": party, "score": score.score,
            "reasons": [r.code for r in score.reasons][:5], "limit_fen": advice.limit,
            "currency": advice.currency, "why": list(advice.reasons), "recorded": res.ok,
            "outcome": res.text, "tx": res.tx_id.hex(),
        })  # fmt: skip
    return out


__all__ = ["receivables_and_sales", "record_scored_limits"]

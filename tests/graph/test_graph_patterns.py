"""Shell companies and circular trades on hand-built graphs."""

from __future__ import annotations

import pytest
from graph_support import AS_OF, DAY, T0, firm, graph, rising, telemetry, trade

from tally.graph.patterns import circular_trades, shell_companies, shell_firms
from tally.graph.store import Graph


def _shells_and_family() -> Graph:
    young, thin = AS_OF - 200 * DAY, 10_000_000
    p = (("P1", "legal_rep"), ("P1", "shareholder"))
    return graph(
        # three shells: one director, one office, no devices, trading among themselves
        firm("H1", persons=p, addresses=("OFF",), capital=thin, founded=young),
        firm("H2", persons=p, addresses=("OFF",), capital=thin, founded=young),
        firm("H3", persons=(("P1", "director"),), addresses=("OFF",), capital=thin, founded=young),
        trade("T1", "H1", "H2", 5000),
        # a family: one founder and compound, real production, old, outside customers
        firm("F1", persons=(("P2", "legal_rep"),), addresses=("CMP",)),
        firm("F2", persons=(("P2", "legal_rep"),), addresses=("CMP",)),
        telemetry("F1", rising()),
        telemetry("F2", rising()),
        trade("T2", "F1", "F2", 100),
        trade("T3", "F1", "X", 5000),
        trade("T4", "F2", "Y", 5000),
        # a serial entrepreneur: one person, two addresses (not a candidate)
        firm("E1", persons=(("P3", "legal_rep"),), addresses=("AD1",), capital=thin, founded=young),
        firm("E2", persons=(("P3", "legal_rep"),), addresses=("AD2",), capital=thin, founded=young),
        # a business park: one address, different persons (not a candidate)
        firm("K1", persons=(("P4", "legal_rep"),), addresses=("PARK",)),
        firm("K2", persons=(("P5", "legal_rep"),), addresses=("PARK",)),
    )


def test_shells_are_flagged_and_the_family_is_not() -> None:
    groups = shell_companies(_shells_and_family(), AS_OF)
    assert [[f.firm for f in gr.firms] for gr in groups] == [["F1", "F2"], ["H1", "H2", "H3"]]
    fam, shells = groups
    assert fam.persons == ("P2",) and fam.addresses == ("CMP",) and fam.flagged == ()
    assert {f.firm: f.signals for f in fam.firms} == {"F1": (), "F2": ()}
    assert shells.flagged == ("H1", "H2", "H3")
    assert shells.firms[0].signals == ("no_production", "young", "thin_capital", "inward_trade")
    assert shell_firms(groups) == ["H1", "H2", "H3"]
    strict = shell_companies(_shells_and_family(), AS_OF, min_signals=5)
    assert shell_firms(strict) == []
    old = shell_companies(_shells_and_family(), AS_OF + 3000 * DAY)
    assert shell_firms(old) == ["H1", "H2", "H3"]  # three signals are still enough


def test_circular_trades_within_the_window() -> None:
    g = graph(
        trade("T1", "A", "B", 100, T0),
        trade("T2", "B", "C", 101, T0 + 10 * DAY),
        trade("T3", "C", "A", 99, T0 + 20 * DAY),
        trade("T0", "C", "A", 99, T0 - 200 * DAY),
        # a slow loop: hops more than 90 days apart
        trade("U1", "P", "Q", 5, T0),
        trade("U2", "Q", "R", 5, T0 + 100 * DAY),
        trade("U3", "R", "P", 5, T0 + 200 * DAY),
        # reciprocal trade between two firms is not circular
        trade("V1", "M", "N", 5, T0),
        trade("V2", "N", "M", 5, T0),
    )
    found = circular_trades(g)
    assert [c.firms for c in found] == [("A", "B", "C")]
    assert found[0].trades == ("T1", "T2", "T3") and found[0].span_ms == 20 * DAY
    assert found[0].amount == 300 and found[0].text() == "A → B → C → A"
    wide = circular_trades(g, window_days=250)
    assert [c.firms for c in wide] == [("A", "B", "C"), ("P", "Q", "R")]
    assert [c.firms for c in circular_trades(g, min_len=2)] == [("A", "B", "C"), ("M", "N")]
    with pytest.raises(ValueError, match="need 2 <= min_len <= max_len"):
        circular_trades(g, min_len=4, max_len=3)

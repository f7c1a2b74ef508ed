"""The cloud's knowledge-graph service: it follows committed state (``apply_state``,
``refresh``, ``follow`` on the hub), its cached answers change with the graph, and the
demo's economy is renamed around the demo's tenants (all SIMULATED)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tally.cloud.graphsvc import GraphService, renamed
from tally.cloud.live import EventHub
from tally.graph.records import Firm, Guarantee, Loan
from tally.sim.demo_graph import demo_graph

T0 = 1_767_225_600_000


def note(nid: str, state: str = "live") -> dict[str, Any]:
    return {"id": nid, "issuer": "core-x", "holder": "sme-y", "amount": 500_000, "issued": T0,
            "due": T0 + 86_400_000, "trade": "T-1", "state": state, "confirmed": "bank-z",
            "financed": None, "endorsers": []}  # fmt: skip


class Source:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        return sorted((k, v) for k, v in self.state.items() if k.startswith(prefix))


def test_apply_state_keeps_what_the_graph_follows() -> None:
    svc = GraphService()
    assert svc.apply_state("note/N-1", note("N-1")) is True
    assert svc.apply_state("party/x", {"id": "x"}) is False
    assert svc.apply_state("note/N-2", None) is False
    assert svc.read(lambda g: g.notes["N-1"].confirmed) == "bank-z"
    assert svc.banks_of("sme-y") == {"bank-z"} and svc.banks_of("core-x") == {"bank-z"}
    svc.apply_state("note/N-1", note("N-1", "settled"))
    assert svc.read(lambda g: g.edge_count("notes")) == 0


def test_cached_circles_follow_changes() -> None:
    svc = GraphService()
    for f in ("A", "B"):
        svc.graph.add(Firm(f, f"Simulated {f}", "sme", "machining", 1, 0))
    svc.graph.add(Loan("L1", "K", "A", "working", 9, 9, 0, 1, "active", 0))
    svc.graph.add(Guarantee("G1", "A", "B", "K", "L2", 5, 1, True))
    assert svc.circles() == []
    svc.graph.add(Guarantee("G2", "B", "A", "K", "L1", 5, 2, True))
    assert [c.firms for c in svc.circles()] == [("A", "B")]
    svc.graph.add(Guarantee("G2", "B", "A", "K", "L1", 5, 2, False))
    assert svc.circles() == []


def test_renamed_maps_ids_in_fields_and_tuples() -> None:
    g = Guarantee("G1", "S1", "S2", "BANK01", "L1", 5, 1, True)
    assert renamed(g, {"BANK01": "bank", "S2": "sup"}) == Guarantee(
        "G1", "S1", "sup", "bank", "L1", 5, 1, True
    )


async def test_follow_refreshes_after_events() -> None:
    svc, src, hub, stop = GraphService(), Source(), EventHub(), asyncio.Event()
    task = asyncio.create_task(svc.follow(hub, src, stop))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while svc.refreshes < 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        src.state["note/N-9"] = note("N-9")
        for height in (1, 2, 3):  # a burst: drained, then one refresh
            hub.publish("block", {"height": height}, None)
        while "N-9" not in svc.read(lambda g: set(g.notes)):
            assert asyncio.get_running_loop().time() < deadline, "the graph did not follow"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def test_the_demo_economy_is_around_the_demo_tenants(tmp_path: Path) -> None:
    orgs = {"bank": ("bank", "banking"), "core": ("core_enterprise", "steel"),
            "sme-steel": ("supplier", "bulk_commodities")}  # fmt: skip
    svc, names = demo_graph(tmp_path / "economy", orgs)
    assert svc.simulated and (tmp_path / "economy" / "manifest.json").exists()
    assert set(names.values()) == {"bank", "core", "sme-strip-1", "sme-coil-2"}
    assert svc.is_bank("bank") and svc.is_core("core") and svc.has_firm("sme-steel")
    assert "bank" in svc.banks_of("core") and "bank" in svc.banks_of("sme-steel")
    assert "sme-strip-1" in svc.tiers("core", 1)[1]
    assert any(any("bank" in svc.banks_of(f) for f in c.firms) for c in svc.circles())


def test_the_next_days_brief_compares_with_the_last_one() -> None:
    """A circle closed today is new in today's brief; in tomorrow's it is known (yesterday's
    brief had it) unless it is another one."""
    day = 86_400_000
    svc = GraphService()
    for f in ("A", "B", "C", "D"):
        svc.graph.add(Firm(f, f"Simulated {f}", "sme", "machining", 1, 0))
    svc.graph.add(Loan("L1", "K", "A", "working", 9, 9, T0, T0 + 90 * day))
    svc.graph.add(Loan("L2", "K", "B", "working", 9, 9, T0, T0 + 90 * day))
    svc.graph.add(Guarantee("G1", "A", "B", "K", "L2", 5, T0 + 1))
    svc.graph.add(Guarantee("G2", "B", "A", "K", "L1", 5, T0 + 2))

    def new_circles() -> list[list[str]]:
        got = svc.brief(["K"], [])["banks"]["K"]["new_guarantee_circles"]
        return sorted(sorted(c["firms"]) for c in got)

    assert new_circles() == [["A", "B"]]  # closed within the day, nothing to compare with
    assert new_circles() == [["A", "B"]]  # the same day: the same answer
    svc.graph.add(Loan("L3", "K", "C", "working", 9, 9, T0 + day, T0 + 90 * day))
    svc.graph.add(Loan("L4", "K", "D", "working", 9, 9, T0 + day, T0 + 90 * day))
    svc.graph.add(Guarantee("G3", "C", "D", "K", "L4", 5, T0 + day + 1))
    svc.graph.add(Guarantee("G4", "D", "C", "K", "L3", 5, T0 + day + 2))
    assert svc.as_of // day == T0 // day + 1
    assert new_circles() == [["C", "D"]]  # A-B was in yesterday's brief

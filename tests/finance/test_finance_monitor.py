"""The collateral monitor: hand-checked coverage, every state transition, unverified goods,
unauthorised removal against authorised releases, facts from what the edge really emits, bad
input, and incremental bookkeeping equal to a full recount over random event sequences."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally import formats as F
from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner, Measurement, Reading
from tally.edge.formats import Event, sign_object
from tally.edge.rules import Firing, Observation, RuleEngine
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_edge import (
    facts_from_envelope,
    facts_from_event,
    facts_from_reading,
    facts_from_signed_event,
)
from tally.finance.monitor_model import (
    DISPOSAL,
    MARGIN_CALL,
    OK,
    CommodityParams,
    DeviceCondition,
    Intent,
    Loan,
    MonitorError,
    OutScan,
    PledgedReceipt,
    Ref,
    Removal,
    Result,
    WeightReading,
)
from tally.finance.orders import ReleaseOrder
from tally.finance.prices import PriceTick

BANK = "bank-a"
H = 3_600_000
T0 = 1_760_000_000_000
COPPER = CommodityParams(D("0.8"), D("0.7"), D("1.3"), D("1.2"), H)
ALU = CommodityParams(D("0.7"), D("0.6"), D("1.3"), D("1.2"), 2 * H)


class World:
    """A monitor with copper and aluminium parameters, load cells lc1..lc5 at s1/A1..A5 and a
    door switch door1 at A1."""

    def __init__(self, **kw: Any) -> None:
        self.m = CollateralMonitor(BANK, **kw)
        self.t = T0
        self.n = 0
        self.m.set_params("copper", COPPER, self.t)
        self.m.set_params("aluminium", ALU, self.t)
        for i in range(1, 6):
            self.m.add_device(f"lc{i}", "s1", f"A{i}")
        self.m.add_device("door1", "s1", "A1")

    def tick(self, dt: int = 1000) -> int:
        self.t += dt
        return self.t

    def weigh(self, loc: str, w: str, dev: str | None = None) -> Result:
        self.n += 1
        dev = dev or "lc" + loc[1:]
        return self.m.apply(
            WeightReading("s1", loc, dev, D(w), self.tick(), Ref("reading", f"{dev}/{self.n}"))
        )

    def price(self, commodity: str, p: str) -> Result:
        return self.m.apply(PriceTick(commodity, D(p), "CNY", self.tick(), "test"))

    def cond(self, dev: str, condition: str) -> Result:
        ev = (Ref("event", f"edge-1/{self.n}"),)
        self.n += 1
        return self.m.apply(DeviceCondition(dev, condition, self.tick(), ev))

    def loan(
        self,
        lid: str,
        principal: int,
        receipts: list[tuple[str, ...]],
        cash: int = 0,
        commodity: str = "copper",
    ) -> Result:
        """``receipts``: (number, location, weight[, commodity]); lot ``lot-<number>``."""
        rs = tuple(
            PledgedReceipt(r[0], "s1", r[1], "lot-" + r[0], D(r[2]), r[3] if len(r) > 3 else None)
            for r in receipts
        )
        return self.m.add_loan(
            Loan(lid, BANK, "sme-1", principal, cash, commodity, rs), self.tick()
        )

    def order(self, oid: str, no: str, loc: str, w: str, frm: int, to: int) -> None:
        self.m.authorise_release(
            ReleaseOrder(oid, no, "s1", loc, "lot-" + no, D(w), frm, to, BANK, None, "release", frm)
        )


def simple(principal: int = 100_000_000, price: str = "100000") -> World:
    """Loan L: 20 t of copper (R1, lot-R1) at A1, measured 20 t: coverage = price × 1.6e-5."""
    w = World()
    w.loan("L", principal, [("R1", "A1", "20")])
    w.weigh("A1", "20")
    w.price("copper", price)
    return w


def snapshot(m: CollateralMonitor) -> Any:
    loans = {
        lid: (m.state(lid), m.coverage(lid), m.verified_weight(lid), m.deadline(lid))
        for lid in m.loan_ids()
    }
    return m.now, loans


# -- coverage by hand -------------------------------------------------------------------------


def test_coverage_by_hand_two_commodities_and_cash() -> None:
    w = World()
    r = w.m.add_loan(
        Loan(
            "L1",
            BANK,
            "sme-1",
            50_000_000,
            5_000_000,
            "copper",
            (
                PledgedReceipt("R1", "s1", "A1", "lot1", D("20")),
                PledgedReceipt("R2", "s1", "A2", "lot2", D("10"), "aluminium"),
            ),
        ),
        w.tick(),
    )
    assert r.alerts == [] and w.m.coverage("L1") is None  # nothing measured yet
    w.weigh("A1", "25")
    w.weigh("A2", "10")
    w.price("copper", "85000")
    assert w.m.coverage("L1") is None  # verified aluminium has no price yet
    w.price("aluminium", "19000")
    # (20 × 85000 × 0.8 + 10 × 19000 × 0.7) × 100 = 149 300 000 fen; + 5 000 000 cash
    # = 154 300 000 / 50 000 000
    assert w.m.coverage("L1") == D("3.086")
    assert w.m.verified_weight("L1") == {"copper": D("20"), "aluminium": D("10")}
    assert w.m.state("L1") == OK
    assert w.m.recompute("L1") == ({"copper": D("20"), "aluminium": D("10")}, D("3.086"))


def test_goods_share_the_measured_stock_pro_rata() -> None:
    w = World()
    w.loan("L1", 50_000_000, [("R1", "A1", "20"), ("R2", "A2", "10", "aluminium")], 5_000_000)
    w.loan("L2", 10_000_000, [("R3", "A1", "10")])
    w.weigh("A1", "30")
    w.weigh("A2", "10")
    w.price("copper", "85000")
    w.price("aluminium", "19000")
    assert w.m.verified_weight("L1")["copper"] == D("20")
    w.m.set_other_claims("s1", "A1", D("10"), w.tick())
    w.weigh("A1", "20")  # 20 t measured for 40 t of receipts: each counts half
    assert w.m.verified_weight("L1")["copper"] == D("10")
    assert w.m.verified_weight("L2")["copper"] == D("5")
    # (10 × 85000 × 0.8 + 133 000) × 100 + 5 000 000 = 86 300 000 / 50 000 000
    assert w.m.coverage("L1") == D("1.726")
    # L2: 5 × 85000 × 0.8 × 100 / 10 000 000
    assert w.m.coverage("L2") == D("3.4")
    w.m.set_other_claims("s1", "A1", D("0"), w.tick())
    w.weigh("A1", "2")  # 2 t for 30 t: 20 × 2 / 30 = 1.333333 (rounded down), 10 × 2 / 30
    assert w.m.verified_weight("L1")["copper"] == D("1.333333")
    assert w.m.verified_weight("L2")["copper"] == D("0.666666")


def test_unhealthy_sensors_take_goods_out_of_coverage_until_back() -> None:
    w = World()
    w.loan("L1", 50_000_000, [("R1", "A1", "20"), ("R2", "A2", "10", "aluminium")], 60_000_000)
    w.weigh("A1", "20")
    w.weigh("A2", "10")
    w.price("copper", "85000")
    w.price("aluminium", "19000")
    # (149 300 000 + 60 000 000) / 50 000 000
    assert w.m.coverage("L1") == D("4.186")
    r = w.cond("lc1", "offline")
    (a,) = r.alerts
    assert (a.kind, a.loan, a.severity) == ("collateral_unverified", "L1", "warning")
    # copper unverified: (13 300 000 + 60 000 000) / 50 000 000
    assert (a.coverage_before, a.coverage_after) == (D("4.186"), D("1.466"))
    assert a.evidence == (Ref("event", "edge-1/2"),)
    assert a.detail == {"location": "s1/A1", "device": "lc1", "condition": "offline"}
    assert w.m.verified_weight("L1")["copper"] == 0
    assert w.weigh("A1", "20").alerts == []  # readings still come, the goods stay unverified
    assert w.m.coverage("L1") == D("1.466")
    assert w.cond("door1", "tamper").alerts == []  # still unverified: no new alert
    assert w.cond("lc1", "online").alerts == []  # the door is still tampered with
    (a,) = w.cond("door1", "tamper_cleared").alerts
    assert (a.kind, a.severity, a.coverage_after) == ("collateral_verified", "info", D("4.186"))
    assert w.cond("lc2", "uncalibrated").kinds() == ["collateral_unverified"]
    assert w.m.coverage("L1") == D("3.92")  # aluminium out: (136 000 000 + 60 000 000) / 5e7
    assert w.cond("lc2", "calibrated").kinds() == ["collateral_verified"]
    assert w.m.coverage("L1") == D("4.186")


def test_older_facts_are_ignored() -> None:
    w = World()
    w.loan("L", 100_000_000, [("R1", "A1", "20")], cash=200_000_000)
    w.weigh("A1", "20")
    w.price("copper", "100000")
    assert w.m.coverage("L") == D("3.6")
    before = snapshot(w.m)
    late = WeightReading("s1", "A1", "lc1", D("5"), T0, Ref("reading", "old"))
    assert w.m.apply(late) == Result()
    assert w.m.apply(PriceTick("copper", D("1"), "CNY", T0, "test")) == Result()
    assert snapshot(w.m) == before
    assert w.cond("lc1", "offline").kinds() == ["collateral_unverified"]
    assert w.m.coverage("L") == D("2")
    stale = DeviceCondition("lc1", "online", T0, (Ref("event", "old"),))
    assert w.m.apply(stale) == Result()
    assert w.m.coverage("L") == D("2")
    assert w.cond("lc1", "online").kinds() == ["collateral_verified"]
    assert w.m.coverage("L") == D("3.6")


# -- the state machine ------------------------------------------------------------------------


def test_ok_to_margin_call_and_cured_by_cash_margin() -> None:
    w = simple()
    assert w.m.coverage("L") == D("1.6")
    assert w.price("copper", "81250").alerts == []  # exactly 1.3 is not below the line
    r = w.price("copper", "80000")
    (a,) = r.alerts
    assert (a.kind, a.severity, a.t) == ("margin_call", "warning", w.t)
    assert (a.coverage_before, a.coverage_after) == (D("1.3"), D("1.28"))
    assert a.evidence == (Ref("price", f"test/copper/{w.t}/80000"),)
    assert a.detail == {"warning": D("1.3"), "disposal": D("1.2"), "deadline": w.t + H}
    assert r.intents == [Intent("loans.margin_call", "L", {"id": "L", "coverage": D("1.28")})]
    assert (w.m.state("L"), w.m.deadline("L")) == (MARGIN_CALL, w.t + H)
    assert w.price("copper", "79000").alerts == []  # deeper, still above disposal: no new call
    w.price("copper", "80000")
    assert w.m.add_cash_margin("L", 1_999_999, w.tick(), Ref("posting", "p1")).alerts == []
    r = w.m.add_cash_margin("L", 1, w.tick(), Ref("posting", "p2"))
    (a,) = r.alerts  # (128 000 000 + 2 000 000) / 100 000 000 = 1.3
    assert (a.kind, a.severity, a.coverage_after) == ("cured", "info", D("1.3"))
    assert a.evidence == (Ref("posting", "p2"),)
    assert r.intents == []
    assert (w.m.state("L"), w.m.deadline("L")) == (OK, None)


def test_cured_by_top_up_of_goods_once_they_are_measured() -> None:
    w = simple()
    w.price("copper", "80000")
    assert w.m.state("L") == MARGIN_CALL
    r = w.m.top_up(
        "L", [PledgedReceipt("R2", "s1", "A2", "lot-R2", D("5"))], w.tick(), Ref("tx", "t1")
    )
    assert r.alerts == [] and w.m.coverage("L") is None  # A2 never measured: unknown, waits
    (a,) = w.weigh("A2", "5").alerts
    # (20 + 5) × 80000 × 0.8 × 100 / 100 000 000
    assert (a.kind, a.coverage_after) == ("cured", D("1.6"))
    assert w.m.state("L") == OK


def test_cured_by_price_recovery() -> None:
    w = simple()
    w.price("copper", "80000")
    assert w.price("copper", "90000").kinds() == ["cured"]


def test_cure_period_expiry_disposes() -> None:
    w = simple()
    w.price("copper", "80000")
    call_ref = Ref("price", f"test/copper/{w.t}/80000")
    deadline = w.m.deadline("L")
    assert deadline is not None
    assert w.m.advance(deadline - 1) == Result()
    r = w.m.advance(deadline)
    (a,) = r.alerts
    assert (a.kind, a.severity, a.t) == ("disposal", "critical", deadline)
    assert a.detail["reason"] == "the cure period ended"
    assert a.evidence == (Ref("margin_call", f"L/{deadline - H}"), call_ref)
    assert r.intents == [
        Intent("receipts.freeze", "R1", {"no": "R1", "reason": "loan L: the cure period ended"}),
        Intent(
            "warehouse.stop_outbound",
            "s1/A1",
            {"site": "s1", "location": "A1", "lots": ["lot-R1"], "loan": "L"},
        ),
        Intent("loans.default", "L", {"id": "L"}),
    ]
    assert w.m.state("L") == DISPOSAL
    assert w.price("copper", "200000").alerts == []  # disposal is final
    assert w.m.state("L") == DISPOSAL


def test_a_cure_at_the_deadline_is_too_late() -> None:
    w = simple()
    w.price("copper", "80000")
    deadline = w.m.deadline("L")
    assert deadline is not None
    r = w.m.add_cash_margin("L", 10_000_000, deadline, Ref("posting", "late"))
    assert r.kinds() == ["disposal"]


def test_margin_call_to_disposal_below_the_disposal_line() -> None:
    w = simple()
    w.price("copper", "75000")  # exactly 1.2: a margin call, not disposal
    assert w.m.state("L") == MARGIN_CALL
    r = w.price("copper", "74999")
    (a,) = r.alerts
    assert (a.kind, a.coverage_after) == ("disposal", D("1.199984"))
    assert a.detail["reason"] == "coverage is below the disposal line"
    assert [i.action for i in r.intents] == [
        "receipts.freeze",
        "warehouse.stop_outbound",
        "loans.default",
    ]


def test_ok_straight_to_disposal() -> None:
    w = simple()
    (a,) = w.price("copper", "70000").alerts
    assert (a.kind, a.coverage_before, a.coverage_after) == ("disposal", D("1.6"), D("1.12"))
    assert w.m.state("L") == DISPOSAL


def test_new_parameters_apply_at_once() -> None:
    w = simple()
    stricter = CommodityParams(D("0.8"), D("0.7"), D("1.7"), D("1.2"), H)
    r = w.m.set_params("copper", stricter, w.tick())
    assert r.kinds() == ["margin_call"]
    assert r.alerts[0].evidence == (Ref("params", "copper"),)


def test_check_release() -> None:
    w = simple()
    assert w.m.check_release("L", "R1", D("1")) is None  # 19 t: 1.52
    assert w.m.check_release("L", "R1", D("5")) == (
        "releasing 5 t of R1 would bring coverage of L to 1.200000, below the warning line 1.3"
    )
    assert w.m.check_release("L", "R9", D("1")) == "receipt R9 does not secure loan L"
    w.price("copper", "80000")
    assert w.m.check_release("L", "R1", D("1")) == (
        "loan L is under a margin call: releases are blocked"
    )


def test_release_and_repayment_move_coverage() -> None:
    w = simple(principal=50_000_000)  # 3.2
    w.m.release_receipt("L", "R1", D("5"), w.tick(), Ref("tx", "rel"))
    assert w.m.coverage("L") == D("2.4")  # 15 t
    w.m.set_principal("L", 40_000_000, w.tick(), Ref("posting", "repay"))
    assert w.m.coverage("L") == D("3")
    w.m.release_receipt("L", "R1", D("15"), w.tick(), Ref("tx", "rel2"))
    assert w.m.verified_weight("L") == {"copper": 0}
    assert w.m.coverage("L") == 0
    w.m.remove_loan("L", w.tick())
    assert w.m.loan_ids() == []


# -- unauthorised removal -----------------------------------------------------------------------


def test_weight_drop_without_release_is_an_unauthorised_removal() -> None:
    w = simple(principal=50_000_000)
    first = Ref("reading", "lc1/1")
    r = w.weigh("A1", "12")
    (a,) = r.alerts
    assert (a.kind, a.loan, a.severity, a.t) == ("unauthorised_removal", "L", "critical", w.t)
    assert (a.coverage_before, a.coverage_after) == (D("3.2"), D("1.92"))
    assert a.evidence == (first, Ref("reading", "lc1/2"))
    assert a.detail == {
        "location": "s1/A1",
        "device": "lc1",
        "drop_t": D("8"),
        "explained_release_t": D("0"),
        "unexplained_t": D("8"),
    }


def test_authorised_release_explains_the_drop() -> None:
    w = simple(principal=50_000_000)
    w.order("REL-1", "R1", "A1", "8", w.t, w.t + H)
    w.m.release_receipt("L", "R1", D("8"), w.tick(), Ref("tx", "rel"))
    assert w.weigh("A1", "12").alerts == []
    assert w.m.coverage("L") == D("1.92")
    # the order is used up: a further drop is unexplained
    assert w.weigh("A1", "10").kinds() == ["unauthorised_removal"]


def test_release_covering_part_of_the_drop() -> None:
    w = simple(principal=50_000_000)
    w.order("REL-1", "R1", "A1", "3", w.t, w.t + H)
    (a,) = w.weigh("A1", "12").alerts
    assert (a.detail["explained_release_t"], a.detail["unexplained_t"]) == (D("3"), D("5"))
    assert a.evidence[-1] == Ref("release", "REL-1")


def test_a_revoked_release_explains_nothing() -> None:
    w = simple(principal=50_000_000)
    w.order("REL-1", "R1", "A1", "8", w.t, w.t + H)
    assert w.m.revoke_release("REL-1") is True
    assert w.m.revoke_release("REL-1") is False  # gone already
    assert w.m.revoke_release("REL-404") is False
    assert w.weigh("A1", "12").kinds() == ["unauthorised_removal"]


def test_release_outside_its_validity_does_not_explain() -> None:
    w = simple(principal=50_000_000)
    w.order("REL-1", "R1", "A1", "8", w.t - 2 * H, w.t - H)
    assert w.weigh("A1", "12").kinds() == ["unauthorised_removal"]


def test_noise_is_not_a_removal_but_a_slow_drain_is() -> None:
    w = simple(principal=50_000_000)
    assert w.weigh("A1", "19.9").alerts == []
    assert w.weigh("A1", "20.05").alerts == []
    assert w.weigh("A1", "19.85").alerts == []  # 0.15 below the level
    assert w.weigh("A1", "19.7").kinds() == ["unauthorised_removal"]  # 0.3 below it


def test_drop_where_nothing_is_pledged_is_not_an_alert() -> None:
    w = simple(principal=50_000_000)
    w.weigh("A3", "50")
    assert w.weigh("A3", "10").alerts == []


def test_out_scans() -> None:
    w = simple(principal=50_000_000)
    scan = OutScan("s1", "lot-R1", w.tick(), "gate1", Ref("reading", "gate1/1"))
    (a,) = w.m.apply(scan).alerts
    assert (a.kind, a.severity, a.evidence) == ("unauthorised_removal", "critical", (scan.ref,))
    assert a.detail == {"location": "s1/A1", "device": "gate1", "lot": "lot-R1"}
    again = OutScan("s1", "lot-R1", w.tick(), "gate1", Ref("reading", "gate1/2"))
    assert w.m.apply(again).alerts == []  # one alert per lot and location per window
    later = OutScan("s1", "lot-R1", w.tick(900_001), "gate1", Ref("reading", "gate1/3"))
    assert w.m.apply(later).kinds() == ["unauthorised_removal"]
    w.order("REL-1", "R1", "A1", "8", w.t, w.t + H)
    ok = OutScan("s1", "lot-R1", w.tick(900_001), "gate1", Ref("reading", "gate1/4"))
    assert w.m.apply(ok).alerts == []
    foreign = OutScan("s1", "lot-X", w.tick(), "gate1", Ref("reading", "gate1/5"), "A1")
    assert w.m.apply(foreign).kinds() == ["unauthorised_removal"]
    nowhere = OutScan("s1", "lot-Y", w.tick(), "gate1", Ref("reading", "gate1/6"))
    assert w.m.apply(nowhere).alerts == []


def test_edge_removal_event_raises_the_alert_with_its_evidence() -> None:
    w = simple(principal=50_000_000)
    key = SigningKey.generate("intl")
    detail = {"location": "A1", "drop_t": D("8"), "unexplained_t": D("7.5")}
    ev = Event(
        "edge-1", "s1", 7, "plaus-a1", "unexplained_weight_drop", "critical", w.tick(),
        ("lc1",), (b"\x01" * 32, b"\x02" * 32), tuple(sorted(detail.items())),
    )  # fmt: skip
    cose = sign_object(key, F.CTY_EVENT, "edge-1", ev.to_cbor())
    (fact,) = facts_from_signed_event(cose, key.public)
    (a,) = w.m.apply(fact).alerts
    h = hashlib.sha256(cose).digest()
    assert a.kind == "unauthorised_removal"
    assert a.evidence == (
        Ref("event", "edge-1/7", h),
        Ref("reading", "", b"\x01" * 32),
        Ref("reading", "", b"\x02" * 32),
    )
    assert a.detail == {
        "location": "s1/A1",
        "drop_t": D("8"),
        "unexplained_t": D("7.5"),
        "source": "edge",
    }
    other = Removal("s1", "A3", w.tick(), D("8"), D("8"), ())
    assert w.m.apply(other).alerts == []


# -- what the edge really emits ---------------------------------------------------------------


class Edge:
    """The real rules engine of a site, its firings signed as edge events."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.engine = RuleEngine.from_config(rules, "s1")
        self.key = SigningKey.generate("intl")
        self.seq = 0
        self.ctr: dict[str, int] = {}

    def obs(
        self, dev: str, profile: str, t: int, m: dict[str, str], labels: dict[str, str]
    ) -> Observation:
        ctr = self.ctr.get(dev, 0)
        self.ctr[dev] = ctr + 1
        ms = tuple(Measurement(q, D(v), "t") for q, v in m.items())
        r = Reading(
            dev, 0, ctr, b"" if ctr == 0 else b"p", t, b"fw", ms, tuple(sorted(labels.items()))
        )
        return Observation(
            dev, profile, "s1", r, hashlib.sha256(f"{dev}/{ctr}".encode()).digest(), t
        )

    def signed(self, firings: list[Firing]) -> list[bytes]:
        out = []
        for f in firings:
            self.seq += 1
            ev = Event(
                "edge-1", "s1", self.seq, f.rule, f.kind, f.sev, f.t, f.devs, f.refs, f.detail
            )
            out.append(sign_object(self.key, F.CTY_EVENT, "edge-1", ev.to_cbor()))
        return out


def test_plausibility_and_offline_events_of_the_real_edge_rules() -> None:
    w = simple(principal=50_000_000)
    edge = Edge(
        [
            {"id": "plaus-a1", "type": "plausibility", "location": "A1", "devices": ["lc1"],
             "window_ms": 600_000},
            {"id": "off", "type": "offline", "devices": ["lc1"], "timeout_ms": 900_000},
        ]
    )  # fmt: skip
    t = w.t
    seen: list[Result] = []

    def feed(firings: list[Firing]) -> None:
        for cose in edge.signed(firings):
            for fact in facts_from_signed_event(cose, edge.key.public):
                seen.append(w.m.apply(fact))

    for stock in ("20", "20", "14", "14"):
        t += 5_000
        feed(edge.engine.observe(edge.obs("lc1", "load_cell", t, {"weight": stock}, {})))
    feed(edge.engine.tick(t + 600_000))
    removal = [a for r in seen for a in r.alerts]
    assert [a.kind for a in removal] == ["unauthorised_removal"]
    assert removal[0].detail["unexplained_t"] == D("6")
    assert removal[0].evidence[0].kind == "event"
    seen.clear()
    feed(edge.engine.tick(t + 1_000_000))  # silent for more than 900 s: device_offline
    # the only goods of L are unverified now: coverage 0, below the disposal line
    assert [a.kind for r in seen for a in r.alerts] == ["collateral_unverified", "disposal"]
    assert w.m.coverage("L") == 0
    seen.clear()
    feed(edge.engine.observe(edge.obs("lc1", "load_cell", t + 1_010_000, {"weight": "20"}, {})))
    assert [a.kind for r in seen for a in r.alerts] == ["collateral_verified"]
    assert w.m.coverage("L") == D("3.2")


def test_facts_from_readings() -> None:
    key = SigningKey.generate("intl")
    cell = DeviceSigner("lc1", key, b"fw")
    env = cell.next(T0, (Measurement("weight", D("20.125"), "t"),), (("location", "A1"),))
    (f,) = facts_from_envelope("s1", env)
    assert f == WeightReading(
        "s1", "A1", "lc1", D("20.125"), T0, Ref("reading", "lc1/0/0", hashlib.sha256(env).digest())
    )
    settling = cell.next(T0 + 1, (Measurement("weight", D("3"), "t"),), (("stable", "0"),))
    assert facts_from_envelope("s1", settling, "A1") == []
    gate = DeviceSigner("gate1", key, b"fw")
    labels = (("direction", "out"), ("lot", "LOT-1"), ("tag", "urn:epc:1"))
    (scan,) = facts_from_envelope("s1", gate.next(T0, (), labels))
    assert isinstance(scan, OutScan) and (scan.lot, scan.location) == ("LOT-1", None)
    hb = Reading("lc1", 0, 5, b"p", T0, b"fw", heartbeat=True)
    assert facts_from_reading("s1", hb, b"h") == []
    other = Event("e", "s1", 1, "r", "out_of_range", "warning", T0, ("t1",), (), ())
    assert facts_from_event(other, b"h") == []
    bad = Event("e", "s1", 2, "r", "unexplained_weight_drop", "critical", T0, (), (), ())
    with pytest.raises(MonitorError, match=r"event e/2 \(unexplained_weight_drop\): detail"):
        facts_from_event(bad, b"h")


# -- bad input --------------------------------------------------------------------------------


def _receipt(no: str = "R9", w: Any = D("5"), loc: str = "A2") -> PledgedReceipt:
    return PledgedReceipt(no, "s1", loc, "lot-9", w)


def _loan(lid: str = "L9", bank: str = BANK, commodity: str = "copper", **kw: Any) -> Loan:
    receipts = kw.pop("receipts", (_receipt(),))
    return Loan(lid, bank, "sme-9", 10_000_000, 0, commodity, receipts)


BAD: list[tuple[str, Callable[[World], object], str]] = [
    ("bank", lambda w: w.m.add_loan(_loan(bank="bank-b"), w.t + 1),
     "loan L9 is lent by bank-b, not by bank-a"),
    ("dup", lambda w: w.m.add_loan(_loan("L"), w.t + 1), "loan L is already monitored"),
    ("pledged", lambda w: w.m.add_loan(_loan(receipts=(_receipt("R1"),)), w.t + 1),
     "loan L9: receipt R1 already secures loan L"),
    ("params", lambda w: w.m.add_loan(_loan(commodity="nickel"), w.t + 1),
     "loan L9: no lending parameters for commodity nickel"),
    ("weight", lambda w: w.m.add_loan(_loan(receipts=(_receipt(w=D("-1")),)), w.t + 1),
     "loan L9: receipt R9: weight Decimal('-1') must be a positive finite Decimal"),
    ("float", lambda w: w.m.add_loan(_loan(receipts=(_receipt(w=1.5),)), w.t + 1),
     "loan L9: receipt R9: weight 1.5 must be a positive finite Decimal"),
    ("twice", lambda w: w.m.top_up("L", [_receipt(), _receipt()], w.t + 1, Ref("tx", "x")),
     "loan L: receipt R9 is listed twice"),
    ("lines", lambda w: w.m.set_params(
        "copper", CommodityParams(D("0.8"), D("0.7"), D("1.2"), D("1.2"), H), w.t + 1),
     "params of copper: warning line 1.2 must be above the disposal line 1.2"),
    ("haircut", lambda w: w.m.set_params(
        "copper", CommodityParams(D("1.1"), D("0.7"), D("1.3"), D("1.2"), H), w.t + 1),
     "params of copper: haircut 1.1 must be at most 1"),
    ("currency", lambda w: w.m.apply(PriceTick("copper", D("1"), "USD", w.t + 1, "x")),
     "price of copper is in USD, loans are in CNY"),
    ("placed",
     lambda w: w.m.apply(WeightReading("s1", "A2", "lc1", D("1"), w.t + 1, Ref("r", "x"))),
     "reading of lc1 names s1/A2, the device is at s1/A1"),
    ("condition", lambda w: w.m.apply(DeviceCondition("lc1", "broken", w.t + 1, ())),
     "device lc1: unknown condition 'broken' (one of ['calibrated', 'offline', 'online', "
     "'tamper', 'tamper_cleared', 'uncalibrated'])"),
    ("release", lambda w: w.m.release_receipt("L", "R1", D("30"), w.t + 1, Ref("tx", "x")),
     "release of R1: 30 t exceeds its 20 t"),
    ("cash", lambda w: w.m.add_cash_margin("L", 0, w.t + 1, Ref("p", "x")),
     "loan L: cash margin top-up 0 must be an integer >= 1"),
    ("unknown", lambda w: w.m.set_principal("L7", 1, w.t + 1, Ref("p", "x")),
     "loan L7 is not monitored"),
    ("device", lambda w: w.m.add_device("lc1", "s1", "A2"),
     "device lc1 is already placed at s1/A1"),
    ("order", lambda w: w.order("REL-1", "R1", "A1", "9", w.t, w.t + H),
     "release order REL-1 was already given with other terms"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "call", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_precisely_and_changes_nothing(
    name: str, call: Callable[[World], object], message: str
) -> None:
    w = simple()
    w.order("REL-1", "R1", "A1", "8", w.t, w.t + H)
    w.price("copper", "80000")  # under a margin call, so a time change would show
    before = snapshot(w.m)
    with pytest.raises(MonitorError) as e:
        call(w)
    assert str(e.value) == message
    assert snapshot(w.m) == before
    assert "unauthorised_removal" not in w.weigh("A1", "12").kinds()  # REL-1 is as it was


# -- incremental == full recount ------------------------------------------------------------


LOCS = ("A1", "A2", "A3", "A4", "A5")  # A5 is not measured until a "weigh" op
DEVS = ("lc1", "lc2", "lc3", "lc4", "door1")

_amount = st.integers(min_value=0, max_value=60_000).map(lambda n: D(n) / 1000)
OPS = st.one_of(
    st.tuples(
        st.just("price"), st.sampled_from(("copper", "aluminium")), st.integers(70, 130)
    ),
    st.tuples(st.just("weigh"), st.sampled_from(LOCS), _amount),
    st.tuples(st.just("cond"), st.sampled_from(DEVS), st.sampled_from(
        ("offline", "online", "tamper", "tamper_cleared", "uncalibrated", "calibrated"))),
    st.tuples(st.just("other"), st.sampled_from(LOCS), _amount),
    st.tuples(st.just("cash"), st.integers(0, 3), st.integers(1, 20_000_000)),
    st.tuples(st.just("principal"), st.integers(0, 3), st.integers(0, 300_000_000)),
    st.tuples(st.just("topup"), st.integers(0, 3), st.sampled_from(LOCS), _amount),
    st.tuples(st.just("release"), st.integers(0, 3), st.integers(0, 5), st.integers(1, 150)),
    st.tuples(st.just("advance"), st.integers(0, 3 * H)),
    st.tuples(st.just("cond"), st.sampled_from(DEVS), st.sampled_from(("offline", "online"))),
    st.tuples(st.just("order"), st.sampled_from(LOCS), _amount),
    st.tuples(st.just("removal"), st.sampled_from(LOCS)),
    st.tuples(st.just("scan"), st.sampled_from(LOCS), st.integers(0, 5)),
    st.tuples(st.just("close"), st.integers(0, 3)),
)  # fmt: skip


BASE = {"copper": 100_000, "aluminium": 20_000}


def _run(ops: list[tuple[Any, ...]], check: bool) -> list[Result]:
    """Four loans at coverage 1.35–1.48, measured and priced, then ``ops``."""
    w = World()
    w.loan("L0", 120_000_000, [("R0", "A1", "20"), ("R1", "A2", "5", "aluminium")])
    w.loan("L1", 60_000_000, [("R2", "A1", "10")], cash=1_000_000)
    w.loan("L2", 260_000_000, [("R3", "A3", "40"), ("R4", "A2", "8")])
    w.loan("L3", 12_000_000, [("R5", "A4", "12")], commodity="aluminium")
    for loc, stock in (("A1", "30"), ("A2", "13"), ("A3", "40"), ("A4", "12")):
        w.weigh(loc, stock)
    for c, p in BASE.items():
        w.price(c, str(p))
    results: list[Result] = []
    n = 0
    for op in ops:
        kind, loans = op[0], w.m.loan_ids()
        lid = loans[op[1] % len(loans)] if loans and isinstance(op[1], int) else None
        if kind == "price":
            results.append(w.price(op[1], str(BASE[op[1]] * op[2] // 100)))
        elif kind == "weigh":
            results.append(w.weigh(op[1], str(op[2])))
        elif kind == "cond":
            results.append(w.cond(op[1], op[2]))
        elif kind == "other":
            results.append(w.m.set_other_claims("s1", op[1], op[2], w.tick()))
        elif kind == "advance":
            results.append(w.m.advance(w.tick(op[1])))
        elif kind == "order":
            n += 1
            if op[2] > 0:
                w.order(f"O{n}", "R0", op[1], str(op[2]), w.t, w.t + H)
        elif kind == "removal":
            results.append(w.m.apply(Removal("s1", op[1], w.tick(), D(1), D(1), ())))
        elif kind == "scan":
            scan = OutScan("s1", f"lot-R{op[2]}", w.tick(), "gate", Ref("reading", "g"), op[1])
            results.append(w.m.apply(scan))
        elif lid is None:
            continue
        elif kind == "cash":
            results.append(w.m.add_cash_margin(lid, op[2], w.tick(), Ref("p", "c")))
        elif kind == "principal":
            results.append(w.m.set_principal(lid, op[2], w.tick(), Ref("p", "p")))
        elif kind == "topup" and op[3] > 0:
            n += 1
            r = PledgedReceipt(f"T{n}", "s1", op[2], f"lot-T{n}", op[3])
            results.append(w.m.top_up(lid, [r], w.tick(), Ref("tx", "t")))
        elif kind == "release":
            held = sorted(w.m.holdings(lid).items())
            if held:
                no, weight = held[op[2] % len(held)]
                part = max(D("0.001"), (weight * op[3] / 100).quantize(D("0.001")))
                res = w.m.release_receipt(lid, no, min(part, weight), w.tick(), Ref("tx", "r"))
                results.append(res)
        elif kind == "close":
            results.append(w.m.remove_loan(lid, w.tick()))
        if check:
            _check_consistent(w.m)
    return results


def _check_consistent(m: CollateralMonitor) -> None:
    for lid in m.loan_ids():
        vw, cov = m.recompute(lid)
        inc = {c: x for c, x in m.verified_weight(lid).items() if x}
        assert inc == {c: x for c, x in vw.items() if x}, lid
        assert m.coverage(lid) == cov, lid
        state, p = m.state(lid), COPPER if lid != "L3" else ALU
        deadline = m.deadline(lid)
        if state == OK:
            assert deadline is None
            assert cov is None or cov >= p.warning
        elif state == MARGIN_CALL:
            assert deadline is not None and m.now < deadline
            assert cov is None or p.disposal <= cov < p.warning
        else:
            assert state == DISPOSAL and deadline is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=20, max_size=80))
def test_incremental_equals_full_recount_and_is_deterministic(ops: list[tuple[Any, ...]]) -> None:
    first = _run(ops, check=True)
    assert _run(ops, check=False) == first

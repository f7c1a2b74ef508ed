"""Revoking an authorised release: a weight drop after the revocation is unexplained, one
before it stays explained; unknown refs, repeats and re-authorisation; determinism; the
gateway passes revocations to its engine."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from edge_rules_support import MIN, Feed, det, engine, kinds

from tally.edge.config import load_edge_config
from tally.edge.errors import EdgeError
from tally.edge.gateway import EdgeGateway
from tally.edge.rules import Firing, RuleEngine

T0 = 1_710_000_000_000
WINDOW = 10 * MIN
RULE = {
    "id": "a1",
    "type": "plausibility",
    "location": "A1",
    "devices": ["lc-a1"],
    "tolerance": "0.2",
    "window_ms": WINDOW,
}
HOUR = 3_600_000


class Platform:
    """A load cell at A1 reporting every 5 s into one engine, plus an RFID gate."""

    def __init__(self, start_t: str = "40.000") -> None:
        self.e: RuleEngine = engine(RULE)
        self.f = Feed()
        self.stock = Decimal(start_t)
        self.t = T0
        self.fired: list[Firing] = []

    def run_until(self, t_end: int) -> None:
        while self.t < t_end:
            self.t += 5_000
            o = self.f.obs("lc-a1", "load_cell", self.t, {"weight": str(self.stock)})
            self.fired += self.e.observe(o)

    def move(self, delta: str) -> None:
        self.stock += Decimal(delta)

    def scan_out(self, lot: str) -> None:
        labels = {"tag": f"urn:epc:{lot}", "direction": "out", "lot": lot}
        self.fired += self.e.observe(self.f.obs("gate-1", "rfid_gate", self.t, {}, labels))

    def release(self, ref: str = "REL-1", qty: str = "10") -> None:
        self.e.authorise_release("A1", Decimal(qty), ("LOT-1",), self.t, self.t + HOUR, ref)


def test_a_drop_before_the_revocation_is_explained() -> None:
    p = Platform()
    p.run_until(T0 + MIN)
    p.release()
    p.move("-10.000")
    p.run_until(p.t + 2 * WINDOW)
    assert p.fired == []
    assert p.e.revoke_release("REL-1") is True


def test_a_drop_after_the_revocation_is_unexplained() -> None:
    p = Platform()
    p.run_until(T0 + MIN)
    p.release()
    p.run_until(p.t + MIN)
    assert p.e.revoke_release("REL-1") is True
    drop_at = p.t + 5_000
    p.move("-10.000")
    p.run_until(drop_at + 2 * WINDOW)
    (fire,) = p.fired
    assert (fire.rule, fire.kind, fire.sev) == ("a1", "unexplained_weight_drop", "critical")
    d = det(fire)
    assert (d["drop_t"], d["explained_release_t"], d["unexplained_t"]) == (
        Decimal("10.000"),
        0,
        Decimal("10.000"),
    )
    assert d["releases"] == "" and d["from_ms"] == drop_at


def test_a_drop_before_the_revocation_judged_after_it_stays_explained() -> None:
    """The release covered the drop when it happened; the episode closes after the
    revocation and is still explained (revocation looks forward only)."""
    p = Platform()
    p.run_until(T0 + MIN)
    p.release()
    p.move("-10.000")
    p.run_until(p.t + 10_000)  # the drop is seen, its episode still open
    assert p.e.revoke_release("REL-1") is True
    p.run_until(p.t + 2 * WINDOW)
    assert p.fired == []
    p.move("-5.000")  # a second drop, after the revocation: the release's rest covers nothing
    p.run_until(p.t + 2 * WINDOW)
    (fire,) = p.fired
    assert det(fire)["unexplained_t"] == Decimal("5.000")


def test_a_scan_of_the_revoked_lot_no_longer_places_it_here() -> None:
    p = Platform()
    p.run_until(T0 + MIN)
    p.release()
    p.run_until(p.t + MIN)
    p.e.revoke_release("REL-1")
    p.move("-10.000")
    p.run_until(p.t + 30_000)
    p.scan_out("LOT-1")  # names only the lot of the revoked release
    p.run_until(p.t + 2 * WINDOW)
    (fire,) = p.fired
    assert det(fire)["scans_out"] == 0 and det(fire)["unexplained_t"] == Decimal("10.000")


def test_revoking_before_any_reading_leaves_nothing_valid() -> None:
    p = Platform()
    p.release()  # the rule has seen no time yet
    assert p.e.revoke_release("REL-1") is True
    p.run_until(T0 + MIN)
    p.move("-10.000")
    p.run_until(p.t + 2 * WINDOW)
    assert kinds(p.fired) == ["unexplained_weight_drop"]


def test_unknown_repeated_and_bad_revocations() -> None:
    p = Platform()
    p.run_until(T0 + MIN)
    assert p.e.revoke_release("NOPE") is False
    p.e.authorise_release("Z9", Decimal(1), ("L",), 0, 1, "RZ")  # no rule watches Z9
    assert p.e.revoke_release("RZ") is False
    p.release()
    assert p.e.revoke_release("REL-1") is True
    assert p.e.revoke_release("REL-1") is False  # once
    with pytest.raises(ValueError, match=r"^a release to revoke needs a non-empty ref, got ''$"):
        p.e.revoke_release("")


def test_a_revoked_release_cannot_be_authorised_again() -> None:
    p = Platform()
    p.run_until(T0 + MIN)
    p.release()
    p.e.revoke_release("REL-1")
    with pytest.raises(ValueError, match=r"^release 'REL-1' was revoked: it cannot be authorised"):
        p.release()  # the same terms
    p.move("-10.000")
    p.run_until(p.t + 2 * WINDOW)
    assert kinds(p.fired) == ["unexplained_weight_drop"]  # still revoked


def _story(seed: int) -> list[tuple[str, object]]:
    rng = random.Random(seed)
    events: list[tuple[str, object]] = []
    f, t, stock, refs = Feed(), T0, 60, 0
    for _ in range(600):
        t += rng.randint(1_000, 90_000)
        roll = rng.random()
        if roll < 0.05:
            refs += 1
            events.append(("release", (f"R{refs}", Decimal(rng.randint(1, 9)), t)))
        elif roll < 0.09 and refs:
            events.append(("revoke", f"R{rng.randint(1, refs)}"))
        elif roll < 0.15:
            events.append(("tick", t))
        else:
            stock = max(0, stock - rng.choice([0] * 12 + [1, 3, 5])) or 60
            events.append(("obs", f.obs("lc-a1", "load_cell", t, {"weight": str(stock)})))
    return events


def _play(events: list[tuple[str, object]]) -> tuple[list[Firing], list[bool]]:
    e = engine(RULE)
    out: list[Firing] = []
    answers: list[bool] = []
    for what, arg in events:
        if what == "release":
            assert isinstance(arg, tuple)
            ref, q, t = arg
            e.authorise_release("A1", q, ("LOT-1",), t, t + 6 * WINDOW, ref)
        elif what == "revoke":
            assert isinstance(arg, str)
            answers.append(e.revoke_release(arg))
        elif what == "tick":
            assert isinstance(arg, int)
            out += e.tick(arg)
        else:
            out += e.observe(arg)  # type: ignore[arg-type]
    return out, answers


@pytest.mark.parametrize("seed", [1, 3, 8])
def test_same_inputs_and_revocations_give_the_same_firings(seed: int) -> None:
    events = _story(seed)
    first, answers = _play(events)
    assert _play(events) == (first, answers)
    assert True in answers and first  # the story exercised revocations and firings
    unrevoked, _ = _play([ev for ev in events if ev[0] != "revoke"])
    assert unrevoked != first  # the revocations changed what was explained


def test_the_gateway_passes_revocations_to_its_engine(tmp_path: Path) -> None:
    cfg = load_edge_config(
        {"edge": {"id": "edge-1", "org": "wh", "site": "S1", "data_dir": str(tmp_path)}}
    )
    rules = RuleEngine.from_config([RULE], "S1")
    g = EdgeGateway(cfg, rules=rules)
    g.authorise_release("A1", Decimal(5), ("LOT-1",), T0, T0 + HOUR, "REL-9")
    assert g.revoke_release("REL-9") is True
    assert g.revoke_release("REL-9") is False
    bare = EdgeGateway(cfg, rules=object())
    with pytest.raises(EdgeError, match="no rules engine to revoke a release with"):
        bare.revoke_release("REL-9")

"""The pipeline end to end over a real outbox: what is stored, what becomes a signed event or
gap certificate, what the rules see."""

from __future__ import annotations

from pathlib import Path

from test_edge_helpers import EDGE, SITE, T0, Clock, FakeRules, make_pipeline, make_world, temp

from tally.crypto import parse_sign1
from tally.edge import formats as EF


def _events(ob: object) -> list[EF.Event]:
    out = []
    for _kind, cose, _b in ob.items("event"):  # type: ignore[attr-defined]
        out.append(EF.decode_event(parse_sign1(cose).payload))
    return out


def _gaps(ob: object) -> list[EF.Gap]:
    return [EF.decode_gap(parse_sign1(c).payload) for _k, c, _b in ob.items("gap")]  # type: ignore[attr-defined]


def test_gap_event_then_certificate_after_grace(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock, gap_grace_ms=30_000)
    dev = w.device("dev-1")
    envs = [dev.next(T0 + i * 1000, temp("20")) for i in range(6)]
    res = p.ingest_many([envs[0], envs[3], envs[1]])
    assert [r.outcome for r in res] == ["first", "gap", "accept_late"]
    ev = _events(ob)
    assert [(e.rule, e.kind, e.sev, e.devs) for e in ev] == [
        ("continuity.gap", "gap", "warning", ("dev-1",))
    ]
    assert dict(ev[0].detail) == {"boot": 0, "from": 1, "to": 2}
    assert ev[0].refs == (res[1].hash,)
    clock.advance(29_999)
    p.tick()
    assert _gaps(ob) == []
    clock.advance(1)
    p.tick()
    gaps = _gaps(ob)
    assert [(g.edge, g.dev, g.boot, g.first, g.last, g.reason) for g in gaps] == [
        (EDGE, "dev-1", 0, 2, 2, "not_received")
    ]
    # the certificate is signed by the edge
    parse_sign1(ob.items("gap")[0][1]).verify(w.edge_key.public)
    assert p.counts["gaps_certified"] == 1
    assert p.ingest(envs[2]).outcome == "stale"


def test_duplicates_are_idempotent_and_counted(tmp_path: Path) -> None:
    w = make_world()
    p, ob = make_pipeline(w, tmp_path / "o.db", Clock())
    dev = w.device("dev-1")
    a, b = dev.next(T0), dev.next(T0 + 1)
    res = p.ingest_many([a, b, b, a])
    assert [r.outcome for r in res] == ["first", "accept", "duplicate", "duplicate"]
    assert len(ob.items("reading")) == 2
    assert ob.quarantine() == []  # duplicates are only counted
    assert p.counts["rejected.duplicate"] == 2
    assert p.counts["received"] == 4 and p.counts["accepted"] == 2


def test_conflict_and_old_epoch_are_quarantined_with_events(tmp_path: Path) -> None:
    w = make_world()
    p, ob = make_pipeline(w, tmp_path / "o.db", Clock())
    dev = w.device("dev-1")
    dev.boot = 1
    p.ingest(dev.next(T0, temp("1")))
    other = w.device("dev-1")
    other.boot = 1
    conflicting = other.next(T0, temp("2"))  # same (dev, boot, ctr), other bytes
    other.boot, other.ctr, other.prev = 0, 5, b"\x01" * 32
    replay = other.next(T0)
    res = p.ingest_many([conflicting, replay])
    assert [r.outcome for r in res] == ["conflict", "replay_old_epoch"]
    assert [q[0] for q in ob.quarantine()] == ["replay_old_epoch", "conflict"]
    rules = [(e.rule, e.sev) for e in _events(ob)]
    assert rules == [
        ("continuity.conflict", "critical"),
        ("continuity.replay_old_epoch", "critical"),
    ]


def test_counter_reset_and_clock_skew_events(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    dev = w.device("dev-1")
    p.ingest(dev.next(T0))
    dev.next(T0)  # lost
    p.ingest(dev.next(T0))  # gap 1..1
    dev.reset_counter()
    r = p.ingest(dev.next(T0 + 600_000))  # skewed by 10 min
    assert r.outcome == "counter_reset"
    rules = [e.rule for e in _events(ob)]
    assert rules == ["continuity.gap", "continuity.counter_reset", "continuity.clock_skew"]
    assert [(g.boot, g.first, g.last) for g in _gaps(ob)] == [(0, 1, 1)]  # certified at once


def test_clock_skew_is_one_event_per_episode_and_its_end_is_reported(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    dev = w.device("dev-1")
    p.ingest(dev.next(clock()))
    for _ in range(3):
        p.ingest(dev.next(clock() + 600_000))  # the device's clock runs 10 min ahead
    p.ingest(dev.next(clock()))  # and is put right
    p.ingest(dev.next(clock() + 600_000))  # and drifts again
    kinds = [(e.rule, e.kind, e.sev) for e in _events(ob)]
    assert kinds == [
        ("continuity.clock_skew", "clock_skew", "warning"),
        ("continuity.clock_skew", "clock_skew_cleared", "info"),
        ("continuity.clock_skew", "clock_skew", "warning"),
    ]
    assert p.counts["clock_skew"] == 4  # every skewed envelope is still counted


def test_rules_see_accepted_readings_and_firings_become_signed_events(tmp_path: Path) -> None:
    w = make_world()
    rules = FakeRules(tick_fires=True)
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock, rules=rules)
    dev = w.device("dev-1")
    res = p.ingest_many([dev.next(T0, temp("20")), dev.next(T0, temp("35")), b"junk"])
    assert [o.reading.ctr for o in rules.seen] == [0, 1]
    assert rules.seen[0].site == SITE and rules.seen[0].profile == "temp_humidity"
    assert rules.seen[1].env_hash == res[1].hash
    p.tick()
    ev = _events(ob)
    assert [(e.rule, e.seq) for e in ev] == [("hot", 0), ("tock", 1)]
    assert ev[0].refs == (res[1].hash,) and ev[0].site == SITE
    for _k, cose, _b in ob.items("event"):
        msg = parse_sign1(cose, content_type="application/tally.event+cbor")
        msg.verify(w.edge_key.public)
        assert msg.kid == EDGE
    assert p.counts["events.hot"] == 1


def test_event_seq_and_state_survive_a_restart(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock, rules=FakeRules())
    dev = w.device("dev-1")
    p.ingest(dev.next(T0, temp("40")))
    ob.close()
    p2, ob2 = make_pipeline(w, tmp_path / "o.db", clock, rules=FakeRules())
    assert p2.ingest(dev.next(T0, temp("41"))).outcome == "accept"
    assert [e.seq for e in _events(ob2)] == [0, 1]
    assert p2.counts["accepted"] == 2


def test_rules_engine_failure_does_not_stop_ingest(tmp_path: Path) -> None:
    class Broken(FakeRules):
        def observe(self, obs: object) -> list:  # type: ignore[override]
            raise RuntimeError("boom")

    w = make_world()
    p, _ob = make_pipeline(w, tmp_path / "o.db", Clock(), rules=Broken())
    assert p.ingest(w.device("dev-1").next(T0)).accepted
    assert p.counts["rules_errors"] == 1

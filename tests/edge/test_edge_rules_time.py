"""Time-driven rules: movement in forbidden hours, devices going offline and back."""

from __future__ import annotations

from decimal import Decimal

from edge_rules_support import MIN, Feed, det, engine, kinds

DAY0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 60 * MIN
CN = 8 * HOUR  # local China time = UTC + 8 h


def local(h: int, m: int = 0, day: int = 0) -> int:
    """Epoch ms of local China time h:m on 2024-01-01 + day."""
    return DAY0 + day * 24 * HOUR + h * HOUR + m * MIN - CN


NIGHT = {
    "id": "night",
    "type": "time_of_day",
    "severity": "critical",
    "from": "22:00",
    "to": "06:00",
    "utc_offset_minutes": 480,
}


def test_window_boundaries_and_wrap() -> None:
    e, f = engine(NIGHT), Feed()
    cases = [
        ((21, 59), False),
        ((22, 0), True),
        ((23, 59), True),
        ((0, 0), True),
        ((5, 59), True),
        ((6, 0), False),
        ((12, 0), False),
    ]
    got = []
    for i, ((h, m), _) in enumerate(cases):
        o = f.obs(f"door-{i}", "door_tamper", local(h, m, day=1), {"door_open": 1})
        got.append(bool(e.observe(o)))
    assert got == [want for _, want in cases]


def test_day_window_without_wrap() -> None:
    lunch = {"id": "lunch", "type": "time_of_day", "from": "12:00", "to": "13:00"}
    e, f = engine(lunch), Feed()
    t = DAY0 + 12 * HOUR
    assert e.observe(f.obs("d1", "door_tamper", t - 1, {"door_open": 1})) == []
    assert kinds(e.observe(f.obs("d2", "door_tamper", t, {"door_open": 1}))) == [
        "forbidden_hours_movement"
    ]
    assert e.observe(f.obs("d3", "door_tamper", t + HOUR, {"door_open": 1})) == []


def test_weight_change_beyond_noise_at_night() -> None:
    e, f = engine(NIGHT), Feed()
    day = [e.observe(f.obs("lc-1", "load_cell", local(15), {"weight": "50.000"}))]
    day.append(e.observe(f.obs("lc-1", "load_cell", local(16), {"weight": "47.000"})))
    assert day == [[], []]  # daytime moves set the level, no firing
    noise = ["47.030", "46.960", "47.050"]  # within min_delta 0.05 of the level 47.000
    assert [
        e.observe(f.obs("lc-1", "load_cell", local(23, i), {"weight": w}))
        for i, w in enumerate(noise)
    ] == [[], [], []]
    o = f.obs("lc-1", "load_cell", local(2, day=1), {"weight": "44.900"})
    (fire,) = e.observe(o)
    assert (fire.sev, fire.refs) == ("critical", (o.env_hash,))
    d = det(fire)
    assert d["signals"] == "weight" and d["delta"] == Decimal("-2.100")
    assert d["local_time"] == "02:00" and d["window"] == "22:00-06:00"


def test_once_per_device_per_night() -> None:
    e, f = engine(NIGHT), Feed()
    scan = {"tag": "urn:epc:id:sgtin:4012345.000001.1", "direction": "out"}
    got = [
        kinds(e.observe(f.obs("gate", "rfid_gate", t, labels=scan)))
        for t in (local(23), local(1, day=1), local(23, day=1))
    ]
    assert got == [["forbidden_hours_movement"], [], ["forbidden_hours_movement"]]
    assert (
        det(e.observe(f.obs("gate2", "rfid_gate", local(3, day=2), labels=scan))[0])["signals"]
        == "scan"
    )


def test_closed_door_and_heartbeats_are_not_movement() -> None:
    e, f = engine(NIGHT), Feed()
    assert e.observe(f.obs("d", "door_tamper", local(23), {"door_open": 0})) == []
    assert e.observe(f.obs("d", "door_tamper", local(23), heartbeat=True)) == []


LIVE = {"id": "live", "type": "offline", "timeout_ms": 5 * MIN}


def test_offline_then_online_via_tick() -> None:
    e, f = engine(LIVE), Feed()
    last = f.obs("lc-1", "load_cell", 0, {"weight": "1"}, received=1_000)
    assert e.observe(last) == []
    assert e.tick(1_000 + 5 * MIN) == []  # exactly the timeout: not yet
    (off,) = e.tick(1_001 + 5 * MIN)
    assert (off.kind, off.sev, off.t, off.devs, off.refs) == (
        "device_offline",
        "warning",
        1_001 + 5 * MIN,
        ("lc-1",),
        (last.env_hash,),
    )
    assert det(off)["silent_ms"] == 5 * MIN + 1
    assert e.tick(60 * MIN) == []  # fires once per outage
    hb = f.obs("lc-1", "load_cell", 0, heartbeat=True, received=61 * MIN)
    (on,) = e.observe(hb)
    assert (on.kind, on.sev, on.refs) == ("device_online", "info", (hb.env_hash,))
    assert det(on) == {"last_seen_ms": 1_000, "silent_ms": 61 * MIN - 1_000}
    assert e.tick(62 * MIN) == []
    assert kinds(e.tick(67 * MIN)) == ["device_offline"]


def test_heartbeats_keep_a_device_alive_by_edge_time() -> None:
    e, f = engine(LIVE), Feed()
    for i in range(10):  # device clock far behind: liveness uses received_ms
        e.observe(f.obs("gps-1", "gps_tracker", 0, heartbeat=True, received=i * 4 * MIN))
        assert e.tick(i * 4 * MIN + 4 * MIN) == []


def test_listed_device_never_seen_goes_offline() -> None:
    e, f = engine({**LIVE, "devices": ["lc-1", "lc-2"]}), Feed()
    e.tick(0)
    e.observe(f.obs("lc-1", "load_cell", 0, {"weight": "1"}, received=4 * MIN))
    e.observe(f.obs("other", "load_cell", 0, {"weight": "1"}, received=4 * MIN))
    (off,) = e.tick(6 * MIN)
    assert off.devs == ("lc-2",) and off.refs == () and det(off)["never_seen"] is True
    assert [x.devs for x in e.tick(10 * MIN)] == [("lc-1",)]


def test_offline_by_profile_watches_only_that_profile() -> None:
    e, f = engine({**LIVE, "profile": "load_cell"}), Feed()
    e.observe(f.obs("lc-1", "load_cell", 0, {"weight": "1"}, received=0))
    e.observe(f.obs("gps-1", "gps_tracker", 0, {"speed": "1"}, received=0))
    assert [x.devs for x in e.tick(10 * MIN)] == [("lc-1",)]

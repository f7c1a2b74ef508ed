"""The rules against the simulated warehouse: a release passes, goods removed at night fire.

The simulated site (``tally.device.sim``) makes its sensors agree physically: an authorised
release takes lots off a load cell and the dock's RFID gate scans them out; the incident
``goods_removed_at_night`` takes goods with no scan and no release. Its samples (labelled
simulated) are turned into observations exactly as the edge would after verification.
"""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal

from tally.device.envelope import Measurement, Reading
from tally.device.sim import Sample, Site, local_ms, make_incident
from tally.device.sim.door_tamper import DoorTamper
from tally.device.sim.incidents import GOODS_REMOVED_AT_NIGHT
from tally.device.sim.load_cell import LoadCell
from tally.device.sim.rfid_gate import RfidGate
from tally.edge.rules import Firing, Observation, RuleEngine

CN = 480
RULES = [
    {
        "id": f"plaus-{loc}",
        "type": "plausibility",
        "location": loc,
        "profile": "load_cell",
        "window_ms": 600_000,
        "tolerance": "0.2",
    }
    for loc in ("A-01", "A-02")
] + [
    {
        "id": "night",
        "type": "time_of_day",
        "severity": "critical",
        "from": "22:00",
        "to": "06:00",
        "utc_offset_minutes": CN,
    },
    {"id": "tamper", "type": "tamper", "profile": "door_tamper"},
]


def build_site(seed: int) -> Site:
    site = Site("wh-sim", seed, utc_offset_min=CN, auto_activity=False)
    for i, loc in enumerate(("A-01", "A-02"), start=1):
        name = f"lc-{i}"
        cell = LoadCell(
            name,
            random.Random(seed * 10 + i),
            location=loc,
            auto_movements=False,
            utc_offset_min=CN,
        )
        site.add_location(
            loc,
            cell,
            [
                (Decimal("6.250"), "steel coil"),
                (Decimal("8.125"), "cotton"),
                (Decimal("10"), "cotton"),
            ],
        )
    site.add_device(RfidGate("gate-1", random.Random(seed), rate_per_h=0.0, gate="dock-1"))
    site.add_device(DoorTamper("door-1", random.Random(seed + 1), opens_per_h=0.0))
    return site


def to_observation(site: Site, s: Sample, ctr: int) -> Observation:
    ms = tuple(Measurement(m.quantity, m.value, m.unit) for m in s.measurements)
    reading = Reading(s.device_id, 0, ctr, b"" if ctr == 0 else b"p", s.t_ms, b"fw", ms, s.labels)
    h = hashlib.sha256(f"{s.device_id}/{ctr}".encode()).digest()
    return Observation(
        s.device_id, site.devices[s.device_id].profile, site.site_id, reading, h, s.t_ms
    )


def run_story(seed: int) -> tuple[list[Firing], Site]:
    site = build_site(seed)
    engine = RuleEngine.from_config(RULES, site.site_id)
    ctrs: dict[str, int] = {}
    fired: list[Firing] = []

    def drive(t0: int, t1: int) -> None:
        for t in range(t0, t1, 5_000):
            for s in site.tick(t):
                ctrs[s.device_id] = ctrs.get(s.device_id, -1) + 1
                fired.extend(engine.observe(to_observation(site, s, ctrs[s.device_id])))
            fired.extend(engine.tick(t))

    morning = local_ms(2024, 3, 12, 10, 0, CN)
    release_at = morning + 30 * 60_000
    lots = [lot for lot in site.lots_in("A-01")][:2]
    quantity = sum((lot.quantity_t for lot in lots), Decimal(0))
    ids = tuple(lot.lot_id for lot in lots)
    engine.authorise_release("A-01", quantity, ids, release_at, release_at + 3_600_000, "REL-1")
    site.release(ids, release_at, "REL-1")
    drive(morning, morning + 90 * 60_000)
    night = local_ms(2024, 3, 13, 2, 0, CN)
    params = {"location": "A-02", "amount_t": "4.000"}
    site.schedule([make_incident(GOODS_REMOVED_AT_NIGHT, "lc-2", night, params=params)])
    drive(night - 30 * 60_000, night + 60 * 60_000)
    return fired, site


def test_release_passes_and_night_removal_fires() -> None:
    fired, site = run_story(11)
    by_rule: dict[str, list[Firing]] = {}
    for f in fired:
        by_rule.setdefault(f.rule, []).append(f)
    assert "plaus-A-01" not in by_rule  # the authorised, scanned-out release
    (theft,) = by_rule["plaus-A-02"]
    stolen = -sum(m.delta_t for m in site.movements if m.kind == "unauthorised")
    d = dict(theft.detail)
    assert theft.sev == "critical" and theft.devs == ("lc-2",)
    assert abs(d["drop_t"] - stolen) < Decimal("0.05")
    assert d["explained_rfid_t"] == 0 and d["explained_release_t"] == 0
    night_devs = {f.devs for f in by_rule["night"]}
    assert {("lc-2",), ("door-1",)} <= night_devs
    assert all(f.kind == "forbidden_hours_movement" for f in by_rule["night"])
    assert "tamper" not in by_rule


def test_same_story_same_firings() -> None:
    assert run_story(11)[0] == run_story(11)[0]

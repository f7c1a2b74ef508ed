"""The demo fleet: a few dozen devices on one warehouse site."""

from __future__ import annotations

import random
from decimal import Decimal

from tally.device.sim.base import derive_seed
from tally.device.sim.camera_ai import CameraAi
from tally.device.sim.door_tamper import DoorTamper
from tally.device.sim.electricity_meter import ElectricityMeter
from tally.device.sim.equipment_hours import EquipmentHours
from tally.device.sim.gps_tracker import GpsTracker
from tally.device.sim.load_cell import LoadCell
from tally.device.sim.occupancy_pos import OccupancyPos
from tally.device.sim.rfid_gate import RfidGate
from tally.device.sim.site import Site
from tally.device.sim.temp_humidity import TempHumidity
from tally.device.sim.vehicle_obd import VehicleObd

FIXED_DEVICES = 12
"""Gate, two doors, two cameras, cold room, silo, meter, two trucks, forklift, hotel till."""

COMMODITIES = ("steel coil", "cotton", "copper cathode")


def populate_demo_site(site: Site, n_devices: int = 30) -> None:
    """Put ``n_devices`` devices on ``site``.

    ``n_devices - 12`` storage locations, each with its own load cell and a few tagged
    lots (the first, ``Y-01``, is a grain yard on a weighbridge); one RFID gate; two dock
    doors and two hall cameras; a cold room and a grain silo; the plant's electricity
    meter; a truck with a GPS tracker and one with an OBD dongle; a leased forklift with
    an hours counter; and a nearby hotel borrower's occupancy and till feed.
    """
    if n_devices < FIXED_DEVICES + 2:
        raise ValueError(f"n_devices must be at least {FIXED_DEVICES + 2}")
    off = site.utc_offset_min
    r = site.rng

    def rng(profile: str, device_id: str) -> random.Random:
        return random.Random(derive_seed(site.seed, profile, device_id))

    def dev(kind: str, n: int) -> str:
        return f"{site.site_id}-{kind}-{n:02d}"

    for i in range(n_devices - FIXED_DEVICES):
        yard = i == 0
        loc = "Y-01" if yard else f"A-{i:02d}"
        profile, name = ("weighbridge", dev("wb", 1)) if yard else ("load_cell", dev("lc", i))
        cell = LoadCell(
            name,
            rng(profile, name),
            profile=profile,
            location=loc,
            auto_movements=False,
            capacity_t="1000.000" if yard else "60.000",
            noise_t=0.01 if yard else 0.002,
            max_drift_t=0.04 if yard else 0.01,
            interval_ms=10_000 if yard else 5_000,
            utc_offset_min=off,
        )
        if yard:
            n_lots, lo, hi, what = r.randint(3, 5), 10.0, 30.0, "grain"
        else:
            n_lots, lo, hi, what = r.randint(2, 4), 2.0, 12.0, r.choice(COMMODITIES)
        site.add_location(loc, cell, [(Decimal(r.uniform(lo, hi)), what) for _ in range(n_lots)])

    g = dev("gate", 1)
    site.add_device(
        RfidGate(g, rng("rfid_gate", g), rate_per_h=0.0, gate="dock-1", utc_offset_min=off)
    )
    for n in (1, 2):
        d, c = dev("door", n), dev("cam", n)
        site.add_device(DoorTamper(d, rng("door_tamper", d), door=f"dock-{n}", utc_offset_min=off))
        site.add_device(CameraAi(c, rng("camera_ai", c), zone=f"hall-{n}", utc_offset_min=off))
    cold, silo, meter = dev("cold", 1), dev("silo", 1), dev("meter", 1)
    site.add_device(
        TempHumidity(
            cold, rng("temp_humidity", cold), mode="cold_chain", location="C-01", utc_offset_min=off
        )
    )
    site.add_device(
        TempHumidity(
            silo, rng("temp_humidity", silo), mode="silo", location="S-01", utc_offset_min=off
        )
    )
    site.add_device(ElectricityMeter(meter, rng("electricity_meter", meter), utc_offset_min=off))
    t1, t2, fork, pos = dev("truck", 1), dev("truck", 2), dev("fork", 1), dev("pos", 1)
    site.add_device(GpsTracker(t1, rng("gps_tracker", t1)))
    site.add_device(VehicleObd(t2, rng("vehicle_obd", t2)))
    site.add_device(EquipmentHours(fork, rng("equipment_hours", fork), utc_offset_min=off))
    site.add_device(OccupancyPos(pos, rng("occupancy_pos", pos), utc_offset_min=off))

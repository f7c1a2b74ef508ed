"""Profile ids (as used in device configuration) and their model factories."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tally.device.sim.base import SensorModel, derive_seed
from tally.device.sim.camera_ai import CameraAi
from tally.device.sim.door_tamper import DoorTamper
from tally.device.sim.electricity_meter import ElectricityMeter
from tally.device.sim.equipment_hours import EquipmentHours
from tally.device.sim.gps_tracker import GpsTracker
from tally.device.sim.load_cell import LoadCell, weighbridge
from tally.device.sim.occupancy_pos import OccupancyPos
from tally.device.sim.rfid_gate import RfidGate
from tally.device.sim.temp_humidity import TempHumidity
from tally.device.sim.vehicle_obd import VehicleObd

PROFILES: dict[str, Callable[..., SensorModel]] = {
    "load_cell": LoadCell,
    "weighbridge": weighbridge,
    "rfid_gate": RfidGate,
    "gps_tracker": GpsTracker,
    "temp_humidity": TempHumidity,
    "electricity_meter": ElectricityMeter,
    "door_tamper": DoorTamper,
    "camera_ai": CameraAi,
    "equipment_hours": EquipmentHours,
    "vehicle_obd": VehicleObd,
    "occupancy_pos": OccupancyPos,
}
"""Profile id -> factory ``(device_id, rng, **params) -> SensorModel``."""


def model_rng(seed: int | str, profile: str, device_id: str) -> random.Random:
    """The random source of one device, derived from a seed and the device's identity."""
    return random.Random(derive_seed(seed, profile, device_id))


def make_model(profile: str, device_id: str, seed: int | str, **params: Any) -> SensorModel:
    """Build the simulator of ``profile`` for ``device_id``; same seed, same samples."""
    try:
        factory = PROFILES[profile]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown sensor profile {profile!r} (known: {known})") from None
    return factory(device_id, model_rng(seed, profile, device_id), **params)

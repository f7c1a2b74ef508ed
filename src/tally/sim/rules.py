"""The edge rules of the demo site, declared as a site operator would in TOML."""

from __future__ import annotations

from typing import Any

from tally.device.sim import Site

QINGDAO_WEIFANG_CORRIDOR = [
    ["35.90", "119.00"],
    ["35.90", "120.45"],
    ["36.85", "120.45"],
    ["36.85", "119.00"],
]


def demo_rules(
    site: Site, plausibility_window_ms: int = 600_000, offline_ms: int = 180_000
) -> list[dict[str, Any]]:
    """Rules for every location, door, cold room, silo and truck of ``site``."""
    rules: list[dict[str, Any]] = []
    for loc, cell in sorted(site.locations.items()):
        rules.append(
            {
                "id": f"plausibility-{loc}",
                "type": "plausibility",
                "location": loc,
                "devices": [cell],
                "rfid_profile": "rfid_gate",
                "tolerance": "0.2",
                "window_ms": plausibility_window_ms,
            }
        )
    watched = sorted(site.locations.values()) + site.device_ids("door_tamper")
    rules.append(
        {
            "id": "night-movement",
            "type": "time_of_day",
            "from": "22:00",
            "to": "06:00",
            "utc_offset_minutes": site.utc_offset_min,
            "devices": watched,
        }
    )
    cold = [d for d in site.device_ids("temp_humidity") if site.is_cold_room(d)]
    silo = [d for d in site.device_ids("temp_humidity") if not site.is_cold_room(d)]
    if cold:
        rules.append(
            {
                "id": "cold-chain",
                "type": "threshold",
                "devices": cold,
                "quantity": "temperature",
                "min": "2",
                "max": "8",
                "for_ms": 300_000,
            }
        )
    if silo:
        rules.append(
            {
                "id": "silo-heating",
                "type": "threshold",
                "devices": silo,
                "quantity": "temperature",
                "max": "30",
            }
        )
    rules.append({"id": "tamper", "type": "tamper", "profile": "door_tamper"})
    trucks = site.device_ids("gps_tracker") + site.device_ids("vehicle_obd")
    if trucks:
        rules.append(
            {
                "id": "corridor",
                "type": "geofence",
                "devices": trucks,
                "polygon": QINGDAO_WEIFANG_CORRIDOR,
            }
        )
    rules.append({"id": "offline", "type": "offline", "timeout_ms": offline_ms})
    return rules

"""Scripted incidents: what goes wrong during a simulated run, and when.

Physical incidents are applied by the site itself while it ticks:

* ``goods_removed_at_night`` - stock leaves a location at night with no RFID out-scan and
  no authorised release (the load cell drops; the door opens; a camera sees a person);
* ``device_unplugged`` - the device sends nothing at all (no readings, no heartbeats)
  from ``at_ms`` for ``duration_ms``;
* ``clock_skew`` - the device's clock runs ``skew_minutes`` ahead for ``duration_ms``;
* ``cooling_failure`` (optional) - a cold room's compressor stops for ``duration_ms``.

Marker incidents are only scheduled here; the layers that sign and publish act on them:

* ``replayed_messages`` - an old message of the device is sent again (``count`` times);
* ``forged_signature`` - a message of the device is signed with a wrong key;
* ``counter_reset`` - the device reboots and its message counter restarts at 0;
* ``link_loss`` - the device's next ``count`` messages are signed but lost in transit.

A ``duration_ms`` of 0 means "until the end of the run" for the incidents with a duration.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from tally.device.sim.base import derive_seed, next_local_time

if TYPE_CHECKING:
    from tally.device.sim.site import Site

GOODS_REMOVED_AT_NIGHT = "goods_removed_at_night"
DEVICE_UNPLUGGED = "device_unplugged"
CLOCK_SKEW = "clock_skew"
REPLAYED_MESSAGES = "replayed_messages"
FORGED_SIGNATURE = "forged_signature"
COUNTER_RESET = "counter_reset"
LINK_LOSS = "link_loss"
COOLING_FAILURE = "cooling_failure"

INCIDENT_KINDS: tuple[str, ...] = (
    GOODS_REMOVED_AT_NIGHT,
    DEVICE_UNPLUGGED,
    CLOCK_SKEW,
    REPLAYED_MESSAGES,
    FORGED_SIGNATURE,
    COUNTER_RESET,
    LINK_LOSS,
)
"""The incidents every demo run contains, one of each."""

PHYSICAL_KINDS = frozenset({GOODS_REMOVED_AT_NIGHT, DEVICE_UNPLUGGED, CLOCK_SKEW, COOLING_FAILURE})
MARKER_KINDS = frozenset({REPLAYED_MESSAGES, FORGED_SIGNATURE, COUNTER_RESET, LINK_LOSS})
ALL_KINDS = PHYSICAL_KINDS | MARKER_KINDS


@dataclass(frozen=True)
class Incident:
    """One scripted incident affecting one device."""

    kind: str
    device_id: str
    at_ms: int
    duration_ms: int = 0
    params: tuple[tuple[str, str], ...] = ()

    @property
    def physical(self) -> bool:
        """True when the site applies it to the samples itself."""
        return self.kind in PHYSICAL_KINDS

    def param(self, key: str, default: str | None = None) -> str | None:
        return dict(self.params).get(key, default)

    def active(self, t_ms: int) -> bool:
        """Whether ``t_ms`` falls within the incident (open-ended when duration is 0)."""
        if t_ms < self.at_ms:
            return False
        return self.duration_ms == 0 or t_ms < self.at_ms + self.duration_ms


def make_incident(
    kind: str,
    device_id: str,
    at_ms: int,
    duration_ms: int = 0,
    params: Mapping[str, str] | None = None,
) -> Incident:
    """Build an incident of a known kind, its params sorted by key."""
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown incident kind {kind!r}")
    if duration_ms < 0:
        raise ValueError("duration_ms must not be negative")
    return Incident(kind, device_id, at_ms, duration_ms, tuple(sorted((params or {}).items())))


def demo_incidents(
    site: Site, start_ms: int, duration_ms: int, *, cooling_failure: bool = False
) -> list[Incident]:
    """One incident of each kind of :data:`INCIDENT_KINDS`, spread over the run.

    The goods go missing at 02:00 local if the run covers it, else mid-run.  With
    ``cooling_failure`` the cold room's compressor also fails for a fifth of the run.
    """
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    rng = random.Random(derive_seed(site.seed, "incidents", site.site_id, str(start_ms)))

    def at(percent: int) -> int:
        return start_ms + max(1, duration_ms * percent // 100)

    def pick(profile: str, exclude: set[str]) -> str:
        ids = [d for d in site.device_ids(profile) if d not in exclude]
        ids = ids or [d for d in site.device_ids() if d not in exclude]
        if not ids:
            raise ValueError("the site has too few devices for the demo incidents")
        return rng.choice(ids)

    night = next_local_time(start_ms + 1, 2, 0, site.utc_offset_min)
    at_night = night < start_ms + duration_ms
    theft_at = night if at_night else at(50)
    # goods go missing from a storage bay on load cells (the yard's weighbridge weighs trucks)
    bays = [
        loc for loc, dev in site.locations.items() if site.devices[dev].profile != "weighbridge"
    ]
    locations = sorted(bays or site.locations, key=lambda loc: (-site.stock_t(loc), loc))
    if not locations:
        raise ValueError("the site has no storage location")
    location = rng.choice(locations[:3])
    largest = max((lot.quantity_t for lot in site.lots_in(location)), default=Decimal(0))
    amount = (largest * Decimal("0.4")).quantize(Decimal("0.001"))
    theft_params = {"location": location, "amount_t": str(amount)}
    if at_night:
        theft_params["local_time"] = "02:00"
    theft_dev = site.locations[location]
    out = [
        make_incident(GOODS_REMOVED_AT_NIGHT, theft_dev, theft_at, 0, theft_params),
        make_incident(
            DEVICE_UNPLUGGED,
            pick("load_cell", {theft_dev}),
            at(20),
            max(1, duration_ms // 10),
        ),
        make_incident(
            CLOCK_SKEW,
            pick("electricity_meter", set()),
            at(35),
            max(1, duration_ms * 15 // 100),
            {"skew_minutes": str(rng.randint(5, 20))},
        ),
        make_incident(REPLAYED_MESSAGES, pick("rfid_gate", set()), at(65), 0, {"count": "2"}),
        make_incident(FORGED_SIGNATURE, pick("door_tamper", set()), at(80)),
        make_incident(COUNTER_RESET, pick("temp_humidity", set()), at(90)),
        make_incident(LINK_LOSS, pick("gps_tracker", set()), at(45), 0, {"count": "3"}),
    ]
    if cooling_failure:
        cold = [d for d in site.device_ids("temp_humidity") if site.is_cold_room(d)]
        if cold:
            out.append(make_incident(COOLING_FAILURE, cold[0], at(55), duration_ms // 5))
    return sorted(out, key=lambda i: (i.at_ms, i.kind))

"""The edge gateway's rules engine: pure functions of signed readings and time.

The edge pipeline builds one engine per site and feeds it every verified reading and
heartbeat; what fires becomes a signed edge event::

    engine = RuleEngine.from_config(rules, site="SH-01")   # raises ConfigError
    firings = engine.observe(Observation(dev, profile, site, reading, env_hash, received_ms))
    firings += engine.tick(now_ms)                           # time-driven rules
    engine.authorise_release("A1", Decimal("12.5"), ("LOT-1",), t0, t1, "REL-7")

The engine never reads the wall clock: value series are timed by the reading's device
clock (``reading.t``), liveness by the edge's ``received_ms`` and ``tick(now_ms)``. Same
observations, ticks and releases in the same order give the same firings.

Rules are configured per site as a list of tables. Every rule has ``id`` (unique text),
``type`` and ``severity`` (``info`` | ``warning`` | ``critical``; each type has a default),
and most select devices with ``devices = [ids]`` and/or ``profile = "name"`` (a reading
meets the rule if its device is listed or its profile matches; with neither, every device
of the site). Decimal values may be strings (``"7.5"``), integers or TOML floats (taken as
written). Unknown keys are errors. One example of each type (the test suite parses this
very text)::

    # Cold chain: 2–8 Cel, alarm after 10 minutes out of range.
    [[rules]]
    id = "cold-room-temp"
    type = "threshold"
    severity = "critical"
    profile = "temp_humidity"
    quantity = "temperature"
    min = "2"
    max = "8"
    for_ms = 600000
    hysteresis = "0.2"

    # Weight leaving a platform faster than 2 t per minute.
    [[rules]]
    id = "fast-unload"
    type = "rate_of_change"
    severity = "warning"
    devices = ["lc-a1", "lc-a2"]
    quantity = "weight"
    max_per_min = "2"
    direction = "down"

    # Any movement between 22:00 and 06:00 China time.
    [[rules]]
    id = "night-movement"
    type = "time_of_day"
    severity = "critical"
    profile = "load_cell"
    from = "22:00"
    to = "06:00"
    utc_offset_minutes = 480
    quantity = "weight"
    min_delta = "0.05"
    door_quantity = "door_open"
    scan_label = "tag"

    # Trucks must stay inside the port area.
    [[rules]]
    id = "port-fence"
    type = "geofence"
    severity = "warning"
    profile = "gps_tracker"
    lat_quantity = "latitude"
    lon_quantity = "longitude"
    polygon = [["31.20", "121.40"], ["31.20", "121.60"], ["31.40", "121.60"],
               ["31.40", "121.40"]]

    # A weight drop at location A1 must match RFID out-scans or an authorised release.
    [[rules]]
    id = "a1-plausibility"
    type = "plausibility"
    severity = "critical"
    location = "A1"
    devices = ["lc-a1"]
    rfid_profile = "rfid_gate"
    quantity = "weight"
    tolerance = "0.2"
    window_ms = 900000
    min_delta = "0.05"

    # The same for location B2, scanned by one named gate; load cells by profile
    # (a reading counts when it carries the label location = "B2").
    [[rules]]
    id = "b2-plausibility"
    type = "plausibility"
    location = "B2"
    profile = "load_cell"
    rfid_devices = ["gate-1"]

    # Every device must show a sign of life (reading or heartbeat) every 5 minutes.
    [[rules]]
    id = "liveness"
    type = "offline"
    severity = "warning"
    timeout_ms = 300000

    # Tamper switch latched (quantity "tamper" non-zero) ...
    [[rules]]
    id = "tamper-switch"
    type = "tamper"
    severity = "critical"
    profile = "door_tamper"
    quantity = "tamper"

    # ... or a tamper event label.
    [[rules]]
    id = "tamper-event"
    type = "tamper"
    profile = "door_tamper"
    label = "event"
    label_value = "tamper"

Keys by type (defaults in brackets; see each module for the exact behaviour):

* ``threshold`` (:mod:`.threshold`, severity [warning]): ``quantity``; ``min`` and/or
  ``max``; ``for_ms`` [0]; ``hysteresis`` [0]. Fires ``out_of_range``, then
  ``out_of_range_cleared`` (info).
* ``rate_of_change`` (:mod:`.rate_of_change`, [warning]): ``quantity``; ``max_per_min``
  (> 0, units per minute); ``direction`` [both] | up | down. Fires ``rate_exceeded``.
* ``time_of_day`` (:mod:`.time_of_day`, [warning]): ``from``, ``to`` ("HH:MM", different);
  ``utc_offset_minutes`` [0]; ``quantity`` [weight]; ``min_delta`` [0.05];
  ``door_quantity`` [door_open]; ``scan_label`` [tag]. Fires ``forbidden_hours_movement``.
* ``geofence`` (:mod:`.geofence`, [warning]): ``polygon`` ([[lat, lon], ...], at least 3
  vertices); ``lat_quantity`` [latitude]; ``lon_quantity`` [longitude]. Fires
  ``geofence_exit``, then ``geofence_enter`` (info).
* ``plausibility`` (:mod:`.plausibility`, [critical]): ``location``; load cells by
  ``devices``/``profile`` (one required); ``rfid_devices`` or ``rfid_profile``
  [rfid_gate]; ``quantity`` [weight]; ``tolerance`` [0.2] (t); ``window_ms`` [900000];
  ``min_delta`` [0.05]. Fires ``unexplained_weight_drop``.
* ``offline`` (:mod:`.offline`, [warning]): ``timeout_ms``. Fires ``device_offline`` at
  tick time, ``device_online`` (info) on the next sign of life.
* ``tamper`` (:mod:`.tamper`, [critical]): ``quantity`` [tamper], or ``label`` with
  ``label_value`` [tamper]. Fires ``tamper``.
"""

from __future__ import annotations

from tally.edge.rules.engine import RULE_TYPES, RuleEngine
from tally.edge.rules.errors import RuleConfigError
from tally.edge.rules.model import SEVERITIES, Firing, Observation
from tally.edge.rules.plausibility import Release

__all__ = [
    "RULE_TYPES",
    "SEVERITIES",
    "Firing",
    "Observation",
    "Release",
    "RuleConfigError",
    "RuleEngine",
]

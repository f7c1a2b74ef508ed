"""What every benchmark shares: the machine description, a signed world of simulated
devices, pre-signed envelopes, timing helpers and JSON output.

Benchmarks never assert speed. Each prints one JSON object whose ratios compare two
things measured side by side in the same run, so a shared, noisy machine moves both sides
together. Every reading made here is simulated and carries the label ``sim = "1"``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from typing import Any

from tally.crypto import SigningKey, Suite, get_suite
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust

T0 = 1_767_225_600_000
"""Simulated time of the first reading: 2026-01-01 00:00 UTC (08:00 at UTC+8, working hours)."""

ORG = "warehouse-co"
BANK = "bank"
EDGE = "edge-bench"
SITE = "wh-bench"
CLOUD = "cloud-bench"
SIM = (("sim", "1"),)
FW = b"\x5a" * 32

PROFILES = ("temp_humidity", "load_cell", "door_tamper", "gps_tracker", "rfid_gate")
"""Device profiles of the simulated site, assigned round robin by device number."""


# -- the machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _mem_total_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """The ``machine`` object of every benchmark's JSON."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "mem_total_mb": _mem_total_mb(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "libs": {
            "cryptography": _version("cryptography"),
            "pynacl": _version("pynacl"),
            "gmssl_pyx": _version("gmssl-pyx"),
            "sqlalchemy": _version("sqlalchemy"),
            "psycopg": _version("psycopg"),
        },
    }


def rss_mb() -> dict[str, float]:
    """Resident memory of this process now and at its peak (``VmRSS``, ``VmHWM``), in MB."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# -- output -----------------------------------------------------------------------------------


def emit(result: dict[str, Any], json_only: bool, summary: Sequence[str] = ()) -> int:
    """Print ``result`` as JSON (after a short human summary unless ``json_only``); return 0."""
    if not json_only:
        for line in summary:
            print(line, file=sys.stderr)
    print(json.dumps(result, indent=2, sort_keys=False, default=str))
    return 0


def note(json_only: bool, text: str) -> None:
    """A progress line on stderr (silent with ``json_only``)."""
    if not json_only:
        print(text, file=sys.stderr, flush=True)


def rounded(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}") if x >= 1000 else round(x, digits)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def best_rate(runs: int, fn: Callable[[], int]) -> float:
    """Run ``fn`` (which returns how many operations it did) ``runs`` times; the best rate/s.

    The best of a few runs is the least disturbed by other work on a shared machine.
    """
    best = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t
        if dt > 0:
            best = max(best, n / dt)
    return best


# -- a signed world ---------------------------------------------------------------------------


@dataclass
class World:
    """Organisations, trust, edge and cloud keys, and ``devices`` simulated signing devices."""

    suite: Suite
    org_keys: dict[str, SigningKey]
    trust: Trust
    edge_key: SigningKey
    cloud_key: SigningKey
    signers: list[DeviceSigner] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    registrations: list[bytes] = field(default_factory=list)
    """Signed registrations: the edge, the cloud, then every device."""


def _register(w: World, kind: str, subject: str, org: str, profile: str, pub: bytes) -> None:
    reg = Registration(
        kind=kind,
        id=subject,
        org=org,
        site="" if kind == "cloud" else SITE,
        profile=profile,
        suite=w.suite.name,
        pub=pub,
        assurance=Assurance.DEVICE,
        t=T0 - 86_400_000,
    )
    w.registrations.append(sign_registration(w.org_keys[org], reg))


def device_id(i: int) -> str:
    return f"sim-{PROFILES[i % len(PROFILES)]}-{i:05d}"


def make_world(suite_name: str, devices: int) -> World:
    """Keys for two organisations, an edge, a cloud and ``devices`` devices, all registered."""
    suite = get_suite(suite_name)
    org_keys = {o: SigningKey.generate(suite) for o in (ORG, BANK)}
    trust = Trust(suite, {o: k.public for o, k in org_keys.items()})
    w = World(suite, org_keys, trust, SigningKey.generate(suite), SigningKey.generate(suite))
    _register(w, "edge", EDGE, ORG, "", w.edge_key.public.raw)
    _register(w, "cloud", CLOUD, BANK, "", w.cloud_key.public.raw)
    for i in range(devices):
        dev = device_id(i)
        profile = PROFILES[i % len(PROFILES)]
        key = SigningKey.generate(suite)
        w.signers.append(DeviceSigner(dev, key, FW))
        w.profiles[dev] = profile
        _register(w, "device", dev, ORG, profile, key.public.raw)
    return w


def measurements(profile: str, k: int, i: int) -> tuple[Measurement, ...]:
    """Plausible, in-range values of reading ``k`` of device ``i`` (rules stay quiet)."""
    j = (k * 7 + i) % 11
    if profile == "temp_humidity":
        return (
            Measurement("temperature", Decimal(40 + j) / 10, "Cel"),
            Measurement("humidity", Decimal(600 + j) / 10, "%"),
        )
    if profile == "load_cell":
        return (Measurement("weight", Decimal(125_000 + (i % 97)) / 1000, "t"),)
    if profile == "door_tamper":
        return (Measurement("door_open", Decimal(0), "1"), Measurement("tamper", Decimal(0), "1"))
    if profile == "gps_tracker":
        return (
            Measurement("latitude", Decimal(312_000 + j + i % 500) / 10_000, "deg"),
            Measurement("longitude", Decimal(1_214_500 + j) / 10_000, "deg"),
        )
    return (Measurement("count", Decimal(j % 2), "1"),)


def site_rules() -> list[dict[str, Any]]:
    """A realistic rule set of one warehouse site: every rule type, selected by profile."""
    return [
        {
            "id": "cold-room-temp",
            "type": "threshold",
            "severity": "critical",
            "profile": "temp_humidity",
            "quantity": "temperature",
            "min": "2",
            "max": "8",
            "for_ms": 600_000,
            "hysteresis": "0.2",
        },
        {
            "id": "humidity",
            "type": "threshold",
            "profile": "temp_humidity",
            "quantity": "humidity",
            "max": "85",
        },
        {
            "id": "fast-unload",
            "type": "rate_of_change",
            "profile": "load_cell",
            "quantity": "weight",
            "max_per_min": "2",
            "direction": "down",
        },
        {
            "id": "night-movement",
            "type": "time_of_day",
            "severity": "critical",
            "profile": "load_cell",
            "from": "22:00",
            "to": "06:00",
            "utc_offset_minutes": 480,
        },
        {
            "id": "port-fence",
            "type": "geofence",
            "profile": "gps_tracker",
            "polygon": [["31.10", "121.40"], ["31.10", "121.60"], ["31.40", "121.60"],
                        ["31.40", "121.40"]],
        },
        {
            "id": "a1-plausibility",
            "type": "plausibility",
            "location": "A1",
            "profile": "load_cell",
            "rfid_profile": "rfid_gate",
        },
        {"id": "tamper-switch", "type": "tamper", "profile": "door_tamper"},
        {"id": "liveness", "type": "offline", "timeout_ms": 300_000},
    ]


def presign(
    signers: Sequence[DeviceSigner],
    per_device: int,
    step_ms: int,
    profiles: dict[str, str],
    first_index: int = 0,
) -> Iterator[tuple[int, bytes]]:
    """Envelopes round by round: reading ``k`` of every device, then ``k + 1``; each in its
    device's counter order. Yields ``(device time ms, COSE bytes)``."""
    for k in range(per_device):
        t = T0 + k * step_ms
        for i, s in enumerate(signers):
            yield t, s.next(t, measurements(profiles[s.dev], k, first_index + i), SIM)

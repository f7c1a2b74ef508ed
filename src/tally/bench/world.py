"""A signed world of simulated devices for the benchmarks: organisations, trust, an edge, a
cloud, registered devices of a warehouse site, its rule set, pre-signed envelopes and
edge-signed batches.

Every reading made here is simulated and carries the label ``sim = "1"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tally.crypto import SigningKey, Suite, get_suite
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust
from tally.edge.formats import BatchHeader
from tally.edge.signer import EdgeSigner
from tally.merkle import Hasher, root

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
            "polygon": [
                ["31.10", "121.40"],
                ["31.10", "121.60"],
                ["31.40", "121.60"],
                ["31.40", "121.40"],
            ],
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


@dataclass(frozen=True)
class SignedBatch:
    """An edge-signed batch: header COSE bytes and its items, ready for the cloud's ingest."""

    ctr: int
    header: bytes
    items: list[bytes]


def make_batches(world: World, envelopes: Sequence[bytes], size: int, t1: int) -> list[SignedBatch]:
    """Chain ``envelopes`` into batches of ``size`` items signed by the world's edge."""
    hasher = Hasher.for_name(world.suite.hash_name)
    signer = EdgeSigner(world.edge_key, EDGE, SITE)
    out: list[SignedBatch] = []
    prev = b""
    for ctr, i in enumerate(range(0, len(envelopes), size)):
        items = list(envelopes[i : i + size])
        header = BatchHeader(
            edge=EDGE,
            site=SITE,
            suite=world.suite.name,
            ctr=ctr,
            prev=prev,
            t0=T0,
            t1=t1 + ctr,
            n=len(items),
            root=root(hasher, [hasher.hash_leaf(x) for x in items]),
        )
        cose = signer.header(header)
        prev = world.suite.hash(cose)
        out.append(SignedBatch(ctr, cose, items))
    return out

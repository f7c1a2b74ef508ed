"""Shared builders for the edge gateway tests (keys, trust, registrations, a fake clock and a
tiny rules engine). Holds no tests itself; the other ``test_edge_*`` files import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import (
    Assurance,
    Registration,
    Revocation,
    sign_registration,
    sign_revocation,
)
from tally.device.trust import Trust
from tally.edge import formats as EF
from tally.edge.outbox import Outbox
from tally.edge.pipeline import Pipeline
from tally.edge.registry import Registry
from tally.edge.rules.model import Firing, Observation
from tally.edge.signer import EdgeSigner

T0 = 1_700_000_000_000
FW = b"\x42" * 32
ORG = "warehouse-co"
CLOUD_ORG = "bank"
EDGE = "edge-1"
SITE = "wh1"
CLOUD = "cloud-1"


class Clock:
    """A settable edge clock in ms."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class FakeRules:
    """Records observations; fires ``hot`` for any temp above 30 and ``tock`` on every tick
    when ``tick_fires`` is set."""

    seen: list[Observation] = field(default_factory=list)
    tick_fires: bool = False
    releases: list[tuple[Any, ...]] = field(default_factory=list)

    def observe(self, obs: Observation) -> list[Firing]:
        self.seen.append(obs)
        v = obs.reading.value("temp")
        if v is not None and v > 30:
            return [
                Firing(
                    "hot",
                    "threshold",
                    "warning",
                    obs.received_ms,
                    (obs.dev,),
                    (obs.env_hash,),
                    (("value", v),),
                )
            ]
        return []

    def tick(self, now_ms: int) -> list[Firing]:
        if self.tick_fires:
            return [Firing("tock", "timer", "info", now_ms, (), ())]
        return []

    def authorise_release(self, *args: Any) -> None:
        self.releases.append(args)


@dataclass
class World:
    """An organisation with registered devices, an edge and a cloud."""

    suite: str
    org_key: SigningKey
    edge_key: SigningKey
    cloud_key: SigningKey
    trust: Trust
    regs: dict[str, bytes]
    keys: dict[str, SigningKey]

    def registry(self) -> Registry:
        reg = Registry(self.trust)
        for data in self.regs.values():
            reg.add_registration(data)
        return reg

    def device(self, dev: str) -> DeviceSigner:
        return DeviceSigner(dev, self.keys[dev], FW)

    def revoke(self, dev: str, t: int) -> bytes:
        return sign_revocation(self.org_key, Revocation(dev, ORG, t, "key compromised"))

    def signer(self) -> EdgeSigner:
        return EdgeSigner(self.edge_key, EDGE, SITE)

    def receipt(
        self,
        header: bytes,
        n: int,
        key: SigningKey | None = None,
        cloud: str = CLOUD,
        edge: str = EDGE,
        ctr: int | None = None,
    ) -> bytes:
        k = key or self.cloud_key
        h = EF.decode_batch_header(_payload(header))
        rc = EF.Receipt(
            cloud, edge, h.ctr if ctr is None else ctr, k.suite.hash(header), n, T0, False
        )
        return EF.sign_object(k, "application/tally.receipt+cbor", cloud, rc.to_cbor())

    def write_registrations(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.regs.items():
            (directory / f"{name}.cose").write_bytes(data)


def _payload(cose: bytes) -> bytes:
    from tally.crypto import parse_sign1

    return parse_sign1(cose).payload


def make_world(suite: str = "intl", devices: tuple[str, ...] = ("dev-1", "dev-2")) -> World:
    org_key = SigningKey.generate(suite)
    bank_key = SigningKey.generate(suite)
    from tally.crypto import get_suite

    trust = Trust(get_suite(suite), {ORG: org_key.public, CLOUD_ORG: bank_key.public})
    edge_key = SigningKey.generate(suite)
    cloud_key = SigningKey.generate(suite)
    regs: dict[str, bytes] = {}
    keys: dict[str, SigningKey] = {}
    for dev in devices:
        k = SigningKey.generate(suite)
        keys[dev] = k
        r = Registration(
            "device",
            dev,
            ORG,
            SITE,
            "temp_humidity",
            suite,
            k.public.raw,
            Assurance.DEVICE,
            T0 - 10_000,
        )
        regs[dev] = sign_registration(org_key, r)
    meter = Registration(
        "device", "meter-1", ORG, SITE, "electricity_meter", suite, b"", Assurance.EDGE, T0 - 10_000
    )
    regs["meter-1"] = sign_registration(org_key, meter)
    cloud = Registration(
        "cloud",
        CLOUD,
        CLOUD_ORG,
        "",
        "",
        suite,
        cloud_key.public.raw,
        Assurance.DEVICE,
        T0 - 10_000,
    )
    regs[CLOUD] = sign_registration(bank_key, cloud)
    return World(suite, org_key, edge_key, cloud_key, trust, regs, keys)


def temp(v: str) -> tuple[Measurement, ...]:
    return (Measurement("temp", Decimal(v), "Cel"),)


def make_pipeline(
    world: World, path: Path, clock: Clock, rules: Any = None, **kw: Any
) -> tuple[Pipeline, Outbox]:
    outbox = Outbox(path)
    p = Pipeline(world.signer(), world.registry(), outbox, rules=rules, clock=clock, **kw)
    return p, outbox

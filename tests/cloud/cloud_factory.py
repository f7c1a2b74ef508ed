"""Test data made with the real signing code: organisations, trust, registrations, batches.

Simulated data: every reading carries the label ``sim = "1"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tally.cloud.config import ApiToken, CloudSettings, token_digest
from tally.cloud.keys import CloudIdentity
from tally.cloud.registry import accept_signed
from tally.cloud.storage.api import Storage
from tally.crypto import SigningKey, Suite, get_suite
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import (
    Assurance,
    Registration,
    Revocation,
    sign_registration,
    sign_revocation,
)
from tally.device.trust import Trust
from tally.edge.formats import BatchHeader, Event, Gap, encode_upload, sign_object
from tally.formats import CTY_BATCH, CTY_EVENT, CTY_GAP
from tally.ledger.consortium import Consortium
from tally.merkle import Hasher, root

T0 = 1_700_000_000_000
SIM = (("sim", "1"),)
TOKENS = {"acme": "tok-acme", "other": "tok-other", "regulator": "tok-regulator"}


@dataclass
class EdgeChain:
    """An edge's signing key and batch chain (counter and previous header hash)."""

    id: str
    site: str
    key: SigningKey
    ctr: int = 0
    prev: bytes = b""


@dataclass
class World:
    """Organisations ``acme`` (edge ``e1``; devices ``d1`` device-signed, ``d2`` edge-signed,
    ``d3`` manual), ``other`` (edge ``e9``, device ``d9``) and ``bank`` (runs the cloud)."""

    suite: Suite
    org_keys: dict[str, SigningKey]
    trust: Trust
    identity: CloudIdentity
    registrations: list[bytes] = field(default_factory=list)
    edges: dict[str, EdgeChain] = field(default_factory=dict)
    signers: dict[str, DeviceSigner] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)

    @property
    def hasher(self) -> Hasher:
        return Hasher.for_name(self.suite.hash_name)

    def register(
        self,
        kind: str,
        subject: str,
        org: str,
        site: str,
        key: SigningKey | None,
        assurance: Assurance = Assurance.DEVICE,
        t: int = T0 - 1000,
    ) -> bytes:
        reg = Registration(
            kind=kind,
            id=subject,
            org=org,
            site=site,
            profile="temp_humidity" if kind == "device" else "",
            suite=self.suite.name,
            pub=key.public.raw if key else b"",
            assurance=assurance,
            t=t,
        )
        data = sign_registration(self.org_keys[org], reg)
        self.registrations.append(data)
        self.owner[subject] = org
        return data

    def revocation(self, subject: str, t: int, reason: str = "stolen") -> bytes:
        org = self.owner[subject]
        return sign_revocation(self.org_keys[org], Revocation(subject, org, t, reason))

    def register_all(self, storage: Storage) -> None:
        for data in self.registrations:
            accept_signed(data, self.trust, storage, T0)

    def reading(self, dev: str, t: int, value: str = "21.5", heartbeat: bool = False) -> bytes:
        m = () if heartbeat else (Measurement("temperature", Decimal(value), "Cel"),)
        return self.signers[dev].next(t, m, SIM, heartbeat=heartbeat)

    def event(self, edge: str, t: int, rule: str = "cold-chain", seq: int = 0) -> bytes:
        e = self.edges[edge]
        ev = Event(edge, e.site, seq, rule, "breach", "warning", t, ("d1",), (), (("max", 9),))
        return sign_object(e.key, CTY_EVENT, edge, ev.to_cbor())

    def gap(self, edge: str, dev: str, first: int, last: int, t: int) -> bytes:
        e = self.edges[edge]
        g = Gap(edge, dev, 0, first, last, "lost in transit", t)
        return sign_object(e.key, CTY_GAP, edge, g.to_cbor())

    def header(
        self,
        edge: str,
        items: list[bytes],
        ctr: int | None = None,
        prev: bytes | None = None,
        root_over: list[bytes] | None = None,
        n: int | None = None,
        key: SigningKey | None = None,
        suite: str | None = None,
        signer: str | None = None,
    ) -> bytes:
        """Sign a header for ``items`` and advance the edge's chain (overrides for forgeries)."""
        e = self.edges[edge]
        leaves = [self.hasher.hash_leaf(i) for i in (items if root_over is None else root_over)]
        h = BatchHeader(
            edge=edge,
            site=e.site,
            suite=suite or self.suite.name,
            ctr=e.ctr if ctr is None else ctr,
            prev=e.prev if prev is None else prev,
            t0=T0,
            t1=T0 + 60_000,
            n=len(items) if n is None else n,
            root=root(self.hasher, leaves),
        )
        data = sign_object(key or e.key, CTY_BATCH, signer or edge, h.to_cbor())
        if ctr is None and prev is None:
            e.ctr += 1
            e.prev = self.suite.hash(data)
        return data

    def upload(self, edge: str, items: list[bytes], **kw: object) -> bytes:
        return encode_upload(self.header(edge, items, **kw), items)  # type: ignore[arg-type]

    def settings(self, tmp: str = "data", **kw: object) -> CloudSettings:
        tokens = [
            ApiToken(sha256=token_digest(TOKENS["acme"]), org="acme", role="member"),
            ApiToken(sha256=token_digest(TOKENS["other"]), org="other", role="member"),
            ApiToken(sha256=token_digest(TOKENS["regulator"]), org="gov", role="regulator"),
        ]
        return CloudSettings(id="cloud-1", org="bank", data_dir=tmp, api_tokens=tokens, **kw)  # type: ignore[arg-type]


def make_world(suite_name: str = "intl") -> World:
    suite = get_suite(suite_name)
    org_keys = {o: SigningKey.generate(suite) for o in ("acme", "other", "bank")}
    trust = Trust(suite, {o: k.public for o, k in org_keys.items()})
    cloud_key = SigningKey.generate(suite)
    world = World(suite, org_keys, trust, CloudIdentity("cloud-1", "bank", cloud_key))
    reg = world.register("cloud", "cloud-1", "bank", "", cloud_key, Assurance.DEVICE)
    world.identity = CloudIdentity("cloud-1", "bank", cloud_key, reg)
    for edge, org, site in (("e1", "acme", "s1"), ("e9", "other", "s9")):
        key = SigningKey.generate(suite)
        world.edges[edge] = EdgeChain(edge, site, key)
        world.register("edge", edge, org, site, key, Assurance.EDGE)
    fw = b"\x01" * 32
    for dev, org, site, assurance in (
        ("d1", "acme", "s1", Assurance.DEVICE),
        ("d2", "acme", "s1", Assurance.EDGE),
        ("d3", "acme", "s1", Assurance.MANUAL),
        ("d9", "other", "s9", Assurance.DEVICE),
    ):
        if assurance is Assurance.DEVICE:
            key = SigningKey.generate(suite)
            world.signers[dev] = DeviceSigner(dev, key, fw)
            world.register("device", dev, org, site, key, assurance)
        elif assurance is Assurance.EDGE:
            edge = "e1" if org == "acme" else "e9"
            world.signers[dev] = DeviceSigner(dev, world.edges[edge].key, fw, signer=edge)
            world.register("device", dev, org, site, None, assurance)
        else:
            world.signers[dev] = DeviceSigner(dev, org_keys[org], fw, signer=org)
            world.register("device", dev, org, site, None, assurance)
    return world


CONSORTIUM_POLICY = "2-OF(org:bank, org:acme, org:other)"


async def make_consortium(world: World, directory: Path) -> Consortium:
    """A consortium of the world's organisations, with their own keys (so the genesis
    members are the trust anchors): any two endorse, two of three sign a final checkpoint."""
    from tally.ledger.contract import Registry
    from tally.ledger.contracts import system_contracts
    from tally.ledger.genesis import Ordering

    two = CONSORTIUM_POLICY
    return await Consortium.create(
        directory,
        members=[("bank", ["bank"]), ("acme", ["warehouse"]), ("other", ["logistics"])],
        policies={"anchoring.*": two, "registry.*": two, "membership.*": two},
        quorum=2,
        suite=world.suite,
        ordering=Ordering("solo", 50, 5),
        contracts=Registry(*system_contracts()),
        keys=world.org_keys,
    )

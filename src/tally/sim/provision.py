"""Bootstrap of a small deployment: organisations, keys, trust file and registrations.

Used by ``tally demo`` and by tests and benchmarks that need a real, signed setup. Every
private key is written encrypted (:mod:`tally.crypto.keystore`); the layout under
``data_dir`` is::

    trust.cbor                      the organisations' root public keys
    keys/<org>.key                  organisation root keys
    keys/<edge|cloud id>.key        edge and cloud keys
    keys/devices/<device>.key       device keys (on a real device these never leave it)
    registrations/<id>.cose         signed registrations of every edge, cloud and device
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tally.crypto import SigningKey, Suite, get_suite
from tally.crypto.keystore import save_key
from tally.device.envelope import DeviceSigner
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust


@dataclass(frozen=True)
class DeviceSpec:
    """A device to provision: id, site, sensor profile, owner, and whether it can sign."""

    id: str
    site: str
    profile: str
    org: str
    can_sign: bool = True


@dataclass
class Provisioned:
    suite: Suite
    data_dir: Path
    trust: Trust
    org_keys: dict[str, SigningKey]
    edge_id: str
    edge_key: SigningKey
    cloud_id: str
    cloud_key: SigningKey
    signers: dict[str, DeviceSigner] = field(default_factory=dict)
    specs: dict[str, DeviceSpec] = field(default_factory=dict)
    registrations: dict[str, bytes] = field(default_factory=dict)

    @property
    def trust_path(self) -> Path:
        return self.data_dir / "trust.cbor"

    @property
    def registrations_dir(self) -> Path:
        return self.data_dir / "registrations"

    def key_path(self, name: str) -> Path:
        return self.data_dir / "keys" / f"{name}.key"


def _safe(name: str) -> str:
    return name.replace("/", "_")


def provision(
    data_dir: Path,
    suite_name: str,
    orgs: list[str],
    edge: tuple[str, str, str],
    cloud: tuple[str, str],
    devices: list[DeviceSpec],
    passphrase: str,
    scrypt_n: int = 1 << 14,
    write_device_keys: bool = True,
    now_ms: int | None = None,
) -> Provisioned:
    """Create keys, trust file and registrations for ``edge`` = (id, org, site),
    ``cloud`` = (id, org) and ``devices``; write them under ``data_dir``."""
    suite = get_suite(suite_name)
    t = int(time.time() * 1000) if now_ms is None else now_ms
    org_keys = {o: SigningKey.generate(suite) for o in orgs}
    trust = Trust(suite, {o: k.public for o, k in org_keys.items()})
    data_dir.mkdir(parents=True, exist_ok=True)
    trust.save(data_dir / "trust.cbor")
    edge_id, edge_org, site = edge
    cloud_id, cloud_org = cloud
    edge_key = SigningKey.generate(suite)
    cloud_key = SigningKey.generate(suite)
    p = Provisioned(suite, data_dir, trust, org_keys, edge_id, edge_key, cloud_id, cloud_key)
    for org, key in org_keys.items():
        save_key(p.key_path(org), key, passphrase, scrypt_n)
    save_key(p.key_path(edge_id), edge_key, passphrase, scrypt_n)
    save_key(p.key_path(cloud_id), cloud_key, passphrase, scrypt_n)

    def register(reg: Registration) -> None:
        signed = sign_registration(org_keys[reg.org], reg)
        p.registrations[reg.id] = signed
        path = p.registrations_dir / f"{_safe(reg.id)}.cose"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(signed)

    register(
        Registration(
            "edge",
            edge_id,
            edge_org,
            site,
            "",
            suite.name,
            edge_key.public.raw,
            Assurance.DEVICE,
            t,
        )
    )
    register(
        Registration(
            "cloud",
            cloud_id,
            cloud_org,
            "",
            "",
            suite.name,
            cloud_key.public.raw,
            Assurance.DEVICE,
            t,
        )
    )
    fw = suite.hash(b"tally simulated firmware 1.0")
    for spec in devices:
        p.specs[spec.id] = spec
        if spec.can_sign:
            key = SigningKey.generate(suite)
            p.signers[spec.id] = DeviceSigner(spec.id, key, fw)
            if write_device_keys:
                save_key(p.key_path(f"devices/{_safe(spec.id)}"), key, passphrase, scrypt_n)
            reg = Registration(
                "device",
                spec.id,
                spec.org,
                spec.site,
                spec.profile,
                suite.name,
                key.public.raw,
                Assurance.DEVICE,
                t,
            )
        else:
            reg = Registration(
                "device",
                spec.id,
                spec.org,
                spec.site,
                spec.profile,
                suite.name,
                b"",
                Assurance.EDGE,
                t,
            )
        register(reg)
    return p

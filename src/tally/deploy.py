"""Setting up a real deployment by hand: keys, trust anchors and registrations.

Each organisation keeps its own root key; the trust file lists their public keys; each
organisation signs the registrations of its own devices, edges and clouds. Every private
key is written encrypted with ``TALLY_KEY_PASSPHRASE``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tally import config
from tally.crypto import SigningKey, VerifyKey, get_suite
from tally.crypto.keystore import load_key, save_key
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust, load_trust


class DeployError(Exception):
    """Raised when a deployment command cannot do what it was asked, with the reason."""


def new_key(path: Path, suite: str) -> VerifyKey:
    """Create an encrypted key file at ``path``; refuse to overwrite one."""
    if path.exists():
        raise DeployError(f"{path} exists; refusing to overwrite a key")
    key = SigningKey.generate(get_suite(suite))
    save_key(path, key, config.passphrase())
    return key.public


def public_key(path: Path) -> VerifyKey:
    return load_key(path, config.passphrase()).public


def trust_add(trust_path: Path, org: str, key_path: Path) -> Trust:
    """Add (or replace) organisation ``org``'s root public key in the trust file."""
    pub = public_key(key_path)
    if trust_path.exists():
        trust = load_trust(trust_path)
        if trust.suite is not pub.suite:
            raise DeployError(f"trust file is {trust.suite.name}, the key is {pub.suite.name}")
        orgs = dict(trust.orgs)
    else:
        orgs = {}
    orgs[org] = pub
    out = Trust(pub.suite, orgs)
    out.save(trust_path)
    return out


def register(
    kind: str,
    subject: str,
    org: str,
    org_key_path: Path,
    out_dir: Path,
    *,
    site: str = "",
    profile: str = "",
    subject_key_path: Path | None = None,
    assurance: str = "device",
) -> Path:
    """Sign a registration of ``subject`` by ``org`` and write it to ``out_dir``."""
    org_key = load_key(org_key_path, config.passphrase())
    level = Assurance.parse(assurance)
    if subject_key_path is not None:
        pub = public_key(subject_key_path)
        if pub.suite is not org_key.suite:
            raise DeployError(f"{subject} key is {pub.suite.name}, org key {org_key.suite.name}")
        raw = pub.raw
    elif kind == "device" and level is not Assurance.DEVICE:
        raw = b""
    else:
        raise DeployError(f"{kind} {subject!r} needs --key (only non-signing devices have none)")
    reg = Registration(
        kind, subject, org, site, profile, org_key.suite.name, raw, level, int(time.time() * 1000)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{subject.replace('/', '_')}.cose"
    path.write_bytes(sign_registration(org_key, reg))
    return path

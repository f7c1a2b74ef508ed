"""Creating a consortium: a key for each member in its own directory, and the genesis.

Layout under the consortium directory::

    genesis.cbor                  the genesis file, signed by every member (the root of trust)
    members/<org>/member.key      the member's key, encrypted with TALLY_KEY_PASSPHRASE

In a real consortium each member creates its key on its own machine and only the public key
travels; ``tally consortium init`` does all of it in one place for a test bed or the demo.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.crypto import SigningKey, get_suite
from tally.crypto.keystore import DEFAULT_SCRYPT_N, save_key
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis

SYSTEM_CONTRACTS = ("membership", "registry", "anchoring")


def majority(orgs: Sequence[str]) -> list[Any]:
    """``k_of`` a strict majority of ``orgs``."""
    k = len(orgs) // 2 + 1
    return ["k_of", k, *(["org", o] for o in sorted(orgs))]


def any_of(orgs: Sequence[str]) -> list[Any]:
    return ["or", *(["org", o] for o in sorted(orgs))]


def default_policies(members: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Membership changes need a majority of members; registrations and anchors need the
    endorsement of any two members (one when the consortium has one member)."""
    orgs = sorted(members)
    two = ["k_of", min(2, len(orgs)), *(["org", o] for o in orgs)]
    return {"membership.*": majority(orgs), "registry.*": two, "anchoring.*": two}


@dataclass(frozen=True)
class Created:
    directory: Path
    genesis: Genesis
    keys: dict[str, SigningKey]

    @property
    def genesis_path(self) -> Path:
        return self.directory / "genesis.cbor"

    def key_path(self, org: str) -> Path:
        return self.directory / "members" / org / "member.key"


def create_consortium(
    directory: Path,
    members: Mapping[str, Sequence[str]],
    passphrase: str,
    *,
    name: str = "tally",
    suite: str = "intl",
    quorum: int | None = None,
    policies: Mapping[str, Any] | None = None,
    ordering: Ordering | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    now_ms: int | None = None,
) -> Created:
    """Make every member's key and the genesis they all sign; write both under ``directory``.

    ``quorum`` defaults to a strict majority; ``policies`` are added to the defaults of the
    system contracts (and override them by name).
    """
    s = get_suite(suite)
    if (directory / "genesis.cbor").exists():
        raise FileExistsError(f"{directory / 'genesis.cbor'} exists; refusing to overwrite")
    keys = {org: SigningKey.generate(s) for org in members}
    g = Genesis(
        name=name,
        suite=s,
        t=int(time.time() * 1000) if now_ms is None else now_ms,
        members={
            org: Member(org, tuple(roles), keys[org].public.raw) for org, roles in members.items()
        },
        policies={**default_policies(members), **(policies or {})},
        checkpoint_quorum=quorum if quorum is not None else len(members) // 2 + 1,
        ordering=ordering or Ordering(),
    )
    data = g.to_file([g.sign(org, key) for org, key in sorted(keys.items())])
    load_genesis(data)  # everything above is checked the way every verifier will check it
    created = Created(directory, g, keys)
    for org, key in keys.items():
        save_key(created.key_path(org), key, passphrase, scrypt_n)
    directory.mkdir(parents=True, exist_ok=True)
    created.genesis_path.write_bytes(data)
    return created

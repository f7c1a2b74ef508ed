"""Genesis: block 0, the consortium's root of trust (layout in :mod:`tally.ledger.formats`).

A genesis is created once by the founding members, each signing its body; every verifier
(peers, ``tally verify``) starts from it: the suite, the members with their roles and keys,
the endorsement policy of every contract function, the checkpoint quorum and the ordering
settings. Later membership changes are transactions of the ``membership`` system contract,
governed by the policy named ``membership.*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally import formats as F
from tally.crypto import (
    CryptoError,
    DecodeError,
    SigningKey,
    Suite,
    VerifyKey,
    cbor,
    get_suite,
    parse_sign1,
    sign1,
)
from tally.ledger.formats import CTY_GENESIS, ROLES

ORDERING_KINDS = ("solo", "jetstream")


class GenesisError(DecodeError):
    """Raised when a genesis file is malformed, inconsistent or not signed by every member."""

    def __init__(self, reason: str) -> None:
        super().__init__("genesis", reason)


@dataclass(frozen=True)
class Member:
    org: str
    roles: tuple[str, ...]
    pub: bytes


@dataclass(frozen=True)
class Ordering:
    kind: str = "solo"
    max_txs: int = 500
    max_ms: int = 200


@dataclass(frozen=True)
class Genesis:
    name: str
    suite: Suite
    t: int
    members: dict[str, Member]
    policies: dict[str, Any]
    checkpoint_quorum: int
    ordering: Ordering = field(default_factory=Ordering)
    _chain: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        object.__setattr__(self, "_chain", self.suite.hash(self.body()))

    def body(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "name": self.name,
                "suite": self.suite.name,
                "t": self.t,
                "members": {
                    m.org: {"roles": list(m.roles), "pub": m.pub} for m in self.members.values()
                },
                "policies": self.policies,
                "checkpoint_quorum": self.checkpoint_quorum,
                "ordering": {
                    "kind": self.ordering.kind,
                    "max_txs": self.ordering.max_txs,
                    "max_ms": self.ordering.max_ms,
                },
            }
        )

    @property
    def chain(self) -> bytes:
        """The chain id: the suite hash of the genesis body (computed when made)."""
        return self._chain

    def key(self, org: str) -> VerifyKey | None:
        m = self.members.get(org)
        return VerifyKey(self.suite, m.pub) if m is not None else None

    def policy(self, contract: str, fn: str) -> Any | None:
        """The policy of ``contract.fn``, else the contract's default ``contract.*``."""
        return self.policies.get(f"{contract}.{fn}", self.policies.get(f"{contract}.*"))

    def sign(self, org: str, key: SigningKey) -> bytes:
        return sign1(key, CTY_GENESIS, org, self.body())

    def to_file(self, sigs: list[bytes]) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "kind": "tally.genesis", "body": self.body(), "sigs": sigs}
        )


def _member(org: Any, raw: Any, suite: Suite) -> Member:
    if not isinstance(org, str) or not org:
        raise GenesisError("member ids must be non-empty text")
    if not isinstance(raw, dict) or set(raw) != {"roles", "pub"}:
        raise GenesisError(f"member {org!r} must have exactly roles and pub")
    roles = raw["roles"]
    if not isinstance(roles, list | tuple) or not roles or any(r not in ROLES for r in roles):
        raise GenesisError(f"member {org!r} roles must be a non-empty list of {', '.join(ROLES)}")
    pub = raw["pub"]
    if not isinstance(pub, bytes):
        raise GenesisError(f"member {org!r} pub must be bytes")
    try:
        VerifyKey(suite, pub)
    except CryptoError as exc:
        raise GenesisError(f"member {org!r}: {exc}") from None
    return Member(org, tuple(roles), pub)


def decode_genesis_body(body: bytes) -> Genesis:
    where = "genesis"
    keys = {"v", "name", "suite", "t", "members", "policies", "checkpoint_quorum", "ordering"}
    obj = F.check_keys(cbor.decode(body, where=where), keys, set(), where)
    suite = get_suite(F.field(obj, "suite", str, where))
    members_raw = F.field(obj, "members", dict, where)
    members = {org: _member(org, raw, suite) for org, raw in members_raw.items()}
    if not members:
        raise GenesisError("a consortium needs at least one member")
    policies = F.field(obj, "policies", dict, where)
    from tally.ledger.policy import check_policy  # the policy grammar lives with its evaluator

    for name, pol in policies.items():
        if not isinstance(name, str) or "." not in name:
            raise GenesisError(f"policy name {name!r} is not contract.function")
        check_policy(pol, members, where=f"policy {name}")
    quorum = F.field(obj, "checkpoint_quorum", int, where)
    if not 1 <= quorum <= len(members):
        raise GenesisError(f"checkpoint_quorum {quorum} must be between 1 and {len(members)}")
    o = F.field(obj, "ordering", dict, where)
    if set(o) != {"kind", "max_txs", "max_ms"} or o["kind"] not in ORDERING_KINDS:
        raise GenesisError("ordering must be {kind: solo|jetstream, max_txs, max_ms}")
    for k in ("max_txs", "max_ms"):
        if not isinstance(o[k], int) or isinstance(o[k], bool) or o[k] < 1:
            raise GenesisError(f"ordering.{k} must be a positive integer")
    return Genesis(
        name=F.field(obj, "name", str, where),
        suite=suite,
        t=F.field(obj, "t", int, where),
        members=members,
        policies=dict(policies),
        checkpoint_quorum=quorum,
        ordering=Ordering(o["kind"], o["max_txs"], o["max_ms"]),
    )


def load_genesis(data: bytes) -> Genesis:
    """Decode a genesis file and check that every member signed its body."""
    where = "genesis file"
    obj = F.check_keys(cbor.decode(data, where=where), {"v", "kind", "body", "sigs"}, set(), where)
    if obj["kind"] != "tally.genesis":
        raise GenesisError(f"kind {obj['kind']!r} is not tally.genesis")
    body = F.field(obj, "body", bytes, where)
    g = decode_genesis_body(body)
    signed: set[str] = set()
    for raw in F.field(obj, "sigs", (list, tuple), where):
        if not isinstance(raw, bytes):
            raise GenesisError("signatures must be byte strings")
        msg = parse_sign1(raw, content_type=CTY_GENESIS, suite=g.suite)
        if msg.payload != body:
            raise GenesisError(f"the signature of {msg.kid!r} is over another body")
        key = g.key(msg.kid)
        if key is None:
            raise GenesisError(f"{msg.kid!r} signed but is not a member")
        msg.verify(key)
        signed.add(msg.kid)
    missing = set(g.members) - signed
    if missing:
        raise GenesisError(f"not signed by {', '.join(sorted(missing))}")
    return g


def read_genesis(path: Path) -> Genesis:
    return load_genesis(path.read_bytes())

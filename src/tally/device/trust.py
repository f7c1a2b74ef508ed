"""Trust anchors: the organisations' root public keys.

A trust file is deterministic CBOR (unsigned: it is the root of trust, distributed out of
band; the consortium genesis takes its place once the ledger exists)::

    {"v": 1, "kind": "tally.trust", "suite": "intl" | "gm", "orgs": {org id: bstr pub}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tally import formats as F
from tally.crypto import DecodeError, Suite, VerifyKey, cbor, get_suite


@dataclass(frozen=True)
class Trust:
    suite: Suite
    orgs: dict[str, VerifyKey]

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {
                "v": F.FORMAT_VERSION,
                "kind": "tally.trust",
                "suite": self.suite.name,
                "orgs": {k: v.raw for k, v in self.orgs.items()},
            }
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_cbor())


def decode_trust(data: bytes) -> Trust:
    where = "trust file"
    obj = F.check_keys(cbor.decode(data, where=where), {"v", "kind", "suite", "orgs"}, set(), where)
    if obj["kind"] != "tally.trust":
        raise DecodeError(where, f"kind {obj['kind']!r} is not tally.trust")
    suite = get_suite(F.field(obj, "suite", str, where))
    orgs = F.field(obj, "orgs", dict, where)
    out: dict[str, VerifyKey] = {}
    for org, pub in orgs.items():
        if not isinstance(org, str) or not isinstance(pub, bytes):
            raise DecodeError(where, "orgs must map organisation id to public key bytes")
        out[org] = VerifyKey(suite, pub)
    return Trust(suite, out)


def load_trust(path: Path) -> Trust:
    return decode_trust(path.read_bytes())

"""``tally audit``: what the cloud database holds, checked against what the chain proves.

The chain's ``anchoring`` contract keeps, for every anchored edge batch, the hash of its
signed header, its Merkle root and its size (``anchor/<edge>/<ctr>``), and the ``registry``
contract the keys of every device and edge (``reg/<id>``). From those alone the audit finds,
for every batch and item in the cloud database:

=====================  ====================================================================
``never_anchored``     a stored batch the chain has no anchor for
``header_altered``     the stored batch header is not the one anchored
``root_mismatch``      the stored items no longer hash to the anchored Merkle root
``item_deleted``       an index of the anchored batch has no stored item
``item_added``         a stored item at an index the anchored batch does not have
``item_altered``       a stored item's bytes no longer carry a valid signature of its signer
``copy_altered``       the decoded columns the API serves (measurements, metadata) differ
                       from what the item's signed bytes say
``batch_deleted``      the chain anchors a batch the cloud does not hold
=====================  ====================================================================

Tampering with a peer's own store is caught by the checkpoints instead: the peer's state
commitment then differs from the quorum's, and the consortium names it at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tally.cloud.itemdecode import decode_item
from tally.cloud.storage.schema import batches, items
from tally.cloud.storage.sql import SqlStorage
from tally.crypto import CryptoError, VerifyKey, get_suite, parse_sign1
from tally.ledger.genesis import Genesis
from tally.ledger.state import StateView
from tally.merkle import Hasher
from tally.merkle.tree import root as merkle_root

KINDS = (
    "never_anchored",
    "header_altered",
    "root_mismatch",
    "item_deleted",
    "item_added",
    "item_altered",
    "copy_altered",
    "batch_deleted",
)


@dataclass(frozen=True)
class Finding:
    kind: str
    edge: str
    ctr: int
    index: int | None
    detail: str

    def line(self) -> str:
        where = f"{self.edge}#{self.ctr}" + (f"[{self.index}]" if self.index is not None else "")
        return f"{self.kind:15} {where:28} {self.detail}"


@dataclass
class AuditReport:
    batches: int = 0
    items: int = 0
    anchored: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for f in self.findings:
            out[f.kind] += 1
        return out


def _anchors(chain: StateView) -> dict[tuple[str, int], dict[str, Any]]:
    """Every anchored batch: (edge, ctr) -> {"hash", "root", "n", …}."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value, _version in chain.range("anchor/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].isdigit() and isinstance(value, dict):
            out[(parts[1], int(parts[2]))] = value
    return out


class _Keys:
    """Signer keys as the chain says: registrations, then genesis members (manual entries)."""

    def __init__(self, chain: StateView, genesis: Genesis) -> None:
        self.chain = chain
        self.genesis = genesis
        self._cache: dict[str, VerifyKey | None] = {}

    def get(self, signer: str) -> VerifyKey | None:
        if signer not in self._cache:
            key: VerifyKey | None = None
            hit = self.chain.get(f"reg/{signer}")
            if hit is not None and isinstance(hit[0], dict) and hit[0].get("pub"):
                key = VerifyKey(get_suite(str(hit[0]["suite"])), bytes(hit[0]["pub"]))
            elif signer in self.genesis.members:
                key = self.genesis.key(signer)
            self._cache[signer] = key
        return self._cache[signer]


def _batch_rows(storage: SqlStorage) -> Iterator[Any]:
    with storage.engine.connect() as conn:
        yield from conn.execute(sa.select(batches).order_by(batches.c.edge, batches.c.ctr))


def _item_rows(storage: SqlStorage, batch_id: int) -> list[Any]:
    with storage.engine.connect() as conn:
        q = sa.select(items).where(items.c.batch_id == batch_id).order_by(items.c.idx)
        return list(conn.execute(q))


def _check_items(
    report: AuditReport, edge: str, ctr: int, rows: list[Any], n: int, keys: _Keys
) -> None:
    seen = {int(r.idx) for r in rows}
    for missing in sorted(set(range(n)) - seen):
        report.findings.append(Finding("item_deleted", edge, ctr, missing, "no stored item"))
    for r in rows:
        idx, cose = int(r.idx), bytes(r.cose)
        if idx >= n:
            report.findings.append(Finding("item_added", edge, ctr, idx, f"batch has {n} items"))
            continue
        try:
            msg = parse_sign1(cose)
            key = keys.get(msg.kid)
            if key is None:
                raise CryptoError(f"signer {msg.kid!r} is not registered on chain")
            msg.verify(key)
        except CryptoError as exc:
            report.findings.append(Finding("item_altered", edge, ctr, idx, str(exc)))
            continue
        d = decode_item(idx, cose, msg)
        if (d.measurements, d.meta) != (r.measurements, r.meta) or d.hash != bytes(r.hash):
            what = "measurements" if d.measurements != r.measurements else "metadata or hash"
            report.findings.append(
                Finding(
                    "copy_altered", edge, ctr, idx, f"stored {what} differ from the signed item"
                )
            )


def audit(storage: SqlStorage, chain: StateView, genesis: Genesis) -> AuditReport:
    """Compare every batch and item in ``storage`` with the anchors in ``chain``."""
    report = AuditReport()
    anchors = _anchors(chain)
    report.anchored = len(anchors)
    keys = _Keys(chain, genesis)
    h = Hasher.for_name(genesis.suite.hash_name)
    held: set[tuple[str, int]] = set()
    for b in _batch_rows(storage):
        edge, ctr = str(b.edge), int(b.ctr)
        held.add((edge, ctr))
        report.batches += 1
        rows = _item_rows(storage, int(b.id))
        report.items += len(rows)
        anchor = anchors.get((edge, ctr))
        if anchor is None:
            report.findings.append(Finding("never_anchored", edge, ctr, None, "no anchor on chain"))
            continue
        if genesis.suite.hash(bytes(b.header)) != anchor["hash"]:
            report.findings.append(
                Finding("header_altered", edge, ctr, None, "header hash differs from the anchor")
            )
        n = int(anchor["n"])
        before = len(report.findings)
        _check_items(report, edge, ctr, rows, n, keys)
        leaves = [h.hash_leaf(bytes(r.cose)) for r in rows if int(r.idx) < n]
        got = merkle_root(h, leaves)
        if got != anchor["root"] and len(report.findings) == before:
            want = bytes(anchor["root"]).hex()[:16]
            detail = f"items hash to {got.hex()[:16]}…, anchored {want}…"
            report.findings.append(Finding("root_mismatch", edge, ctr, None, detail))
    for edge, ctr in sorted(set(anchors) - held):
        report.findings.append(
            Finding("batch_deleted", edge, ctr, None, "anchored on chain, not in the cloud")
        )
    return report


__all__ = ["KINDS", "AuditReport", "Finding", "audit"]

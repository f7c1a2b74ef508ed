"""Ingest: verify an edge's batch end to end, store it, and sign a receipt.

Pure logic over :class:`~tally.cloud.storage.api.Storage`; the HTTP layer only passes bytes.
The checks run in this order, and the first failure rejects the whole batch with
:class:`~tally.cloud.errors.IngestRejected` (nothing is stored):

1. the upload, the header's COSE_Sign1 and its payload decode (``malformed``); header and
   cloud use the same suite (``wrong_suite``);
2. the header's ``kid`` is its ``edge`` (``wrong_signer``); the edge has a registration of kind
   ``edge`` (``unknown_edge``) from a trust-anchor organisation (``untrusted_org``), not
   revoked before the header's ``t1`` (``revoked_edge``); the signature verifies under the
   registered key (``bad_header_signature``);
3. the same (edge, ctr) already stored: the same header hash gives a receipt with
   ``dup = true`` and stores nothing; another header is ``batch_conflict``;
4. chain continuity: batches may arrive out of order, but when batch ``ctr - 1`` is stored its
   header hash must equal ``prev``, and when ``ctr + 1`` is stored its ``prev`` must equal this
   header's hash (``broken_chain``);
5. ``n`` equals the item count (``count_mismatch``) and the RFC 9162 root over the items' COSE
   bytes equals the header's (``root_mismatch``);
6. every item (with its index): decodes (``malformed``), uses the suite (``wrong_suite``), is
   signed by whom it must be (``wrong_signer``: a reading by its device for assurance
   ``device``, by the batch's edge for ``edge``, by its organisation for ``manual``; events,
   gaps and summaries by the batch's edge), names a registered device (``unknown_device``)
   not revoked before the reading's time (``revoked_device``), and its signature verifies
   (``bad_item_signature``);
7. no item is already stored, in this batch or another (``duplicate_item``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tally.cloud.errors import BatchExists, IngestRejected, ItemExists
from tally.cloud.itemdecode import DecodedItem, decode_item
from tally.cloud.keys import CloudIdentity
from tally.cloud.storage.api import BatchRecord, NewBatch, NewGap, NewItem, Storage
from tally.crypto import (
    CryptoError,
    Sign1,
    UnknownSuite,
    VerifyKey,
    WrongSuite,
    get_suite,
)
from tally.crypto import parse_sign1 as _parse_sign1
from tally.device.registration import Assurance
from tally.device.trust import Trust
from tally.edge.formats import (
    BatchHeader,
    Receipt,
    decode_batch_header,
    decode_upload,
    sign_object,
)
from tally.formats import CTY_BATCH, CTY_RECEIPT
from tally.merkle import Hasher, root


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class IngestResult:
    """The signed receipt (COSE bytes), whether the batch was a repeat, and its row id."""

    receipt: bytes
    dup: bool
    batch_id: int
    n: int


class Ingestor:
    """Verifies and stores edge batches for one cloud identity and trust."""

    def __init__(
        self,
        storage: Storage,
        trust: Trust,
        identity: CloudIdentity,
        clock: Callable[[], int] = now_ms,
        max_upload_bytes: int = 16 << 20,
    ) -> None:
        if identity.key.suite is not trust.suite:
            raise ValueError("the cloud key's suite differs from the trust's")
        self.storage = storage
        self.trust = trust
        self.identity = identity
        self.clock = clock
        self.max_upload_bytes = max_upload_bytes
        self.hasher = Hasher.for_name(trust.suite.hash_name)

    def ingest_upload(self, body: bytes) -> IngestResult:
        """Ingest the body of ``POST /v1/batches`` (an upload, see ``decode_upload``)."""
        try:
            header, items = decode_upload(body, max_size=self.max_upload_bytes)
        except CryptoError as exc:
            raise IngestRejected("malformed", str(exc)) from None
        return self.ingest(header, items)

    def ingest(self, header_cose: bytes, items: list[bytes]) -> IngestResult:
        """Verify and store one batch; return the receipt. Raises IngestRejected."""
        suite = self.trust.suite
        msg = self._parse(header_cose, CTY_BATCH, None)
        try:
            header = decode_batch_header(msg.payload)
        except CryptoError as exc:
            raise IngestRejected("malformed", str(exc)) from None
        if header.suite != suite.name:
            raise IngestRejected("wrong_suite", f"batch suite {header.suite!r}, cloud {suite}")
        if msg.kid != header.edge:
            raise IngestRejected(
                "wrong_signer", f"header signed by {msg.kid!r} but names edge {header.edge!r}"
            )
        edge_reg = self.storage.registrations([header.edge]).get(header.edge)
        if edge_reg is None or edge_reg.kind != "edge":
            raise IngestRejected("unknown_edge", f"no edge registration for {header.edge!r}")
        if edge_reg.org not in self.trust.orgs:
            raise IngestRejected(
                "untrusted_org", f"edge {header.edge!r} registered by {edge_reg.org!r}"
            )
        rev = self.storage.revocations([header.edge]).get(header.edge)
        if rev is not None and header.t1 > rev.t:
            raise IngestRejected(
                "revoked_edge", f"edge {header.edge!r} revoked at {rev.t} ({rev.reason})"
            )
        edge_key = _key(edge_reg.suite, edge_reg.pub)
        if edge_key is None:
            raise IngestRejected("unknown_edge", f"edge {header.edge!r} has no public key")
        try:
            msg.verify(edge_key)
        except CryptoError as exc:
            raise IngestRejected("bad_header_signature", str(exc)) from None

        header_hash = suite.hash(header_cose)
        stored = self.storage.batch(header.edge, header.ctr)
        if stored is not None:
            return self._repeat(stored, header, header_hash)
        self._check_chain(header, header_hash)

        if header.n != len(items):
            raise IngestRejected("count_mismatch", f"header n={header.n}, {len(items)} items")
        got = root(self.hasher, [self.hasher.hash_leaf(i) for i in items])
        if got != header.root:
            raise IngestRejected(
                "root_mismatch", f"header root {header.root.hex()}, items give {got.hex()}"
            )

        decoded = [decode_item(i, data, self._parse(data, None, i)) for i, data in enumerate(items)]
        new_items, gaps = self._verify_items(header, edge_reg.org, edge_key, decoded)

        received = self.clock()
        receipt = self._receipt(header, header_hash, received, dup=False)
        batch = NewBatch(
            edge=header.edge,
            site=header.site,
            suite=header.suite,
            ctr=header.ctr,
            prev=header.prev,
            t0=header.t0,
            t1=header.t1,
            n=header.n,
            root=header.root,
            header=bytes(header_cose),
            header_hash=header_hash,
            received=received,
            receipt=receipt,
            org=edge_reg.org,
        )
        try:
            batch_id = self.storage.store_batch(batch, new_items, gaps)
        except BatchExists:
            again = self.storage.batch(header.edge, header.ctr)
            if again is None:
                raise
            return self._repeat(again, header, header_hash)
        except ItemExists as exc:
            raise IngestRejected("duplicate_item", exc.detail) from None
        return IngestResult(receipt, False, batch_id, header.n)

    # -- steps ---------------------------------------------------------------------------
    def _parse(self, data: bytes, cty: str | None, index: int | None) -> Sign1:
        try:
            msg = _parse_sign1(data, content_type=cty, suite=self.trust.suite)
        except (WrongSuite, UnknownSuite) as exc:
            raise IngestRejected("wrong_suite", str(exc), index) from None
        except CryptoError as exc:
            raise IngestRejected("malformed", str(exc), index) from None
        return msg

    def _repeat(self, stored: BatchRecord, header: BatchHeader, header_hash: bytes) -> IngestResult:
        if stored.header_hash != header_hash:
            raise IngestRejected(
                "batch_conflict",
                f"batch {header.ctr} of edge {header.edge!r} is stored with header "
                f"{stored.header_hash.hex()}, this one is {header_hash.hex()}",
            )
        receipt = self._receipt(header, header_hash, self.clock(), dup=True)
        return IngestResult(receipt, True, stored.id, stored.n)

    def _check_chain(self, header: BatchHeader, header_hash: bytes) -> None:
        if header.ctr > 0:
            before = self.storage.batch(header.edge, header.ctr - 1)
            if before is not None and before.header_hash != header.prev:
                raise IngestRejected(
                    "broken_chain",
                    f"prev {header.prev.hex()} is not the hash {before.header_hash.hex()} "
                    f"of stored batch {header.ctr - 1}",
                )
        after = self.storage.batch(header.edge, header.ctr + 1)
        if after is not None and after.prev != header_hash:
            raise IngestRejected(
                "broken_chain",
                f"stored batch {header.ctr + 1} has prev {after.prev.hex()}, "
                f"not this header's hash {header_hash.hex()}",
            )

    def _verify_items(
        self, header: BatchHeader, edge_org: str, edge_key: VerifyKey, decoded: list[DecodedItem]
    ) -> tuple[list[NewItem], list[NewGap]]:
        devices = {d.device for d in decoded if d.device is not None}
        regs = self.storage.registrations(devices)
        revs = self.storage.revocations(devices)
        seen: dict[bytes, int] = {}
        out: list[NewItem] = []
        gaps: list[NewGap] = []
        for d in decoded:
            i = d.index
            if d.hash in seen:
                raise IngestRejected("duplicate_item", f"same as item {seen[d.hash]}", i)
            seen[d.hash] = i
            org, site = edge_org, d.site or header.site
            key: VerifyKey | None
            if d.kind in ("reading", "heartbeat"):
                assert d.device is not None
                reg = regs.get(d.device)
                if reg is None or reg.kind != "device":
                    raise IngestRejected("unknown_device", f"no registration for {d.device!r}", i)
                if reg.org not in self.trust.orgs:
                    raise IngestRejected("untrusted_org", f"{d.device!r} by {reg.org!r}", i)
                rev = revs.get(d.device)
                if rev is not None and d.t > rev.t:
                    raise IngestRejected(
                        "revoked_device",
                        f"{d.device!r} revoked at {rev.t} ({rev.reason}), reading at {d.t}",
                        i,
                    )
                assurance = Assurance(reg.assurance)
                if assurance is Assurance.DEVICE:
                    want, key = d.device, _key(reg.suite, reg.pub)
                elif assurance is Assurance.EDGE:
                    want, key = header.edge, edge_key
                else:
                    want, key = reg.org, self.trust.orgs[reg.org]
                org, site = reg.org, reg.site
            else:
                assurance = Assurance.EDGE
                want, key = header.edge, edge_key
                if d.edge != header.edge:
                    raise IngestRejected(
                        "wrong_signer", f"{d.kind} names edge {d.edge!r}, not {header.edge!r}", i
                    )
                if d.device is not None and d.device in regs:
                    org = regs[d.device].org
            if d.msg.kid != want or key is None:
                raise IngestRejected(
                    "wrong_signer",
                    f"{d.kind} signed by {d.msg.kid!r}, must be signed by {want!r}",
                    i,
                )
            try:
                d.msg.verify(key)
            except CryptoError as exc:
                raise IngestRejected("bad_item_signature", str(exc), i) from None
            out.append(d.to_new_item(site, org, int(assurance)))
            if d.gap is not None:
                g = d.gap
                gaps.append(
                    NewGap(g.edge, g.dev, org, g.boot, g.first, g.last, g.reason, g.t, d.hash)
                )
        already = self.storage.stored_item_hashes(list(seen))
        if already:
            h, (edge, ctr) = next(iter(already.items()))
            raise IngestRejected(
                "duplicate_item", f"already stored in batch {ctr} of edge {edge!r}", seen[h]
            )
        return out, gaps

    def _receipt(self, header: BatchHeader, header_hash: bytes, t: int, dup: bool) -> bytes:
        r = Receipt(self.identity.id, header.edge, header.ctr, header_hash, header.n, t, dup)
        return sign_object(self.identity.key, CTY_RECEIPT, self.identity.id, r.to_cbor())


def _key(suite: str, pub: bytes) -> VerifyKey | None:
    return VerifyKey(get_suite(suite), pub) if pub else None

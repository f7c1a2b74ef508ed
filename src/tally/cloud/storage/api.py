"""The storage interface of the cloud, and the records it takes and returns.

Every backend (:mod:`~tally.cloud.storage.sqlite`, :mod:`~tally.cloud.storage.postgres`)
implements :class:`Storage`; one contract test suite runs against each. Times are integer
milliseconds since the Unix epoch; hashes are the consortium suite's hash (32 bytes); device
times (``t``) come from the signed objects, ``received`` from the cloud's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

ITEM_KINDS = ("reading", "heartbeat", "event", "gap", "summary")

PENDING = "pending"
ANCHORED = "anchored"
REFUSED = "refused"
ANCHOR_STATES = (PENDING, ANCHORED, REFUSED)
"""The states of a batch's anchor on the consortium ledger: submitted and not yet settled,
committed as valid under a final checkpoint, or refused by the ``anchoring`` contract."""


@dataclass(frozen=True)
class RegistrationRecord:
    """A verified registration: its signed bytes and decoded fields."""

    subject: str
    kind: str
    org: str
    site: str
    profile: str
    suite: str
    pub: bytes
    assurance: int
    t: int
    raw: bytes
    hash: bytes
    received: int


@dataclass(frozen=True)
class RevocationRecord:
    """A verified revocation: subject ``subject`` is revoked from time ``t`` on."""

    subject: str
    org: str
    t: int
    reason: str
    raw: bytes
    hash: bytes
    received: int


@dataclass(frozen=True)
class NewBatch:
    """A verified batch about to be stored."""

    edge: str
    site: str
    suite: str
    ctr: int
    prev: bytes
    t0: int
    t1: int
    n: int
    root: bytes
    header: bytes
    header_hash: bytes
    received: int
    receipt: bytes
    org: str


@dataclass(frozen=True)
class BatchRecord:
    """A stored batch."""

    id: int
    edge: str
    site: str
    suite: str
    ctr: int
    prev: bytes
    t0: int
    t1: int
    n: int
    root: bytes
    header: bytes
    header_hash: bytes
    received: int
    receipt: bytes


@dataclass(frozen=True)
class NewItem:
    """A verified item of a batch, with what was decoded from it for querying.

    ``measurements`` is JSON text ``[{"q": quantity, "v": "decimal as text", "u": unit}]``;
    ``meta`` is JSON text of the other decoded fields (labels, event details, gap range …).
    ``device`` is None for events (their devices are in ``meta``); ``org`` owns the item
    (the device's organisation, or the edge's for edge objects).
    """

    index: int
    kind: str
    signer: str
    device: str | None
    site: str
    org: str
    boot: int | None
    ctr: int | None
    t: int
    hash: bytes
    assurance: int
    cose: bytes
    measurements: str = "[]"
    meta: str = "{}"
    rule: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    """A stored item, with the identity of its batch."""

    id: int
    batch_id: int
    edge: str
    batch_ctr: int
    index: int
    kind: str
    signer: str
    device: str | None
    site: str
    org: str
    boot: int | None
    ctr: int | None
    t: int
    hash: bytes
    assurance: int
    cose: bytes
    measurements: str
    meta: str
    rule: str | None
    received: int


@dataclass(frozen=True)
class NewGap:
    """A certified gap in one device's counter sequence, ``first``..``last`` inclusive."""

    edge: str
    device: str
    org: str
    boot: int
    first: int
    last: int
    reason: str
    t: int
    item_hash: bytes


@dataclass(frozen=True)
class GapRecord:
    id: int
    edge: str
    device: str
    org: str
    boot: int
    first: int
    last: int
    reason: str
    t: int
    item_hash: bytes


@dataclass(frozen=True)
class DeviceStatus:
    """What the cloud has seen of one device (updated by every stored batch)."""

    device: str
    org: str
    site: str
    last_seen: int
    last_reading_t: int | None
    boot: int
    ctr: int
    items: int


@dataclass(frozen=True)
class EdgeStatus:
    """The batch chain of one edge: highest counter stored and its header hash."""

    edge: str
    org: str
    site: str
    last_ctr: int
    head_hash: bytes
    batches: int
    last_seen: int


@dataclass(frozen=True)
class AnchorRecord:
    """Where batch ``batch_id`` stands on the ledger.

    ``tx_id`` (the anchoring transaction's id), ``height`` (its block) and ``log_index`` (its
    position in the ledger's transaction log) are set once a transaction was ordered, for
    ``anchored`` and for a ``refused`` one that the ledger recorded; ``reason`` says why a
    batch was refused (the contract's words) or why the last attempt failed; ``t`` is the
    cloud's clock when the state was recorded (for ``anchored``: when the checkpoint
    covering the transaction was final).
    """

    batch_id: int
    state: str
    tx_id: bytes | None = None
    height: int | None = None
    log_index: int | None = None
    reason: str = ""
    t: int = 0


@dataclass(frozen=True)
class ItemQuery:
    """A keyset-paginated query over items, ordered by (t, id).

    ``org`` None means every organisation. ``after`` is the (t, id) of the last item of the
    previous page. ``t_from`` is inclusive, ``t_to`` exclusive.
    """

    kinds: tuple[str, ...] = ("reading",)
    device: str | None = None
    site: str | None = None
    rule: str | None = None
    org: str | None = None
    t_from: int | None = None
    t_to: int | None = None
    min_assurance: int = 0
    limit: int = 100
    after: tuple[int, int] | None = None


@dataclass(frozen=True)
class Page:
    """One page of items; ``next_after`` is set when more may follow."""

    items: list[ItemRecord] = field(default_factory=list)
    next_after: tuple[int, int] | None = None


@runtime_checkable
class Storage(Protocol):
    """The cloud's database. Methods are synchronous; each write is one transaction."""

    url: str

    def migrate(self) -> None:
        """Bring the database schema to the newest migration (Alembic ``head``)."""

    def close(self) -> None:
        """Release every connection."""

    def ping(self) -> None:
        """Return None when the database answers; raise otherwise."""

    def add_registration(self, reg: RegistrationRecord) -> bool:
        """Store a registration; return False when these exact bytes were already stored."""

    def add_revocation(self, rev: RevocationRecord) -> bool:
        """Store a revocation; return False when these exact bytes were already stored."""

    def registrations(self, subjects: Iterable[str]) -> dict[str, RegistrationRecord]:
        """The newest registration (highest ``t``) of each subject that has one."""

    def subjects(self, kind: str, org: str | None = None) -> list[RegistrationRecord]:
        """The newest registration of every subject of ``kind`` (of ``org``; None = all)."""

    def revocations(self, subjects: Iterable[str]) -> dict[str, RevocationRecord]:
        """The earliest revocation of each revoked subject."""

    def batch(self, edge: str, ctr: int) -> BatchRecord | None:
        """The stored batch ``ctr`` of ``edge``, if any."""

    def batch_by_id(self, batch_id: int) -> BatchRecord | None:
        """The stored batch with row id ``batch_id``, if any."""

    def edge_status(self, edge: str) -> EdgeStatus | None:
        """The chain state of ``edge``, if it ever uploaded a batch."""

    def store_batch(self, batch: NewBatch, items: Sequence[NewItem], gaps: Sequence[NewGap]) -> int:
        """Store a batch, its items and gaps in one transaction; return the batch's row id.

        Raises :class:`~tally.cloud.errors.BatchExists` when (edge, ctr) is taken and
        :class:`~tally.cloud.errors.ItemExists` when an item hash is already stored; then
        nothing is stored.
        """

    def stored_item_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, int]]:
        """Which of ``hashes`` are stored, each mapped to its batch's (edge, ctr)."""

    def item(self, item_hash: bytes) -> ItemRecord | None:
        """The stored item whose hash is ``item_hash``, if any."""

    def batch_items(self, batch_id: int) -> list[bytes]:
        """The COSE bytes of a batch's items, in index order (the Merkle leaves)."""

    def items(self, query: ItemQuery) -> Page:
        """A page of items matching ``query``."""

    def gaps(self, device: str, org: str | None = None) -> list[GapRecord]:
        """The certified gaps of ``device`` (visible to ``org``; None = all), oldest first."""

    def devices(self, org: str | None = None) -> list[DeviceStatus]:
        """Every device seen in a stored batch (owned by ``org``; None = all), by id."""

    def device(self, device: str) -> DeviceStatus | None:
        """What has been seen of ``device``, if anything."""

    def record_anchor(self, anchor: AnchorRecord) -> None:
        """Set the anchor state of batch ``anchor.batch_id`` (insert or replace).

        Raises ValueError for a state not in :data:`ANCHOR_STATES` and
        :class:`~tally.cloud.errors.StorageError` when the batch is not stored.
        """

    def anchors(self, batch_ids: Iterable[int]) -> dict[int, AnchorRecord]:
        """The anchor state of each of ``batch_ids`` that has one."""

    def batches_to_anchor(self, limit: int = 100) -> list[BatchRecord]:
        """Up to ``limit`` stored batches not yet anchored or refused (no anchor state, or
        ``pending``), ordered by (edge, ctr)."""

    def anchor_counts(self) -> dict[str, int]:
        """How many batches are in each anchor state; ``"none"`` counts batches without one."""

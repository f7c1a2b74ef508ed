"""The rows of the read model: frozen dataclasses, one per kind of record the cloud shows.

Conventions: money is an integer number of fen (``*_fen``, 1 yuan = 100 fen); quantities and
rates are decimal strings (never floats, so nothing is rounded on the way); times are
milliseconds since the Unix epoch (``*_ms``); ``height`` is the ledger height that last
changed the row. Organisation ids, receipt numbers, loan and note ids are the chain's ids.

:class:`Scope` says whose rows a reader may see and :class:`Page` is one page of a list, with
the opaque cursor of the next page (``None`` on the last page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

SEVERITIES = ("info", "warning", "critical")
APPLICATION_STATUSES = ("submitted", "approved", "refused", "withdrawn")
SUBJECT_KINDS = ("receipt", "note")
LIMIT_KINDS = ("credit", "limit")


@dataclass(frozen=True)
class OrgRow:
    """An organisation of the consortium or one it serves (``simulated`` marks made-up data)."""

    id: str
    name: str
    kind: str
    industry: str | None
    region: str | None
    core: str | None  # the core enterprise whose supply chain it belongs to
    tier: int | None  # 1 = direct supplier of ``core``, 2 = supplier of a tier-1, …
    bank: str | None  # its sponsoring / main bank
    simulated: bool


@dataclass(frozen=True)
class ReceiptRow:
    """A warehouse receipt (``rcpt/``): goods at a site, held by ``holder``, maybe pledged."""

    no: str
    holder: str
    custodian: str | None
    bank: str | None
    site: str
    location: str
    commodity: str
    quantity: str
    unit: str
    value_fen: int | None
    status: str
    loan: str | None
    issued_ms: int
    updated_ms: int
    height: int


@dataclass(frozen=True)
class LoanRow:
    """A loan (``loan/``): ``coverage`` is collateral value / outstanding, when known."""

    id: str
    borrower: str
    bank: str
    principal_fen: int
    outstanding_fen: int
    rate: str
    status: str
    coverage: float | None
    receipts: tuple[str, ...]
    trade: str | None
    applied_ms: int
    disbursed_ms: int | None
    due_ms: int | None
    updated_ms: int
    height: int


@dataclass(frozen=True)
class NoteRow:
    """A receivable note (``note/``) of the family ``root``, issued at ``tier`` of the chain."""

    id: str
    root: str
    parent: str | None
    issuer: str
    holder: str
    bank: str | None
    amount_fen: int
    status: str
    tier: int
    trade: str | None
    issued_ms: int
    due_ms: int
    updated_ms: int
    height: int


@dataclass(frozen=True)
class TradeRow:
    """A trade (``trade/``) between ``seller`` and ``buyer``; ``reasons`` of its status."""

    id: str
    seller: str
    buyer: str
    bank: str | None
    status: str
    amount_fen: int
    reasons: tuple[str, ...]
    attested_ms: int | None
    height: int


@dataclass(frozen=True)
class DocumentRow:
    """A trade document (invoice, contract, delivery note …) known by its salted hash (hex)."""

    hash: str
    kind: str
    issuer: str
    counterparty: str | None
    trade: str | None
    number: str | None
    amount_fen: int | None
    at_ms: int
    height: int | None


@dataclass(frozen=True)
class AlertRow:
    """An alert raised by the monitor; ``evidence`` names the records that prove it."""

    id: str
    kind: str
    severity: str  # "info" | "warning" | "critical"
    owner: str
    bank: str | None
    site: str | None
    loan: str | None
    receipt: str | None
    message: str
    at_ms: int
    evidence: tuple[str, ...]
    acked_by: str | None
    acked_ms: int | None


@dataclass(frozen=True)
class ApplicationRow:
    """A financing application made in the cloud by ``applicant`` to ``bank``."""

    id: str
    applicant: str
    bank: str
    subject_kind: str  # "receipt" | "note"
    subject: str
    amount_fen: int
    status: str  # "submitted" | "approved" | "refused" | "withdrawn"
    created_ms: int
    created_by: str
    decided_by: str | None
    decided_ms: int | None
    reason: str | None


@dataclass(frozen=True)
class BlockRow:
    """A committed block of the ledger; ``state`` is the hex state commitment, if any."""

    height: int
    hash: str
    tx_count: int
    time_ms: int | None
    signers: tuple[str, ...]
    state: str | None


@dataclass(frozen=True)
class TxRow:
    """A transaction of a block: ``code`` is its validation code, ``reason`` why it failed."""

    id: str
    height: int
    index: int
    contract: str
    fn: str
    creator: str
    code: str
    reason: str | None


@dataclass(frozen=True)
class LimitRow:
    """A bank's line for a party: ``credit/<bank>/<core>`` (kind "credit", with the discount
    ``rate`` and ``expires_ms``) or ``limit/<bank>/<party>`` (kind "limit")."""

    bank: str
    party: str
    kind: str  # "credit" | "limit"
    limit_fen: int
    used_fen: int
    currency: str
    rate: str | None
    expires_ms: int | None
    updated_ms: int
    height: int


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` back for the next page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Scope:
    """Whose rows a reader sees.

    ``everything=True``: every tenant's rows (the regulator). Otherwise the rows where
    ``tenant`` is the owner, the bank or one of the parties, and the rows whose site is in
    ``sites`` (a warehouse's receipts and alerts).
    """

    tenant: str
    everything: bool = False
    sites: frozenset[str] = frozenset()

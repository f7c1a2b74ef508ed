"""The JSON shapes of the platform API v1 (pydantic models, shown in ``/v1/openapi.json``).

Conventions (those of the read model, :mod:`tally.cloud.views.model`): money is an integer
number of fen (``*_fen``; 1 yuan = 100 fen), quantities and rates are decimal strings, times
are milliseconds since the Unix epoch (``*_ms``). A list is ``{"items": [...],
"next_cursor": str | null}``: pass ``next_cursor`` back as ``cursor`` for the next page.
Request bodies refuse unknown fields (400). Errors are RFC 9457 problems (:class:`Problem`,
``application/problem+json``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Fen = int
"""Money: an integer number of fen."""


class Out(BaseModel):
    """A response object: exactly the fields shown (anything else is left out)."""

    model_config = ConfigDict(extra="ignore")


class In(BaseModel):
    """A request body: unknown fields are refused, and values are not converted (``"100"``
    is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """An RFC 9457 problem: ``type`` is ``urn:tally:problem:<code>`` (or ``about:blank``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class Pong(Out):
    ok: bool
    version: str


# -- rows of the read model -----------------------------------------------------------------
class Org(Out):
    id: str
    name: str
    kind: str
    industry: str | None
    region: str | None
    core: str | None
    tier: int | None
    bank: str | None
    simulated: bool
    sensitive: dict[str, Any] | None = Field(
        default=None,
        description="the decrypted sensitive fields: only with ?include=sensitive (audited)",
    )


class Receipt(Out):
    no: str
    holder: str
    custodian: str | None
    bank: str | None
    site: str
    location: str
    commodity: str
    quantity: str
    unit: str
    value_fen: Fen | None
    status: str
    loan: str | None
    issued_ms: int
    updated_ms: int
    height: int


class Loan(Out):
    id: str
    borrower: str
    bank: str
    principal_fen: Fen
    outstanding_fen: Fen
    rate: str
    status: str
    coverage: float | None
    receipts: list[str]
    trade: str | None
    applied_ms: int
    disbursed_ms: int | None
    due_ms: int | None
    updated_ms: int
    height: int


class Note(Out):
    id: str
    root: str
    parent: str | None
    issuer: str
    holder: str
    bank: str | None
    amount_fen: Fen
    status: str
    tier: int
    trade: str | None
    issued_ms: int
    due_ms: int
    updated_ms: int
    height: int


class Trade(Out):
    id: str
    seller: str
    buyer: str
    bank: str | None
    status: str
    amount_fen: Fen
    reasons: list[str]
    attested_ms: int | None
    height: int


class Document(Out):
    hash: str = Field(description="hex of the document's salted hash")
    kind: str
    issuer: str
    counterparty: str | None
    trade: str | None
    number: str | None
    amount_fen: Fen | None
    at_ms: int
    height: int | None


class Alert(Out):
    id: str
    kind: str
    severity: Literal["info", "warning", "critical"]
    owner: str
    bank: str | None
    site: str | None
    loan: str | None
    receipt: str | None
    message: str
    at_ms: int
    evidence: list[str]
    acked_by: str | None
    acked_ms: int | None


class Application(Out):
    id: str
    applicant: str
    bank: str
    subject_kind: Literal["receipt", "note"]
    subject: str
    amount_fen: Fen
    status: Literal["submitted", "approved", "refused", "withdrawn"]
    created_ms: int
    created_by: str
    decided_by: str | None
    decided_ms: int | None
    reason: str | None


class Block(Out):
    height: int
    hash: str
    tx_count: int
    time_ms: int | None
    signers: list[str]
    state: str | None


class Tx(Out):
    id: str
    height: int
    index: int
    contract: str
    fn: str
    creator: str
    code: str
    reason: str | None


class BlockDetail(Block):
    txs: list[Tx]


class ChainStatus(Out):
    height: int = Field(description="the highest block the read model holds (0: none)")
    latest: Block | None


# -- pages ------------------------------------------------------------------------------------
class OrgPage(Out):
    items: list[Org]
    next_cursor: str | None


class ReceiptPage(Out):
    items: list[Receipt]
    next_cursor: str | None


class LoanPage(Out):
    items: list[Loan]
    next_cursor: str | None


class NotePage(Out):
    items: list[Note]
    next_cursor: str | None


class TradePage(Out):
    items: list[Trade]
    next_cursor: str | None


class DocumentPage(Out):
    items: list[Document]
    next_cursor: str | None


class AlertPage(Out):
    items: list[Alert]
    next_cursor: str | None


class ApplicationPage(Out):
    items: list[Application]
    next_cursor: str | None


class BlockPage(Out):
    items: list[Block]
    next_cursor: str | None


# -- request bodies ---------------------------------------------------------------------------
class ApplicationIn(In):
    """A financing application: ``amount_fen`` against a receipt or note the applicant holds."""

    bank: str = Field(min_length=1, max_length=64, description="the bank applied to")
    subject_kind: Literal["receipt", "note"]
    subject: str = Field(min_length=1, max_length=200, description="receipt no. or note id")
    amount_fen: Fen = Field(gt=0, lt=2**63, description="the amount asked for, in fen")


class DecisionIn(In):
    """``approve`` or ``refuse`` (the bank's credit officers and admins; a refusal needs a
    reason), or ``withdraw`` (the applicant)."""

    decision: Literal["approve", "refuse", "withdraw"]
    reason: str | None = Field(default=None, min_length=1, max_length=500)

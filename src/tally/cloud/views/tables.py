"""The read model's tables as SQLAlchemy Core (migration 0006 creates exactly these).

==============  ==================================================================================
table           holds
==============  ==================================================================================
v_orgs          organisations: name, kind, industry, region, core, tier, bank, simulated and
                ``sensitive`` — a field envelope (:mod:`tally.cloud.fieldcrypt`) of the JSON of
                the sensitive fields, sealed for the organisation's own tenant, or NULL
v_receipts      warehouse receipts; sort key ``issued_ms``
v_loans         loans; ``receipts`` is a JSON list; sort key ``applied_ms``
v_notes         receivable notes; sort key ``issued_ms``
v_trades        trades; ``reasons`` is a JSON list; sort key ``first_height`` (the height at
                which the view first saw the trade; never changes)
v_documents     trade documents by salted hash; ``bank`` is the bank of their trade when known
v_alerts        the monitor's alerts; ``evidence`` is a JSON list; sort key ``at_ms``
v_applications  financing applications made in the cloud; sort key ``created_ms``
v_blocks        ledger blocks by height; ``signers`` is a JSON list
v_txs           their transactions by id (hex), with (height, idx) unique
v_limits        banks' lines: ``credit/<bank>/<core>`` and ``limit/<bank>/<party>``
v_parties       who may see which row: (kind, rid, tenant) for the owner, the bank and every
                party; ``k`` repeats the row's sort key so a tenant's list is one index range
v_meta          key/value text (the projector's cursor and the like)
v_idempotency   the API's idempotent writes: (scope, key) → fingerprint, status, body, state
==============  ==================================================================================

Money is BIGINT fen, times BIGINT ms, quantities and rates decimal text. Every list is read
newest first by ``(sort key, id)`` descending, each with an index that serves it, and every
filter column is indexed.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = 200  # length of ids: receipt numbers, loan/note/trade ids, document hashes
TENANT = 64


def _id(name: str, **kw: bool) -> sa.Column[str]:
    return sa.Column(name, sa.String(ID), **kw)  # type: ignore[arg-type]


def _tenant(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(TENANT), nullable=nullable)


def _ms(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


orgs = sa.Table(
    "v_orgs",
    metadata,
    sa.Column("id", sa.String(TENANT), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("industry", sa.String(100), nullable=True),
    sa.Column("region", sa.String(100), nullable=True),
    _tenant("core", nullable=True),
    sa.Column("tier", sa.Integer(), nullable=True),
    _tenant("bank", nullable=True),
    sa.Column("simulated", sa.Boolean(), nullable=False),
    sa.Column("sensitive", sa.LargeBinary(), nullable=True),
    sa.Index("ix_v_orgs_kind", "kind"),
    sa.Index("ix_v_orgs_core_tier", "core", "tier"),
    sa.Index("ix_v_orgs_bank", "bank"),
)

receipts = sa.Table(
    "v_receipts",
    metadata,
    sa.Column("no", sa.String(ID), primary_key=True),
    _tenant("holder"),
    _tenant("custodian", nullable=True),
    _tenant("bank", nullable=True),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("location", sa.String(200), nullable=False),
    sa.Column("commodity", sa.String(100), nullable=False),
    sa.Column("quantity", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("value_fen", sa.BigInteger(), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("loan", sa.String(ID), nullable=True),
    _ms("issued_ms"),
    _ms("updated_ms"),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.Index("ix_v_receipts_k", "issued_ms", "no"),
    sa.Index("ix_v_receipts_holder", "holder", "status"),
    sa.Index("ix_v_receipts_bank", "bank", "status"),
    sa.Index("ix_v_receipts_site", "site", "status"),
    sa.Index("ix_v_receipts_status", "status", "issued_ms", "no"),
    sa.Index("ix_v_receipts_commodity", "commodity"),
    sa.Index("ix_v_receipts_custodian", "custodian"),
)

loans = sa.Table(
    "v_loans",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    _tenant("borrower"),
    _tenant("bank"),
    sa.Column("principal_fen", sa.BigInteger(), nullable=False),
    sa.Column("outstanding_fen", sa.BigInteger(), nullable=False),
    sa.Column("rate", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("coverage", sa.Float(), nullable=True),
    sa.Column("receipts", sa.Text(), nullable=False),
    sa.Column("trade", sa.String(ID), nullable=True),
    _ms("applied_ms"),
    _ms("disbursed_ms", nullable=True),
    _ms("due_ms", nullable=True),
    _ms("updated_ms"),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.Index("ix_v_loans_k", "applied_ms", "id"),
    sa.Index("ix_v_loans_borrower", "borrower", "status"),
    sa.Index("ix_v_loans_bank", "bank", "status"),
    sa.Index("ix_v_loans_status", "status", "applied_ms", "id"),
)

notes = sa.Table(
    "v_notes",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("root", sa.String(ID), nullable=False),
    sa.Column("parent", sa.String(ID), nullable=True),
    _tenant("issuer"),
    _tenant("holder"),
    _tenant("bank", nullable=True),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("tier", sa.Integer(), nullable=False),
    sa.Column("trade", sa.String(ID), nullable=True),
    _ms("issued_ms"),
    _ms("due_ms"),
    _ms("updated_ms"),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.Index("ix_v_notes_k", "issued_ms", "id"),
    sa.Index("ix_v_notes_issuer", "issuer", "status"),
    sa.Index("ix_v_notes_holder", "holder", "status"),
    sa.Index("ix_v_notes_root", "root"),
    sa.Index("ix_v_notes_status", "status", "issued_ms", "id"),
)

trades = sa.Table(
    "v_trades",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    _tenant("seller"),
    _tenant("buyer"),
    _tenant("bank", nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("reasons", sa.Text(), nullable=False),
    _ms("attested_ms", nullable=True),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.Column("first_height", sa.BigInteger(), nullable=False),
    sa.Index("ix_v_trades_k", "first_height", "id"),
    sa.Index("ix_v_trades_seller", "seller", "status"),
    sa.Index("ix_v_trades_buyer", "buyer", "status"),
    sa.Index("ix_v_trades_status", "status", "first_height", "id"),
)

documents = sa.Table(
    "v_documents",
    metadata,
    sa.Column("hash", sa.String(ID), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    _tenant("issuer"),
    _tenant("counterparty", nullable=True),
    sa.Column("trade", sa.String(ID), nullable=True),
    sa.Column("number", sa.String(200), nullable=True),
    sa.Column("amount_fen", sa.BigInteger(), nullable=True),
    _ms("at_ms"),
    sa.Column("height", sa.BigInteger(), nullable=True),
    _tenant("bank", nullable=True),
    sa.Index("ix_v_documents_k", "at_ms", "hash"),
    sa.Index("ix_v_documents_kind", "kind"),
    sa.Index("ix_v_documents_trade", "trade"),
)

alerts = sa.Table(
    "v_alerts",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    _tenant("owner"),
    _tenant("bank", nullable=True),
    sa.Column("site", sa.String(200), nullable=True),
    sa.Column("loan", sa.String(ID), nullable=True),
    sa.Column("receipt", sa.String(ID), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    _ms("at_ms"),
    sa.Column("evidence", sa.Text(), nullable=False),
    sa.Column("acked_by", sa.String(200), nullable=True),
    _ms("acked_ms", nullable=True),
    sa.Index("ix_v_alerts_k", "at_ms", "id"),
    sa.Index("ix_v_alerts_bank_open", "bank", "acked_ms", "severity"),
    sa.Index("ix_v_alerts_site_open", "site", "acked_ms"),
    sa.Index("ix_v_alerts_severity", "severity", "at_ms", "id"),
    sa.Index("ix_v_alerts_kind", "kind"),
)

applications = sa.Table(
    "v_applications",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    _tenant("applicant"),
    _tenant("bank"),
    sa.Column("subject_kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(ID), nullable=False),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    _ms("created_ms"),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    _ms("decided_ms", nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Index("ix_v_applications_k", "created_ms", "id"),
    sa.Index("ix_v_applications_applicant", "applicant", "status"),
    sa.Index("ix_v_applications_bank", "bank", "status"),
    sa.Index("ix_v_applications_status", "status", "created_ms", "id"),
)

blocks = sa.Table(
    "v_blocks",
    metadata,
    sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("tx_count", sa.Integer(), nullable=False),
    _ms("time_ms", nullable=True),
    sa.Column("signers", sa.Text(), nullable=False),
    sa.Column("state", sa.String(128), nullable=True),
)

txs = sa.Table(
    "v_txs",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.Column("idx", sa.Integer(), nullable=False),
    sa.Column("contract", sa.String(64), nullable=False),
    sa.Column("fn", sa.String(64), nullable=False),
    _tenant("creator"),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.UniqueConstraint("height", "idx", name="uq_v_txs_height_idx"),
)

limits = sa.Table(
    "v_limits",
    metadata,
    _tenant("bank"),
    _tenant("party"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("limit_fen", sa.BigInteger(), nullable=False),
    sa.Column("used_fen", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("rate", sa.String(32), nullable=True),
    _ms("expires_ms", nullable=True),
    _ms("updated_ms"),
    sa.Column("height", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("bank", "party", "kind", name="pk_v_limits"),
    sa.Index("ix_v_limits_party", "party"),
)

parties = sa.Table(
    "v_parties",
    metadata,
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("rid", sa.String(ID), nullable=False),
    _tenant("tenant"),
    sa.Column("k", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("kind", "rid", "tenant", name="pk_v_parties"),
    sa.Index("ix_v_parties_tenant_k", "kind", "tenant", "k", "rid"),
)

meta = sa.Table(
    "v_meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

idempotency = sa.Table(
    "v_idempotency",
    metadata,
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=True),
    sa.Column("body", sa.LargeBinary(), nullable=True),
    _ms("created_ms"),
    sa.Column("state", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("scope", "key", name="pk_v_idempotency"),
    sa.Index("ix_v_idempotency_created", "created_ms"),
)

LISTED = {
    "receipt": receipts,
    "loan": loans,
    "note": notes,
    "trade": trades,
    "document": documents,
    "alert": alerts,
    "application": applications,
    "org": orgs,
}
"""The kinds whose rows have v_parties links, and their tables."""

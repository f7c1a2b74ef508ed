"""Read model: the chain's records, alerts, applications and blocks as queryable tables.

Creates the ``v_`` tables of :mod:`tally.cloud.views.tables` (organisations with their sealed
sensitive fields, receipts, loans, notes, trades, documents, alerts, applications, blocks,
transactions, limits, the ``v_parties`` visibility links, ``v_meta``) and ``v_idempotency``,
the API's record of idempotent writes.

Revision ID: 0006
Revises: 0005
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "v_orgs",
    "v_receipts",
    "v_loans",
    "v_notes",
    "v_trades",
    "v_documents",
    "v_alerts",
    "v_applications",
    "v_blocks",
    "v_txs",
    "v_limits",
    "v_parties",
    "v_meta",
    "v_idempotency",
)


def upgrade() -> None:
    op.create_table(
        "v_orgs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("industry", sa.String(100), nullable=True),
        sa.Column("region", sa.String(100), nullable=True),
        sa.Column("core", sa.String(64), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("sensitive", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_v_orgs_bank", "v_orgs", ["bank"])
    op.create_index("ix_v_orgs_core_tier", "v_orgs", ["core", "tier"])
    op.create_index("ix_v_orgs_kind", "v_orgs", ["kind"])

    op.create_table(
        "v_receipts",
        sa.Column("no", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("custodian", sa.String(64), nullable=True),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("commodity", sa.String(100), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("loan", sa.String(200), nullable=True),
        sa.Column("issued_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_v_receipts_bank", "v_receipts", ["bank", "status"])
    op.create_index("ix_v_receipts_commodity", "v_receipts", ["commodity"])
    op.create_index("ix_v_receipts_custodian", "v_receipts", ["custodian"])
    op.create_index("ix_v_receipts_holder", "v_receipts", ["holder", "status"])
    op.create_index("ix_v_receipts_k", "v_receipts", ["issued_ms", "no"])
    op.create_index("ix_v_receipts_site", "v_receipts", ["site", "status"])
    op.create_index("ix_v_receipts_status", "v_receipts", ["status", "issued_ms", "no"])

    op.create_table(
        "v_loans",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("borrower", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_fen", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=True),
        sa.Column("receipts", sa.Text(), nullable=False),
        sa.Column("trade", sa.String(200), nullable=True),
        sa.Column("applied_ms", sa.BigInteger(), nullable=False),
        sa.Column("disbursed_ms", sa.BigInteger(), nullable=True),
        sa.Column("due_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_v_loans_bank", "v_loans", ["bank", "status"])
    op.create_index("ix_v_loans_borrower", "v_loans", ["borrower", "status"])
    op.create_index("ix_v_loans_k", "v_loans", ["applied_ms", "id"])
    op.create_index("ix_v_loans_status", "v_loans", ["status", "applied_ms", "id"])

    op.create_table(
        "v_notes",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("root", sa.String(200), nullable=False),
        sa.Column("parent", sa.String(200), nullable=True),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("trade", sa.String(200), nullable=True),
        sa.Column("issued_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_v_notes_holder", "v_notes", ["holder", "status"])
    op.create_index("ix_v_notes_issuer", "v_notes", ["issuer", "status"])
    op.create_index("ix_v_notes_k", "v_notes", ["issued_ms", "id"])
    op.create_index("ix_v_notes_root", "v_notes", ["root"])
    op.create_index("ix_v_notes_status", "v_notes", ["status", "issued_ms", "id"])

    op.create_table(
        "v_trades",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("seller", sa.String(64), nullable=False),
        sa.Column("buyer", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("attested_ms", sa.BigInteger(), nullable=True),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("first_height", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_v_trades_buyer", "v_trades", ["buyer", "status"])
    op.create_index("ix_v_trades_k", "v_trades", ["first_height", "id"])
    op.create_index("ix_v_trades_seller", "v_trades", ["seller", "status"])
    op.create_index("ix_v_trades_status", "v_trades", ["status", "first_height", "id"])

    op.create_table(
        "v_documents",
        sa.Column("hash", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("counterparty", sa.String(64), nullable=True),
        sa.Column("trade", sa.String(200), nullable=True),
        sa.Column("number", sa.String(200), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=True),
        sa.Column("bank", sa.String(64), nullable=True),
    )
    op.create_index("ix_v_documents_k", "v_documents", ["at_ms", "hash"])
    op.create_index("ix_v_documents_kind", "v_documents", ["kind"])
    op.create_index("ix_v_documents_trade", "v_documents", ["trade"])

    op.create_table(
        "v_alerts",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("loan", sa.String(200), nullable=True),
        sa.Column("receipt", sa.String(200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("acked_by", sa.String(200), nullable=True),
        sa.Column("acked_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_v_alerts_bank_open", "v_alerts", ["bank", "acked_ms", "severity"])
    op.create_index("ix_v_alerts_k", "v_alerts", ["at_ms", "id"])
    op.create_index("ix_v_alerts_kind", "v_alerts", ["kind"])
    op.create_index("ix_v_alerts_severity", "v_alerts", ["severity", "at_ms", "id"])
    op.create_index("ix_v_alerts_site_open", "v_alerts", ["site", "acked_ms"])

    op.create_table(
        "v_applications",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("applicant", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_ms", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_v_applications_applicant", "v_applications", ["applicant", "status"])
    op.create_index("ix_v_applications_bank", "v_applications", ["bank", "status"])
    op.create_index("ix_v_applications_k", "v_applications", ["created_ms", "id"])
    op.create_index("ix_v_applications_status", "v_applications", ["status", "created_ms", "id"])

    op.create_table(
        "v_blocks",
        sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("tx_count", sa.Integer(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=True),
        sa.Column("signers", sa.Text(), nullable=False),
        sa.Column("state", sa.String(128), nullable=True),
    )

    op.create_table(
        "v_txs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(64), nullable=False),
        sa.Column("fn", sa.String(64), nullable=False),
        sa.Column("creator", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("height", "idx", name="uq_v_txs_height_idx"),
    )

    op.create_table(
        "v_limits",
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("limit_fen", sa.BigInteger(), nullable=False),
        sa.Column("used_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("rate", sa.String(32), nullable=True),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bank", "party", "kind", name="pk_v_limits"),
    )
    op.create_index("ix_v_limits_party", "v_limits", ["party"])

    op.create_table(
        "v_parties",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rid", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("k", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "rid", "tenant", name="pk_v_parties"),
    )
    op.create_index("ix_v_parties_tenant_k", "v_parties", ["kind", "tenant", "k", "rid"])

    op.create_table(
        "v_meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )

    op.create_table(
        "v_idempotency",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_v_idempotency"),
    )
    op.create_index("ix_v_idempotency_created", "v_idempotency", ["created_ms"])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)  # with its indexes

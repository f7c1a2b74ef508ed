"""Initial cloud schema: registrations, revocations, batches, items, gaps, edges, devices.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(200), nullable=False),
        sa.Column("suite", sa.String(16), nullable=False),
        sa.Column("pub", sa.LargeBinary(), nullable=False),
        sa.Column("assurance", sa.SmallInteger(), nullable=False),
        sa.Column("t", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("hash", name="registrations_hash_key"),
    )
    op.create_index("ix_registrations_subject_t", "registrations", ["subject", "t"])
    op.create_index("ix_registrations_kind_org", "registrations", ["kind", "org"])

    op.create_table(
        "revocations",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("t", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("hash", name="revocations_hash_key"),
    )
    op.create_index("ix_revocations_subject", "revocations", ["subject"])

    op.create_table(
        "batches",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("edge", sa.String(200), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("suite", sa.String(16), nullable=False),
        sa.Column("ctr", sa.BigInteger(), nullable=False),
        sa.Column("prev", sa.LargeBinary(), nullable=False),
        sa.Column("t0", sa.BigInteger(), nullable=False),
        sa.Column("t1", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("header_hash", sa.LargeBinary(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("header_hash", name="batches_header_hash_key"),
        sa.UniqueConstraint("edge", "ctr", name="uq_batches_edge_ctr"),
    )

    op.create_table(
        "items",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column(
            "batch_id", PK, sa.ForeignKey("batches.id", name="fk_items_batch"), nullable=False
        ),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("signer", sa.String(200), nullable=False),
        sa.Column("device", sa.String(200), nullable=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=True),
        sa.Column("ctr", sa.BigInteger(), nullable=True),
        sa.Column("t", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("assurance", sa.SmallInteger(), nullable=False),
        sa.Column("cose", sa.LargeBinary(), nullable=False),
        sa.Column("measurements", sa.Text(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.UniqueConstraint("hash", name="items_hash_key"),
        sa.UniqueConstraint("batch_id", "idx", name="uq_items_batch_idx"),
    )
    op.create_index("ix_items_device_t", "items", ["device", "t"])
    op.create_index("ix_items_site_t", "items", ["site", "t"])
    op.create_index("ix_items_kind_t", "items", ["kind", "t"])

    op.create_table(
        "gaps",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("edge", sa.String(200), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("first", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("t", sa.BigInteger(), nullable=False),
        sa.Column("item_hash", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_gaps_device", "gaps", ["device", "boot", "first"])

    op.create_table(
        "edges",
        sa.Column("edge", sa.String(200), primary_key=True),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("last_ctr", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(), nullable=False),
        sa.Column("batches", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "devices",
        sa.Column("device", sa.String(200), primary_key=True),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_reading_t", sa.BigInteger(), nullable=True),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("ctr", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("devices", "edges", "gaps", "items", "batches", "revocations", "registrations"):
        op.drop_table(table)

"""Anchors: where each stored batch stands on the consortium ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "anchors",
        sa.Column(
            "batch_id",
            PK,
            sa.ForeignKey("batches.id", name="fk_anchors_batch"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tx_id", sa.LargeBinary(), nullable=True),
        sa.Column("height", sa.BigInteger(), nullable=True),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("t", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_anchors_state", "anchors", ["state"])


def downgrade() -> None:
    op.drop_index("ix_anchors_state", table_name="anchors")
    op.drop_table("anchors")

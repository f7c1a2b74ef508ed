"""The cloud database schema as SQLAlchemy Core tables (migrations create the same).

=================  =====================================================================
table              holds
=================  =====================================================================
registrations      signed registration bytes + decoded fields; newest ``t`` per subject wins
revocations        signed revocation bytes + decoded fields
batches            one row per stored edge batch; unique (edge, ctr) and header_hash
items              every item of every batch: raw COSE bytes, decoded values, assurance;
                   unique hash, unique (batch_id, idx)
gaps               certified counter gaps (from gap certificates)
edges              each edge's batch chain: highest ctr and its header hash
devices            liveness of each device seen: last seen, last reading time, counters
anchors            each batch's anchor on the ledger: state, transaction id, height, log
                   index, reason (migration 0002)
=================  =====================================================================

Byte columns are BYTEA (PostgreSQL) / BLOB (SQLite); times are BIGINT milliseconds;
``measurements`` and ``meta`` are JSON text with decimals written as strings, so no value is
ever rounded through a float.
"""

from __future__ import annotations

import sqlalchemy as sa

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Row ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""

metadata = sa.MetaData()

registrations = sa.Table(
    "registrations",
    metadata,
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
    sa.Column("hash", sa.LargeBinary(), nullable=False, unique=True),
    sa.Column("received", sa.BigInteger(), nullable=False),
    sa.Index("ix_registrations_subject_t", "subject", "t"),
    sa.Index("ix_registrations_kind_org", "kind", "org"),
)

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    sa.Column("org", sa.String(200), nullable=False),
    sa.Column("t", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False, unique=True),
    sa.Column("received", sa.BigInteger(), nullable=False),
)

batches = sa.Table(
    "batches",
    metadata,
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
    sa.Column("header_hash", sa.LargeBinary(), nullable=False, unique=True),
    sa.Column("received", sa.BigInteger(), nullable=False),
    sa.Column("receipt", sa.LargeBinary(), nullable=False),
    sa.UniqueConstraint("edge", "ctr", name="uq_batches_edge_ctr"),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("batch_id", PK, sa.ForeignKey("batches.id", name="fk_items_batch"), nullable=False),
    sa.Column("idx", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("signer", sa.String(200), nullable=False),
    sa.Column("device", sa.String(200), nullable=True),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("org", sa.String(200), nullable=False),
    sa.Column("boot", sa.BigInteger(), nullable=True),
    sa.Column("ctr", sa.BigInteger(), nullable=True),
    sa.Column("t", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False, unique=True),
    sa.Column("assurance", sa.SmallInteger(), nullable=False),
    sa.Column("cose", sa.LargeBinary(), nullable=False),
    sa.Column("measurements", sa.Text(), nullable=False),
    sa.Column("meta", sa.Text(), nullable=False),
    sa.Column("rule", sa.String(200), nullable=True),
    sa.UniqueConstraint("batch_id", "idx", name="uq_items_batch_idx"),
    sa.Index("ix_items_device_t", "device", "t"),
    sa.Index("ix_items_site_t", "site", "t"),
    sa.Index("ix_items_kind_t", "kind", "t"),
)

gaps = sa.Table(
    "gaps",
    metadata,
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
    sa.Index("ix_gaps_device", "device", "boot", "first"),
)

edges = sa.Table(
    "edges",
    metadata,
    sa.Column("edge", sa.String(200), primary_key=True),
    sa.Column("org", sa.String(200), nullable=False),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("last_ctr", sa.BigInteger(), nullable=False),
    sa.Column("head_hash", sa.LargeBinary(), nullable=False),
    sa.Column("batches", sa.BigInteger(), nullable=False),
    sa.Column("last_seen", sa.BigInteger(), nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device", sa.String(200), primary_key=True),
    sa.Column("org", sa.String(200), nullable=False),
    sa.Column("site", sa.String(200), nullable=False),
    sa.Column("last_seen", sa.BigInteger(), nullable=False),
    sa.Column("last_reading_t", sa.BigInteger(), nullable=True),
    sa.Column("boot", sa.BigInteger(), nullable=False),
    sa.Column("ctr", sa.BigInteger(), nullable=False),
    sa.Column("items", sa.BigInteger(), nullable=False),
)

anchors = sa.Table(
    "anchors",
    metadata,
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
    sa.Index("ix_anchors_state", "state"),
)

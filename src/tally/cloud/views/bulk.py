"""Bulk loading of the read model (seeding): many new rows of one kind in one transaction.

Rows are checked first (:mod:`.checks`); then the rows and their ``v_parties`` links are
inserted straight through the driver (``COPY`` on PostgreSQL, ``executemany`` in chunks of
:data:`CHUNK` on SQLite with a larger page cache), all in one transaction, so a load
is all or nothing. It inserts, it does not update: a row whose id is already stored (or that
appears twice) is a :class:`~tally.cloud.errors.Conflict` and nothing of the load remains.

Kinds and their rows: ``org`` (OrgRow, or ``(OrgRow, sensitive mapping or None)`` — sealed
before the transaction starts, each organisation's data key created as needed), ``receipt``,
``loan``, ``note``, ``trade``, ``document``, ``alert``, ``application``, ``limit`` and
``block`` (``(BlockRow, [TxRow, …])``). Documents take the bank of their trade whichever of
the two is loaded first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.cloud.errors import BadRequest, Conflict
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.views import tables as t
from tally.cloud.views.checks import check_row
from tally.cloud.views.codec import KINDS, links_of, sort_key, values_of
from tally.cloud.views.model import BlockRow, LimitRow, OrgRow, TxRow
from tally.cloud.views.sealed import seal_sensitive

CHUNK = 5000
SQLITE_CACHE_KIB = 65536
BULK_KINDS = (*KINDS, "limit", "block")


def _chunks(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _insert(conn: Connection, table: sa.Table, items: list[dict[str, Any]]) -> None:
    """Insert straight through the driver: COPY on PostgreSQL, executemany on SQLite."""
    if not items:
        return
    cols = list(items[0])
    quote = conn.dialect.identifier_preparer.quote
    names = f"{quote(table.name)} ({', '.join(quote(c) for c in cols)})"
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(f"COPY {names} FROM STDIN") as copy:
            for row in items:
                copy.write_row(tuple(row[c] for c in cols))
        return
    sql = f"INSERT INTO {names} VALUES ({', '.join(['?'] * len(cols))})"
    for chunk in _chunks(items):
        conn.exec_driver_sql(sql, [tuple(row[c] for c in cols) for row in chunk])


def link_document_banks(conn: Connection) -> None:
    """Give documents without a bank the bank of their trade, and link that bank to them."""
    d, tr, p = t.documents, t.trades, t.parties
    bank_of = sa.select(tr.c.bank).where(tr.c.id == d.c.trade).scalar_subquery()
    has_bank = sa.exists().where(tr.c.id == d.c.trade, tr.c.bank.is_not(None))
    conn.execute(sa.update(d).where(d.c.bank.is_(None), has_bank).values(bank=bank_of))
    linked = sa.exists().where(p.c.kind == "document", p.c.rid == d.c.hash, p.c.tenant == d.c.bank)
    missing = sa.select(sa.literal("document"), d.c.hash, d.c.bank, d.c.at_ms).where(
        d.c.bank.is_not(None), ~linked
    )
    conn.execute(sa.insert(p).from_select(["kind", "rid", "tenant", "k"], missing))


def _orgs(rows: Sequence[Any]) -> list[tuple[OrgRow, Mapping[str, Any] | None]]:
    out: list[tuple[OrgRow, Mapping[str, Any] | None]] = []
    for i, item in enumerate(rows):
        if isinstance(item, OrgRow):
            row, sensitive = item, None
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], OrgRow):
            row, sensitive = item
        else:
            raise BadRequest(
                f"bulk_load org: row {i} must be an OrgRow or (OrgRow, sensitive mapping or "
                f"None), got {type(item).__name__}"
            )
        check_row(row, OrgRow)
        if sensitive is not None and not isinstance(sensitive, Mapping):
            raise BadRequest(f"bulk_load org: row {i}: sensitive fields must be a mapping")
        out.append((row, sensitive))
    return out


def bulk_insert(engine: Engine, cipher: FieldCipher | None, kind: str, rows: Sequence[Any]) -> int:
    """Insert ``rows`` of ``kind`` (see the module) in one transaction; return their number."""
    if kind not in BULK_KINDS:
        raise BadRequest(f"bulk_load: kind must be one of {', '.join(BULK_KINDS)}, got {kind!r}")
    values: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    txs: list[dict[str, Any]] = []
    if kind == "org":
        for row, sensitive in _orgs(rows):
            v = values_of(row)
            v["sensitive"] = (
                None if sensitive is None else seal_sensitive(cipher, row.id, sensitive)
            )
            values.append(v)
            links += [{"kind": "org", "rid": row.id, "tenant": w, "k": 0}
                      for w in sorted(links_of("org", row))]  # fmt: skip
        table = t.orgs
    elif kind == "block":
        for i, item in enumerate(rows):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], BlockRow)):
                raise BadRequest(f"bulk_load block: row {i} must be (BlockRow, [TxRow, …])")
            block, block_txs = item
            check_row(block, BlockRow)
            values.append(values_of(block))
            for tx in block_txs:
                check_row(tx, TxRow)
                if tx.height != block.height:
                    raise BadRequest(f"tx {tx.id!r} is at height {tx.height}, not {block.height}")
                txs.append(values_of(tx) | {"id": tx.id.lower()})
        table = t.blocks
    elif kind == "limit":
        for row in rows:
            check_row(row, LimitRow)
            values.append(values_of(row))
        table = t.limits
    else:
        spec = KINDS[kind]
        table = spec.table
        for row in rows:
            check_row(row, spec.model)
            v = values_of(row)
            if kind == "trade":
                v["first_height"] = row.height
            elif kind == "document":
                v["bank"] = None
            values.append(v)
            rid, k = getattr(row, spec.id_col), sort_key(kind, row)
            links += [{"kind": kind, "rid": rid, "tenant": w, "k": k}
                      for w in sorted(links_of(kind, row))]  # fmt: skip
    dbapi_integrity: Any = getattr(engine.dialect.dbapi, "IntegrityError", sa.exc.IntegrityError)
    try:
        with engine.begin() as conn:
            cache = None
            if conn.dialect.name == "sqlite":  # room for the index pages of a large load
                cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
                conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            try:
                _insert(conn, table, values)
                _insert(conn, t.txs, txs)
                _insert(conn, t.parties, links)
                if kind in ("trade", "document"):
                    link_document_banks(conn)
            finally:
                if cache is not None:
                    conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
    except (sa.exc.IntegrityError, dbapi_integrity) as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).splitlines()[0]
        raise Conflict(
            f"bulk_load {kind}: nothing loaded: a row's id is already stored or appears twice "
            f"in the load ({first})"
        ) from None
    return len(values)

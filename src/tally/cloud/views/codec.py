"""Rows of the read model to table values and back, and who is linked to each row.

:data:`KINDS` describes each listed kind once: its model class, table, id column and sort-key
column. ``values_of`` turns a model row into the table's column values (tuples become JSON
lists); ``row_of`` turns a fetched row back into the model class. ``links_of`` gives the
tenants a row is visible to through ``v_parties``: its owner, its bank and its parties, the
same set :func:`tally.cloud.views.access.resource_of` names.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tally.cloud.views import tables as t
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LimitRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
)

JSON_LISTS = frozenset({"receipts", "reasons", "evidence", "signers"})


@dataclass(frozen=True)
class Kind:
    """How one kind of row is stored: model class, table, id column, sort-key column
    (``None``: the list is ordered by id alone, ascending)."""

    name: str
    model: type[Any]
    table: sa.Table
    id_col: str
    k_col: str | None

    @property
    def id(self) -> sa.ColumnElement[Any]:
        return self.table.c[self.id_col]

    @property
    def k(self) -> sa.ColumnElement[Any] | None:
        return None if self.k_col is None else self.table.c[self.k_col]


KINDS: dict[str, Kind] = {
    "org": Kind("org", OrgRow, t.orgs, "id", None),
    "receipt": Kind("receipt", ReceiptRow, t.receipts, "no", "issued_ms"),
    "loan": Kind("loan", LoanRow, t.loans, "id", "applied_ms"),
    "note": Kind("note", NoteRow, t.notes, "id", "issued_ms"),
    "trade": Kind("trade", TradeRow, t.trades, "id", "first_height"),
    "document": Kind("document", DocumentRow, t.documents, "hash", "at_ms"),
    "alert": Kind("alert", AlertRow, t.alerts, "id", "at_ms"),
    "application": Kind("application", ApplicationRow, t.applications, "id", "created_ms"),
}
MODEL_KIND: dict[type[Any], str] = {k.model: name for name, k in KINDS.items()}
FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls))
    for cls in (*MODEL_KIND, BlockRow, TxRow, LimitRow)
}


def values_of(row: Any) -> dict[str, Any]:
    """The column values of a model row (JSON lists for tuples; TxRow.index → ``idx``)."""
    out: dict[str, Any] = {}
    for name in FIELDS[type(row)]:
        value = getattr(row, name)
        if name in JSON_LISTS:
            value = json.dumps(list(value), ensure_ascii=False)
        out["idx" if isinstance(row, TxRow) and name == "index" else name] = value
    return out


def row_of(cls: type[Any], row: Mapping[Any, Any]) -> Any:
    """A model row from a fetched row's mapping (extra columns are ignored)."""
    kw: dict[str, Any] = {}
    for name in FIELDS[cls]:
        value = row["idx" if cls is TxRow and name == "index" else name]
        if name in JSON_LISTS:
            value = tuple(json.loads(value))
        elif name == "simulated":
            value = bool(value)
        elif name == "coverage" and value is not None:
            value = float(value)
        kw[name] = value
    return cls(**kw)


def sort_key(kind: str, row: Any) -> int:
    """The value of ``row``'s sort key (0 for kinds ordered by id alone)."""
    spec = KINDS[kind]
    if spec.k_col is None:
        return 0
    if kind == "trade":
        return int(row.height)
    return int(getattr(row, spec.k_col))


def links_of(kind: str, row: Any) -> set[str]:
    """The tenants ``row`` is visible to through v_parties (owner, bank and parties)."""
    if kind == "org":
        who = {row.id, row.bank}
    elif kind == "receipt":
        who = {row.holder, row.custodian, row.bank}
    elif kind == "loan":
        who = {row.borrower, row.bank}
    elif kind == "application":
        who = {row.applicant, row.bank}
    elif kind == "note":
        who = {row.holder, row.issuer, row.bank}
    elif kind == "trade":
        who = {row.seller, row.buyer, row.bank}
    elif kind == "document":
        who = {row.issuer, row.counterparty}
    elif kind == "alert":
        who = {row.owner, row.bank}
    else:
        raise ValueError(f"no links for kind {kind!r}")
    return {w for w in who if w}

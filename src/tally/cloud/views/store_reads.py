"""Reads of the read model: one row by id, and lists filtered by a :class:`Scope` in SQL.

Every list is newest first by ``(sort key, id)`` (organisations: by id, ascending), at most
``limit`` rows (1..200) a page, continued by an opaque cursor (:mod:`.cursor`). Filters are
exact matches unless said otherwise. Visibility is decided in the query:

- ``Scope(everything=True)``: every row (the regulator);
- otherwise the rows linked to the tenant in ``v_parties`` (owner, bank, parties): a join on
  the index ``(kind, tenant, k, rid)``, so a page is one index range whatever the table size;
- with ``sites``, also receipts and alerts at those sites.

Blocks and transactions are the consortium's common record and are not scoped.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tally.cloud.views import cursor as C
from tally.cloud.views import tables as t
from tally.cloud.views.codec import KINDS, row_of
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LoanRow,
    NoteRow,
    OrgRow,
    Page,
    ReceiptRow,
    Scope,
    TradeRow,
    TxRow,
)

SITED = {"receipt": t.receipts.c.site, "alert": t.alerts.c.site}


def _eq(table: sa.Table, **filters: object) -> list[sa.ColumnElement[bool]]:
    return [table.c[name] == value for name, value in filters.items() if value is not None]


def _check_scope(scope: Scope) -> None:
    if not isinstance(scope, Scope):
        raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")


class Reads:
    """The read half of :class:`~tally.cloud.views.store.Views`."""

    _engine: Engine

    def _get(self, kind: str, rid: object) -> Any:
        spec = KINDS[kind]
        with self._engine.connect() as conn:
            got = conn.execute(sa.select(spec.table).where(spec.id == rid)).mappings().first()
        return None if got is None else row_of(spec.model, got)

    def _list(
        self,
        kind: str,
        scope: Scope,
        where: list[sa.ColumnElement[bool]],
        limit: int,
        cursor: str | None,
    ) -> Page[Any]:
        _check_scope(scope)
        limit = C.check_limit(limit)
        after = None if cursor is None else C.decode(kind, cursor)
        spec = KINDS[kind]
        p = t.parties
        query = sa.select(spec.table)
        if scope.everything:
            k, rid = spec.k, spec.id
        elif scope.sites and kind in SITED:
            k, rid = spec.k, spec.id
            mine = sa.select(p.c.rid).where(p.c.kind == kind, p.c.tenant == scope.tenant)
            where = [*where, sa.or_(rid.in_(mine), SITED[kind].in_(sorted(scope.sites)))]
        else:
            k, rid = (None if spec.k is None else p.c.k), p.c.rid
            query = query.join(p, sa.and_(p.c.kind == kind, p.c.rid == spec.id))
            where = [*where, p.c.tenant == scope.tenant]
        if k is None:  # ordered by id, ascending
            if after is not None:
                where.append(rid > after[1])
            order = [rid.asc()]
        else:
            if after is not None:
                where.append(
                    sa.tuple_(k, rid) < sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
                )
            order = [k.desc(), rid.desc()]
        query = query.where(*where).order_by(*order).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = tuple(row_of(spec.model, r) for r in rows[:limit])
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            key = 0 if spec.k_col is None else int(last[spec.k_col])
            nxt = C.encode(kind, key, str(last[spec.id_col]))
        return Page(items, nxt)

    # -- organisations -------------------------------------------------------------------

    def org(self, org_id: str) -> OrgRow | None:
        """An organisation's public profile, or None."""
        return self._get("org", org_id)  # type: ignore[no-any-return]

    def list_orgs(self, scope: Scope, kind: str | None = None, core: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> Page[OrgRow]:  # fmt: skip
        """Organisations by id; ``kind`` (tenant kind), ``core`` (supply chain of a core)."""
        return self._list("org", scope, _eq(t.orgs, kind=kind, core=core), limit, cursor)

    # -- business records ----------------------------------------------------------------

    def receipt(self, no: str) -> ReceiptRow | None:
        """A receipt by number, or None."""
        return self._get("receipt", no)  # type: ignore[no-any-return]

    def list_receipts(
        self, scope: Scope, *, status: str | None = None, holder: str | None = None,
        bank: str | None = None, site: str | None = None, commodity: str | None = None,
        limit: int = 50, cursor: str | None = None,
    ) -> Page[ReceiptRow]:  # fmt: skip
        """Receipts, newest issued first."""
        f = _eq(t.receipts, status=status, holder=holder, bank=bank, site=site, commodity=commodity)
        return self._list("receipt", scope, f, limit, cursor)

    def loan(self, loan_id: str) -> LoanRow | None:
        """A loan by id, or None."""
        return self._get("loan", loan_id)  # type: ignore[no-any-return]

    def list_loans(
        self, scope: Scope, *, status: str | None = None, borrower: str | None = None,
        bank: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page[LoanRow]:  # fmt: skip
        """Loans, newest application first."""
        f = _eq(t.loans, status=status, borrower=borrower, bank=bank)
        return self._list("loan", scope, f, limit, cursor)

    def note(self, note_id: str) -> NoteRow | None:
        """A note by id, or None."""
        return self._get("note", note_id)  # type: ignore[no-any-return]

    def list_notes(
        self, scope: Scope, *, status: str | None = None, issuer: str | None = None,
        holder: str | None = None, root: str | None = None, limit: int = 50,
        cursor: str | None = None,
    ) -> Page[NoteRow]:  # fmt: skip
        """Notes, newest issued first."""
        f = _eq(t.notes, status=status, issuer=issuer, holder=holder, root=root)
        return self._list("note", scope, f, limit, cursor)

    def trade(self, trade_id: str) -> TradeRow | None:
        """A trade by id, or None."""
        return self._get("trade", trade_id)  # type: ignore[no-any-return]

    def list_trades(
        self, scope: Scope, *, status: str | None = None, seller: str | None = None,
        buyer: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page[TradeRow]:  # fmt: skip
        """Trades, the most recently first seen first."""
        f = _eq(t.trades, status=status, seller=seller, buyer=buyer)
        return self._list("trade", scope, f, limit, cursor)

    def document(self, doc_hash: str) -> DocumentRow | None:
        """A document by its salted hash (hex), or None."""
        return self._get("document", doc_hash)  # type: ignore[no-any-return]

    def list_documents(
        self, scope: Scope, *, kind: str | None = None, trade: str | None = None,
        limit: int = 50, cursor: str | None = None,
    ) -> Page[DocumentRow]:  # fmt: skip
        """Documents, newest first."""
        f = _eq(t.documents, kind=kind, trade=trade)
        return self._list("document", scope, f, limit, cursor)

    def alert(self, alert_id: str) -> AlertRow | None:
        """An alert by id, or None."""
        return self._get("alert", alert_id)  # type: ignore[no-any-return]

    def list_alerts(
        self, scope: Scope, *, severity: str | None = None, kind: str | None = None,
        open_only: bool = False, since_ms: int | None = None, limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AlertRow]:  # fmt: skip
        """Alerts, newest first; ``open_only``: not acknowledged; ``since_ms``: at or after."""
        f = _eq(t.alerts, severity=severity, kind=kind)
        if open_only:
            f.append(t.alerts.c.acked_ms.is_(None))
        if since_ms is not None:
            f.append(t.alerts.c.at_ms >= since_ms)
        return self._list("alert", scope, f, limit, cursor)

    def application(self, app_id: str) -> ApplicationRow | None:
        """A financing application by id, or None."""
        return self._get("application", app_id)  # type: ignore[no-any-return]

    def list_applications(
        self, scope: Scope, *, status: str | None = None, applicant: str | None = None,
        bank: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page[ApplicationRow]:  # fmt: skip
        """Applications, newest first."""
        f = _eq(t.applications, status=status, applicant=applicant, bank=bank)
        return self._list("application", scope, f, limit, cursor)

    def parties_of(self, kind: str, rid: str) -> frozenset[str]:
        """Every tenant linked to a row in v_parties (owner, bank, parties, earlier holders)."""
        p = t.parties
        with self._engine.connect() as conn:
            got = conn.execute(sa.select(p.c.tenant).where(p.c.kind == kind, p.c.rid == rid))
            return frozenset(got.scalars())

    # -- chain -----------------------------------------------------------------------------

    def block(self, height: int) -> BlockRow | None:
        """A block by height, or None."""
        with self._engine.connect() as conn:
            got = conn.execute(sa.select(t.blocks).where(t.blocks.c.height == height)).mappings()
            row = got.first()
        return None if row is None else row_of(BlockRow, row)  # type: ignore[no-any-return]

    def list_blocks(self, limit: int = 50, cursor: str | None = None) -> Page[BlockRow]:
        """Blocks, highest first."""
        limit = C.check_limit(limit)
        b = t.blocks
        query = sa.select(b).order_by(b.c.height.desc()).limit(limit + 1)
        if cursor is not None:
            query = query.where(b.c.height < C.decode("block", cursor)[0])
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = tuple(row_of(BlockRow, r) for r in rows[:limit])
        nxt = C.encode("block", int(rows[limit - 1]["height"]), "") if len(rows) > limit else None
        return Page(items, nxt)

    def block_txs(self, height: int) -> list[TxRow]:
        """The transactions of a block in their order (empty when unknown)."""
        x = t.txs
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(x).where(x.c.height == height).order_by(x.c.idx))
            return [row_of(TxRow, r) for r in rows.mappings()]

    def tx(self, tx_id: str) -> TxRow | None:
        """A transaction by id (hex, any case), or None."""
        with self._engine.connect() as conn:
            got = conn.execute(sa.select(t.txs).where(t.txs.c.id == tx_id.lower())).mappings()
            row = got.first()
        return None if row is None else row_of(TxRow, row)  # type: ignore[no-any-return]

    def chain_height(self) -> int:
        """The highest block in the view (0 when none)."""
        with self._engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(t.blocks.c.height))).scalar()
        return 0 if top is None else int(top)

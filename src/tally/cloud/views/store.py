"""The read model's store: :class:`Views`, the one object everything reads and writes through.

``Views(engine, cipher)`` works on an engine whose database was migrated by the cloud's
migrations (0006 creates the ``v_`` tables, :mod:`tally.cloud.views.tables`). It is
thread-safe: every method opens its own connection and writes in one transaction each.

Writes: the projector upserts rows as the chain changes (``upsert_*``) and keeps its cursor in
``meta_*``; the alert feed adds alerts; the API adds and decides applications and acks
alerts; the seed loader calls :meth:`Views.bulk_load`. Every write keeps ``v_parties`` — who
may see the row — in step with the row, in the same transaction. Rows are checked first
(:mod:`.checks`): a malformed one raises BadRequest and nothing is written.

Sensitive organisation fields (USCC, legal representative's id, bank account, statements …)
are sealed with :class:`~tally.cloud.fieldcrypt.FieldCipher` as one JSON document under
``FieldRef("v_orgs", "sensitive", org_id)`` for tenant ``org_id``; without a cipher they are
refused. Reads are in :mod:`.store_reads`, dashboards in :mod:`.dashboards`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.cloud.authz import ResourceRef
from tally.cloud.errors import BadRequest, Conflict, NotFound
from tally.cloud.fieldcrypt import FieldCipher, FieldCryptError
from tally.cloud.views import tables as t
from tally.cloud.views.access import resource_of
from tally.cloud.views.bulk import bulk_insert
from tally.cloud.views.checks import check_row
from tally.cloud.views.codec import KINDS, links_of, row_of, sort_key, values_of
from tally.cloud.views.dashboards import Dashboards
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
from tally.cloud.views.sealed import seal_sensitive, sensitive_ref
from tally.cloud.views.store_reads import Reads

DECISIONS = ("approved", "refused", "withdrawn")
MAX_META_KEY = 200


class Views(Reads, Dashboards):
    """The read model on ``engine`` (migrated); ``cipher`` seals and opens sensitive fields."""

    def __init__(
        self,
        engine: Engine,
        cipher: FieldCipher | None = None,
        *,
        aggregates_max_age_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._dialect = engine.dialect.name
        self._init_cache(aggregates_max_age_ms, clock)

    def __repr__(self) -> str:
        return f"Views({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- helpers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A write transaction; cached figures are recomputed after it (:meth:`_wrote`)."""
        try:
            with self._engine.begin() as conn:
                yield conn
        finally:
            self._wrote()

    def _upsert(self, conn: Connection, table: sa.Table, values: dict[str, Any],
                keys: Sequence[str], keep: Sequence[str] = ()) -> None:  # fmt: skip
        """INSERT … ON CONFLICT (keys) DO UPDATE every column except keys and ``keep``."""
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(table).values(**values)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).values(**values)
        update = {c: stmt.excluded[c] for c in values if c not in keys and c not in keep}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))

    @staticmethod
    def _link(conn: Connection, kind: str, rid: str, tenants: set[str], k: int,
              keep: bool = False) -> None:  # fmt: skip
        """Make ``tenants`` the v_parties links of a row (``keep``: add to the existing)."""
        p = t.parties
        where = (p.c.kind == kind, p.c.rid == rid)
        if keep:
            tenants = tenants | set(conn.execute(sa.select(p.c.tenant).where(*where)).scalars())
        conn.execute(sa.delete(p).where(*where))
        if tenants:
            rows = [{"kind": kind, "rid": rid, "tenant": w, "k": k} for w in sorted(tenants)]
            conn.execute(sa.insert(p), rows)

    def _put(self, kind: str, row: Any, key: str, keep_links: bool = False) -> None:
        check_row(row, KINDS[kind].model)
        with self._begin() as conn:
            self._upsert(conn, t.LISTED[kind], values_of(row), [key])
            links = links_of(kind, row)
            self._link(conn, kind, getattr(row, key), links, sort_key(kind, row), keep_links)

    # -- writes --------------------------------------------------------------------------

    def upsert_org(self, row: OrgRow, sensitive: Mapping[str, Any] | None = None) -> None:
        """Insert or replace an organisation; ``sensitive`` (sealed) replaces the stored
        sensitive fields, ``None`` keeps them."""
        check_row(row, OrgRow)
        values = values_of(row)
        if sensitive is not None:
            values["sensitive"] = seal_sensitive(self._cipher, row.id, sensitive)
        with self._begin() as conn:
            self._upsert(conn, t.orgs, values, ["id"])
            self._link(conn, "org", row.id, links_of("org", row), 0)

    def upsert_receipt(self, row: ReceiptRow) -> None:
        """Insert or replace a receipt (its links follow its holder, custodian and bank)."""
        self._put("receipt", row, "no")

    def upsert_loan(self, row: LoanRow) -> None:
        """Insert or replace a loan."""
        self._put("loan", row, "id")

    def upsert_note(self, row: NoteRow) -> None:
        """Insert or replace a note; earlier holders and banks stay linked to it."""
        self._put("note", row, "id", keep_links=True)

    def upsert_trade(self, row: TradeRow) -> None:
        """Insert or replace a trade; its documents take its bank."""
        check_row(row, TradeRow)
        with self._begin() as conn:
            values = values_of(row) | {"first_height": row.height}
            self._upsert(conn, t.trades, values, ["id"], keep=["first_height"])
            first = conn.execute(
                sa.select(t.trades.c.first_height).where(t.trades.c.id == row.id)
            ).scalar_one()
            self._link(conn, "trade", row.id, links_of("trade", row), int(first))
            d = t.documents
            conn.execute(sa.update(d).where(d.c.trade == row.id).values(bank=row.bank))
            docs = conn.execute(sa.select(d).where(d.c.trade == row.id)).mappings().all()
            for doc in docs:
                links = links_of("document", row_of(DocumentRow, doc))
                links |= {row.bank} if row.bank else set()
                self._link(conn, "document", doc["hash"], links, doc["at_ms"])

    def upsert_document(self, row: DocumentRow) -> None:
        """Insert or replace a document; it is linked to its trade's bank when that is known."""
        check_row(row, DocumentRow)
        with self._begin() as conn:
            bank = None
            if row.trade is not None:
                bank = conn.execute(
                    sa.select(t.trades.c.bank).where(t.trades.c.id == row.trade)
                ).scalar()
            self._upsert(conn, t.documents, values_of(row) | {"bank": bank}, ["hash"])
            links = links_of("document", row) | ({bank} if bank else set())
            self._link(conn, "document", row.hash, links, row.at_ms)

    def upsert_limit(self, row: LimitRow) -> None:
        """Insert or replace a bank's credit line or financing limit for a party."""
        check_row(row, LimitRow)
        with self._begin() as conn:
            self._upsert(conn, t.limits, values_of(row), ["bank", "party", "kind"])

    def add_alert(self, row: AlertRow) -> bool:
        """Add an alert; False (and nothing changes) when its id is already stored."""
        check_row(row, AlertRow)
        with self._begin() as conn:
            exists = conn.execute(sa.select(t.alerts.c.id).where(t.alerts.c.id == row.id)).first()
            if exists is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(t.alerts).values(**values_of(row)))
            except sa.exc.IntegrityError:
                return False
            self._link(conn, "alert", row.id, links_of("alert", row), row.at_ms)
        return True

    def ack_alert(self, alert_id: str, by: str, at_ms: int) -> AlertRow:
        """Acknowledge an alert (the first acknowledgement stays); NotFound when unknown."""
        if not isinstance(by, str) or not by:
            raise BadRequest(f"alert {alert_id!r}: the acknowledging user must be named")
        a = t.alerts
        with self._begin() as conn:
            conn.execute(
                sa.update(a)
                .where(a.c.id == alert_id, a.c.acked_ms.is_(None))
                .values(acked_by=by, acked_ms=at_ms)
            )
            got = conn.execute(sa.select(a).where(a.c.id == alert_id)).mappings().first()
        if got is None:
            raise NotFound(f"alert {alert_id!r} does not exist")
        return row_of(AlertRow, got)  # type: ignore[no-any-return]

    def add_application(self, row: ApplicationRow) -> None:
        """Add a financing application; Conflict when its id is already stored."""
        check_row(row, ApplicationRow)
        try:
            with self._begin() as conn:
                conn.execute(sa.insert(t.applications).values(**values_of(row)))
                links = links_of("application", row)
                self._link(conn, "application", row.id, links, row.created_ms)
        except sa.exc.IntegrityError:
            raise Conflict(f"application {row.id!r} already exists") from None

    def decide_application(
        self, app_id: str, status: str, by: str, at_ms: int, reason: str | None
    ) -> ApplicationRow:
        """Approve, refuse or withdraw a submitted application; NotFound when unknown,
        Conflict when it was already decided."""
        if status not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}, got {status!r}")
        if not isinstance(by, str) or not by:
            raise BadRequest(f"application {app_id!r}: the deciding user must be named")
        ap = t.applications
        with self._begin() as conn:
            done = conn.execute(
                sa.update(ap)
                .where(ap.c.id == app_id, ap.c.status == "submitted")
                .values(status=status, decided_by=by, decided_ms=at_ms, reason=reason)
            ).rowcount
            got = conn.execute(sa.select(ap).where(ap.c.id == app_id)).mappings().first()
        if got is None:
            raise NotFound(f"application {app_id!r} does not exist")
        if done != 1:
            raise Conflict(
                f"application {app_id!r} is already {got['status']}; only a submitted "
                "application can be decided"
            )
        return row_of(ApplicationRow, got)  # type: ignore[no-any-return]

    def upsert_block(self, row: BlockRow, txs: Sequence[TxRow]) -> None:
        """Insert or replace a block and its transactions (which must be at its height)."""
        check_row(row, BlockRow)
        for tx in txs:
            check_row(tx, TxRow)
            if tx.height != row.height:
                raise BadRequest(f"tx {tx.id!r} is at height {tx.height}, not {row.height}")
        with self._begin() as conn:
            self._upsert(conn, t.blocks, values_of(row), ["height"])
            conn.execute(sa.delete(t.txs).where(t.txs.c.height == row.height))
            if txs:
                rows = [values_of(tx) | {"id": tx.id.lower()} for tx in txs]
                conn.execute(sa.insert(t.txs), rows)

    def bulk_load(self, kind: str, rows: Sequence[Any]) -> int:
        """Insert many new rows of ``kind`` in one transaction; return how many.

        ``kind``: org (rows are OrgRow or (OrgRow, sensitive mapping or None)), receipt,
        loan, note, trade, document, alert, application, limit, block ((BlockRow, [TxRow])).
        A row whose id already exists is a Conflict and nothing is loaded.
        """
        try:
            return bulk_insert(self._engine, self._cipher, kind, rows)
        finally:
            self._wrote()

    def meta_get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        with self._engine.connect() as conn:
            got = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return None if got is None else str(got)

    def meta_put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing it)."""
        if not isinstance(key, str) or not key or len(key) > MAX_META_KEY:
            raise BadRequest(f"meta key must be 1..{MAX_META_KEY} characters, got {key!r}")
        if not isinstance(value, str):
            raise BadRequest(f"meta value of {key!r} must be a string, got {type(value).__name__}")
        with self._begin() as conn:
            self._upsert(conn, t.meta, {"key": key, "value": value}, ["key"])

    def resource(self, kind: str, row: Any, *, sensitive: bool = False) -> ResourceRef:
        """:func:`~tally.cloud.views.access.resource_of` with what the view knows besides the
        row: a note's earlier holders, a document's trade's bank."""
        if kind == "note" and isinstance(row, NoteRow):
            earlier = self.parties_of("note", row.id) - {row.holder, row.bank}
            return resource_of(kind, row, parties=earlier)
        if kind == "document" and isinstance(row, DocumentRow):
            with self._engine.connect() as conn:
                bank = conn.execute(
                    sa.select(t.documents.c.bank).where(t.documents.c.hash == row.hash)
                ).scalar()
            return resource_of(kind, row, bank=bank)
        return resource_of(kind, row, sensitive=sensitive)

    # -- sensitive reads -----------------------------------------------------------------

    def org_sensitive(self, org_id: str) -> dict[str, Any] | None:
        """The decrypted sensitive fields of an organisation; None when it has none."""
        with self._engine.connect() as conn:
            blob = conn.execute(sa.select(t.orgs.c.sensitive).where(t.orgs.c.id == org_id)).scalar()
        if blob is None:
            return None
        if self._cipher is None:
            raise FieldCryptError(
                f"org {org_id!r}: its sensitive fields are sealed and the read model has no "
                "field cipher to open them; open Views with a FieldCipher"
            )
        plain = self._cipher.decrypt(org_id, sensitive_ref(org_id), bytes(blob))
        data = json.loads(plain.decode("utf-8"))
        return data if isinstance(data, dict) else None

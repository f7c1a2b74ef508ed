"""The shared SQLAlchemy 2 Core implementation of :class:`~tally.cloud.storage.api.Storage`.

Backends differ only in how they open the engine and which dialect's ``INSERT … ON CONFLICT``
they use; every query is written once here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.cloud.errors import BatchExists, ItemExists, StorageError
from tally.cloud.storage import rows as R
from tally.cloud.storage import schema as S
from tally.cloud.storage.api import (
    ANCHOR_STATES,
    PENDING,
    AnchorRecord,
    BatchRecord,
    DeviceStatus,
    EdgeStatus,
    GapRecord,
    ItemQuery,
    ItemRecord,
    NewBatch,
    NewGap,
    NewItem,
    Page,
    RegistrationRecord,
    RevocationRecord,
)

UpsertFactory = Callable[[sa.Table], Any]
"""``sqlite.insert`` or ``postgresql.insert``: both offer ``on_conflict_do_update``."""

_CHUNK = 500  # bound parameters per IN (...) list


def _greater(old: Any, new: Any) -> Any:
    return sa.case((old < new, new), else_=old)


class SqlStorage:
    """Storage over one SQLAlchemy engine. Subclasses choose the engine and the upsert."""

    url: str

    def __init__(self, engine: Engine, upsert: UpsertFactory) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._upsert = upsert

    # -- lifecycle -----------------------------------------------------------------------
    def migrate(self) -> None:
        from tally.cloud.storage.migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- registrations -------------------------------------------------------------------
    def add_registration(self, reg: RegistrationRecord) -> bool:
        row = {
            "subject": reg.subject,
            "kind": reg.kind,
            "org": reg.org,
            "site": reg.site,
            "profile": reg.profile,
            "suite": reg.suite,
            "pub": reg.pub,
            "assurance": reg.assurance,
            "t": reg.t,
            "raw": reg.raw,
            "hash": reg.hash,
            "received": reg.received,
        }
        return self._insert_once(S.registrations, row)

    def add_revocation(self, rev: RevocationRecord) -> bool:
        row = {
            "subject": rev.subject,
            "org": rev.org,
            "t": rev.t,
            "reason": rev.reason,
            "raw": rev.raw,
            "hash": rev.hash,
            "received": rev.received,
        }
        return self._insert_once(S.revocations, row)

    def _insert_once(self, table: sa.Table, row: dict[str, Any]) -> bool:
        stmt = (
            self._upsert(table)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["hash"])
            .returning(table.c.id)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    def registrations(self, subjects: Iterable[str]) -> dict[str, RegistrationRecord]:
        out: dict[str, RegistrationRecord] = {}
        wanted = sorted(set(subjects))
        r = S.registrations
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                q = (
                    sa.select(r)
                    .where(r.c.subject.in_(wanted[i : i + _CHUNK]))
                    .order_by(r.c.subject, r.c.t, r.c.id)
                )
                for row in conn.execute(q).mappings():
                    out[row["subject"]] = R.registration(row)  # the last one (newest) wins
        return out

    def subjects(self, kind: str, org: str | None = None) -> list[RegistrationRecord]:
        r = S.registrations
        q = sa.select(r).where(r.c.kind == kind).order_by(r.c.subject, r.c.t, r.c.id)
        if org is not None:
            q = q.where(r.c.org == org)
        out: dict[str, RegistrationRecord] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                out[row["subject"]] = R.registration(row)
        return list(out.values())

    def revocations(self, subjects: Iterable[str]) -> dict[str, RevocationRecord]:
        out: dict[str, RevocationRecord] = {}
        wanted = sorted(set(subjects))
        v = S.revocations
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                q = (
                    sa.select(v)
                    .where(v.c.subject.in_(wanted[i : i + _CHUNK]))
                    .order_by(v.c.subject, v.c.t.desc(), v.c.id.desc())
                )
                for row in conn.execute(q).mappings():
                    out[row["subject"]] = RevocationRecord(
                        subject=row["subject"],
                        org=row["org"],
                        t=row["t"],
                        reason=row["reason"],
                        raw=bytes(row["raw"]),
                        hash=bytes(row["hash"]),
                        received=row["received"],
                    )  # the last one (earliest t) wins
        return out

    # -- batches -------------------------------------------------------------------------
    def batch(self, edge: str, ctr: int) -> BatchRecord | None:
        b = S.batches
        return self._one_batch((b.c.edge == edge) & (b.c.ctr == ctr))

    def batch_by_id(self, batch_id: int) -> BatchRecord | None:
        return self._one_batch(S.batches.c.id == batch_id)

    def _one_batch(self, cond: Any) -> BatchRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(S.batches).where(cond)).mappings().first()
        return None if row is None else R.batch(row)

    def edge_status(self, edge: str) -> EdgeStatus | None:
        e = S.edges
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(e).where(e.c.edge == edge)).mappings().first()
        if row is None:
            return None
        return EdgeStatus(
            edge=row["edge"],
            org=row["org"],
            site=row["site"],
            last_ctr=row["last_ctr"],
            head_hash=bytes(row["head_hash"]),
            batches=row["batches"],
            last_seen=row["last_seen"],
        )

    def store_batch(self, batch: NewBatch, items: Sequence[NewItem], gaps: Sequence[NewGap]) -> int:
        try:
            with self.engine.begin() as conn:
                batch_id = self._insert_batch(conn, batch)
                if items:
                    self._insert_items(conn, batch_id, items)
                if gaps:
                    conn.execute(sa.insert(S.gaps), [R.gap_row(g) for g in gaps])
                self._update_edge(conn, batch)
                self._update_devices(conn, batch.received, items)
                return batch_id
        except sa.exc.IntegrityError as exc:
            if self.batch(batch.edge, batch.ctr) is not None:
                raise BatchExists(batch.edge, batch.ctr) from None
            stored = self.stored_item_hashes([i.hash for i in items])
            if stored:
                h, (edge, ctr) = next(iter(stored.items()))
                raise ItemExists(
                    f"item {h.hex()} is already stored in batch {ctr} of edge {edge!r}"
                ) from None
            raise StorageError(f"integrity error storing batch: {exc.orig}") from exc

    def _insert_batch(self, conn: Connection, b: NewBatch) -> int:
        stmt = (
            sa.insert(S.batches)
            .values(
                edge=b.edge,
                site=b.site,
                suite=b.suite,
                ctr=b.ctr,
                prev=b.prev,
                t0=b.t0,
                t1=b.t1,
                n=b.n,
                root=b.root,
                header=b.header,
                header_hash=b.header_hash,
                received=b.received,
                receipt=b.receipt,
            )
            .returning(S.batches.c.id)
        )
        return int(conn.execute(stmt).scalar_one())

    def _insert_items(self, conn: Connection, batch_id: int, items: Sequence[NewItem]) -> None:
        """Insert all rows with one executemany (psycopg pipelines it; sqlite3 loops in C)."""
        conn.execute(sa.insert(S.items), [R.item_row(batch_id, i) for i in items])

    def _update_edge(self, conn: Connection, b: NewBatch) -> None:
        e = S.edges
        ins = self._upsert(e).values(
            edge=b.edge,
            org=b.org,
            site=b.site,
            last_ctr=b.ctr,
            head_hash=b.header_hash,
            batches=1,
            last_seen=b.received,
        )
        new = ins.excluded
        stmt = ins.on_conflict_do_update(
            index_elements=["edge"],
            set_={
                "head_hash": sa.case(
                    (e.c.last_ctr < new.last_ctr, new.head_hash), else_=e.c.head_hash
                ),
                "last_ctr": _greater(e.c.last_ctr, new.last_ctr),
                "batches": e.c.batches + 1,
                "last_seen": _greater(e.c.last_seen, new.last_seen),
                "site": new.site,
            },
        )
        conn.execute(stmt)

    def _update_devices(self, conn: Connection, received: int, items: Sequence[NewItem]) -> None:
        seen: dict[str, dict[str, Any]] = {}
        for it in items:
            if it.kind not in ("reading", "heartbeat") or it.device is None:
                continue
            d = seen.get(it.device)
            boot, ctr = it.boot or 0, it.ctr or 0
            reading_t = it.t if it.kind == "reading" else None
            if d is None:
                seen[it.device] = {
                    "device": it.device,
                    "org": it.org,
                    "site": it.site,
                    "last_seen": received,
                    "last_reading_t": reading_t,
                    "boot": boot,
                    "ctr": ctr,
                    "items": 1,
                }
                continue
            d["items"] += 1
            if (boot, ctr) > (d["boot"], d["ctr"]):
                d["boot"], d["ctr"] = boot, ctr
            if reading_t is not None and (
                d["last_reading_t"] is None or reading_t > d["last_reading_t"]
            ):
                d["last_reading_t"] = reading_t
        if not seen:
            return
        dv = S.devices
        ins = self._upsert(dv)
        new = ins.excluded
        later = (new.boot > dv.c.boot) | ((new.boot == dv.c.boot) & (new.ctr > dv.c.ctr))
        stmt = ins.on_conflict_do_update(
            index_elements=["device"],
            set_={
                "last_seen": _greater(dv.c.last_seen, new.last_seen),
                "last_reading_t": sa.case(
                    (new.last_reading_t.is_(None), dv.c.last_reading_t),
                    (dv.c.last_reading_t.is_(None), new.last_reading_t),
                    else_=_greater(dv.c.last_reading_t, new.last_reading_t),
                ),
                "boot": sa.case((later, new.boot), else_=dv.c.boot),
                "ctr": sa.case((later, new.ctr), else_=dv.c.ctr),
                "items": dv.c["items"] + new["items"],
                "site": new.site,
                "org": new.org,
            },
        )
        conn.execute(stmt, list(seen.values()))

    # -- items ---------------------------------------------------------------------------
    def stored_item_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, int]]:
        out: dict[bytes, tuple[str, int]] = {}
        i, b = S.items, S.batches
        wanted = list(dict.fromkeys(hashes))
        with self.engine.connect() as conn:
            for k in range(0, len(wanted), _CHUNK):
                q = (
                    sa.select(i.c.hash, b.c.edge, b.c.ctr)
                    .join(b, b.c.id == i.c.batch_id)
                    .where(i.c.hash.in_(wanted[k : k + _CHUNK]))
                )
                for h, edge, ctr in conn.execute(q):
                    out[bytes(h)] = (edge, ctr)
        return out

    def _item_select(self) -> sa.Select[Any]:
        i, b = S.items, S.batches
        return sa.select(
            i, b.c.edge.label("batch_edge"), b.c.ctr.label("batch_ctr"), b.c.received
        ).join(b, b.c.id == i.c.batch_id)

    def item(self, item_hash: bytes) -> ItemRecord | None:
        q = self._item_select().where(S.items.c.hash == item_hash)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else R.item(row)

    def batch_items(self, batch_id: int) -> list[bytes]:
        i = S.items
        q = sa.select(i.c.cose).where(i.c.batch_id == batch_id).order_by(i.c.idx)
        with self.engine.connect() as conn:
            return [bytes(c) for c in conn.execute(q).scalars()]

    def items(self, query: ItemQuery) -> Page:
        i = S.items
        q = self._item_select().where(i.c.kind.in_(query.kinds))
        if query.device is not None:
            q = q.where(i.c.device == query.device)
        if query.site is not None:
            q = q.where(i.c.site == query.site)
        if query.rule is not None:
            q = q.where(i.c.rule == query.rule)
        if query.org is not None:
            q = q.where(i.c.org == query.org)
        if query.t_from is not None:
            q = q.where(i.c.t >= query.t_from)
        if query.t_to is not None:
            q = q.where(i.c.t < query.t_to)
        if query.min_assurance:
            q = q.where(i.c.assurance >= query.min_assurance)
        if query.after is not None:
            t, row_id = query.after
            q = q.where((i.c.t > t) | ((i.c.t == t) & (i.c.id > row_id)))
        limit = max(1, query.limit)
        q = q.order_by(i.c.t, i.c.id).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = [R.item(r) for r in conn.execute(q).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, (rows[-1].t, rows[-1].id) if more else None)

    # -- gaps and devices ----------------------------------------------------------------
    def gaps(self, device: str, org: str | None = None) -> list[GapRecord]:
        g = S.gaps
        q = sa.select(g).where(g.c.device == device).order_by(g.c.boot, g.c.first, g.c.id)
        if org is not None:
            q = q.where(g.c.org == org)
        with self.engine.connect() as conn:
            return [
                GapRecord(
                    id=r["id"],
                    edge=r["edge"],
                    device=r["device"],
                    org=r["org"],
                    boot=r["boot"],
                    first=r["first"],
                    last=r["last"],
                    reason=r["reason"],
                    t=r["t"],
                    item_hash=bytes(r["item_hash"]),
                )
                for r in conn.execute(q).mappings()
            ]

    def devices(self, org: str | None = None) -> list[DeviceStatus]:
        d = S.devices
        q = sa.select(d).order_by(d.c.device)
        if org is not None:
            q = q.where(d.c.org == org)
        with self.engine.connect() as conn:
            return [R.device(r) for r in conn.execute(q).mappings()]

    def device(self, device: str) -> DeviceStatus | None:
        d = S.devices
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(d).where(d.c.device == device)).mappings().first()
        return None if row is None else R.device(row)

    # -- anchors -------------------------------------------------------------------------
    def record_anchor(self, anchor: AnchorRecord) -> None:
        if anchor.state not in ANCHOR_STATES:
            raise ValueError(f"anchor state {anchor.state!r} is not one of {ANCHOR_STATES}")
        a = S.anchors
        row = {
            "batch_id": anchor.batch_id,
            "state": anchor.state,
            "tx_id": anchor.tx_id,
            "height": anchor.height,
            "log_index": anchor.log_index,
            "reason": anchor.reason,
            "t": anchor.t,
        }
        ins = self._upsert(a).values(**row)
        stmt = ins.on_conflict_do_update(
            index_elements=["batch_id"],
            set_={k: getattr(ins.excluded, k) for k in row if k != "batch_id"},
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except sa.exc.IntegrityError as exc:
            raise StorageError(f"no stored batch {anchor.batch_id} to anchor: {exc.orig}") from exc

    def anchors(self, batch_ids: Iterable[int]) -> dict[int, AnchorRecord]:
        out: dict[int, AnchorRecord] = {}
        wanted = sorted(set(batch_ids))
        a = S.anchors
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                q = sa.select(a).where(a.c.batch_id.in_(wanted[i : i + _CHUNK]))
                for row in conn.execute(q).mappings():
                    out[row["batch_id"]] = R.anchor(row)
        return out

    def batches_to_anchor(self, limit: int = 100) -> list[BatchRecord]:
        a, b = S.anchors, S.batches
        q = (
            sa.select(b)
            .outerjoin(a, a.c.batch_id == b.c.id)
            .where(a.c.batch_id.is_(None) | (a.c.state == PENDING))
            .order_by(b.c.edge, b.c.ctr)
            .limit(max(1, limit))
        )
        with self.engine.connect() as conn:
            return [R.batch(r) for r in conn.execute(q).mappings()]

    def anchor_counts(self) -> dict[str, int]:
        a, b = S.anchors, S.batches
        state = sa.func.coalesce(a.c.state, "none")
        q = (
            sa.select(state, sa.func.count())
            .select_from(b)
            .outerjoin(a, a.c.batch_id == b.c.id)
            .group_by(state)
        )
        with self.engine.connect() as conn:
            return {str(s): int(n) for s, n in conn.execute(q)}

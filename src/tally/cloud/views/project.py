"""The projector: the chain's blocks and the finance contracts' state, into the read model.

:meth:`Projector.sync` reads the blocks after the height it projected last (kept in
``v_meta`` under :data:`CURSOR`, so a restarted projector goes on where it stopped), writes
each as a :class:`BlockRow` with its :class:`TxRow` and refreshes the rows of the records
that changed: organisations (``party/``), receipts, loans, notes, trades, documents and the
banks' lines (``credit/``, ``limit/``), mapped as :mod:`.project_rows` says. Which records
changed: with a :class:`~.sources.KeyedSource` (the in-process consortium), the keys the new
blocks' valid transactions wrote, each row with the height and time of the last block that
wrote it; with any other source (a peer over HTTP), a full scan of the finance prefixes after
each batch of new blocks, each changed row with the batch's last height (documented as fine
at demo scale; at bank scale give the projector a keyed source). A row whose mapped value is
unchanged (height and update time aside) is not written again, so :meth:`sync` is idempotent.

Market data (``commodity/``, ``price/``, ``params/``) is re-read after any batch that wrote
it: a new price re-values the receipts of its commodity and, with a bank's new parameters,
re-computes the coverage of every live loan on it. A loan's coverage is also re-computed
when the loan or a receipt linked to it changes.

Events (with a hub, each after its row is written; ``resource`` from
:meth:`Views.resource <tally.cloud.views.store.Views.resource>`): ``block`` per block as it
is written (height, hash, tx_count, time_ms, signers, state, its first 50 transactions),
then, once the batch's records are refreshed, ``receipt`` /
``loan`` / ``note`` per changed row (the row's fields and ``change``: "new" or "updated"),
``coverage`` per loan whose coverage changed (loan, bank, borrower, status, ``coverage``
and ``before``, floats or null).

:meth:`Projector.run` syncs every ``interval_s`` in a worker thread until ``stop`` is set; a
failed sync is logged and counted (:attr:`Projector.errors`) and tried again next time. One
sync projects at most ``max_blocks`` blocks (the run goes on at once when more wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tally.cloud.live import EventHub
from tally.finance import keys as K

from . import project_rows as R
from .access import resource_of
from .model import BlockRow, LoanRow, Page, Scope, TxRow
from .sources import MAX_BLOCKS, ChainSource, KeyedSource
from .store import Views

log = logging.getLogger(__name__)

CURSOR = "projector.height"
"""The ``v_meta`` key of the last projected height."""
PROJECTED = (K.PARTY, K.RCPT, K.LOAN, K.NOTE, K.TRADE, K.DOC, K.CREDIT, K.LIMIT)
MARKET = (K.COMMODITY, K.PRICE, K.PARAMS)
LIVE_LOANS = ("active", "margin_call", "overdue", "defaulted", "disposing")
EVERYONE = Scope("consortium", everything=True)
BLOCK_TXS = 50
"""Transactions listed in a ``block`` event."""


class ProjectorError(RuntimeError):
    """The source and the read model disagree (another chain, a source that lost blocks)."""


@dataclass
class SyncResult:
    """What one :meth:`Projector.sync` did: heights before and after, blocks and
    transactions written, rows written and events published by kind, whether it scanned
    the whole state, and whether more blocks wait."""

    before: int
    height: int
    blocks: int = 0
    txs: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    full_scan: bool = False
    more: bool = False


@dataclass
class _Batch:
    """The keys a batch of blocks wrote: the last value of each (with the height and time of
    the block), when each loan was first seen and first seen disbursed."""

    latest: dict[str, tuple[Any, int, int]] = field(default_factory=dict)
    loan_first: dict[str, int] = field(default_factory=dict)
    loan_disbursed: dict[str, int] = field(default_factory=dict)
    market: bool = False
    full: bool = False

    def add(self, writes: list[tuple[str, Any]], height: int, t: int) -> None:
        for key, value in writes:
            if key.startswith(MARKET):
                self.market = True
            elif key.startswith(PROJECTED) and value is not None:
                self.latest[key] = (value, height, t)
                if key.startswith(K.LOAN):
                    lid = key[len(K.LOAN) :]
                    self.loan_first.setdefault(lid, t)
                    if value.get("start") is not None:
                        self.loan_disbursed.setdefault(lid, t)

    def of(self, prefix: str) -> Iterator[tuple[str, Any, int, int]]:
        for key, (value, height, t) in self.latest.items():
            if key.startswith(prefix):
                yield key[len(prefix) :], value, height, t


def _same(a: Any, b: Any) -> bool:
    """Rows equal but for their height and update time."""
    skip = {"height": 0, "updated_ms": 0}
    keep = {f.name for f in dataclasses.fields(a)} & set(skip)
    return bool(dataclasses.replace(a, **{k: skip[k] for k in keep})
                == dataclasses.replace(b, **{k: skip[k] for k in keep}))  # fmt: skip


def _data(row: Any, change: str | None = None) -> dict[str, Any]:
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(row).items()}
    if change is not None:
        out["change"] = change
    return out


def _all(page: Callable[[str | None], Page[Any]]) -> Iterator[Any]:
    cursor: str | None = None
    while True:
        got = page(cursor)
        yield from got.items
        if got.next_cursor is None:
            return
        cursor = got.next_cursor


class Projector:
    """Projects ``source`` into ``views`` and publishes on ``hub`` (see the module text).

    ``simulated`` labels the organisations first seen on the chain (the demo's parties).
    """

    def __init__(self, views: Views, source: ChainSource, hub: EventHub | None = None, *,
                 simulated: bool = False, max_blocks: int = 2000) -> None:  # fmt: skip
        self.views = views
        self.source = source
        self.hub = hub
        self.simulated = simulated
        self.max_blocks = max_blocks
        self.syncs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.totals: Counter[str] = Counter()
        """Rows written and events published so far, by kind (events as ``event:<kind>``)."""
        self._lock = threading.Lock()
        self._units: dict[str, str] = {}
        self._prices: dict[str, Decimal] | None = None
        self._params: dict[tuple[str, str], Any] = {}

    def height(self) -> int:
        """The last projected height (0 before the first block)."""
        return int(self.views.meta_get(CURSOR) or 0)

    def sync(self) -> SyncResult:
        """Project what is new (see the module text); safe to call from any thread, one
        sync at a time."""
        with self._lock:
            res = self._sync()
        self.syncs += 1
        self.totals.update(res.rows)
        self.totals.update({f"event:{k}": n for k, n in res.events.items()})
        return res

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Sync in a worker thread every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            more = False
            try:
                more = (await asyncio.to_thread(self.sync)).more
            except Exception as exc:  # a peer away, a database busy: try again next time
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("projector: sync failed: %s", self.last_error)
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)

    # -- one sync -----------------------------------------------------------------------------

    def _sync(self) -> SyncResult:
        before = self.height()
        available = self.source.height()
        if available < before:
            raise ProjectorError(f"the source is at height {available}, below the projected "
                                 f"height {before}: is it another chain?")  # fmt: skip
        top = min(available, before + self.max_blocks)
        res = SyncResult(before, before, more=top < available)
        if top == before:
            return res
        self._check_chain(before)
        keyed = isinstance(self.source, KeyedSource)
        batch = _Batch(full=not keyed)
        h, t = before, int(time.time() * 1000)
        while h < top:
            page = self.source.blocks(h, min(MAX_BLOCKS, top - h))
            if not page:
                raise ProjectorError(f"the source has no block after {h} at height {top}")
            for block, txs in page:
                t = block.time_ms if block.time_ms is not None else t
                if isinstance(self.source, KeyedSource) and not batch.full:
                    writes = self.source.writes(block.height)
                    if writes is None:
                        batch.full = True
                    else:
                        batch.add(writes, block.height, t)
                self.views.upsert_block(block, txs)
                self._block_event(block, txs, res)
                res.blocks += 1
                res.txs += len(txs)
                h = block.height
        if batch.full:
            res.full_scan = True
            for prefix in PROJECTED:
                for key, value in self.source.scan(prefix):
                    batch.latest[key] = (value, h, t)
            batch.market = True
        changed = self._market(batch.market)
        get = self._getter(batch)
        self._simple_rows(batch, res)
        self._receipts(batch, changed, res)
        self._loans(batch, changed, get, h, t, res)
        self.views.meta_put(CURSOR, str(h))
        res.height = h
        return res

    def _check_chain(self, before: int) -> None:
        """The block the view ended at must be the source's block at that height."""
        if before == 0:
            return
        mine = self.views.block(before)
        theirs = self.source.blocks(before - 1, 1)
        if mine is not None and theirs and theirs[0][0].hash != mine.hash:
            raise ProjectorError(
                f"block {before} is {theirs[0][0].hash[:16]}… at the source but "
                f"{mine.hash[:16]}… in the read model: another chain"
            )

    def _getter(self, batch: _Batch) -> Callable[[str], Any]:
        if batch.full or not isinstance(self.source, KeyedSource):
            return lambda key: (batch.latest.get(key) or (None,))[0]
        return self.source.get

    def _market(self, reread: bool) -> set[str]:
        """Re-read units, prices and parameters when a batch wrote them (or at the first
        sync); return the commodities whose price or some bank's parameters changed."""
        if not reread and self._prices is not None:
            return set()
        units = {k[len(K.COMMODITY) :]: v["unit"] for k, v in self.source.scan(K.COMMODITY)}
        prices = {k[len(K.PRICE) :]: v["price"] for k, v in self.source.scan(K.PRICE)}
        params = {}
        for key, value in self.source.scan(K.PARAMS):
            bank, commodity = R.split_key(key, K.PARAMS)
            params[(bank, commodity)] = value
        old_prices = self._prices or {}
        changed = {c for c in set(prices) | set(old_prices) if prices.get(c) != old_prices.get(c)}
        changed |= {c for (b, c) in set(params) | set(self._params)
                    if params.get((b, c)) != self._params.get((b, c))}  # fmt: skip
        self._units, self._prices, self._params = units, prices, params
        return changed

    def _price(self, commodity: str) -> Decimal | None:
        return (self._prices or {}).get(commodity)

    # -- rows -----------------------------------------------------------------------------

    def _write(self, kind: str, row: Any, stored: Any, res: SyncResult,
               event: bool = False, force: bool = False) -> bool:  # fmt: skip
        if stored is not None and _same(stored, row) and not force:
            return False
        getattr(self.views, f"upsert_{kind}")(row)
        res.rows[kind] += 1
        if event:
            self._publish(kind, _data(row, "new" if stored is None else "updated"), row, res)
        return True

    def _publish(self, kind: str, data: dict[str, Any], row: Any, res: SyncResult,
                 rkind: str | None = None) -> None:  # fmt: skip
        if self.hub is None:
            return
        self.hub.publish(kind, data, self.views.resource(rkind or kind, row))
        res.events[kind] += 1

    def _block_event(self, block: BlockRow, txs: list[TxRow], res: SyncResult) -> None:
        if self.hub is None:
            return
        data = _data(block)
        data["txs"] = [{"id": x.id, "contract": x.contract, "fn": x.fn, "creator": x.creator,
                        "code": x.code} for x in txs[:BLOCK_TXS]]  # fmt: skip
        self.hub.publish("block", data, resource_of("block", block))
        res.events["block"] += 1

    def _simple_rows(self, batch: _Batch, res: SyncResult) -> None:
        """Organisations, notes, trades, documents and lines: each row from its own record."""
        v = self.views
        for oid, rec, _, _ in batch.of(K.PARTY):
            stored = v.org(oid)
            self._write("org", R.org_row(rec, stored, self.simulated), stored, res)
        for _, rec, h, _t in batch.of(K.TRADE):
            self._write("trade", R.trade_row(rec, h), v.trade(rec["id"]), res)
        for hx, rec, h, _ in batch.of(K.DOC):
            stored_doc = v.document(hx)
            self._write("document", R.document_row(hx, rec, h, stored_doc), stored_doc, res)
        for _, rec, h, t in batch.of(K.NOTE):
            row, stored_note = R.note_row(rec, h, t), v.note(rec["id"])
            earlier = set(rec.get("endorsers", ())) - v.parties_of("note", row.id)
            for who in sorted(earlier):  # links kept: each earlier holder keeps seeing it
                v.upsert_note(dataclasses.replace(row, holder=who))
            self._write("note", row, stored_note, res, event=True, force=bool(earlier))
        for kind, prefix in (("credit", K.CREDIT), ("limit", K.LIMIT)):
            for rest, rec, h, _ in batch.of(prefix):
                bank, party = rest.split("/", 1)
                v.upsert_limit(R.limit_row(kind, bank, party, rec, h))  # few: always written
                res.rows["limit"] += 1

    def _receipts(self, batch: _Batch, repriced: set[str], res: SyncResult) -> None:
        v = self.views
        done = set()
        for no, rec, h, _ in batch.of(K.RCPT):
            done.add(no)
            row = R.receipt_row(rec, h, self._units.get(rec["commodity"]),
                                self._price(rec["commodity"]))  # fmt: skip
            self._write("receipt", row, v.receipt(no), res, event=True)
        for commodity in sorted(repriced):
            price = self._price(commodity)
            page = lambda c, commodity=commodity: v.list_receipts(  # noqa: E731
                EVERYONE, commodity=commodity, limit=200, cursor=c
            )
            for row in list(_all(page)):
                if row.no in done:
                    continue
                value = R.value_fen(Decimal(row.quantity), price)
                if value != row.value_fen:
                    new = dataclasses.replace(row, value_fen=value)
                    v.upsert_receipt(new)
                    res.rows["receipt"] += 1
                    self._publish("receipt", _data(new, "updated"), new, res)

    def _loans(self, batch: _Batch, repriced: set[str], get: Callable[[str], Any], h: int,
               t: int, res: SyncResult) -> None:  # fmt: skip
        v = self.views
        records: dict[str, tuple[Any, int, int]] = {
            lid: (rec, rh, rt) for lid, rec, rh, rt in batch.of(K.LOAN)
        }
        todo = set(records)
        for no, rec, _, _ in batch.of(K.RCPT):
            held = v.receipt(no)
            todo |= {x for x in (rec.get("loan"), held.loan if held else None) if x}
        if repriced:
            for status in LIVE_LOANS:
                page = lambda c, s=status: v.list_loans(  # noqa: E731
                    EVERYONE, status=s, limit=200, cursor=c
                )
                todo |= {row.id for row in _all(page)}
        for lid in sorted(todo):
            got = records.get(lid)
            rec, rh, rt = got if got is not None else (get(K.loan_key(lid)), h, t)
            if rec is None:
                continue
            c = rec["commodity"]
            coverage = R.loan_coverage(rec, get, self._price(c), self._params.get((rec["bank"], c)))
            stored = v.loan(lid)
            row = R.loan_row(rec, rh, rt, coverage, stored, batch.loan_first.get(lid),
                             batch.loan_disbursed.get(lid))  # fmt: skip
            self._loan(row, stored, res)

    def _loan(self, row: LoanRow, stored: LoanRow | None, res: SyncResult) -> None:
        before = stored.coverage if stored is not None else None
        if stored is not None and _same(stored, row):
            return
        self.views.upsert_loan(row)
        res.rows["loan"] += 1
        other = stored is None or not _same(dataclasses.replace(stored, coverage=row.coverage), row)
        if other:
            self._publish("loan", _data(row, "new" if stored is None else "updated"), row, res)
        if row.coverage != before:
            data = {"loan": row.id, "bank": row.bank, "borrower": row.borrower,
                    "status": row.status, "coverage": row.coverage, "before": before}  # fmt: skip
            self._publish("coverage", data, row, res, rkind="loan")

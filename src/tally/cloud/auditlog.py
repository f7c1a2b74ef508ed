"""The platform's audit log: who did what to which resource, append-only, hash-chained and
anchored on the consortium ledger.

Every entry says when (``t``, ms), in which tenant, which actor did which action to which
resource (kind and id), with what outcome (``ok``, ``denied``, ``failed``) and a small detail
map (text, integers, booleans, null, lists, maps; at most 2 KiB; never a secret). Its body is
the deterministic CBOR of those fields with its ``seq`` and the previous entry's hash
(``docs/formats.md`` §36); its hash is the suite hash (SHA-256 for ``intl``, SM3 for ``gm``)
of the body, so all entries form one chain.

==================  ========================================================================
table               holds
==================  ========================================================================
``audit_head``      one row: the suite, the number of entries and the hash of the last one
``audit_log``       one row per entry, by ``seq``: its fields, ``detail`` as CBOR, the
                    previous entry's hash ``prev`` and its own ``hash``
``audit_anchors``   one row per anchored head: the ``seq`` and hash anchored, when, the
                    transaction id
==================  ========================================================================

The tables come from migration ``0004``. An append is one transaction whose first statement
updates the head row: that takes the log's write lock (a row lock on PostgreSQL, the database
write lock on SQLite), so concurrent appenders, in one process or many, extend one chain.

:meth:`AuditLog.verify` recomputes every hash and link and names the first broken ``seq``: an
edited row no longer hashes to its stored hash, a deleted one leaves a gap (or a head that
counts more entries), reordered rows hash differently at their new ``seq``, an inserted one
breaks the link after it or lies beyond the head. Someone able to rewrite the tables can
recompute a consistent chain after the last anchor; anchoring bounds that window:
:meth:`AuditLog.anchor_pending` anchors the head hash as ``anchor("audit", h)``
(``anchoring.anchor_record``) once ``every_n`` entries are unanchored or the oldest has waited
``every_ms``, and ``verify(is_anchored)`` checks that each anchored head is still the entry's
hash and that the ledger holds ``record/<hex>`` (:func:`anchored_in`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tally.crypto import DecodeError, Suite, cbor, get_suite
from tally.ledger.consortium import TxResult
from tally.ledger.contracts.keys import record_key
from tally.ledger.state import StateView

VERSION = 1
OUTCOMES = ("ok", "denied", "failed")
ANCHOR_KIND = "audit"
DETAIL_MAX = 2048
DETAIL_DEPTH = 4
TEXT_MAX = 200
SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "pin", "otp", "cookie", "csrf", "credential",
     "credentials", "privkey"}
)  # fmt: skip
SECRET_PREFIXES = ("tly_", "scrypt$")
"""Values that look like an API token or a password hash are refused."""
HEAD_ID = 1
_ACTION = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Anchor = Callable[[str, bytes], Awaitable[Any]]
"""Anchors a hash on the chain: ``await anchor("audit", h)``; raises when refused."""
IsAnchored = Callable[[bytes], bool]
"""Tells whether a hash is anchored on the chain (:func:`anchored_in`)."""

metadata = sa.MetaData()
head_table = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("suite", sa.String(16), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False),
)
entries_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("t", sa.BigInteger(), nullable=False),
    sa.Column("tenant", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource_kind", sa.String(32), nullable=False),
    sa.Column("resource_id", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.LargeBinary(), nullable=False),
    sa.Column("prev", sa.LargeBinary(), nullable=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False),
    sa.Index("ix_audit_log_tenant_t", "tenant", "t"),
    sa.Index("ix_audit_log_resource", "resource_kind", "resource_id"),
)
anchors_table = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False),
    sa.Column("t", sa.BigInteger(), nullable=False),
    sa.Column("tx_id", sa.LargeBinary(), nullable=True),
)


class AuditLogError(ValueError):
    """An entry, a setting or an anchoring the audit log refuses (nothing was changed)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    t: int
    tenant: str | None
    actor: str
    action: str
    resource_kind: str
    resource_id: str
    outcome: str
    detail: Mapping[str, Any]
    prev: bytes
    hash: bytes
    """The suite hash of :func:`entry_body` (what the next entry's ``prev`` names)."""


@dataclass(frozen=True)
class Head:
    suite: str
    entries: int
    hash: bytes
    """The last entry's hash (32 zero bytes for an empty log)."""


@dataclass(frozen=True)
class Anchored:
    seq: int
    hash: bytes
    t: int
    tx_id: bytes | None


@dataclass
class AuditReport:
    """What :meth:`AuditLog.verify` found: the entries read, the anchors checked, the first
    broken ``seq`` (None when the log is intact) and every problem as a sentence."""

    entries: int = 0
    anchors: int = 0
    broken: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, seq: int, problem: str) -> None:
        self.broken = seq if self.broken is None else min(self.broken, seq)
        self.problems.append(problem)


def entry_body(suite: str, e: Entry) -> bytes:
    """The deterministic CBOR of an entry (``docs/formats.md`` §36); ``e.hash`` is not in it."""
    return cbor.encode({
        "v": VERSION, "suite": suite, "seq": e.seq, "prev": e.prev, "t": e.t,
        "tenant": e.tenant, "actor": e.actor, "action": e.action,
        "resource_kind": e.resource_kind, "resource_id": e.resource_id,
        "outcome": e.outcome, "detail": dict(e.detail),
    })  # fmt: skip


def _hex(h: bytes) -> str:
    return h.hex()[:16] + "…"


def _text(what: str, v: object, most: int, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(v, str):
        raise AuditLogError(f"audit entry: {what} must be text, got {type(v).__name__}")
    if pattern is not None and not pattern.fullmatch(v):
        raise AuditLogError(
            f"audit entry: {what} must match {pattern.pattern} (lower-case, at most {most} "
            f"characters), got {v!r}"
        )
    if not 1 <= len(v) <= most or _CONTROL.search(v):
        raise AuditLogError(
            f"audit entry: {what} must be 1 to {most} characters without control "
            f"characters, got {v!r}"
        )
    return v


def _check_value(path: str, v: object, depth: int) -> None:
    if depth > DETAIL_DEPTH:
        raise AuditLogError(f"audit entry: {path} nests deeper than {DETAIL_DEPTH} levels")
    if isinstance(v, Mapping):
        for k, x in v.items():
            if not isinstance(k, str) or not 1 <= len(k) <= 64:
                raise AuditLogError(
                    f"audit entry: {path} has the key {k!r}: keys are text of 1 to 64 characters"
                )
            words = set(re.split(r"[^a-z0-9]+", k.lower()))
            secret = sorted(words & SECRET_WORDS)
            if secret or "private_key" in k.lower():
                raise AuditLogError(
                    f"audit entry: {path}.{k}: the audit log never stores secrets "
                    f"({(secret or ['private_key'])[0]!r} names one); record an id instead"
                )
            _check_value(f"{path}.{k}", x, depth + 1)
    elif isinstance(v, list | tuple):
        for i, x in enumerate(v):
            _check_value(f"{path}[{i}]", x, depth + 1)
    elif isinstance(v, str):
        if v.startswith(SECRET_PREFIXES):
            raise AuditLogError(
                f"audit entry: {path} looks like a secret ({v[:4]!r}…): the audit log never "
                "stores secrets"
            )
    elif isinstance(v, bool) or v is None:
        return
    elif isinstance(v, int):
        if not -(2**63) <= v < 2**64:
            raise AuditLogError(f"audit entry: {path} is {v}, beyond 64 bits")
    else:
        raise AuditLogError(
            f"audit entry: {path} is a {type(v).__name__}; detail holds only text, integers, "
            "booleans, null, lists and maps"
        )


def check_detail(detail: Mapping[str, Any] | None) -> bytes:
    """The CBOR of a valid detail map; AuditLogError saying what is wrong otherwise."""
    d: Any = {} if detail is None else detail
    if not isinstance(d, Mapping):
        raise AuditLogError(f"audit entry: detail must be a map, got {type(d).__name__}")
    _check_value("detail", d, 1)
    raw = cbor.encode(dict(d))
    if len(raw) > DETAIL_MAX:
        raise AuditLogError(
            f"audit entry: detail is {len(raw)} bytes as CBOR, more than {DETAIL_MAX}"
        )
    return raw


def anchored_in(state: StateView) -> IsAnchored:
    """Whether a hash is anchored as an audit head, read from a peer's world state."""

    def is_anchored(h: bytes) -> bool:
        got = state.get(record_key(h))
        return got is not None and got[0].get("kind") == ANCHOR_KIND

    return is_anchored


class Submitter(Protocol):
    async def submit(
        self, contract: str, fn: str, args: Sequence[Any], creator: str
    ) -> TxResult: ...


def consortium_anchor(consortium: Submitter, creator: str) -> Anchor:
    """An :data:`Anchor` submitting ``anchoring.anchor_record`` as member ``creator``."""

    async def anchor(kind: str, h: bytes) -> TxResult:
        r = await consortium.submit("anchoring", "anchor_record", [kind, h], creator=creator)
        if not r.valid:
            raise AuditLogError(
                f"anchoring {kind} {h.hex()} was not valid: {r.code}: {r.error or r.reason}"
            )
        return r

    return anchor


def _entry(r: Any) -> Entry:
    detail = cbor.decode(bytes(r["detail"]), "audit entry detail")
    return Entry(int(r["seq"]), int(r["t"]), r["tenant"], r["actor"], r["action"],
                 r["resource_kind"], r["resource_id"], r["outcome"], detail,
                 bytes(r["prev"]), bytes(r["hash"]))  # fmt: skip


class AuditLog:
    """The audit log in the cloud database behind ``engine`` (tables of migration 0004)."""

    def __init__(
        self,
        engine: Engine,
        *,
        suite: str | Suite = "intl",
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        every_n: int = 100,
        every_ms: int = 60_000,
    ) -> None:
        for name, v in (("every_n", every_n), ("every_ms", every_ms)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise AuditLogError(f"audit log: {name} must be an integer >= 1, got {v!r}")
        self.engine = engine
        self.suite = get_suite(suite) if isinstance(suite, str) else suite
        self.zero = bytes(len(self.suite.hash(b"")))
        self.clock = clock
        self.every_n, self.every_ms = every_n, every_ms
        self._anchoring = asyncio.Lock()
        if not sa.inspect(engine).has_table(head_table.name):
            raise AuditLogError(
                "the audit log's tables are missing: upgrade the database to revision 0004 "
                "or later (tally cloud migrate)"
            )
        row = {"id": HEAD_ID, "suite": self.suite.name, "seq": 0, "hash": self.zero}
        with contextlib.suppress(sa.exc.IntegrityError), engine.begin() as conn:
            if conn.execute(sa.select(head_table.c.id)).first() is None:
                conn.execute(sa.insert(head_table).values(**row))  # unless another process did
        head = self.head()
        if head.suite != self.suite.name:
            raise AuditLogError(
                f"the audit log is kept with suite {head.suite!r}, not {self.suite.name!r}"
            )

    # -- reads -----------------------------------------------------------------------------
    def head(self, conn: Connection | None = None) -> Head:
        if conn is None:
            with self.engine.connect() as c:
                return self.head(c)
        r = conn.execute(sa.select(head_table).where(head_table.c.id == HEAD_ID)).mappings()
        row = r.one()
        return Head(row["suite"], int(row["seq"]), bytes(row["hash"]))

    def entry(self, seq: int) -> Entry | None:
        e = entries_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(e).where(e.c.seq == seq)).mappings().first()
        return None if row is None else _entry(row)

    def entries(
        self, *, after: int = -1, limit: int = 100, tenant: str | None = None
    ) -> list[Entry]:
        """Entries with ``seq`` > ``after`` in chain order (only ``tenant``'s if given)."""
        e = entries_table
        q = sa.select(e).where(e.c.seq > after).order_by(e.c.seq).limit(limit)
        if tenant is not None:
            q = q.where(e.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(q).mappings()]

    def _rows(self, batch: int = 1000) -> Iterator[Any]:
        e = entries_table
        after: int | None = None
        while True:
            q = sa.select(e).order_by(e.c.seq).limit(batch)
            if after is not None:
                q = q.where(e.c.seq > after)
            with self.engine.connect() as conn:
                rows = list(conn.execute(q).mappings())
            yield from rows
            if len(rows) < batch:
                return
            after = int(rows[-1]["seq"])

    def anchors(self) -> list[Anchored]:
        a = anchors_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a).order_by(a.c.seq)).mappings()
            return [
                Anchored(int(r["seq"]), bytes(r["hash"]), int(r["t"]),
                         None if r["tx_id"] is None else bytes(r["tx_id"]))
                for r in rows
            ]  # fmt: skip

    def last_anchored(self) -> int | None:
        """The highest ``seq`` whose hash is anchored, None before the first anchor."""
        with self.engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.max(anchors_table.c.seq))).scalar()
        return None if got is None else int(got)

    # -- append ----------------------------------------------------------------------------
    def append(self, *, tenant: str | None, actor: str, action: str, resource_kind: str,
               resource_id: str = "", outcome: str = "ok",
               detail: Mapping[str, Any] | None = None) -> Entry:  # fmt: skip
        """Append one entry atomically, at the end of the chain; AuditLogError if refused."""
        if tenant is not None:
            _text("tenant", tenant, TEXT_MAX)
        _text("actor", actor, TEXT_MAX)
        _text("action", action, 64, _ACTION)
        _text("resource_kind", resource_kind, 32, _KIND)
        if resource_id != "":
            _text("resource_id", resource_id, TEXT_MAX)
        if outcome not in OUTCOMES:
            raise AuditLogError(f"audit entry: outcome must be one of {OUTCOMES}, got {outcome!r}")
        raw = check_detail(detail)
        h = head_table
        with self.engine.begin() as conn:
            # the write lock: every append starts by writing the head row
            conn.execute(sa.update(h).where(h.c.id == HEAD_ID).values(seq=h.c.seq))
            head = self.head(conn)
            t = self.clock()
            if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                raise AuditLogError(f"audit log: the clock gave {t!r}, not milliseconds >= 0")
            e = Entry(head.entries, t, tenant, actor, action, resource_kind, resource_id,
                      outcome, cbor.decode(raw), head.hash, b"")  # fmt: skip
            e = replace(e, hash=self.suite.hash(entry_body(self.suite.name, e)))
            values = {c.name: getattr(e, c.name) for c in entries_table.c if c.name != "detail"}
            conn.execute(sa.insert(entries_table).values(detail=raw, **values))
            conn.execute(sa.update(h).where(h.c.id == HEAD_ID).values(seq=e.seq + 1, hash=e.hash))
        return e

    # -- verification ----------------------------------------------------------------------
    def verify(self, is_anchored: IsAnchored | None = None) -> AuditReport:
        """Recompute every hash and link, compare with the head and the recorded anchors
        (and, given ``is_anchored``, with the ledger); nothing is changed."""
        rep = AuditReport()
        anchors = {a.seq: a for a in self.anchors()}
        stored: dict[int, bytes] = {}
        n, prev = 0, self.zero
        for r in self._rows():
            seq, h = int(r["seq"]), bytes(r["hash"])
            if seq in anchors:
                stored[seq] = h
            if seq < n:
                rep.add(seq, f"entry {seq} is out of place: the chain expects entry {n}")
                continue
            if seq != n:
                missing = "the log starts with" if n == 0 else f"after entry {n - 1} comes"
                rep.add(n, f"entries {n} to {seq - 1} are missing: {missing} entry {seq}")
            try:
                e = _entry(r)
            except DecodeError as exc:
                rep.add(seq, f"entry {seq}: its detail is not deterministic CBOR: {exc}")
            else:
                got = self.suite.hash(entry_body(self.suite.name, e))
                if got != h:
                    rep.add(seq, f"entry {seq}: the stored hash {_hex(h)} is not the hash of "
                                 f"its fields {_hex(got)}")  # fmt: skip
                if e.prev != prev:
                    rep.add(seq, f"entry {seq} does not chain: its prev is {_hex(e.prev)}, the "
                                 f"entry before it has hash {_hex(prev)}")  # fmt: skip
            n, prev = seq + 1, h
        rep.entries = n
        head = self.head()
        if head.entries > n:
            rep.add(n, f"entries {n} to {head.entries - 1} are missing: the head says "
                       f"{head.entries} entries ending in {_hex(head.hash)}")  # fmt: skip
        elif head.entries < n:
            rep.add(head.entries, f"entries {head.entries} to {n - 1} are beyond the head, "
                                  f"which says {head.entries} entries ending in "
                                  f"{_hex(head.hash)}")  # fmt: skip
        elif head.hash != prev:
            rep.add(n - 1, f"entry {n - 1} is not the head: the head's hash is "
                           f"{_hex(head.hash)}, the entry's {_hex(prev)}")  # fmt: skip
        for seq, a in sorted(anchors.items()):
            rep.anchors += 1
            if seq not in stored:
                rep.add(seq, f"anchor at entry {seq}: the log has no entry {seq}")
            elif stored[seq] != a.hash:
                rep.add(seq, f"anchor at entry {seq}: the anchored hash {_hex(a.hash)} is not "
                             f"the entry's hash {_hex(stored[seq])}")  # fmt: skip
            if is_anchored is not None and not is_anchored(a.hash):
                rep.add(seq, f"anchor at entry {seq}: the ledger has no {record_key(a.hash)}")
        return rep

    # -- anchoring -------------------------------------------------------------------------
    def due(self) -> bool:
        """Whether the head should be anchored now: ``every_n`` entries are unanchored, or
        the oldest unanchored one is ``every_ms`` old."""
        head, last = self.head(), self.last_anchored()
        first = 0 if last is None else last + 1
        if head.entries <= first:
            return False
        if head.entries - first >= self.every_n:
            return True
        oldest = self.entry(first)
        return oldest is None or self.clock() - oldest.t >= self.every_ms

    async def anchor_pending(
        self, anchor: Anchor, *, force: bool = False, is_anchored: IsAnchored | None = None
    ) -> Anchored | None:
        """Anchor the head hash if :meth:`due` (or ``force`` and anything is unanchored) and
        record it; return the anchor, or None when nothing was due. A head the ledger holds
        already (``is_anchored``) is only recorded. AuditLogError if anchoring failed."""
        async with self._anchoring:
            head, last = await asyncio.to_thread(lambda: (self.head(), self.last_anchored()))
            seq = head.entries - 1
            if seq < 0 or (last is not None and last >= seq):
                return None
            if not force and not await asyncio.to_thread(self.due):
                return None
            tx: bytes | None = None
            if is_anchored is None or not is_anchored(head.hash):
                try:
                    result = await anchor(ANCHOR_KIND, head.hash)
                except Exception as exc:
                    if is_anchored is None or not is_anchored(head.hash):
                        raise AuditLogError(
                            f"anchoring the audit head (entry {seq}, {head.hash.hex()}) "
                            f"failed: {type(exc).__name__}: {exc}; nothing was recorded, the "
                            "next anchor_pending() tries again"
                        ) from exc
                else:
                    got = getattr(result, "tx_id", None)
                    tx = got if isinstance(got, bytes) else None
            done = Anchored(seq, head.hash, self.clock(), tx)
            await asyncio.to_thread(self._record, done)
            return done

    def _record(self, a: Anchored) -> None:
        with contextlib.suppress(sa.exc.IntegrityError), self.engine.begin() as conn:
            conn.execute(sa.insert(anchors_table).values(**a.__dict__))  # or another process did

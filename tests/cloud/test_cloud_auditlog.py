"""The platform's audit log: appending and reading, the hash chain, refused input, tampering
(edit, delete, reorder, insert) named by the first broken seq, concurrent appenders, anchoring
(also on a real in-process consortium) and migration 0004, on SQLite and PostgreSQL; the entry
test vector of docs/formats.md ("Platform: audit log entry")."""

from __future__ import annotations

import asyncio
import itertools
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.cloud import auditlog as A
from tally.cloud.auditlog import (
    Anchored,
    AuditLog,
    AuditLogError,
    Entry,
    anchored_in,
    consortium_anchor,
    entry_body,
)
from tally.cloud.storage import migrate as M
from tally.crypto import GM, INTL, cbor
from tally.ledger.contracts.keys import record_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
T0 = 1_767_225_600_000
E = A.entries_table
TABLES = ("audit_head", "audit_log", "audit_anchors")


def engine_for(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        sa.event.listen(engine, "connect", on_connect)
    return engine


class Clock:
    """Milliseconds from ``T0``, moving ``step`` per reading (safe across threads)."""

    def __init__(self, step: int = 1000) -> None:
        self.t, self.step, self._lock = T0, step, threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.t += self.step
            return self.t


class FakeLedger:
    """Anchors hashes like anchoring.anchor_record: a hash anchored before is refused."""

    def __init__(self) -> None:
        self.records: dict[bytes, str] = {}
        self.calls: list[tuple[str, bytes]] = []
        self.fail: Exception | None = None

    async def anchor(self, kind: str, h: bytes) -> Any:
        self.calls.append((kind, h))
        if self.fail is not None:
            raise self.fail
        if h in self.records:
            raise RuntimeError(f"record {h.hex()[:16]}… is already anchored")
        self.records[h] = kind
        return SimpleNamespace(tx_id=bytes([len(self.records)]) * 32)

    def is_anchored(self, h: bytes) -> bool:
        return self.records.get(h) == "audit"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    e = engine_for(db_url)
    A.metadata.create_all(e)
    yield e
    e.dispose()


def fill(log: AuditLog, n: int, start: int = 0) -> list[Entry]:
    return [
        log.append(tenant=("bank-a", "sme-1", None)[i % 3], actor=f"u-{i}", action="receipt.read",
                   resource_kind="receipt", resource_id=f"R-{i}", outcome=A.OUTCOMES[i % 3],
                   detail={"n": i, "path": ["a", i], "ok": i % 2 == 0, "none": None})
        for i in range(start, start + n)
    ]  # fmt: skip


def snapshot(engine: sa.Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(
            [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in A.metadata.sorted_tables
        )


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``cond()`` holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def hx(h: bytes) -> str:
    return h.hex()[:16] + "…"


def rehash(e: Entry, suite: str = "intl") -> Entry:
    body = entry_body(suite, e)
    return replace(e, hash=(INTL if suite == "intl" else GM).hash(body))


def update(engine: sa.Engine, seq: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(E).where(E.c.seq == seq).values(**values))


def insert(engine: sa.Engine, e: Entry) -> None:
    values = {c.name: getattr(e, c.name) for c in E.c if c.name != "detail"}
    with engine.begin() as conn:
        conn.execute(sa.insert(E).values(detail=cbor.encode(dict(e.detail)), **values))


# -- the test vector --------------------------------------------------------------------------

VECTOR = Entry(0, T0, "bank-a", "u-alice", "session.login", "user", "alice", "ok",
               {"ip": "203.0.113.7", "via": "password"}, bytes(32), b"")  # fmt: skip


def _doc_vector() -> tuple[bytes, list[str]]:
    text = DOC.read_text()
    found = re.search(r"^## 36 Platform: audit log entry\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found is not None, "docs/formats.md has no 'Platform: audit log entry' section"
    block = re.search(r"```\n([0-9a-f\n]+)```", found.group(1))
    assert block is not None
    return bytes.fromhex("".join(block.group(1).split())), re.findall(
        r"`([0-9a-f]{64})`", found.group(1)
    )


def test_the_documented_vector_is_what_the_code_encodes(tmp_path: Path) -> None:
    body, (intl_hash, gm_hash) = _doc_vector()
    assert entry_body("intl", VECTOR) == body and len(body) == 203
    assert INTL.hash(body).hex() == intl_hash
    gm_body = entry_body("gm", VECTOR)
    assert gm_body == body.replace(b"\x65suitedintl", b"\x65suitebgm")
    assert GM.hash(gm_body).hex() == gm_hash
    m = cbor.decode(body)
    assert (m["v"], m["seq"], m["prev"], m["detail"]) == (1, 0, bytes(32), VECTOR.detail)
    engine = engine_for(f"sqlite:///{tmp_path / 'v.db'}")
    A.metadata.create_all(engine)
    for suite, want in (("intl", intl_hash), ("gm", gm_hash)):
        with engine.begin() as conn:
            for t in A.metadata.sorted_tables:
                conn.execute(sa.delete(t))
        log = AuditLog(engine, suite=suite, clock=lambda: T0)
        e = log.append(tenant="bank-a", actor="u-alice", action="session.login",
                       resource_kind="user", resource_id="alice",
                       detail={"via": "password", "ip": "203.0.113.7"})  # fmt: skip
        assert e.hash.hex() == want and log.head().hash == e.hash
    engine.dispose()


# -- appending and reading --------------------------------------------------------------------


def test_entries_chain_and_read_back(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=Clock())
    assert log.head() == A.Head("intl", 0, bytes(32)) and log.verify().ok
    es = fill(log, 7)
    assert [e.seq for e in es] == list(range(7))
    assert [e.t for e in es] == [T0 + 1000 * (i + 1) for i in range(7)]
    assert es[0].prev == bytes(32)
    for a, b in itertools.pairwise(es):
        assert b.prev == a.hash
    assert all(e.hash == INTL.hash(entry_body("intl", e)) for e in es)
    assert log.head() == A.Head("intl", 7, es[-1].hash)
    assert log.entries() == es and log.entry(3) == es[3] and log.entry(7) is None
    assert log.entries(after=2, limit=2) == es[3:5]
    assert [e.seq for e in log.entries(tenant="sme-1")] == [1, 4]
    assert es[2].tenant is None and dict(es[1].detail) == {"n": 1, "path": ["a", 1],
                                                          "ok": False, "none": None}  # fmt: skip
    rep = log.verify()
    assert rep.ok and (rep.entries, rep.anchors, rep.broken) == (7, 0, None)
    # a second log on the same tables continues the chain
    again = AuditLog(engine, clock=Clock())
    e7 = again.append(tenant=None, actor="system", action="key.rotate", resource_kind="key")
    assert (e7.seq, e7.prev, e7.resource_id, dict(e7.detail)) == (7, es[-1].hash, "", {})
    assert log.verify().ok


def test_a_gm_log_hashes_with_sm3_and_keeps_its_suite(engine: sa.Engine) -> None:
    log = AuditLog(engine, suite="gm", clock=Clock())
    es = fill(log, 3)
    assert all(e.hash == GM.hash(entry_body("gm", e)) for e in es) and log.verify().ok
    before = snapshot(engine)
    with pytest.raises(AuditLogError) as exc:
        AuditLog(engine, suite="intl")
    assert str(exc.value) == "the audit log is kept with suite 'gm', not 'intl'"
    assert snapshot(engine) == before


BAD: list[tuple[dict[str, Any], str]] = [
    ({"tenant": ""}, "audit entry: tenant must be 1 to 200 characters without control "
                     "characters, got ''"),
    ({"actor": "a\nb"}, "audit entry: actor must be 1 to 200 characters without control "
                        "characters, got 'a\\nb'"),
    ({"actor": "x" * 201}, "audit entry: actor must be 1 to 200 characters without control "
                           f"characters, got '{'x' * 201}'"),
    ({"actor": 5}, "audit entry: actor must be text, got int"),
    ({"action": "Login"}, "audit entry: action must match [a-z][a-z0-9_.:-]{0,63} (lower-case, "
                          "at most 64 characters), got 'Login'"),
    ({"resource_kind": "receipt!"}, "audit entry: resource_kind must match [a-z][a-z0-9_]{0,31} "
                                    "(lower-case, at most 32 characters), got 'receipt!'"),
    ({"resource_id": "R\x00"}, "audit entry: resource_id must be 1 to 200 characters without "
                               "control characters, got 'R\\x00'"),
    ({"outcome": "success"}, "audit entry: outcome must be one of ('ok', 'denied', 'failed'), "
                             "got 'success'"),
    ({"detail": {"password": "hunter2"}}, "audit entry: detail.password: the audit log never "
                                          "stores secrets ('password' names one); record an id "
                                          "instead"),
    ({"detail": {"user": {"new-pin": "1234"}}}, "audit entry: detail.user.new-pin: the audit log "
                                                "never stores secrets ('pin' names one); record "
                                                "an id instead"),
    ({"detail": {"id": "tly_Zm9vYmFy"}}, "audit entry: detail.id looks like a secret ('tly_'…): "
                                         "the audit log never stores secrets"),
    ({"detail": {"was": ["scrypt$15$8$1$c2FsdA$aGFzaA"]}}, "audit entry: detail.was[0] looks "
                                                           "like a secret ('scry'…): the audit "
                                                           "log never stores secrets"),
    ({"detail": {"rate": 1.5}}, "audit entry: detail.rate is a float; detail holds only text, "
                                "integers, booleans, null, lists and maps"),
    ({"detail": {"raw": b"\x00"}}, "audit entry: detail.raw is a bytes; detail holds only text, "
                                   "integers, booleans, null, lists and maps"),
    ({"detail": {"n": 2**64}}, f"audit entry: detail.n is {2**64}, beyond 64 bits"),
    ({"detail": {7: "x"}}, "audit entry: detail has the key 7: keys are text of 1 to 64 "
                           "characters"),
    ({"detail": {"a": {"b": {"c": {"d": 1}}}}}, "audit entry: detail.a.b.c.d nests deeper than "
                                                "4 levels"),
    ({"detail": ["x"]}, "audit entry: detail must be a map, got list"),
    ({"detail": {"big": "x" * 2041}}, "audit entry: detail is 2049 bytes as CBOR, more than "
                                      "2048"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_entries_are_refused_precisely_and_change_nothing(
    engine: sa.Engine, change: dict[str, Any], message: str
) -> None:
    log = AuditLog(engine, clock=Clock())
    fill(log, 2)
    before = snapshot(engine)
    fields: dict[str, Any] = {"tenant": "bank-a", "actor": "u-1", "action": "loan.approve",
                              "resource_kind": "loan", "resource_id": "L-1"}  # fmt: skip
    with pytest.raises(AuditLogError) as exc:
        log.append(**{**fields, **change})
    assert str(exc.value) == message
    assert snapshot(engine) == before and log.verify().ok
    # the largest detail allowed is taken
    e = log.append(**{**fields, "detail": {"big": "x" * 2040}})
    assert len(cbor.encode(dict(e.detail))) == A.DETAIL_MAX and log.verify().ok


def test_bad_settings_and_a_bad_clock_are_refused(engine: sa.Engine, tmp_path: Path) -> None:
    for name in ("every_n", "every_ms"):
        with pytest.raises(AuditLogError) as exc:
            AuditLog(engine, **{name: 0})  # type: ignore[arg-type]
        assert str(exc.value) == f"audit log: {name} must be an integer >= 1, got 0"
    bad = iter([T0, 1.5, -1])
    log = AuditLog(engine, clock=lambda: next(bad))  # type: ignore[arg-type,return-value]
    log.append(tenant="t", actor="a", action="x", resource_kind="y")
    before = snapshot(engine)
    for got in ("1.5", "-1"):
        with pytest.raises(AuditLogError) as exc:
            log.append(tenant="t", actor="a", action="x", resource_kind="y")
        assert str(exc.value) == f"audit log: the clock gave {got}, not milliseconds >= 0"
        assert snapshot(engine) == before
    empty = engine_for(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(AuditLogError) as exc:
        AuditLog(empty)
    assert str(exc.value) == ("the audit log's tables are missing: upgrade the database to "
                              "revision 0004 or later (tally cloud migrate)")  # fmt: skip
    assert sa.inspect(empty).get_table_names() == []
    empty.dispose()


# -- tampering ----------------------------------------------------------------------------------


def _swap(engine: sa.Engine, i: int, j: int) -> None:
    cols = [c for c in E.c if c.name != "seq"]
    with engine.begin() as conn:
        ri = conn.execute(sa.select(*cols).where(E.c.seq == i)).one()._asdict()
        rj = conn.execute(sa.select(*cols).where(E.c.seq == j)).one()._asdict()
        conn.execute(sa.update(E).where(E.c.seq == i).values(**rj))
        conn.execute(sa.update(E).where(E.c.seq == j).values(**ri))


def _delete(engine: sa.Engine, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(E).where(E.c.seq == seq))


def _set_head(engine: sa.Engine, entries: int, h: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(A.head_table).values(seq=entries, hash=h))


def test_tampering_is_named_by_the_first_broken_seq(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=Clock())
    es = fill(log, 5)
    saved = snapshot(engine)

    def restore() -> None:
        with engine.begin() as conn:
            for t, rows in zip(A.metadata.sorted_tables, saved, strict=True):
                conn.execute(sa.delete(t))
                if rows:
                    conn.execute(
                        sa.insert(t), [dict(zip(t.c.keys(), r, strict=True)) for r in rows]
                    )
        assert log.verify().ok

    def check(broken: int, problems: list[str]) -> None:
        rep = log.verify()
        assert (rep.broken, rep.problems) == (broken, problems) and not rep.ok
        restore()

    # an edited field
    update(engine, 2, actor="mallory")
    forged = rehash(replace(es[2], actor="mallory"))
    check(2, [f"entry 2: the stored hash {hx(es[2].hash)} is not the hash of its fields "
              f"{hx(forged.hash)}"])  # fmt: skip
    # an edited field whose hash is recomputed: the link after it breaks
    forged = rehash(replace(es[2], outcome="ok"))
    update(engine, 2, outcome="ok", hash=forged.hash)
    check(3, [f"entry 3 does not chain: its prev is {hx(es[2].hash)}, the entry before it has "
              f"hash {hx(forged.hash)}"])  # fmt: skip
    forged = rehash(replace(es[4], actor="x"))
    update(engine, 4, actor="x", hash=forged.hash)
    check(4, [f"entry 4 is not the head: the head's hash is {hx(es[4].hash)}, the entry's "
              f"{hx(forged.hash)}"])  # fmt: skip
    # a detail that is not deterministic CBOR (unsorted keys)
    update(engine, 1, detail=bytes.fromhex("a2616201616101"))
    rep = log.verify()
    assert rep.broken == 1 and len(rep.problems) == 1
    assert rep.problems[0].startswith("entry 1: its detail is not deterministic CBOR: ")
    restore()
    # deleted rows: in the middle, the first, the last
    _delete(engine, 2)
    check(2, ["entries 2 to 2 are missing: after entry 1 comes entry 3",
              f"entry 3 does not chain: its prev is {hx(es[2].hash)}, the entry before it has "
              f"hash {hx(es[1].hash)}"])  # fmt: skip
    _delete(engine, 0)
    check(0, ["entries 0 to 0 are missing: the log starts with entry 1",
              f"entry 1 does not chain: its prev is {hx(es[0].hash)}, the entry before it has "
              f"hash {hx(bytes(32))}"])  # fmt: skip
    _delete(engine, 4)
    check(4, [f"entries 4 to 4 are missing: the head says 5 entries ending in {hx(es[4].hash)}"])
    # reordered rows
    _swap(engine, 1, 3)
    rep = log.verify()
    assert rep.broken == 1 and rep.problems[0] == (
        f"entry 1: the stored hash {hx(es[3].hash)} is not the hash of its fields "
        f"{hx(rehash(replace(es[3], seq=1)).hash)}"
    )
    restore()
    # an entry inserted beyond the head, well formed and chained
    extra = rehash(replace(es[4], seq=5, prev=es[4].hash, actor="ghost"))
    insert(engine, extra)
    check(5, [f"entries 5 to 5 are beyond the head, which says 5 entries ending in "
              f"{hx(es[4].hash)}"])  # fmt: skip
    # an entry inserted in the middle, the later ones renumbered and the head moved: the
    # forged entry itself is consistent, the first displaced one breaks
    with engine.begin() as conn:
        for seq in (4, 3):
            conn.execute(sa.update(E).where(E.c.seq == seq).values(seq=seq + 1))
    ghost = rehash(replace(es[3], prev=es[2].hash, actor="ghost"))
    insert(engine, ghost)
    _set_head(engine, 6, es[4].hash)
    rep = log.verify()
    assert (rep.broken, rep.entries) == (4, 6)
    assert rep.problems == [
        f"entry 4: the stored hash {hx(es[3].hash)} is not the hash of its fields "
        f"{hx(rehash(replace(es[3], seq=4)).hash)}",
        f"entry 4 does not chain: its prev is {hx(es[2].hash)}, the entry before it has hash "
        f"{hx(ghost.hash)}",
        f"entry 5: the stored hash {hx(es[4].hash)} is not the hash of its fields "
        f"{hx(rehash(replace(es[4], seq=5)).hash)}",
    ]
    restore()
    assert snapshot(engine) == saved


# -- property: any single tampering is found at its seq ---------------------------------------

TEXT_COLUMNS = ["tenant", "actor", "action", "resource_kind", "resource_id", "outcome"]


def _tamper(log: AuditLog, es: list[Entry], data: st.DataObject) -> int:
    """Tamper once with the log; return the seq verify() must name."""
    n, eng = len(es), log.engine
    what = data.draw(st.sampled_from(["edit", "rehash", "delete", "swap", "append", "flip"]))
    i = data.draw(st.integers(0, n - 1))
    if what == "edit":
        col = data.draw(st.sampled_from([*TEXT_COLUMNS, "t", "prev"]))
        old = getattr(es[i], col)
        new = {"t": es[i].t + 1, "prev": bytes(32) if i else b"\x01" * 32}.get(col, f"{old}x")
        update(eng, i, **{col: new})
        return i
    if what == "rehash":
        forged = rehash(replace(es[i], actor=es[i].actor + "x"))
        update(eng, i, actor=forged.actor, hash=forged.hash)
        return min(i + 1, n - 1)
    if what == "delete":
        _delete(eng, i)
        return i
    if what == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        _swap(eng, min(i, j), max(i, j))
        return min(i, j)
    if what == "append":
        insert(eng, rehash(replace(es[-1], seq=n, prev=es[-1].hash)))
        return n
    flipped = bytearray(es[i].hash)
    flipped[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    update(eng, i, hash=bytes(flipped))
    return i


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 9), st.data())
def test_any_single_tampering_is_found_at_its_seq(n: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine = engine_for(f"sqlite:///{d}/p.db")
        try:
            A.metadata.create_all(engine)
            log = AuditLog(engine, clock=Clock())
            es = fill(log, n)
            assert log.verify().ok
            expect = _tamper(log, es, data)
            rep = log.verify()
            assert rep.broken == expect, rep.problems
        finally:
            engine.dispose()


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_appenders_keep_one_chain(db_url: str) -> None:
    workers, each = 6, 25
    engines = [engine_for(db_url) for _ in range(workers)]  # as many processes
    A.metadata.create_all(engines[0])
    clock = Clock(step=1)
    logs = [AuditLog(e, clock=clock) for e in engines]
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            start.wait(timeout=30)
            for k in range(each):
                logs[w].append(tenant="bank-a", actor=f"w{w}", action="note.read",
                               resource_kind="note", resource_id=str(k))  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads) and errors == []
        got = logs[0].entries(limit=1000)
        assert [e.seq for e in got] == list(range(workers * each))
        for w in range(workers):
            mine = [int(e.resource_id) for e in got if e.actor == f"w{w}"]
            assert mine == list(range(each))
        rep = logs[1].verify()
        assert rep.ok and rep.entries == workers * each
        assert logs[2].head() == A.Head("intl", workers * each, got[-1].hash)
    finally:
        for e in engines:
            e.dispose()


# -- anchoring ----------------------------------------------------------------------------------


async def test_the_head_is_anchored_every_n_entries_or_t_ms(engine: sa.Engine) -> None:
    clock = Clock(step=0)
    log = AuditLog(engine, clock=clock, every_n=3, every_ms=5000)
    ledger = FakeLedger()
    assert await log.anchor_pending(ledger.anchor, force=True) is None  # nothing to anchor
    es = fill(log, 2)
    assert not log.due() and await log.anchor_pending(ledger.anchor) is None
    assert ledger.calls == [] and log.last_anchored() is None
    es += fill(log, 1, start=2)
    assert log.due()
    a = await log.anchor_pending(ledger.anchor)
    assert a == Anchored(2, es[2].hash, T0, b"\x01" * 32)
    assert ledger.calls == [("audit", es[2].hash)] and log.anchors() == [a]
    assert log.last_anchored() == 2 and await log.anchor_pending(ledger.anchor) is None
    # one entry waits every_ms at most
    es += fill(log, 1, start=3)
    clock.t += 4999
    assert not log.due() and await log.anchor_pending(ledger.anchor) is None
    clock.t += 1
    a = await log.anchor_pending(ledger.anchor)
    assert a is not None and (a.seq, a.hash, a.t) == (3, es[3].hash, T0 + 5000)
    # force anchors what is not due yet
    es += fill(log, 1, start=4)
    assert not log.due()
    a = await log.anchor_pending(ledger.anchor, force=True)
    assert a is not None and a.seq == 4 and len(ledger.calls) == 3
    rep = log.verify(ledger.is_anchored)
    assert rep.ok and rep.anchors == 3
    # an anchor whose entry was rewritten, or that the ledger does not hold
    with engine.begin() as conn:
        conn.execute(sa.update(A.anchors_table).where(A.anchors_table.c.seq == 3)
                     .values(hash=es[2].hash))  # fmt: skip
    rep = log.verify(ledger.is_anchored)
    assert (rep.broken, rep.problems) == (3, [
        f"anchor at entry 3: the anchored hash {hx(es[2].hash)} is not the entry's hash "
        f"{hx(es[3].hash)}"])  # fmt: skip
    del ledger.records[es[4].hash]
    _delete(engine, 4)
    _set_head(engine, 4, es[3].hash)
    rep = log.verify(ledger.is_anchored)
    assert rep.broken == 3 and rep.problems[1:] == [
        "anchor at entry 4: the log has no entry 4",
        f"anchor at entry 4: the ledger has no {record_key(es[4].hash)}",
    ]


async def test_a_failed_anchoring_records_nothing_and_is_retried(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=Clock(), every_n=1)
    ledger = FakeLedger()
    [e0] = fill(log, 1)
    ledger.fail = ConnectionError("ledger unreachable")
    before = snapshot(engine)
    with pytest.raises(AuditLogError) as exc:
        await log.anchor_pending(ledger.anchor)
    assert str(exc.value) == (
        f"anchoring the audit head (entry 0, {e0.hash.hex()}) failed: ConnectionError: ledger "
        "unreachable; nothing was recorded, the next anchor_pending() tries again"
    )
    assert snapshot(engine) == before and log.due()
    ledger.fail = None
    a = await log.anchor_pending(ledger.anchor)
    assert a is not None and a.seq == 0 and log.verify(ledger.is_anchored).ok
    # anchored by a process that stopped before recording it: the ledger refuses it again,
    # told what the ledger holds the log only records it
    [e1] = fill(log, 1, start=1)
    ledger.records[e1.hash] = "audit"
    with pytest.raises(AuditLogError, match=r"failed: RuntimeError: record .* already anchored"):
        await log.anchor_pending(ledger.anchor)
    calls = len(ledger.calls)
    a = await log.anchor_pending(ledger.anchor, is_anchored=ledger.is_anchored)
    assert a is not None and (a.seq, a.tx_id) == (1, None) and len(ledger.calls) == calls
    assert log.verify(ledger.is_anchored).ok


async def test_concurrent_anchoring_anchors_a_head_once(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=Clock(), every_n=1)
    ledger = FakeLedger()
    fill(log, 3)
    gate, entered = asyncio.Event(), [0]

    async def slow(kind: str, h: bytes) -> Any:
        entered[0] += 1
        await gate.wait()
        return await ledger.anchor(kind, h)

    def waiting() -> int:  # calls queued on the log's anchoring lock
        return len(log._anchoring._waiters or ())

    first = asyncio.create_task(log.anchor_pending(slow))
    await until(lambda: entered[0] == 1)
    second = asyncio.create_task(log.anchor_pending(slow))  # while the first is in flight
    await until(lambda: waiting() == 1 or entered[0] == 2)
    assert entered[0] == 1
    gate.set()
    got = await asyncio.gather(first, second)
    assert [a.seq if a else None for a in got] == [2, None] and len(ledger.calls) == 1
    # another process on the same tables sees the anchor and does nothing
    other = AuditLog(engine, clock=Clock(), every_n=1)
    assert await other.anchor_pending(ledger.anchor, force=True) is None


# -- on a real consortium -----------------------------------------------------------------------


@pytest.fixture
async def consortium(tmp_path: Path) -> AsyncIterator[Any]:
    from tally.ledger.consortium import Consortium
    from tally.ledger.contract import Registry
    from tally.ledger.contracts import system_contracts
    from tally.ledger.genesis import Ordering

    c = await Consortium.create(
        tmp_path / "chain",
        members=[("platform", ["regulator"]), ("bank-a", ["bank"]), ("wh", ["warehouse"])],
        policies={"anchoring.*": "2-OF(org:platform, org:bank-a, org:wh)"},
        quorum=2,
        ordering=Ordering("solo", 10, 5),
        contracts=Registry(*system_contracts()),
    )
    try:
        yield c
    finally:
        await c.close()


def _forge_chain(log: AuditLog, es: list[Entry], at: int) -> list[Entry]:
    """Rewrite entry ``at`` and recompute every later entry, the head and the anchors, as
    someone who can write the tables could; return the forged entries."""
    out = es[:at]
    for e in es[at:]:
        prev = out[-1].hash if out else bytes(32)
        out.append(rehash(replace(e, prev=prev, actor="mallory" if e.seq == at else e.actor)))
    with log.engine.begin() as conn:
        for e in out[at:]:
            conn.execute(sa.update(E).where(E.c.seq == e.seq).values(actor=e.actor, prev=e.prev,
                                                                      hash=e.hash))  # fmt: skip
        for a in log.anchors():
            conn.execute(sa.update(A.anchors_table).where(A.anchors_table.c.seq == a.seq)
                         .values(hash=out[a.seq].hash))  # fmt: skip
    _set_head(log.engine, len(out), out[-1].hash)
    return out


async def test_heads_are_anchored_on_the_consortium(consortium: Any, tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'cloud.db'}")
    A.metadata.create_all(engine)
    try:
        log = AuditLog(engine, clock=Clock(), every_n=3)
        anchor = consortium_anchor(consortium, "platform")
        es = fill(log, 4)
        a = await log.anchor_pending(anchor)
        assert a is not None and a.seq == 3 and a.tx_id is not None and len(a.tx_id) == 32
        state = consortium.peers["wh"].state
        on_chain = anchored_in(state)
        await consortium.wait_for(lambda: on_chain(es[3].hash))
        got = state.get(record_key(es[3].hash))
        assert got is not None and (got[0]["kind"], got[0]["by"]) == ("audit", "platform")
        assert not on_chain(es[2].hash)
        es += fill(log, 3, start=4)
        a = await log.anchor_pending(anchor)
        assert a is not None and a.seq == 6
        await consortium.wait_for(lambda: on_chain(es[6].hash))
        rep = log.verify(on_chain)
        assert rep.ok and (rep.entries, rep.anchors) == (7, 2)
        # a head anchored twice is refused by the contract
        with pytest.raises(AuditLogError) as exc:
            await anchor("audit", es[6].hash)
        assert str(exc.value) == (
            f"anchoring audit {es[6].hash.hex()} was not valid: contract_error: record "
            f"{es[6].hash.hex()[:16]}… is already anchored (kind 'audit')"
        )
        # a consistent rewrite of entries, head and anchors passes the local checks; the
        # ledger does not hold the forged heads
        forged = _forge_chain(log, es, 2)
        assert log.verify().ok
        rep = log.verify(on_chain)
        assert (rep.broken, rep.problems) == (3, [
            f"anchor at entry 3: the ledger has no {record_key(forged[3].hash)}",
            f"anchor at entry 6: the ledger has no {record_key(forged[6].hash)}",
        ])  # fmt: skip
    finally:
        engine.dispose()


# -- the migration --------------------------------------------------------------------------------


def _ours(name: str | None, type_: str, _parents: Any) -> bool:
    return type_ != "table" or name in TABLES


def test_migration_0004_creates_the_tables_the_code_uses(db_url: str) -> None:
    engine = engine_for(db_url)
    try:
        M.upgrade(engine, "0004")
        assert M.current(engine) == "0004"
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_name": _ours})
            assert compare_metadata(ctx, A.metadata) == []
        log = AuditLog(engine, clock=Clock())
        fill(log, 3)
        assert log.verify().ok
        M.downgrade(engine, "0003")
        assert not set(TABLES) & set(sa.inspect(engine).get_table_names())
        with pytest.raises(AuditLogError, match="tables are missing"):
            AuditLog(engine)
        M.upgrade(engine)
        log = AuditLog(engine, clock=Clock())
        assert log.head().entries == 0 and log.verify().ok
    finally:
        engine.dispose()

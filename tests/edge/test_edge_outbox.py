"""The outbox: batches and their Merkle roots, deletion only on a valid receipt, reopening,
full-disk degradation, and no acknowledged loss under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_edge_helpers import EDGE, SITE, T0, Clock, make_pipeline, make_world, temp

from tally.crypto import SigningKey, cbor, parse_sign1
from tally.edge import formats as EF
from tally.edge.batcher import Batcher, frontier_push, frontier_root
from tally.edge.errors import ReceiptError
from tally.edge.outbox import Outbox
from tally.edge.uplink import verify_receipt
from tally.merkle import Hasher, root


def _header(cose: bytes) -> EF.BatchHeader:
    return EF.decode_batch_header(parse_sign1(cose).payload)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_batch_root_is_the_merkle_root_and_headers_chain(tmp_path: Path, suite: str) -> None:
    w = make_world(suite)
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    dev = w.device("dev-1")
    p.ingest_many([dev.next(T0 + i, temp(str(i))) for i in range(12)])
    b = Batcher(ob, w.signer(), max_items=5)
    sealed = b.seal(clock.now)
    assert [s.n for s in sealed] == [5, 5, 2]
    hasher = Hasher.for_name(w.edge_key.suite.hash_name)
    prev = b""
    for s in sealed:
        items = ob.batch_items(s.ctr)
        h = _header(s.header)
        assert (h.edge, h.site, h.suite, h.ctr, h.n) == (EDGE, SITE, suite, s.ctr, len(items))
        assert h.root == root(hasher, [hasher.hash_leaf(c) for c in items])
        assert h.prev == prev and h.t1 == clock.now
        parse_sign1(s.header, content_type="application/tally.batch+cbor").verify(w.edge_key.public)
        prev = w.edge_key.suite.hash(s.header)
    assert b.seal(clock.now) == []  # nothing pending
    p.ingest(dev.next(T0))
    (nxt,) = b.seal(clock.now)
    assert _header(nxt.header).ctr == 3 and _header(nxt.header).prev == prev


def test_batch_is_deleted_only_on_a_valid_receipt(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    dev = w.device("dev-1")
    envs = [dev.next(T0 + i) for i in range(3)]
    p.ingest_many(envs)
    (s,) = Batcher(ob, w.signer()).seal(clock.now)
    (batch,) = ob.batches()
    forged_key = SigningKey.generate("intl")
    bad = {
        "forged signature": w.receipt(s.header, 3, key=forged_key),
        "wrong count": w.receipt(s.header, 2),
        "wrong edge": w.receipt(s.header, 3, edge="edge-9"),
        "wrong ctr": w.receipt(s.header, 3, ctr=7),
        "unknown cloud": w.receipt(s.header, 3, key=forged_key, cloud="cloud-9"),
        "not a receipt": s.header,
    }
    for name, data in bad.items():
        with pytest.raises(ReceiptError):
            verify_receipt(data, batch, EDGE, w.edge_key.suite, p.registry)
        assert ob.depth()["items"] == 3, name
    good = w.receipt(s.header, 3)
    verify_receipt(good, batch, EDGE, w.edge_key.suite, p.registry)
    assert ob.ack(batch.ctr, batch.hash, good, clock.now) == 3
    assert ob.depth() == {
        "items": 0,
        "pending": 0,
        "batches": 0,
        "refused": 0,
        "quarantine": 0,
        "bytes": 0,
    }
    assert ob.receipt(0) == good
    assert ob.ack(batch.ctr, batch.hash, good, clock.now) == 0  # idempotent
    # receipted readings are still recognised as duplicates (within the retention)
    assert p.ingest(envs[1]).outcome == "duplicate"
    assert p.ingest(envs[0][:-1] + bytes([envs[0][-1] ^ 1])).outcome == "bad_signature"


def test_outbox_survives_reopen_without_close(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    path = tmp_path / "o.db"
    p, ob = make_pipeline(w, path, clock)
    dev = w.device("dev-1")
    p.ingest_many([dev.next(T0 + i) for i in range(4)])
    (s,) = Batcher(ob, w.signer()).seal(clock.now)
    p.ingest(dev.next(T0 + 9))
    del p, ob  # no close, no checkpoint
    ob2 = Outbox(path)
    assert ob2.depth()["items"] == 5 and ob2.depth()["pending"] == 1
    assert [b.ctr for b in ob2.batches()] == [0]
    assert ob2.batches()[0].header == s.header
    assert ob2.load_states()["dev-1"].ctr == 4
    assert ob2.live_bytes == sum(len(c) for _k, c, _b in ob2.items())


def test_frontier_root_matches_the_tree_root() -> None:
    hasher = Hasher.for_name("sm3")
    leaves = [hasher.hash_leaf(bytes([i])) for i in range(40)]
    frontier: list[tuple[int, bytes]] = []
    assert frontier_root(hasher, frontier) == root(hasher, [])
    for n, leaf in enumerate(leaves, 1):
        frontier_push(hasher, frontier, leaf)
        assert frontier_root(hasher, frontier) == root(hasher, leaves[:n])


def test_full_outbox_degrades_to_summary_then_gap(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock, max_bytes=3000, summary_window_ms=5000)
    dev = w.device("dev-1")
    envs = [dev.next(T0 + i, temp(str(20 + i % 7))) for i in range(40)]
    stored = []
    for e in envs[:20]:
        assert p.ingest(e).accepted
    stored = [c for _k, c, _b in ob.items("reading")]
    assert 0 < len(stored) < 20 and ob.live_bytes <= 3000
    condensed = envs[len(stored) : 20]
    assert p.counts["condensed"] == len(condensed)
    clock.advance(5000)
    p.tick()
    ((_k, cose, _b),) = ob.items("summary")
    msg = parse_sign1(cose, content_type="application/tally.summary+cbor")
    msg.verify(w.edge_key.public)
    s = EF.decode_summary(msg.payload)
    hasher = Hasher.for_name("sha256")
    assert (s.dev, s.first, s.last, s.n) == ("dev-1", len(stored), 19, len(condensed))
    assert s.root == root(hasher, [hasher.hash_leaf(c) for c in condensed])
    values = [20 + i % 7 for i in range(len(stored), 20)]
    ((q, lo, hi, total, unit),) = s.stats
    assert (q, lo, hi, total, unit) == ("temp", min(values), max(values), sum(values), "Cel")
    # the summary used the reserve; the next run does not fit: a disk_full gap certificate
    for e in envs[20:]:
        assert p.ingest(e).accepted
    clock.advance(5000)
    p.tick()
    gaps = [EF.decode_gap(parse_sign1(c).payload) for _k, c, _b in ob.items("gap")]
    assert [(g.first, g.last, g.reason) for g in gaps] == [(20, 39, "disk_full")]
    assert p.counts["summaries"] == 1 and p.counts["gaps_disk_full"] == 20
    assert ob.live_bytes <= 3000 + 300 + len(ob.items("gap")[0][1])


def test_condense_run_survives_a_restart(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock()
    p, ob = make_pipeline(w, tmp_path / "o.db", clock, max_bytes=1000, summary_window_ms=5000)
    dev = w.device("dev-1")
    envs = [dev.next(T0 + i, temp("5")) for i in range(10)]
    p.ingest_many(envs)
    n_stored = len(ob.items("reading"))
    ob.close()
    p2, ob2 = make_pipeline(w, tmp_path / "o.db", clock, max_bytes=100_000)  # disk enlarged
    p2.flush_runs()
    ((_k, cose, _b),) = ob2.items("summary")
    s = EF.decode_summary(parse_sign1(cose).payload)
    assert (s.first, s.last, s.n) == (n_stored, 9, 10 - n_stored)


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tally.crypto import SigningKey, cbor
    from tally.device.trust import load_trust
    from tally.edge.outbox import Outbox
    from tally.edge.pipeline import Pipeline
    from tally.edge.registry import Registry
    from tally.edge.signer import EdgeSigner

    d = Path(sys.argv[1])
    reg = Registry(load_trust(d / "trust.cbor"))
    reg.load_dir(d / "regs")
    envs = cbor.decode((d / "envs.cbor").read_bytes(), max_size=1 << 26)
    p = Pipeline(EdgeSigner(SigningKey.generate("intl"), "edge-1", "wh1"), reg,
                 Outbox(d / "outbox.db"), clock=lambda: 1_700_000_000_000)
    for i, e in enumerate(envs):
        r = p.ingest(e)
        assert r.accepted, r
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
    """
)


def test_kill_9_loses_nothing_acknowledged_and_duplicates_nothing(tmp_path: Path) -> None:
    w = make_world()
    w.trust.save(tmp_path / "trust.cbor")
    w.write_registrations(tmp_path / "regs")
    devs = [w.device("dev-1"), w.device("dev-2")]
    envs = [devs[i % 2].next(T0 + i, temp("1")) for i in range(4000)]
    (tmp_path / "envs.cbor").write_bytes(cbor.encode(envs))
    (tmp_path / "child.py").write_text(_CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked = -1
    deadline = time.monotonic() + 20
    try:
        assert proc.stdout is not None
        while acked < 150 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked = int(line)
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # acks written before the kill landed
        for line in rest.split():
            acked = int(line)
    finally:
        proc.kill()
        proc.wait()
    assert acked >= 150, proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL
    ob = Outbox(tmp_path / "outbox.db")
    stored = {c for _k, c, _b in ob.items("reading")}
    assert len(stored) == len(ob.items("reading"))  # no duplicate
    assert all(envs[i] in stored for i in range(acked + 1))  # nothing acknowledged lost
    assert stored <= set(envs)
    # the devices retransmit everything: each reading ends up stored exactly once
    p, ob2 = make_pipeline(w, tmp_path / "outbox.db", Clock())
    outcomes = [r.outcome for r in p.ingest_many(envs)]
    assert outcomes.count("duplicate") == len(stored)
    assert len(ob2.items("reading")) == len(envs)
    assert p.counts["rejected.duplicate"] == len(stored)

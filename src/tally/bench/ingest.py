"""``tally bench ingest``: readings stored per second by the cloud's ingest, against a plain
bulk insert of the same rows into the same table shape, in the same run.

For each backend (PostgreSQL on 127.0.0.1:5432 in a throwaway database that is dropped
afterwards, and SQLite in a temporary file):

* ``ingest_per_s``: :meth:`tally.cloud.ingest.Ingestor.ingest_upload` over edge-signed
  uploads of ``batch`` readings each: decode, header and every item signature verified,
  Merkle root recomputed, duplicate checks, one transaction per batch, signed receipt;
* ``plain_per_s``: the same item rows (decoded before timing) inserted with SQLAlchemy
  Core ``executemany`` into the same ``items`` table (a second throwaway database migrated
  to the same schema), one transaction per batch with its ``batches`` row.

Batches of the two are interleaved (ingest batch k, then plain batch k) so machine noise
falls on both alike. ``ratio`` = ingest / plain (goal ≥ 0.5). For reference, the bare
signature-verify rate of the same readings is measured too (``verify_ceiling_per_s``):
an ingest that verifies every item in line and then inserts it can reach at most
``verify / (verify + plain)`` of the plain rate (``ratio_bound_verify_inline``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from tally.bench.common import emit, machine, note, rounded
from tally.bench.edge import VerifyJob, run_verify, verify_job
from tally.bench.world import (
    CLOUD,
    EDGE,
    ORG,
    SITE,
    T0,
    World,
    make_batches,
    make_world,
    presign,
)
from tally.cloud.ingest import Ingestor
from tally.cloud.itemdecode import decode_item
from tally.cloud.keys import CloudIdentity
from tally.cloud.registry import accept_signed
from tally.cloud.storage import open_storage
from tally.cloud.storage import rows as R
from tally.cloud.storage import schema as S
from tally.cloud.storage.api import Storage
from tally.crypto import parse_sign1
from tally.edge.formats import encode_upload

GOAL_RATIO = 0.5
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEVICES = 1000


@contextlib.contextmanager
def pg_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped (with its connections) on exit."""
    name = f"tally_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_available(admin_url: str = PG_ADMIN_URL) -> str | None:
    """None when PostgreSQL answers at ``admin_url``, else why not."""
    try:
        eng = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # any driver or network error means "not available"
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _registered_storage(url: str, world: World) -> Storage:
    storage = open_storage(url)
    storage.migrate()
    for reg in world.registrations:
        accept_signed(reg, world.trust, storage, T0)
    return storage


def _plain_rows(world: World, items: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for i, data in enumerate(items):
        d = decode_item(i, data, parse_sign1(data))
        out.append(R.item_row(0, d.to_new_item(SITE, ORG, 3)))
    return out


def measure_backend(
    world: World,
    ingest_url: str,
    plain_url: str,
    uploads: list[bytes],
    plain: list[Any],
    job: VerifyJob,
) -> dict[str, Any]:
    """Interleave ingest and plain insert batch by batch; return both rates and the ratio."""
    ingest_store = _registered_storage(ingest_url, world)
    plain_store = open_storage(plain_url)
    plain_store.migrate()
    engine: sa.Engine = plain_store.engine  # type: ignore[attr-defined]
    identity = CloudIdentity(CLOUD, "bank", world.cloud_key)
    ingestor = Ingestor(ingest_store, world.trust, identity)
    t_ingest = t_plain = 0.0
    stored = 0
    try:
        for body, (batch_row, rows) in zip(uploads, plain, strict=True):
            t = time.perf_counter()
            res = ingestor.ingest_upload(body)
            t_ingest += time.perf_counter() - t
            stored += res.n
            t = time.perf_counter()
            with engine.begin() as conn:
                bid = conn.execute(
                    sa.insert(S.batches).values(**batch_row).returning(S.batches.c.id)
                ).scalar_one()
                for r in rows:
                    r["batch_id"] = bid
                conn.execute(sa.insert(S.items), rows)
            t_plain += time.perf_counter() - t
        with engine.connect() as conn:
            plain_count = conn.execute(sa.select(sa.func.count()).select_from(S.items)).scalar()
    finally:
        ingest_store.close()
        plain_store.close()
    n = sum(len(rows) for _, rows in plain)
    ingest_rate, plain_rate = stored / t_ingest, n / t_plain
    ratio = ingest_rate / plain_rate
    count, dt = run_verify(job)
    verify_rate = count / dt
    return {
        "ingest_per_s": rounded(ingest_rate),
        "plain_per_s": rounded(plain_rate),
        "ratio": round(ratio, 3),
        "goal": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "verify_ceiling_per_s": rounded(verify_rate),
        "ratio_bound_verify_inline": round(verify_rate / (verify_rate + plain_rate), 3),
        "stored": stored,
        "plain_stored": plain_count,
    }


def ingest_bench(
    suite: str = "intl",
    n: int = 20_000,
    batch: int = 1000,
    postgres: bool = True,
    sqlite: bool = True,
    json_only: bool = True,
) -> dict[str, Any]:
    devices = max(1, min(DEVICES, n))
    per_device = max(1, n // devices)
    note(json_only, f"ingest bench ({suite}): {devices} devices x {per_device} readings")
    world = make_world(suite, devices)
    envelopes = [e for _, e in presign(world.signers, per_device, 1000, world.profiles)]
    batches = make_batches(world, envelopes, batch, T0 + per_device * 1000)
    uploads = [encode_upload(b.header, b.items) for b in batches]
    job = verify_job(world, envelopes)

    def plain() -> list[Any]:
        out = []
        for b in batches:
            row = {
                "edge": EDGE,
                "site": SITE,
                "suite": suite,
                "ctr": b.ctr,
                "prev": b"",
                "t0": T0,
                "t1": T0,
                "n": len(b.items),
                "root": b"\0" * 32,
                "header": b.header,
                "header_hash": world.suite.hash(b.header),
                "received": T0,
                "receipt": b"",
            }
            out.append((row, _plain_rows(world, b.items)))
        return out

    result: dict[str, Any] = {"benchmark": "ingest", "suite": suite, "n": len(envelopes)}
    backends: dict[str, Any] = {}
    if postgres:
        why = pg_available()
        if why is not None:
            backends["postgresql"] = {"skipped": why}
        else:
            note(json_only, "  postgresql")
            with pg_database() as a, pg_database() as b:
                backends["postgresql"] = measure_backend(world, a, b, uploads, plain(), job)
    if sqlite:
        note(json_only, "  sqlite")
        with tempfile.TemporaryDirectory(prefix="tally-bench-ingest-") as d:
            backends["sqlite"] = measure_backend(
                world,
                f"sqlite:///{d}/ingest.db",
                f"sqlite:///{d}/plain.db",
                uploads,
                plain(),
                job,
            )
    result["backends"] = backends
    main = backends.get("postgresql", {})
    if "ratio" in main:
        result["ratio"] = main["ratio"]
        result["goal"] = GOAL_RATIO
        result["goal_met"] = main["goal_met"]
    result["params"] = {"devices": devices, "readings_per_device": per_device, "batch": batch}
    result["machine"] = machine()
    return result


def run_ingest_bench(suite: str, n: int, batch: int, json_only: bool) -> int:
    """The ``tally bench ingest`` command."""
    r = ingest_bench(suite, n, batch, json_only=json_only)
    lines = []
    for name, b in r["backends"].items():
        if "skipped" in b:
            lines.append(f"{name}: skipped ({b['skipped']})")
        else:
            lines.append(
                f"{name}: ingest {b['ingest_per_s']}/s, plain insert {b['plain_per_s']}/s, "
                f"ratio {b['ratio']} (goal {b['goal']}: {'met' if b['goal_met'] else 'NOT met'})"
            )
    return emit(r, json_only, lines)

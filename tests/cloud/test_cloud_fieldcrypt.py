"""Encryption at rest of sensitive fields, on SQLite and PostgreSQL: per-tenant data keys of
both suites, the binding of each value to its tenant and place, DEK and KEK rotation (with
readers and writers running during a KEK rotation), the raw bytes of the database never holding
a sensitive value, no key material in the logs, migration 0005, and the vector of
docs/formats.md ("Platform: encrypted field and wrapped data key")."""

from __future__ import annotations

import base64
import importlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine

from tally.cloud import fieldcrypt as F
from tally.cloud.fieldcrypt import FieldCipher, FieldCryptError, FieldRef, data_keys
from tally.cloud.keyring import LocalKeyring, wrap_key
from tally.cloud.storage import migrate as M
from tally.crypto import GM, INTL, cbor

ROOT = Path(__file__).resolve().parents[2]
PASS = "operator passphrase for tests"
ACCOUNT = FieldRef("customers", "account_no", 17)


class Clock:
    def __init__(self, t: int = 1_767_225_600_000) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fields.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    F.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "kek.ring", PASS, scrypt_n=1024)


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(data_keys).order_by("tenant", "version")).all())


def test_round_trip_under_each_suite(engine: Engine, ring: LocalKeyring) -> None:
    clock = Clock()
    intl = FieldCipher(engine, ring, clock=clock)
    gm = FieldCipher(engine, ring, suite=GM, clock=clock)
    a = intl.encrypt("bank-a", ACCOUNT, b"6222021234567890")
    w = gm.encrypt("wh-1", FieldRef("receipts", "holder_id", "r-9"), b"11010519491231002X")
    assert a[:5] == w[:5] == b"\x01\x00\x00\x00\x01" and len(a) == 5 + 12 + 16 + 16
    fresh = FieldCipher(engine, ring, cache=False)
    assert fresh.decrypt("bank-a", ACCOUNT, a) == b"6222021234567890"
    assert (
        fresh.decrypt("wh-1", FieldRef("receipts", "holder_id", "r-9"), w) == b"11010519491231002X"
    )
    assert [
        (r.tenant, r.version, r.suite, r.kek_id, r.created, r.retired) for r in rows(engine)
    ] == [
        ("bank-a", 1, "intl", "local:main:1", clock.t, None),
        ("wh-1", 1, "gm", "local:main:1", clock.t, None),
    ]
    assert fresh.encrypt("bank-a", ACCOUNT, b"") != fresh.encrypt("bank-a", ACCOUNT, b"")
    assert fresh.decrypt("bank-a", ACCOUNT, fresh.encrypt("bank-a", ACCOUNT, b"")) == b""


def test_a_value_moved_elsewhere_does_not_decrypt(engine: Engine, ring: LocalKeyring) -> None:
    cipher = FieldCipher(engine, ring)
    env = cipher.encrypt("bank-a", ACCOUNT, b"6222021234567890")
    cipher.encrypt("bank-b", ACCOUNT, b"other bank's value")
    moved = {
        ("bank-a", FieldRef("customers", "account_no", 18)): "customers.account_no row 18",
        ("bank-a", FieldRef("customers", "id_no", 17)): "customers.id_no row 17",
        ("bank-a", FieldRef("suppliers", "account_no", 17)): "suppliers.account_no row 17",
        ("bank-b", ACCOUNT): "customers.account_no row 17",
    }
    for (tenant, ref), where in moved.items():
        with pytest.raises(FieldCryptError) as err:
            cipher.decrypt(tenant, ref, env)
        assert str(err.value) == (
            f"cannot decrypt {where} of tenant {tenant!r} (data key version 1): authentication "
            "failed; the value was encrypted for another tenant, table, column or row, or it "
            "was altered"
        )
    with pytest.raises(FieldCryptError, match=r"^tenant 'bank-c' has no data key version 1$"):
        cipher.decrypt("bank-c", ACCOUNT, env)
    assert cipher.decrypt("bank-a", FieldRef("customers", "account_no", "17"), env)  # "17" == 17


def test_wrapped_key_moved_to_another_tenant_does_not_unwrap(
    engine: Engine, ring: LocalKeyring
) -> None:
    FieldCipher(engine, ring).encrypt("bank-a", ACCOUNT, b"x")
    env_b = FieldCipher(engine, ring).encrypt("bank-b", ACCOUNT, b"y")
    wrapped_a = rows(engine)[0].wrapped
    with engine.begin() as conn:
        conn.execute(
            sa.update(data_keys).where(data_keys.c.tenant == "bank-b").values(wrapped=wrapped_a)
        )
    with pytest.raises(Exception, match=r"cannot unwrap data key with KEK local:main:1"):
        FieldCipher(engine, ring).decrypt("bank-b", ACCOUNT, env_b)


def test_bad_input_is_refused_precisely_and_creates_no_key(
    engine: Engine, ring: LocalKeyring
) -> None:
    cipher = FieldCipher(engine, ring)
    cases: list[tuple[Any, Any, Any, str]] = [
        ("", ACCOUNT, b"v", "tenant must be a non-empty string, got ''"),
        ("t" * 65, ACCOUNT, b"v", "tenant has 65 characters, more than 64"),
        (7, ACCOUNT, b"v", "tenant must be a non-empty string, got 7"),
        ("bank-a", "customers.account_no", b"v", "field reference must be a FieldRef, got "),
        ("bank-a", ACCOUNT, "text", "plaintext must be bytes, got str"),
    ]
    for tenant, ref, plain, message in cases:
        with pytest.raises(FieldCryptError) as err:
            cipher.encrypt(tenant, ref, plain)
        assert str(err.value).startswith(message)
    bad_refs: list[tuple[str, str, Any, str]] = [
        ("", "c", 1, "table must be a non-empty string, got ''"),
        ("t", "c" * 201, 1, "column has 201 characters, more than 200"),
        ("t", "c", True, "row id must be a string or an integer, got True"),
        ("t", "c", b"7", "row id must be a string or an integer, got b'7'"),
    ]
    for table, column, row, message in bad_refs:
        with pytest.raises(FieldCryptError) as err:
            FieldRef(table, column, row)
        assert str(err.value) == message
    assert rows(engine) == []
    env = cipher.encrypt("bank-a", ACCOUNT, b"6222021234567890")
    for bad, message in [
        (env[:20], "field envelope has 20 bytes, fewer than the 33 of header, nonce and tag"),
        (b"\x02" + env[1:], "field envelope has format byte 2, want 1"),
        (b"\x01\x00\x00\x00\x00" + env[5:], "field envelope names data key version 0"),
        (b"\x01\x00\x00\x00\x09" + env[5:], "tenant 'bank-a' has no data key version 9"),
        (env[:-1] + bytes([env[-1] ^ 1]), "cannot decrypt customers.account_no row 17 of"),
    ]:
        with pytest.raises(FieldCryptError) as err:
            cipher.decrypt("bank-a", ACCOUNT, bad)
        assert str(err.value).startswith(message)
    with pytest.raises(FieldCryptError, match="field envelope must be bytes, got str"):
        cipher.decrypt("bank-a", ACCOUNT, "0100")  # type: ignore[arg-type]
    assert len(rows(engine)) == 1


def test_rotate_dek_new_writes_use_it_old_ones_still_read(
    engine: Engine, ring: LocalKeyring
) -> None:
    clock = Clock()
    cipher = FieldCipher(engine, ring, clock=clock, current_ttl_ms=1000)
    other = FieldCipher(engine, ring, clock=clock, current_ttl_ms=1000)  # another process
    v1 = cipher.encrypt("bank-a", ACCOUNT, b"old account")
    assert other.encrypt("bank-a", ACCOUNT, b"x")[:5] == b"\x01\x00\x00\x00\x01"
    clock.t += 10
    assert cipher.rotate_dek("bank-a") == 2
    v2 = cipher.encrypt("bank-a", ACCOUNT, b"new account")
    assert v2[:5] == b"\x01\x00\x00\x00\x02"
    assert cipher.decrypt("bank-a", ACCOUNT, v1) == b"old account"
    assert other.decrypt("bank-a", ACCOUNT, v2) == b"new account"
    assert other.encrypt("bank-a", ACCOUNT, b"x")[:5] == b"\x01\x00\x00\x00\x01"  # cached
    clock.t += 1000
    assert other.encrypt("bank-a", ACCOUNT, b"x")[:5] == b"\x01\x00\x00\x00\x02"  # re-read
    assert cipher.rotate_dek("bank-a", suite=GM) == 3
    v3 = cipher.encrypt("bank-a", ACCOUNT, b"sm4 now")
    fresh = FieldCipher(engine, ring, cache=False)
    assert [fresh.decrypt("bank-a", ACCOUNT, e) for e in (v1, v2, v3)] == [
        b"old account",
        b"new account",
        b"sm4 now",
    ]
    info = cipher.key_versions("bank-a")
    assert [(k.version, k.suite, k.retired) for k in info] == [
        (1, "intl", clock.t - 1000),
        (2, "intl", clock.t),
        (3, "gm", None),
    ]
    with pytest.raises(FieldCryptError, match="tenant must be a non-empty string"):
        cipher.rotate_dek("")
    assert len(cipher.key_versions("bank-a")) == 3


def store(engine: Engine, cipher: FieldCipher, tenants: list[str]) -> dict[tuple[str, int], bytes]:
    out: dict[tuple[str, int], bytes] = {}
    for t in tenants:
        for i in range(3):
            out[(t, i)] = cipher.encrypt(
                t, FieldRef("customers", "account_no", i), f"{t}/{i}".encode()
            )
    return out


def test_rotate_kek_rewraps_every_key_and_no_field(
    engine: Engine, ring: LocalKeyring, tmp_path: Path
) -> None:
    cipher = FieldCipher(engine, ring)
    tenants = [f"org-{i}" for i in range(5)]
    envelopes = store(engine, cipher, tenants)
    before = {(r.tenant, r.version): bytes(r.wrapped) for r in rows(engine)}
    ring.rotate()
    assert cipher.kek_ids_in_use() == {"local:main:1"}
    done = cipher.rotate_kek()
    assert (done.kek_id, done.rewrapped) == ("local:main:2", 5)
    assert cipher.kek_ids_in_use() == {"local:main:2"}
    after = {(r.tenant, r.version): bytes(r.wrapped) for r in rows(engine)}
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)
    assert all(w[:5] == b"\x01\x00\x00\x00\x02" for w in after.values())
    assert cipher.rotate_kek().rewrapped == 0
    ring.retire(1, cipher.kek_ids_in_use())
    reopened = LocalKeyring.open(tmp_path / "kek.ring", PASS)
    assert reopened.versions == [2]
    fresh = FieldCipher(engine, reopened, cache=False)
    for (t, i), env in envelopes.items():  # the same envelope bytes: nothing re-encrypted
        assert fresh.decrypt(t, FieldRef("customers", "account_no", i), env) == f"{t}/{i}".encode()


def test_rotate_kek_to_another_provider(engine: Engine, ring: LocalKeyring, tmp_path: Path) -> None:
    cipher = FieldCipher(engine, ring)
    envelopes = store(engine, cipher, ["org-a", "org-b"])
    nxt = LocalKeyring.create(
        tmp_path / "next.ring", "another passphrase", name="next", scrypt_n=1024
    )
    assert cipher.rotate_kek(nxt).rewrapped == 2
    assert cipher.kek_ids_in_use() == {"local:next:1"} and cipher.provider is nxt
    assert cipher.encrypt("org-c", ACCOUNT, b"v") and cipher.kek_ids_in_use() == {"local:next:1"}
    only_new = FieldCipher(engine, nxt, cache=False)
    for (t, i), env in envelopes.items():
        assert (
            only_new.decrypt(t, FieldRef("customers", "account_no", i), env) == f"{t}/{i}".encode()
        )
    only_old = FieldCipher(engine, ring, cache=False)
    with pytest.raises(FieldCryptError) as err:
        only_old.decrypt("org-a", FieldRef("customers", "account_no", 0), envelopes[("org-a", 0)])
    assert str(err.value) == (
        "data key version 1 of tenant 'org-a' is wrapped under KEK local:next:1, which no "
        "configured key provider holds"
    )


class Gate:
    """The new KEK's provider, holding each wrap until the readers have read some more."""

    def __init__(self, inner: LocalKeyring, reads: list[int], cond: threading.Condition) -> None:
        self.inner, self.reads, self.cond = inner, reads, cond
        self.wraps = 0
        self.stalled = False

    @property
    def kek_id(self) -> str:
        return self.inner.kek_id

    def handles(self, kek_id: str) -> bool:
        return self.inner.handles(kek_id)

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        with self.cond:
            target = self.reads[0] + 4
            if not self.cond.wait_for(lambda: self.reads[0] >= target, timeout=20):
                self.stalled = True
        self.wraps += 1
        return self.inner.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self.inner.unwrap(wrapped, aad)


def test_readers_and_writers_keep_working_during_kek_rotation(
    engine: Engine, ring: LocalKeyring
) -> None:
    tenants = [f"org-{i}" for i in range(8)]
    envelopes = sorted(store(engine, FieldCipher(engine, ring), tenants).items())
    reads, cond = [0], threading.Condition()
    stop, errors = threading.Event(), []

    def reader(k: int) -> None:
        cipher = FieldCipher(engine, ring, cache=False)  # unwraps from the table every time
        n = k
        while not stop.is_set():
            (t, i), env = envelopes[n % len(envelopes)]
            n += 1
            try:
                got = cipher.decrypt(t, FieldRef("customers", "account_no", i), env)
                assert got == f"{t}/{i}".encode()
            except Exception as exc:
                errors.append(exc)
                return
            with cond:
                reads[0] += 1
                cond.notify_all()

    def writer() -> None:
        cipher = FieldCipher(engine, ring, cache=False)
        n = 0
        while not stop.is_set():
            t = tenants[n % len(tenants)]
            ref = FieldRef("customers", "balance", n)
            try:
                value = f"{n}.00".encode()
                assert cipher.decrypt(t, ref, cipher.encrypt(t, ref, value)) == value
            except Exception as exc:
                errors.append(exc)
                return
            n += 1

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=writer))
    for th in threads:
        th.start()
    try:
        ring.rotate()
        gate = Gate(ring, reads, cond)
        start = reads[0]
        done = FieldCipher(engine, ring).rotate_kek(gate)
        during = reads[0] - start
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=30)
    assert not any(th.is_alive() for th in threads)
    assert errors == [] and not gate.stalled
    assert done.rewrapped == len(tenants) == gate.wraps
    assert during >= 4 * len(tenants)  # reads ran between the re-wraps
    assert {r.kek_id for r in rows(engine)} == {"local:main:2"}


def test_concurrent_first_writes_make_one_key(engine: Engine, ring: LocalKeyring) -> None:
    barrier, out, errors = threading.Barrier(6), [], []

    def write(k: int) -> None:
        cipher = FieldCipher(engine, ring)
        barrier.wait(timeout=20)
        try:
            out.append((k, cipher.encrypt("new-org", FieldRef("t", "c", k), b"v%d" % k)))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert errors == [] and len(out) == 6
    assert [(r.tenant, r.version) for r in rows(engine)] == [("new-org", 1)]
    reader = FieldCipher(engine, ring, cache=False)
    assert all(reader.decrypt("new-org", FieldRef("t", "c", k), e) == b"v%d" % k for k, e in out)


SENSITIVE = {
    "account_no": b"6222021234567890123",
    "id_no": b"11010519491231002X",
    "revenue": b"REVENUE-2025=918273645.17",
    "net_profit": b"NETPROFIT-2025=12345678.90",
}
CONTROL = b"CONTROL-MARKER-plain-7f3a9c"

customers = sa.Table(
    "customers",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    *(sa.Column(c, sa.LargeBinary, nullable=False) for c in SENSITIVE),
)


def write_customers(engine: Engine, cipher: FieldCipher) -> list[bytes]:
    customers.create(engine)
    tenants = ["bank-a", "bank-b", "core-1"]
    assert [cipher.ensure_key(t) for t in tenants] == [1, 1, 1]  # before the write transaction
    with engine.begin() as conn:
        for i, tenant in enumerate(tenants):
            enc = {
                c: cipher.encrypt(tenant, FieldRef("customers", c, i), v + b"/%d" % i)
                for c, v in SENSITIVE.items()
            }
            conn.execute(
                sa.insert(customers).values(id=i, tenant=tenant, note=CONTROL.decode(), **enc)
            )
    deks = []
    for r in rows(engine):
        suite = INTL if r.suite == "intl" else GM
        deks.append(cipher.provider.unwrap(bytes(r.wrapped), F.dek_aad(r.tenant, r.version, suite)))
    with engine.connect() as conn:
        for row in conn.execute(sa.select(customers)).all():
            for c, v in SENSITIVE.items():
                ref = FieldRef("customers", c, row.id)
                assert cipher.decrypt(row.tenant, ref, getattr(row, c)) == v + b"/%d" % row.id
    return deks


def test_sensitive_values_never_reach_the_sqlite_file(tmp_path: Path, ring: LocalKeyring) -> None:
    path = tmp_path / "raw.db"
    engine = make_engine(f"sqlite:///{path}")
    F.metadata.create_all(engine)
    deks = write_customers(engine, FieldCipher(engine, ring))
    files = sorted(tmp_path.glob("raw.db*"))
    raw = b"".join(p.read_bytes() for p in files)  # the database and its write-ahead log
    engine.dispose()
    raw += b"".join(p.read_bytes() for p in sorted(tmp_path.glob("raw.db*")))
    assert CONTROL in raw  # the scan does see what is stored in plaintext
    for marker in SENSITIVE.values():
        assert marker not in raw and marker[:12] not in raw
    assert len(deks) == 3 and all(d not in raw for d in deks)
    assert all(k not in raw for _t, k in ring._keys.values())


def test_sensitive_values_never_reach_postgres_columns(
    postgres_url: str, ring: LocalKeyring
) -> None:
    engine = make_engine(postgres_url)
    F.metadata.create_all(engine)
    deks = write_customers(engine, FieldCipher(engine, ring))
    engine.dispose()
    plain_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain_url) as conn:
        cols = ", ".join(SENSITIVE)
        values = [bytes(v) for row in conn.execute(f"SELECT {cols} FROM customers") for v in row]
        dump = "\n".join(str(r[0]) for r in conn.execute("SELECT c::text FROM customers c"))
        dump += "\n".join(str(r[0]) for r in conn.execute("SELECT d::text FROM data_keys d"))
    assert len(values) == 12 and CONTROL.decode() in dump
    for marker in SENSITIVE.values():
        assert all(marker not in v for v in values)
        assert marker.decode() not in dump and marker.hex() not in dump
    assert all(d.hex() not in dump and all(d not in v for v in values) for d in deks)


def test_no_key_material_in_the_logs(
    caplog: pytest.LogCaptureFixture, engine: Engine, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    ring = LocalKeyring.create(tmp_path / "logged.ring", PASS, scrypt_n=1024)
    ring = LocalKeyring.open(tmp_path / "logged.ring", PASS)
    cipher = FieldCipher(engine, ring)
    env = cipher.encrypt("bank-a", ACCOUNT, b"6222021234567890")
    cipher.rotate_dek("bank-a")
    cipher.encrypt("bank-a", ACCOUNT, b"6222021234567890")
    ring.rotate()
    cipher.rotate_kek()
    ring.retire(1, cipher.kek_ids_in_use())
    assert cipher.decrypt("bank-a", ACCOUNT, env) == b"6222021234567890"
    secrets = [k for _t, k in ring._keys.values()] + [ring._file_key, PASS.encode()]
    for r in rows(engine):
        secrets.append(ring.unwrap(bytes(r.wrapped), F.dek_aad(r.tenant, r.version, INTL)))
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "created data key version 2" in text and "re-wrapped 2 data keys" in text
    for s in secrets:
        forms = [
            s.hex(),
            repr(s),
            base64.b64encode(s).decode(),
            base64.urlsafe_b64encode(s).decode(),
        ]
        assert all(f not in text for f in forms)
    assert PASS not in text and "6222021234567890" not in text


def test_migration_0005_creates_the_table_of_the_code(db_url: str, ring: LocalKeyring) -> None:
    engine = make_engine(db_url)
    try:
        M.upgrade(engine, "0005")
        assert M.current(engine) == "0005"
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_name": lambda name, kind, _p: kind != "table" or name == "data_keys"
                },
            )
            assert compare_metadata(ctx, F.metadata) == []
        cipher = FieldCipher(engine, ring)
        env = cipher.encrypt("bank-a", ACCOUNT, b"v")
        assert cipher.decrypt("bank-a", ACCOUNT, env) == b"v"
        M.downgrade(engine, "0004")
        assert "data_keys" not in sa.inspect(engine).get_table_names()
        M.upgrade(engine, "0005")
        assert "data_keys" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migration_module_is_the_revision_after_0004() -> None:
    mod = importlib.import_module("tally.cloud.migrations.versions.0005_data_keys")
    assert (mod.revision, mod.down_revision) == ("0005", "0004")


# ---- docs/formats.md vector ---------------------------------------------------------------


def doc_vector() -> dict[str, bytes]:
    text = (ROOT / "docs" / "formats.md").read_text()
    found = re.search(
        r"^## \d+ Platform: encrypted field and wrapped data key\n(.*?)(?=^## |\Z)",
        text,
        re.S | re.M,
    )
    assert found is not None, "docs/formats.md has no 'Platform: encrypted field' section"
    block = re.search(r"```\n(kek .*?)```", found.group(1), re.S)
    assert block is not None, "the section has no vector block"
    values: dict[str, str] = {}
    name = ""
    for line in block.group(1).splitlines():
        line = line.split(";")[0].rstrip()
        if not line:
            continue
        if "=" in line:
            name, hexpart = (s.strip() for s in line.split("=", 1))
            values[name] = hexpart
        else:
            values[name] += line.strip()
    return {k: bytes.fromhex(v) for k, v in values.items()}


def test_formats_doc_vector() -> None:
    v = doc_vector()
    assert v["kek"] == bytes(range(32)) and v["dek"] == bytes(range(32, 64))
    assert v["plaintext"] == b"6222 0212 3456 7890"
    assert (
        v["dek_context"]
        == cbor.encode(["tally.dek", "bank-a", 1, "intl"])
        == F.dek_aad("bank-a", 1, INTL)
    )
    wrapped = wrap_key(INTL, v["kek"], 1, v["dek"], v["dek_context"], v["wrap_nonce"])
    assert wrapped == v["wrapped_dek"]
    header = b"\x01\x00\x00\x00\x01"
    independent = (
        header
        + v["wrap_nonce"]
        + AESGCM(v["kek"]).encrypt(v["wrap_nonce"], v["dek"], header + v["dek_context"])
    )
    assert independent == v["wrapped_dek"]
    assert v["field_context"] == cbor.encode(
        ["tally.field", "bank-a", "customers", "account_no", "17"]
    )
    envelope = F.seal_field(INTL, v["dek"], 1, "bank-a", ACCOUNT, v["plaintext"], v["field_nonce"])
    assert envelope == v["envelope"]
    independent = (
        header
        + v["field_nonce"]
        + AESGCM(v["dek"]).encrypt(v["field_nonce"], v["plaintext"], header + v["field_context"])
    )
    assert independent == v["envelope"]


def test_formats_doc_vector_decrypts_through_the_cipher(tmp_path: Path) -> None:
    """The stored wrapped key and envelope of the vector open through FieldCipher itself."""
    v = doc_vector()

    class FixedKek:
        kek_id = "fixed:1"

        def handles(self, kek_id: str) -> bool:
            return kek_id == self.kek_id

        def wrap(self, dek: bytes, aad: bytes) -> bytes:
            raise AssertionError("not used")

        def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
            from tally.cloud.keyring import unwrap_key

            return unwrap_key(INTL, v["kek"], wrapped, aad, self.kek_id)

    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    F.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(data_keys).values(
                tenant="bank-a", version=1, suite="intl", kek_id="fixed:1",
                wrapped=v["wrapped_dek"], created=0, retired=None,
            )
        )  # fmt: skip
    cipher = FieldCipher(engine, FixedKek())
    assert cipher.decrypt("bank-a", ACCOUNT, v["envelope"]) == b"6222 0212 3456 7890"
    engine.dispose()


def test_security_doc_quotes_the_refusals_of_the_code(engine: Engine, ring: LocalKeyring) -> None:
    from tally.cloud.keyring import PKCS11_MISSING

    text = (ROOT / "docs" / "security.md").read_text()
    found = re.search(r"<!-- crypt:begin -->(.*)<!-- crypt:end -->", text, re.S)
    assert found is not None, "docs/security.md has no encryption-at-rest section"
    doc = " ".join(found.group(1).split())
    cipher = FieldCipher(engine, ring)
    env = cipher.encrypt("bank-a", ACCOUNT, b"v")
    with pytest.raises(FieldCryptError) as err:
        cipher.decrypt("bank-a", FieldRef("customers", "account_no", 18), env)
    assert str(err.value) in doc
    assert PKCS11_MISSING.split(" (")[0] in doc
    refusals: list[tuple[str, Any, bytes | str]] = [
        ("bank-a", ACCOUNT, env[:20]),
        ("bank-a", ACCOUNT, b"\x02" + env[1:]),
        ("bank-c", ACCOUNT, env),
    ]
    for tenant, ref, data in refusals:
        with pytest.raises(FieldCryptError) as err:
            cipher.decrypt(tenant, ref, data)  # type: ignore[arg-type]
        assert f"`{err.value}`" in doc
    for tenant, plain in [("t" * 65, b"v"), ("bank-a", "v")]:
        with pytest.raises(FieldCryptError) as err:
            cipher.encrypt(tenant, ACCOUNT, plain)  # type: ignore[arg-type]
        assert f"`{err.value}`" in doc

"""Organisations' sensitive fields in the read model, on SQLite and PostgreSQL: sealed with the
field cipher for the organisation's own tenant, never in the database as plaintext (neither in
the SQLite file and its WAL nor in the PostgreSQL column), opened by ``org_sensitive``, bound
to their row, kept by an upsert that does not give them, and refused without a cipher."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from views_factory import ORGS

from tally.cloud.errors import BadRequest
from tally.cloud.fieldcrypt import FieldCipher, FieldCryptError
from tally.cloud.views import Views
from tally.cloud.views import tables as T

S1 = next(o for o in ORGS if o.id == "s1")
S2 = next(o for o in ORGS if o.id == "s2")
SECRETS = {
    "uscc": "91310000MA1FL8XQ3K",
    "legal_rep_id": "310101197001011234",
    "bank_account": "6222020200112233445",
    "statements": {"2024": {"revenue": Decimal("12345678.90"), "equity": "4567890.12"}},
}
PLAIN = [b"91310000MA1FL8XQ3K", b"310101197001011234", b"6222020200112233445", b"12345678.90",
         "法定代表人".encode()]  # fmt: skip


def stored_bytes(views: Views) -> bytes:
    """Every byte the database holds for v_orgs: the SQLite file and WAL, or the PG rows."""
    url = views.engine.url
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        base = Path(url.database)
        parts = [p.read_bytes() for p in (base, Path(f"{base}-wal")) if p.exists()]
        return b"".join(parts)
    with views.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT v_orgs::text, sensitive FROM v_orgs")).all()
    return b"".join(r[0].encode() + bytes(r[1] or b"") for r in rows)


def test_sensitive_fields_are_sealed_at_rest_and_open_for_their_org(views: Views) -> None:
    secrets = SECRETS | {"note": "法定代表人"}
    views.upsert_org(S1, secrets)
    views.upsert_org(S2)
    raw = stored_bytes(views)
    assert S1.name.encode() in raw  # the test sees the table's plaintext columns …
    for value in PLAIN:
        assert value not in raw, value  # … and no sensitive value among them
    got = views.org_sensitive("s1")
    assert got == {
        "uscc": "91310000MA1FL8XQ3K",
        "legal_rep_id": "310101197001011234",
        "bank_account": "6222020200112233445",
        "statements": {"2024": {"revenue": "12345678.90", "equity": "4567890.12"}},
        "note": "法定代表人",
    }
    assert views.org_sensitive("s2") is None
    assert views.org_sensitive("missing") is None
    assert views.org("s1") == S1  # the public profile carries none of it


def test_an_upsert_without_sensitive_fields_keeps_them_and_new_ones_replace_them(
    views: Views,
) -> None:
    views.upsert_org(S1, SECRETS)
    views.upsert_org(dataclasses.replace(S1, name="renamed (simulated)"))
    assert (views.org_sensitive("s1") or {})["uscc"] == "91310000MA1FL8XQ3K"
    views.upsert_org(S1, {"uscc": "91110000X"})
    assert views.org_sensitive("s1") == {"uscc": "91110000X"}


def test_an_envelope_moved_to_another_org_does_not_open(views: Views) -> None:
    views.upsert_org(S1, SECRETS)
    views.upsert_org(S2, {"uscc": "other"})
    o = T.orgs
    with views.engine.begin() as conn:
        blob = conn.execute(sa.select(o.c.sensitive).where(o.c.id == "s1")).scalar_one()
        conn.execute(sa.update(o).where(o.c.id == "s2").values(sensitive=blob))
    with pytest.raises(FieldCryptError, match="authentication failed"):
        views.org_sensitive("s2")


def test_the_sealing_uses_each_orgs_own_data_key(views: Views, cipher: FieldCipher) -> None:
    views.bulk_load("org", [(S1, SECRETS), (S2, {"uscc": "x"}), ORGS[0]])
    assert [k.version for k in cipher.key_versions("s1")] == [1]
    assert [k.version for k in cipher.key_versions("s2")] == [1]
    assert cipher.key_versions("bank1") == []
    assert (views.org_sensitive("s1") or {})["bank_account"] == "6222020200112233445"
    for value in PLAIN[:4]:
        assert value not in stored_bytes(views)


def test_sensitive_fields_without_a_cipher_are_refused(views: Views) -> None:
    bare = Views(views.engine)
    with pytest.raises(FieldCryptError, match="'s1': sensitive fields were given but the read "
                       "model has no field cipher"):  # fmt: skip
        bare.upsert_org(S1, SECRETS)
    with pytest.raises(FieldCryptError, match="no field cipher"):
        bare.bulk_load("org", [(S1, SECRETS)])
    assert bare.org("s1") is None
    bare.upsert_org(S1)  # the public profile needs no cipher
    views.upsert_org(S1, SECRETS)
    with pytest.raises(FieldCryptError, match="sealed and the read model has no field cipher"):
        bare.org_sensitive("s1")


def test_malformed_sensitive_fields_are_refused(views: Views) -> None:
    with pytest.raises(BadRequest, match="must be a mapping"):
        views.upsert_org(S1, ["uscc"])  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="of type bytes is not JSON"):
        views.upsert_org(S1, {"scan": b"\x00"})
    assert views.org("s1") is None

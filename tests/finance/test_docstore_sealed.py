"""Document bodies sealed at rest: a document store given the cloud's field cipher keeps each
body encrypted for its issuing tenant, so neither the SQLite file (with its write-ahead log) nor
the PostgreSQL column holds the document's text, while every read gives the signed bytes back.

Simulated data: the documents are the test documents of test_finance_documents (a simulated
invoice, contract and waybill)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from test_finance_documents import (
    BUYER_TAX,
    INVOICE_NO,
    SALT,
    SELLER,
    SELLER_TAX,
    TRADE,
    document,
)

from tally.cloud import fieldcrypt as F
from tally.cloud.fieldcrypt import FieldCipher, FieldCryptError, FieldRef
from tally.cloud.keyring import LocalKeyring
from tally.finance.docstore import DocStore, make_engine
from tally.finance.documents import parse_document

SECRETS = (INVOICE_NO.encode(), SELLER_TAX.encode(), BUYER_TAX.encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'docs.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    F.metadata.create_all(engine)  # data_keys (migration 0005 in the cloud database)
    yield engine
    engine.dispose()


@pytest.fixture
def cipher(engine: Engine, tmp_path: Path) -> FieldCipher:
    ring = LocalKeyring.create(tmp_path / "kek.ring", "keyring passphrase", scrypt_n=1024)
    return FieldCipher(engine, ring)


def raw_bodies(engine: Engine, store: DocStore) -> list[bytes]:
    """The ``cose`` column as stored, read with plain SQL."""
    with engine.connect() as conn:
        return [bytes(b) for b in conn.execute(sa.select(store.documents.c.cose)).scalars()]


def sqlite_bytes(engine: Engine) -> bytes:
    path = Path(str(engine.url.database))
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def test_bodies_are_sealed_at_rest_and_read_back(engine: Engine, cipher: FieldCipher) -> None:
    store = DocStore(engine, sealer=cipher, field_ref=FieldRef)
    invoice, contract = document("invoice"), document("contract")
    row, new = store.put(invoice, SALT)
    assert new and row.cose == invoice and row.owner == SELLER
    store.put(contract, SALT)

    bodies = raw_bodies(engine, store)
    assert len(bodies) == 2 and invoice not in bodies and contract not in bodies
    for body in bodies:
        assert body[:1] == b"\x01"  # a field envelope, not a COSE_Sign1
        for text in SECRETS:
            assert text not in body
    if engine.dialect.name == "sqlite":
        raw = sqlite_bytes(engine)
        assert raw and invoice not in raw
        for text in SECRETS:
            assert text not in raw, text

    got = store.get(row.hash)
    assert got == row and got.parsed().doc == parse_document(invoice).doc
    assert {d.cose for d in store.by_trade(TRADE)} == {invoice, contract}
    assert {d.cose for d in store.query(kind="invoice")} == {invoice}
    assert [d.cose for d in store.by_identity(row.identity or b"")] == [invoice]
    again, new = store.put(invoice, SALT)  # idempotent by salted hash, sealed or not
    assert (again, new) == (row, False)
    assert cipher.key_versions(SELLER)[0].version == 1  # sealed for the issuing tenant


def test_a_sealed_body_is_bound_to_its_row(engine: Engine, cipher: FieldCipher) -> None:
    store = DocStore(engine, sealer=cipher, field_ref=FieldRef)
    a, _ = store.put(document("invoice"), SALT)
    b, _ = store.put(document("invoice", no="invoice-2"), SALT)
    d = store.documents
    with engine.begin() as conn:
        sealed_a = conn.execute(sa.select(d.c.cose).where(d.c.hash == a.hash)).scalar_one()
        conn.execute(sa.update(d).where(d.c.hash == b.hash).values(cose=sealed_a))
    with pytest.raises(FieldCryptError, match=r"cannot decrypt docs\.body row"):
        store.get(b.hash)
    assert store.get(a.hash) == a


def test_without_a_sealer_bodies_are_stored_as_signed(engine: Engine, cipher: FieldCipher) -> None:
    plain = DocStore(engine)
    invoice = document("invoice")
    row, _ = plain.put(invoice, SALT)
    assert raw_bodies(engine, plain) == [invoice]  # the text is there: the check above can fail
    if engine.dialect.name == "sqlite":
        assert INVOICE_NO.encode() in sqlite_bytes(engine)
    # a store that seals from now on still reads the rows stored before, and seals new ones
    sealed = DocStore(engine, sealer=cipher, field_ref=FieldRef)
    assert sealed.get(row.hash) == row
    other, _ = sealed.put(document("waybill"), SALT)
    assert sealed.get(other.hash) == other
    assert sum(b[:1] == b"\x01" for b in raw_bodies(engine, sealed)) == 1


def test_a_sealer_needs_its_field_ref(engine: Engine, cipher: FieldCipher) -> None:
    with pytest.raises(ValueError, match="a sealer needs its field_ref"):
        DocStore(engine, sealer=cipher)
    with pytest.raises(ValueError, match="a sealer needs its field_ref"):
        DocStore(engine, field_ref=FieldRef)

"""The off-chain store of four-flow documents (:mod:`tally.finance.documents`): SQLAlchemy 2
Core on SQLite or PostgreSQL.

One table, ``<p>documents``, one row per submitted document and salt:

==============  ===========================================================================
column          holds
==============  ===========================================================================
``hash``        the salted hash ``H(salt ‖ COSE bytes)`` (primary key; what ``doc/<hex>``
                names on the chain)
``cose``        the document's COSE_Sign1 bytes, as signed by its owner
``salt``        the 16-byte salt (never put on chain)
``kind``        contract, order, invoice, waybill, warehouse_in, warehouse_out,
                iot_movement or payment
``trade``       the trade id the document names
``owner``       the signer (``by`` = ``kid``)
``no``          the document's own number
``t``           the document date (ms)
``identity``    the identity hash of an invoice or waybill, else NULL
==============  ===========================================================================

``<p>`` is the table prefix (``docs_`` unless chosen), so several stores can share a
database. :meth:`DocStore.put` parses (and, given the owner's key, verifies) a document
before storing it, and is idempotent by salted hash: the same bytes with the same salt give
the stored row back and write nothing, also when two writers race. The same document under
another salt is another row with the same identity: :meth:`DocStore.by_identity` finds both.

**Bodies at rest.** Given a :class:`Sealer` (the cloud's ``FieldCipher`` fits, with its
``FieldRef`` as ``field_ref``), ``cose`` holds the document sealed for its issuing tenant (the
signer, ``owner``) at ``field_ref("docs", "body", <hex salted hash>)``: a copy of the database
shows no document text, and a sealed body moved to another row or tenant does not open. The
other columns stay in clear, as the queries need them. Reads open the body again; a row stored
before sealing was turned on (its ``cose`` starts like a COSE_Sign1, ``0xd2`` or ``0x84``) is
read as it is. Without a sealer bodies are stored as signed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tally.crypto import VerifyKey
from tally.finance import sqlengine
from tally.finance.documents import SALT_SIZE, SignedDocument, parse_document

SEAL_TABLE, SEAL_COLUMN = "docs", "body"
"""Where a sealed body is bound: ``field_ref(SEAL_TABLE, SEAL_COLUMN, <hex salted hash>)``."""
COSE_STARTS = (b"\xd2", b"\x84")
"""How a COSE_Sign1 body stored in clear starts (tagged, untagged); a sealed one does not."""

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class Sealer(Protocol[R_contra]):
    """Encrypts a value for a tenant at a place (``ref``) and opens it again; the envelope
    never starts with ``0xd2`` or ``0x84``. ``tally.cloud.fieldcrypt.FieldCipher`` fits."""

    def encrypt(self, tenant: str, ref: R_contra, plaintext: bytes) -> bytes: ...

    def decrypt(self, tenant: str, ref: R_contra, envelope: bytes) -> bytes: ...


def make_engine(url: str) -> Engine:
    """An engine for a ``sqlite:///file`` or ``postgresql[+psycopg]://…`` URL."""
    return sqlengine.make_engine(url, "the document store", "documents are")


@dataclass(frozen=True)
class StoredDocument:
    """One row of the store."""

    hash: bytes
    cose: bytes
    salt: bytes
    kind: str
    trade: str
    owner: str
    no: str
    t: int
    identity: bytes | None

    def parsed(self) -> SignedDocument:
        """The document decoded again from its bytes."""
        return parse_document(self.cose)


def _row(r: Any) -> StoredDocument:
    ident = r["identity"]
    return StoredDocument(
        bytes(r["hash"]), bytes(r["cose"]), bytes(r["salt"]), r["kind"], r["trade"], r["owner"],
        r["no"], int(r["t"]), None if ident is None else bytes(ident),
    )  # fmt: skip


class DocStore:
    """The documents table behind one engine (see the module docstring)."""

    def __init__(
        self,
        db: str | Engine,
        prefix: str = "docs_",
        *,
        sealer: Sealer[R] | None = None,
        field_ref: Callable[[str, str, str], R] | None = None,
    ) -> None:
        if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha():
            raise ValueError(f"table prefix must be letters, digits and '_', got {prefix!r}")
        if (sealer is None) != (field_ref is None):
            raise ValueError("a sealer needs its field_ref (FieldRef for a FieldCipher), and back")
        self._sealer: Sealer[Any] | None = sealer
        self._ref: Callable[[str, str, str], Any] | None = field_ref
        self.engine = make_engine(db) if isinstance(db, str) else db
        self._owns_engine = isinstance(db, str)
        self.metadata = sa.MetaData()
        self.documents = sa.Table(
            f"{prefix}documents",
            self.metadata,
            sa.Column("hash", sa.LargeBinary(), primary_key=True),
            sa.Column("cose", sa.LargeBinary(), nullable=False),
            sa.Column("salt", sa.LargeBinary(), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("trade", sa.String(64), nullable=False),
            sa.Column("owner", sa.String(64), nullable=False),
            sa.Column("no", sa.String(64), nullable=False),
            sa.Column("t", sa.BigInteger(), nullable=False),
            sa.Column("identity", sa.LargeBinary(), nullable=True),
            sa.Index(f"ix_{prefix}documents_trade", "trade", "kind"),
            sa.Index(f"ix_{prefix}documents_owner", "owner"),
            sa.Index(f"ix_{prefix}documents_identity", "identity"),
        )
        self.metadata.create_all(self.engine)

    def put(
        self, cose: bytes, salt: bytes | None = None, key: VerifyKey | None = None
    ) -> tuple[StoredDocument, bool]:
        """Store a document under ``salt`` (16 fresh random bytes when None); return
        ``(the stored row, True)``, or ``(the row stored before, False)`` when this salted
        hash is stored already. Raises DocumentError for a document that does not parse or,
        given the owner's ``key``, does not verify; nothing is stored then."""
        signed = parse_document(cose)
        if key is not None:
            signed.verify(key)
        if salt is None:
            salt = secrets.token_bytes(SALT_SIZE)
        h = signed.salted_hash(salt)
        found = self.get(h)
        if found is not None:
            return found, False
        d = signed.doc
        row = StoredDocument(h, cose, salt, d.kind, d.trade, d.by, d.no, d.t, signed.identity())
        body = cose
        if self._sealer is not None:  # sealed before the write transaction (a DEK may be made)
            body = self._sealer.encrypt(row.owner, self._place(h), cose)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(self.documents).values(**{**row.__dict__, "cose": body}))
            return row, True
        except sa.exc.IntegrityError:  # a concurrent put of the same document and salt won
            pass
        stored = self.get(h)
        assert stored is not None
        return stored, False

    def _place(self, salted_hash: bytes) -> Any:
        assert self._ref is not None
        return self._ref(SEAL_TABLE, SEAL_COLUMN, salted_hash.hex())

    def _open(self, r: Any) -> StoredDocument:
        row = _row(r)
        if self._sealer is None or row.cose[:1] in COSE_STARTS:
            return row
        return replace(row, cose=self._sealer.decrypt(row.owner, self._place(row.hash), row.cose))

    def get(self, salted_hash: bytes) -> StoredDocument | None:
        d = self.documents
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(d).where(d.c.hash == salted_hash)).mappings().first()
        return None if r is None else self._open(r)

    def query(
        self, trade: str | None = None, kind: str | None = None, owner: str | None = None
    ) -> list[StoredDocument]:
        """The documents matching every criterion given, by date, then salted hash."""
        d = self.documents
        q = sa.select(d).order_by(d.c.t, d.c.hash)
        for column, value in ((d.c.trade, trade), (d.c.kind, kind), (d.c.owner, owner)):
            if value is not None:
                q = q.where(column == value)
        with self.engine.connect() as conn:
            return [self._open(r) for r in conn.execute(q).mappings()]

    def by_trade(self, trade: str) -> list[StoredDocument]:
        """Every document of ``trade``, by date."""
        return self.query(trade=trade)

    def by_identity(self, identity: bytes) -> list[StoredDocument]:
        """Every stored copy (any salt, any trade) of the invoice or waybill ``identity``."""
        d = self.documents
        q = sa.select(d).where(d.c.identity == identity).order_by(d.c.t, d.c.hash)
        with self.engine.connect() as conn:
            return [self._open(r) for r in conn.execute(q).mappings()]

    def drop(self) -> None:
        self.metadata.drop_all(self.engine)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


__all__ = ["DocStore", "Sealer", "StoredDocument", "make_engine"]

"""Four-flow documents: the contracts, orders, invoices, waybills, warehouse entries, IoT
movements and payments of a trade, each signed by its owner, kept off chain and anchored on
the chain by a salted hash (docs/formats.md §34, docs/finance-documents.md).

A document is a COSE_Sign1 with ``cty`` ``application/tally.document+cbor`` and ``kid`` = its
owner (a registered party or a member org), over the deterministic CBOR map::

    {"v": 1, "kind": K, "no": tstr, "by": tstr (= kid), "trade": tstr, "t": ms, "body": {...}}

=================  ===========  ===================================  =========================
kind               flow         signed by (``by``)                   identity (double financing)
=================  ===========  ===================================  =========================
``contract``       commercial   the buyer (= body ``buyer``)         —
``order``          commercial   the buyer                            —
``invoice``        information  the seller (= body ``seller``)       seller_tax_id, number
``waybill``        logistics    the carrier (= body ``carrier``)     carrier_tax_id, number
``warehouse_in``   logistics    the warehouse (= body ``warehouse``) —
``warehouse_out``  logistics    the warehouse (= body ``warehouse``) —
``iot_movement``   logistics    the warehouse or the carrier         —
``payment``        capital      the payer or the payer's bank        —
=================  ===========  ===================================  =========================

:func:`make_document` checks and signs, :func:`parse_document` decodes strictly (the first
broken rule, e.g. ``invoice field 'total': must be amount + tax = 100000 + 13000 = 113000, got
112000``), :func:`verify_document` also checks the signature. Money is integer minor units of
``currency``; a currency other than CNY needs ``rate`` (Decimal, CNY per unit), CNY has none.
Tax ids are unified social credit codes with their GB 32100-2015 check character.

Two hashes, with ``H`` the suite hash: the *salted hash* ``H(salt16 ‖ COSE bytes)`` is what
the chain holds (``doc/<hex>``); the *identity hash* of an invoice or waybill,
``H(cbor(["tally.identity", kind, issuer tax id, number]))``, has no salt, so the same invoice
signed or salted again still has one identity (``use/<hex>``: what it finances).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tally.crypto import (
    CryptoError,
    InvalidSignature,
    SigningKey,
    Suite,
    VerifyKey,
    cbor,
    parse_sign1,
    sign1,
)
from tally.finance.document_bodies import (
    BODIES,
    FLOWS,
    IDENTIFIED,
    KINDS,
    OWNERS,
    Body,
    ContractBody,
    DocumentError,
    InvoiceBody,
    IotMovementBody,
    OrderBody,
    PaymentBody,
    WarehouseBody,
    WaybillBody,
    check_body,
    check_uscc,
    encode_body,
    ident,
    invoice_number,
    ms,
    ref,
    show,
)

CTY_DOCUMENT = "application/tally.document+cbor"
IDENTITY_TAG = "tally.identity"
SALT_SIZE = 16
TOP = ("v", "kind", "no", "by", "trade", "t", "body")


# -- the document -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A checked document: the payload of the COSE_Sign1 (see the module docstring)."""

    kind: str
    no: str
    by: str
    trade: str
    t: int
    body: Body

    @property
    def flow(self) -> str:
        return FLOWS[self.kind]

    def payload(self) -> dict[str, Any]:
        return {"v": 1, "kind": self.kind, "no": self.no, "by": self.by, "trade": self.trade,
                "t": self.t, "body": encode_body(self.body)}  # fmt: skip

    def to_cbor(self) -> bytes:
        return cbor.encode(self.payload())

    def issuer_tax_id(self) -> str | None:
        """The tax id that, with the number, identifies an invoice or waybill; else None."""
        name = IDENTIFIED.get(self.kind)
        return None if name is None else str(getattr(self.body, name))

    def identity(self, suite: Suite) -> bytes | None:
        """The identity hash of an invoice or waybill (None for the other kinds)."""
        tax_id = self.issuer_tax_id()
        if tax_id is None:
            return None
        return identity_hash(suite, self.kind, tax_id, self.body.number)  # type: ignore[union-attr]


def identity_hash(suite: Suite, kind: str, issuer_tax_id: str, number: str) -> bytes:
    """``H(cbor(["tally.identity", kind, issuer_tax_id, number]))``."""
    return suite.hash(cbor.encode([IDENTITY_TAG, kind, issuer_tax_id, number]))


def salted_hash(suite: Suite, salt: bytes, cose: bytes) -> bytes:
    """``H(salt ‖ cose)``: what the chain anchors for a document; the salt is 16 bytes."""
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise DocumentError("", f"the salt must be {SALT_SIZE} bytes, got {show(salt)}")
    return suite.hash(salt + cose)


def check_document(payload: Any) -> Document:
    """A decoded payload map, checked; raise :class:`DocumentError`."""
    if not isinstance(payload, Mapping):
        raise DocumentError("", f"the payload must be a map, got {show(payload)}")
    unknown = sorted(str(k) for k in payload if k not in TOP)
    if unknown:
        raise DocumentError(unknown[0], f"unknown (the fields are {', '.join(TOP)})")
    for name in TOP:
        if name not in payload:
            raise DocumentError(name, "missing")
    if payload["v"] != 1 or isinstance(payload["v"], bool):
        raise DocumentError("v", f"must be 1, got {payload['v']!r}")
    kind = payload["kind"]
    if kind not in KINDS:
        raise DocumentError("kind", f"must be one of {', '.join(KINDS)}, got {show(kind)}")
    top: dict[str, Any] = {}
    for name, rule in (("no", ref), ("by", ident), ("trade", ident), ("t", ms)):
        try:
            top[name] = rule(payload[name])
        except ValueError as exc:
            raise DocumentError(name, str(exc)) from None
    body = check_body(kind, payload["body"])
    owner_field = OWNERS.get(kind)
    if owner_field is not None and getattr(body, owner_field) != top["by"]:
        article = "an" if kind[0] in "aeiou" else "a"
        owner = getattr(body, owner_field)
        raise DocumentError(
            "by",
            f"{article} {kind} is signed by its {owner_field} {owner!r}, got {top['by']!r}",
            kind,
        )
    return Document(kind, top["no"], top["by"], top["trade"], top["t"], body)


@dataclass(frozen=True)
class SignedDocument:
    """A parsed document with its COSE_Sign1 bytes and suite (signature checked only by
    :func:`verify_document` or :meth:`verify`)."""

    doc: Document
    cose: bytes
    suite: Suite

    def verify(self, key: VerifyKey) -> None:
        """Raise :class:`DocumentError` unless ``key`` (the owner's) signed it."""
        msg = parse_sign1(self.cose, content_type=CTY_DOCUMENT)
        try:
            msg.verify(key)
        except InvalidSignature:
            raise DocumentError("", f"the signature does not verify with the key of "
                                f"{self.doc.by!r}", self.doc.kind) from None  # fmt: skip
        except CryptoError as exc:
            raise DocumentError("", f"signature: {exc}", self.doc.kind) from None

    def salted_hash(self, salt: bytes) -> bytes:
        return salted_hash(self.suite, salt, self.cose)

    def identity(self) -> bytes | None:
        return self.doc.identity(self.suite)


def make_document(key: SigningKey, kind: str, no: str, by: str, trade: str, t: int,
                  body: Mapping[str, Any] | Body) -> bytes:  # fmt: skip
    """Check a document and return its COSE_Sign1 bytes signed with ``key`` (the owner's,
    ``kid`` = ``by``); raise :class:`DocumentError` for the first broken rule."""
    if isinstance(body, Mapping):
        body = dict(body)
    elif dataclasses.is_dataclass(body):
        body = encode_body(body)
    payload = {"v": 1, "kind": kind, "no": no, "by": by, "trade": trade, "t": t, "body": body}
    doc = check_document(payload)
    return sign1(key, CTY_DOCUMENT, by, doc.to_cbor())


def parse_document(data: Any) -> SignedDocument:
    """Decode document bytes strictly (the signature not checked); raise DocumentError."""
    if not isinstance(data, bytes):
        raise DocumentError("", f"must be COSE_Sign1 bytes, got {show(data)}")
    try:
        msg = parse_sign1(data, content_type=CTY_DOCUMENT)
        payload = msg.payload_obj()
    except CryptoError as exc:
        raise DocumentError("", str(exc)) from None
    doc = check_document(payload)
    if msg.kid != doc.by:
        raise DocumentError("by", f"names {doc.by!r}, the document is signed by (kid) "
                            f"{msg.kid!r}", doc.kind)  # fmt: skip
    return SignedDocument(doc, data, msg.suite)


def verify_document(data: Any, key: VerifyKey) -> SignedDocument:
    """:func:`parse_document`, then the signature under ``key``."""
    signed = parse_document(data)
    signed.verify(key)
    return signed


__all__ = [
    "BODIES", "CTY_DOCUMENT", "FLOWS", "IDENTIFIED", "IDENTITY_TAG", "KINDS", "OWNERS",
    "SALT_SIZE", "Body", "ContractBody", "Document", "DocumentError", "InvoiceBody",
    "IotMovementBody", "OrderBody", "PaymentBody", "SignedDocument", "WarehouseBody",
    "WaybillBody", "check_body", "check_document", "check_uscc", "identity_hash",
    "invoice_number", "make_document", "parse_document", "salted_hash", "verify_document",
]  # fmt: skip

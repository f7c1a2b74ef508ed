"""Four-flow documents: the format and its test vector (docs/formats.md, "Finance: four-flow
documents and trades"), every kind round trip, every validation rule's exact refusal, the
GB 32100-2015 check character, the salted and the identity hash."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.crypto import GM, INTL, SigningKey, cbor, parse_sign1, sign1
from tally.finance.document_bodies import USCC_CHARS, check_uscc, uscc_check_char
from tally.finance.documents import (
    CTY_DOCUMENT,
    KINDS,
    Document,
    DocumentError,
    InvoiceBody,
    identity_hash,
    make_document,
    parse_document,
    salted_hash,
    verify_document,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
T = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""
DAY = 86_400_000
TRADE = "T-2026-001"
SELLER, BUYER, CARRIER, WH = "sme-hz-01", "core-sz-01", "fast-freight", "wh-hz"
SELLER_TAX = "91330106MA27WK3L1C"
BUYER_TAX = "91440300MA5FXY2K0F"
CARRIER_TAX = "91310115MA1H7GB2X2"
INVOICE_NO = "24332000000012345678"
SEED = bytes(range(32))
SALT = bytes(range(16))
OWNER = {"contract": BUYER, "order": BUYER, "invoice": SELLER, "waybill": CARRIER,
         "warehouse_in": WH, "warehouse_out": WH, "iot_movement": WH, "payment": BUYER}  # fmt: skip
KEYS = {p: SigningKey(INTL, bytes([i + 1]) * 32) for i, p in enumerate(sorted(set(OWNER.values())))}


def body(kind: str, **kw: Any) -> dict[str, Any]:
    """A valid body of ``kind`` (12.5 t of steel coil at 3,800.00 CNY/t), changed by ``kw``."""
    q, unit = Decimal("12.5"), "t"
    b: dict[str, Any] = {
        "contract": {"seller": SELLER, "buyer": BUYER, "seller_tax_id": SELLER_TAX,
                     "buyer_tax_id": BUYER_TAX, "goods": "hot-rolled steel coil", "quantity": q,
                     "unit": unit, "price": Decimal(380000), "amount": 4_750_000,
                     "currency": "CNY", "delivery_from": T, "delivery_to": T + 30 * DAY,
                     "payment_term_days": 90},
        "order": {"contract": "C-2026-001", "quantity": q, "amount": 4_750_000},
        "invoice": {"number": INVOICE_NO, "seller": SELLER, "buyer": BUYER,
                    "seller_tax_id": SELLER_TAX, "buyer_tax_id": BUYER_TAX,
                    "contract": "C-2026-001", "quantity": q, "unit": unit, "amount": 4_750_000,
                    "tax": 617_500, "total": 5_367_500, "currency": "CNY", "issued": T},
        "waybill": {"number": "SF1234567890", "carrier": CARRIER, "carrier_tax_id": CARRIER_TAX,
                    "shipper": SELLER, "consignee": BUYER, "quantity": q, "unit": unit,
                    "picked_up": T + 2 * DAY, "delivered": T + 3 * DAY, "origin": "Hangzhou",
                    "destination": "Shenzhen"},
        "warehouse_in": {"number": "WI-0001", "warehouse": WH, "depositor": BUYER, "quantity": q,
                         "unit": unit, "at": T + 3 * DAY},
        "warehouse_out": {"number": "WO-0001", "warehouse": WH, "depositor": BUYER,
                          "quantity": q, "unit": unit, "at": T + 4 * DAY},
        "iot_movement": {"quantity": q, "unit": unit, "at": T + 3 * DAY, "site": "S",
                         "readings": [hashlib.sha256(b"r1").digest(),
                                      hashlib.sha256(b"r2").digest()]},
        "payment": {"number": "BR-2026-0001", "payer": BUYER, "payee": SELLER,
                    "amount": 5_367_500, "currency": "CNY", "invoice": INVOICE_NO,
                    "paid": T + 90 * DAY},
    }[kind]  # fmt: skip
    b.update(kw)
    return {k: v for k, v in b.items() if v is not None}


def document(kind: str, trade: str = TRADE, no: str | None = None, **kw: Any) -> bytes:
    """A valid document of ``kind`` signed by its owner's test key."""
    by = OWNER[kind]
    return make_document(KEYS[by], kind, no or f"{kind}-1", by, trade, T, body(kind, **kw))


def refusal(kind: str, **kw: Any) -> str:
    with pytest.raises(DocumentError) as err:
        document(kind, **kw)
    return str(err.value)


# -- the vector --------------------------------------------------------------------------------


def _section() -> str:
    text = DOC.read_text()
    found = re.search(
        r"^## \d+ Finance: four-flow documents and trades\n(.*?)(?=^## |\Z)", text, re.S | re.M
    )
    assert found is not None, "docs/formats.md has no 'Finance: four-flow documents' section"
    return found.group(1)


def vector_document() -> bytes:
    return make_document(SigningKey(INTL, SEED), "invoice", "INV-2026-001", SELLER, TRADE, T,
                         body("invoice"))  # fmt: skip


def test_the_vector_in_formats_md_is_what_the_code_makes() -> None:
    section = _section()
    vector = section[section.index("### Test vector") :]
    blocks = re.findall(r"```\n([0-9a-f\n]+)```", vector)
    assert len(blocks) == 1
    doc_hex = blocks[0].replace("\n", "")
    named = dict(re.findall(r"- (salted hash|identity hash) `[^`]*`: `([0-9a-f]{64})`", vector))
    data = vector_document()
    assert data.hex() == doc_hex
    signed = verify_document(data, SigningKey(INTL, SEED).public)
    assert signed.salted_hash(SALT).hex() == named["salted hash"]
    assert signed.identity() is not None
    assert signed.identity().hex() == named["identity hash"]  # type: ignore[union-attr]
    # the formulas, written out by hand
    assert hashlib.sha256(SALT + data).hexdigest() == named["salted hash"]
    manual = (b"\x84" + b"\x6etally.identity" + b"\x67invoice" + b"\x72" + SELLER_TAX.encode()
              + b"\x74" + INVOICE_NO.encode())  # fmt: skip
    assert cbor.encode(["tally.identity", "invoice", SELLER_TAX, INVOICE_NO]) == manual
    assert hashlib.sha256(manual).hexdigest() == named["identity hash"]
    assert f"`{SigningKey(INTL, SEED).public.raw.hex()}`" in vector
    assert f"`{SALT.hex()}`" in vector


# -- every kind ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_and_verifies(kind: str) -> None:
    data = document(kind)
    signed = verify_document(data, KEYS[OWNER[kind]].public)
    doc = signed.doc
    assert (doc.kind, doc.by, doc.trade, doc.t, doc.no) == (
        kind,
        OWNER[kind],
        TRADE,
        T,
        f"{kind}-1",
    )
    assert doc.payload()["body"] == body(kind)
    assert doc.to_cbor() == parse_sign1(data).payload
    assert make_document(KEYS[OWNER[kind]], kind, doc.no, doc.by, TRADE, T, doc.body) == data
    wrong = SigningKey(INTL, b"\x63" * 32)
    with pytest.raises(DocumentError) as err:
        verify_document(data, wrong.public)
    assert str(err.value) == (
        f"{kind}: the signature does not verify with the key of {OWNER[kind]!r}"
    )
    assert (signed.identity() is not None) == (kind in ("invoice", "waybill"))


def test_the_body_is_typed() -> None:
    doc = parse_document(document("invoice")).doc
    assert isinstance(doc.body, InvoiceBody)
    assert doc.body.total == doc.body.amount + doc.body.tax
    assert doc.body.rate is None
    assert doc.flow == "information"
    usd = parse_document(document("invoice", currency="USD", rate=Decimal("7.1"))).doc
    assert isinstance(usd.body, InvoiceBody) and usd.body.rate == Decimal("7.1")


def test_a_gm_document_uses_sm3() -> None:
    key = SigningKey.generate(GM)
    data = make_document(key, "invoice", "I", SELLER, TRADE, T, body("invoice"))
    signed = verify_document(data, key.public)
    assert signed.suite is GM
    assert signed.identity() == GM.hash(cbor.encode(["tally.identity", "invoice", SELLER_TAX,
                                                      INVOICE_NO]))  # fmt: skip
    assert signed.salted_hash(SALT) == GM.hash(SALT + data)


# -- validation: every rule's exact refusal -----------------------------------------------------

INV = "invoice"
REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    # missing, unknown, wrong types
    (INV, {"tax": None}, "invoice field 'tax': missing"),
    (
        INV,
        {"discount": 5},
        "invoice field 'discount': unknown (the fields are number, seller, "
        "buyer, seller_tax_id, buyer_tax_id, contract, quantity, unit, amount, tax, total, "
        "currency, issued, rate)",
    ),
    (
        INV,
        {"amount": "4750000"},
        "invoice field 'amount': must be an integer amount in minor units, got str '4750000'",
    ),
    (
        INV,
        {"amount": True},
        "invoice field 'amount': must be an integer amount in minor units, got bool True",
    ),
    (INV, {"quantity": 12}, "invoice field 'quantity': must be a positive Decimal, got int 12"),
    (INV, {"seller": ""}, "invoice field 'seller': must be non-empty text, got str ''"),
    (INV, {"seller": "a/b"}, "invoice field 'seller': must not contain '/', got 'a/b'"),
    (
        INV,
        {"unit": "metric tonnes of it"},
        "invoice field 'unit': must be at most 16 characters, got 19",
    ),
    (
        INV,
        {"issued": -1},
        "invoice field 'issued': must be a time in ms in [0, 9223372036854775807], got -1",
    ),
    # negative and zero amounts, bad decimals
    (
        INV,
        {"amount": -5},
        "invoice field 'amount': must be an integer amount in minor units in "
        "[1, 1000000000000000], got -5",
    ),
    (
        INV,
        {"tax": -1},
        "invoice field 'tax': must be an integer amount in minor units in [0, "
        "1000000000000000], got -1",
    ),
    (
        INV,
        {"quantity": Decimal("-12.5")},
        "invoice field 'quantity': must be a positive Decimal, got -12.5",
    ),
    (
        INV,
        {"quantity": Decimal("0")},
        "invoice field 'quantity': must be a positive Decimal, got 0",
    ),
    (
        INV,
        {"quantity": Decimal("1.0000001")},
        "invoice field 'quantity': must have at most 6 decimal places, got 1.0000001",
    ),
    (
        INV,
        {"quantity": Decimal("NaN")},
        "invoice field 'quantity': must be a positive Decimal, got Decimal Decimal('NaN')",
    ),
    # tax ids
    (
        INV,
        {"seller_tax_id": "9133010"},
        "invoice field 'seller_tax_id': must be an 18-character "
        "unified social credit code, got '9133010' (7 characters)",
    ),
    (
        INV,
        {"seller_tax_id": 91330106},
        "invoice field 'seller_tax_id': must be an 18-character "
        "unified social credit code, got int 91330106",
    ),
    (
        INV,
        {"seller_tax_id": "91330106MA27WK3LIC"},
        "invoice field 'seller_tax_id': character 17 "
        "'I' of '91330106MA27WK3LIC' is not allowed in a unified social credit code (digits and "
        "A-Y without I, O, S, V, Z)",
    ),
    (
        INV,
        {"seller_tax_id": "9133o106MA27WK3L1C"},
        "invoice field 'seller_tax_id': character 5 "
        "'o' of '9133o106MA27WK3L1C' is not allowed in a unified social credit code (digits and "
        "A-Y without I, O, S, V, Z)",
    ),
    (
        INV,
        {"buyer_tax_id": "91A40300MA5FXY2K0F"},
        "invoice field 'buyer_tax_id': characters 3-8 "
        "of '91A40300MA5FXY2K0F' must be an administrative division code (6 digits), got "
        "'A40300'",
    ),
    (
        INV,
        {"buyer_tax_id": "91440300MA5FXY2K0E"},
        "invoice field 'buyer_tax_id': check "
        "character of '91440300MA5FXY2K0E' is 'E', GB 32100-2015 gives 'F'",
    ),
    (
        INV,
        {"buyer_tax_id": SELLER_TAX},
        "invoice field 'buyer_tax_id': must differ from the "
        f"seller tax id, got {SELLER_TAX!r} for both",
    ),
    # invoice numbers
    (
        INV,
        {"number": "2433200000001234567"},
        "invoice field 'number': must have 20 digits (fully "
        "digital invoice) or 8, 10 or 12 digits, got 19 ('2433200000001234567')",
    ),
    (INV, {"number": "1234567A"}, "invoice field 'number': must be digits only, got '1234567A'"),
    (
        INV,
        {"number": "１２３４５６７８"},
        "invoice field 'number': must be digits only, got '１２３４５６７８'",
    ),
    (
        INV,
        {"number": 12345678},
        "invoice field 'number': must be a VAT invoice number (digits), got int 12345678",
    ),
    # currency
    (
        INV,
        {"currency": "cny"},
        "invoice field 'currency': must be an ISO 4217 code like 'CNY', got str 'cny'",
    ),
    (
        INV,
        {"currency": "USD"},
        "invoice field 'rate': a USD amount needs the rate (CNY per USD), none given",
    ),
    (
        INV,
        {"rate": Decimal("7.1")},
        "invoice field 'rate': must be absent for CNY amounts, got 7.1",
    ),
    (
        INV,
        {"currency": "EUR", "rate": Decimal(0)},
        "invoice field 'rate': must be a positive Decimal, got 0",
    ),
    # across fields
    (
        INV,
        {"total": 5_367_499},
        "invoice field 'total': must be amount + tax = 4750000 + 617500 = 5367500, got 5367499",
    ),
    (
        INV,
        {"buyer": SELLER},
        f"invoice field 'buyer': must differ from the seller, got {SELLER!r} for both",
    ),
    (
        "waybill",
        {"delivered": T + DAY},
        "waybill field 'delivered': 2026-01-02T00:00:00.000Z "
        "is before picked_up 2026-01-03T00:00:00.000Z",
    ),
    ("waybill", {"carrier_tax_id": None}, "waybill field 'carrier_tax_id': missing"),
    (
        "contract",
        {"delivery_to": T - 1},
        "contract field 'delivery_to': "
        "2025-12-31T23:59:59.999Z is before delivery_from 2026-01-01T00:00:00.000Z",
    ),
    (
        "contract",
        {"amount": 4_750_001},
        "contract field 'amount': must be price 380000 × "
        "quantity 12.5 = 4750000 (rounded half up), got 4750001",
    ),
    (
        "contract",
        {"payment_term_days": 3661},
        "contract field 'payment_term_days': must be a number of days in [0, 3660], got 3661",
    ),
    (
        "contract",
        {"price": Decimal("0.5"), "quantity": Decimal("3"), "amount": 1},
        "contract field 'amount': must be price 0.5 × quantity 3 = 2 (rounded half up), got 1",
    ),
    (
        "payment",
        {"payee": BUYER},
        f"payment field 'payee': must differ from the payer, got {BUYER!r} for both",
    ),
    (
        "payment",
        {"invoice": "123"},
        "payment field 'invoice': must have 20 digits (fully "
        "digital invoice) or 8, 10 or 12 digits, got 3 ('123')",
    ),
    (
        "iot_movement",
        {"readings": []},
        "iot_movement field 'readings': must be a list of 1 to 1000 reading hashes, got list []",
    ),
    (
        "iot_movement",
        {"readings": [b"\x01" * 32, b"\x01" * 32]},
        "iot_movement field 'readings': reading 1 repeats 0101010101010101…",
    ),
    (
        "iot_movement",
        {"readings": [b"\x01" * 31]},
        "iot_movement field 'readings': reading 0 "
        "must be a 32-byte hash, got bytes " + repr(b"\x01" * 31),
    ),
    ("order", {"contract": None}, "order field 'contract': missing"),
    ("warehouse_in", {"at": 1.5}, "warehouse_in field 'at': must be a time in ms, got float 1.5"),
]


@pytest.mark.parametrize(("kind", "change", "message"), REFUSALS)
def test_every_rule_refuses_with_its_message(
    kind: str, change: dict[str, Any], message: str
) -> None:
    assert refusal(kind, **change) == message


def test_the_owner_must_sign() -> None:
    b = body("invoice")
    with pytest.raises(DocumentError) as err:
        make_document(KEYS[BUYER], "invoice", "I", BUYER, TRADE, T, b)
    assert (
        str(err.value)
        == f"invoice field 'by': an invoice is signed by its seller {SELLER!r}, got {BUYER!r}"
    )


ENVELOPE: list[tuple[dict[str, Any], str]] = [
    (
        {"kind": "receipt"},
        "document field 'kind': must be one of contract, order, invoice, "
        "waybill, warehouse_in, warehouse_out, iot_movement, payment, got str 'receipt'",
    ),
    ({"trade": "T/1"}, "document field 'trade': must not contain '/', got 'T/1'"),
    ({"trade": ""}, "document field 'trade': must be non-empty text, got str ''"),
    ({"no": "x" * 65}, "document field 'no': must be at most 64 characters, got 65"),
    ({"t": -1}, "document field 't': must be a time in ms in [0, 9223372036854775807], got -1"),
    ({"v": 2}, "document field 'v': must be 1, got 2"),
    (
        {"extra": 1},
        "document field 'extra': unknown (the fields are v, kind, no, by, trade, t, body)",
    ),
    ({"body": None}, "document field 'body': missing"),
    ({"body": [1]}, "invoice field 'body': must be a map, got list [1]"),
]


def _payload(**kw: Any) -> dict[str, Any]:
    p = {"v": 1, "kind": "invoice", "no": "I", "by": SELLER, "trade": TRADE, "t": T,
         "body": body("invoice")}  # fmt: skip
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


@pytest.mark.parametrize(("change", "message"), ENVELOPE)
def test_the_envelope_is_strict(change: dict[str, Any], message: str) -> None:
    data = sign1(KEYS[SELLER], CTY_DOCUMENT, SELLER, cbor.encode(_payload(**change)))
    with pytest.raises(DocumentError) as err:
        parse_document(data)
    assert str(err.value) == message


def test_the_signed_bytes_are_strict() -> None:
    def parse_error(data: Any) -> str:
        with pytest.raises(DocumentError) as err:
            parse_document(data)
        return str(err.value)

    good = document("invoice")
    assert parse_error(good.hex()) == "document: must be COSE_Sign1 bytes, got str " + repr(
        good.hex()
    )
    assert parse_error(good + b"\x00") == "document: COSE_Sign1: 1 trailing bytes"
    other = sign1(KEYS[SELLER], "application/tally.consent+cbor", SELLER, cbor.encode(_payload()))
    assert parse_error(other) == (
        "document: COSE_Sign1: content type 'application/tally.consent+cbor', expected "
        "'application/tally.document+cbor'"
    )
    as_other = sign1(KEYS[BUYER], CTY_DOCUMENT, BUYER, cbor.encode(_payload()))
    assert parse_error(as_other) == (
        f"invoice field 'by': names {SELLER!r}, the document is signed by (kid) {BUYER!r}"
    )
    assert parse_error(sign1(KEYS[SELLER], CTY_DOCUMENT, SELLER, b"\x01")) == (
        "document: the payload must be a map, got int 1"
    )


# -- the tax id check character -------------------------------------------------------------


def test_the_gb_32100_check_character() -> None:
    # codes built as the standard says: registration authority + category, division code,
    # organisation code, then the check character of the first 17
    for first17, check in [
        ("91330106MA27WK3L1", "C"),   # enterprise (9 1), Hangzhou Xihu district 330106
        ("91440300MA5FXY2K0", "F"),   # enterprise, Shenzhen 440300
        ("91310115MA1H7GB2X", "2"),   # enterprise, Shanghai Pudong 310115
        ("92330102MA2GDQ7T5", "0"),   # individual business (9 2), check 31 taken as 0
        ("12100000400000398", "0"),   # public institution (1 2), national
        ("91350100M000100Y4", "3"),   # the example printed with GB 32100-2015 explanations
    ]:  # fmt: skip
        assert uscc_check_char(first17) == check
        assert check_uscc(first17 + check) == first17 + check
    assert [pow(3, i, 31) for i in range(17)] == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13,
                                                   8, 24, 10, 30, 28]  # fmt: skip
    assert len(USCC_CHARS) == 31 and not set("IOSVZ") & set(USCC_CHARS)


@given(
    st.text(alphabet=USCC_CHARS, min_size=9, max_size=9),
    st.integers(0, 16),
    st.sampled_from(USCC_CHARS),
)
def test_any_single_character_change_is_caught(tail: str, pos: int, repl: str) -> None:
    first17 = "91330106" + tail
    code = first17 + uscc_check_char(first17)
    changed = code[:pos] + repl + code[pos + 1 :]
    if changed == code or not changed[2:8].isdigit():
        return
    with pytest.raises(ValueError, match="GB 32100-2015 gives"):
        check_uscc(changed)


# -- the two hashes ------------------------------------------------------------------------


def test_identity_survives_another_salt_another_signature_and_another_trade() -> None:
    a = parse_document(document("invoice"))
    b = parse_document(document("invoice", trade="T-2026-999", no="INV-again"))
    re_signed = make_document(SigningKey(INTL, b"\x42" * 32), "invoice", "I", SELLER, TRADE, T,
                              body("invoice"))  # fmt: skip
    c = parse_document(re_signed)
    assert a.identity() == b.identity() == c.identity()
    assert a.identity() == identity_hash(INTL, "invoice", SELLER_TAX, INVOICE_NO)
    assert a.salted_hash(SALT) != a.salted_hash(bytes(16)) != b.salted_hash(SALT)
    other = parse_document(document("invoice", number="24332000000012345679"))
    assert other.identity() != a.identity()
    wb = parse_document(document("waybill"))
    assert wb.identity() == identity_hash(INTL, "waybill", CARRIER_TAX, "SF1234567890")
    assert identity_hash(INTL, "waybill", SELLER_TAX, INVOICE_NO) != a.identity()
    for kind in ("contract", "order", "payment", "iot_movement"):
        assert parse_document(document(kind)).identity() is None


def test_the_salt_has_16_bytes() -> None:
    with pytest.raises(DocumentError) as err:
        salted_hash(INTL, b"\x00" * 15, b"")
    assert str(err.value) == "document: the salt must be 16 bytes, got bytes " + repr(b"\x00" * 15)
    assert isinstance(parse_document(document("order")).doc, Document)

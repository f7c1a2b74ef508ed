"""Four-flow reconciliation (tally.finance.fourflow): every rule passing and failing with
hand-checked figures, tolerances at their exact boundary, the report and its hash, the adapter
from real signed documents, the incremental reconciler, and properties: a consistent trade
always reconciles, and pushing one flow past its tolerance fails exactly that rule."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_finance_documents import SALT, TRADE, document
from test_finance_trades import TradeChain

from tally.crypto import INTL, SigningKey, cbor
from tally.finance.circular import Cycle, KycRecord, Link, Related
from tally.finance.contracts.trades import MAX_REASON
from tally.finance.docstore import DocStore
from tally.finance.document_bodies import DocumentError, uscc_check_char
from tally.finance.documents import make_document, parse_document
from tally.finance.fourflow import (
    ContractView,
    DocView,
    InvoiceView,
    IotView,
    OrderView,
    PaymentView,
    Reconciler,
    Tolerances,
    TradeDocs,
    WarehouseView,
    WaybillView,
    from_documents,
    reconcile,
)
from tally.finance.fourflow_rules import RULES
from tally.finance.keys import trade_key

D = Decimal
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC = 08:00 Beijing
END = T0 + 30 * DAY  # 2026-01-31 08:00 Beijing
S_TAX, B_TAX = "91310000MA1K000019", "91440300MA5F00002D"
INV1, INV2 = "00000000000000000001", "00000000000000000002"
NONE = Related()


def contract(**kw: Any) -> ContractView:
    base = dict(no="C-1", by="core-b", trade="T1", t=T0, seller="sup-a", buyer="core-b",
                seller_tax_id=S_TAX, buyer_tax_id=B_TAX, quantity=D(100), unit="t",
                amount=10_000_000, currency="CNY", delivery_from=T0, delivery_to=END)  # fmt: skip
    return ContractView(**{**base, **kw})


def invoice(
    number: str = INV1, quantity: str = "60", amount: int = 6_000_000, **kw: Any
) -> InvoiceView:
    """An invoice of ``amount`` before tax and 13 % VAT on it."""
    base = dict(no="I" + number[-1], by="sup-a", trade="T1", t=T0 + DAY, number=number,
                seller="sup-a", buyer="core-b", seller_tax_id=S_TAX, buyer_tax_id=B_TAX,
                contract="C-1", quantity=D(quantity), unit="t", amount=amount,
                total=amount + amount * 13 // 100, currency="CNY")  # fmt: skip
    return InvoiceView(**{**base, **kw})


def waybill(**kw: Any) -> WaybillView:
    base = dict(no="W-1", by="carrier-x", trade="T1", t=T0 + 2 * DAY, number="WB1",
                carrier="carrier-x", shipper="sup-a", consignee="core-b", quantity=D(100),
                unit="t", delivered=T0 + 10 * DAY)  # fmt: skip
    return WaybillView(**{**base, **kw})


def entry(**kw: Any) -> WarehouseView:
    base = dict(no="R-1", by="wh-1", trade="T1", t=T0 + 10 * DAY, kind="warehouse_in",
                number="IN1", warehouse="wh-1", depositor="core-b", quantity=D("99.8"),
                unit="t", at=T0 + 10 * DAY)  # fmt: skip
    return WarehouseView(**{**base, **kw})


def movement(**kw: Any) -> IotView:
    base = dict(no="M-1", by="wh-1", trade="T1", t=T0 + 10 * DAY, quantity=D("99.9"), unit="t",
                readings=3)  # fmt: skip
    return IotView(**{**base, **kw})


def payment(**kw: Any) -> PaymentView:
    base = dict(no="P-1", by="core-b", trade="T1", t=T0 + 20 * DAY, number="BR1",
                payer="core-b", payee="sup-a", amount=3_000_000, currency="CNY",
                invoice=INV1)  # fmt: skip
    return PaymentView(**{**base, **kw})


def canonical() -> list[DocView]:
    """Contract 100 t for CNY 100,000.00 before tax; invoices 60 t (60,000.00 + 7,800.00 VAT)
    and 40 t (40,000.00 + 5,200.00); waybill 100 t; warehouse entry 99.8 t; IoT 99.9 t; a
    payment of 30,000.00 on invoice 1."""
    return [contract(), invoice(), invoice(INV2, "40", 4_000_000, no="I2"), waybill(), entry(),
            movement(), payment()]  # fmt: skip


def judge(views: list[DocView], related: Related = NONE, **tol: Any) -> Any:
    return reconcile(TradeDocs.of("T1", views), related, Tolerances(**tol))


def swap(views: list[DocView], index: int, **kw: Any) -> list[DocView]:
    out = list(views)
    out[index] = dataclasses.replace(out[index], **kw)
    return out


# -- the consistent trade ---------------------------------------------------------------------


def test_a_consistent_trade_reconciles_with_every_rule_explained() -> None:
    r = judge(canonical())
    assert r.status == "reconciled" and r.reasons == () and r.failed() == ()
    assert [c.rule for c in r.checks] == list(RULES)
    assert (r.invoiced, r.paid, r.contract_amount) == (11_300_000, 3_000_000, 10_000_000)
    # min(contract, invoiced before tax) + the invoices' tax − paid
    assert r.amount == 10_000_000 + 1_300_000 - 3_000_000
    assert (r.seller, r.buyer, r.currency) == ("sup-a", "core-b", "CNY")
    detail = {c.rule: c.detail for c in r.checks}
    assert detail["documents"] == (
        "Documents complete: 1 contract, 2 invoices, 1 waybill, 1 warehouse entry, "
        "1 IoT movement, 1 payment; each invoice names C-1."
    )
    assert detail["invoiced"] == (
        "2 invoices total CNY 100,000.00 before tax (CNY 113,000.00 with tax), within the "
        "contract amount CNY 100,000.00."
    )
    assert detail["quantity"] == (
        "Quantities agree within 0.5 %: invoiced 100 t, shipped 100 t, received 99.8 t "
        "(spread 0.2 t, allowed 0.5 t; contract 100 t)."
    )
    assert detail["delivery"] == (
        "Goods delivered 2026-01-11 08:00 – 2026-01-11 08:00, inside the contract window "
        "2026-01-01 08:00 – 2026-01-31 08:00."
    )
    assert detail["payer"] == "The payment is from buyer core-b to seller sup-a."
    assert detail["iot"] == (
        "Devices measured 99.9 t (3 proven readings), within 0.5 % of the 100 t on the waybills."
    )
    q = r.check("quantity")
    assert q.figures["spread"] == D("0.2") and q.figures["allowed"] == D("0.500")
    assert q.figures["cap"] == D("100.500") and q.tolerance == D("0.005")


def test_amount_is_the_smaller_of_contract_and_invoices_less_payments() -> None:
    # invoices CNY 1.00 above the contract before tax, allowed by a 100-fen tolerance
    views = swap(canonical(), 1, amount=6_000_100, total=6_780_100)
    r = judge(views, amount=100)
    assert r.status == "reconciled"
    assert (r.invoiced, r.amount) == (11_300_100, 10_000_000 + 1_300_000 - 3_000_000)
    # only invoice 2 issued: min(contract, 40,000.00) + 5,200.00 − 30,000.00
    part = [contract(), invoice(INV2, "40", 4_000_000, no="I2"), waybill(quantity=D(40)),
            entry(quantity=D(40)), movement(quantity=D(40)), payment(invoice=INV2)]  # fmt: skip
    assert judge(part).amount == 4_000_000 + 520_000 - 3_000_000
    # paid more than invoiced: nothing to finance, never negative
    over = [*canonical(), payment(no="P-2", number="BR2", amount=9_000_000)]
    r = judge(over)
    assert r.status == "reconciled" and r.paid == 12_000_000 and r.amount == 0
    # a trade that is not reconciled backs nothing
    assert judge(swap(canonical(), 6, payer="x")).amount == 0


def test_a_contract_with_tax_included_is_compared_with_invoice_totals() -> None:
    views = swap(canonical(), 0, amount=11_300_000)
    r = judge(views, contract_tax="included")
    assert r.status == "reconciled" and r.amount == 11_300_000 - 3_000_000
    assert r.check("invoiced").detail == (
        "2 invoices total CNY 113,000.00 with tax (CNY 113,000.00 with tax), within the contract "
        "amount CNY 113,000.00."
    )
    over = judge(swap(views, 1, total=6_780_001), contract_tax="included")
    assert only(over, "invoiced") == (
        "Invoices total CNY 113,000.01 with tax, CNY 0.01 above the contract amount "
        "CNY 113,000.00 (tolerance CNY 0.00)."
    )
    # the same trade read as a contract before tax: 100,000.00 + 13,000.00 of tax
    assert judge(views).amount == 10_000_000 + 1_300_000 - 3_000_000


# -- each rule failing --------------------------------------------------------------------------


def only(r: Any, rule: str) -> str:
    assert r.failed() == (rule,), r.reasons
    assert r.status == ("flagged" if rule in ("circular", "related_party") else "mismatch")
    assert r.reasons == (f"{rule}: {r.check(rule).detail}",)
    return str(r.check(rule).detail)


def test_documents_rule() -> None:
    r = judge([v for v in canonical() if not isinstance(v, WaybillView)])
    assert r.check("documents").detail == "Documents: missing waybill."
    assert r.check("documents").figures["waybill"] == 0
    dup = [*canonical(), invoice(no="I9")]  # a second invoice with number INV1
    assert "invoice 00000000000000000001 appears twice" in judge(dup).check("documents").detail
    two = [*canonical(), contract(no="C-2")]
    assert only(judge(two), "documents") == "Documents: 2 contracts (C-1, C-2)."
    other = swap(canonical(), 2, contract="C-9")
    assert only(judge(other), "documents") == (
        "Documents: invoice 00000000000000000002 names contract C-9, not C-1."
    )
    order = OrderView("O-1", "core-b", "T1", T0, "C-7", D(100), 10_000_000)
    assert only(judge([*canonical(), order]), "documents") == (
        "Documents: order O-1 names contract C-7, not C-1."
    )
    nothing = judge([invoice()])
    assert nothing.check("documents").detail.startswith("Documents: missing contract, waybill")
    assert nothing.check("parties").detail == "Cannot be checked: the trade has no contract."
    assert nothing.seller == "" and nothing.amount == 0


def test_parties_rule() -> None:
    bad_tax = "91440300MA5F00003B"
    r = judge(swap(canonical(), 2, buyer_tax_id=bad_tax))
    assert only(r, "parties") == (
        f"Parties disagree: invoice {INV2} names buyer tax id {bad_tax}, the contract {B_TAX}."
    )
    assert r.check("parties").figures["problems"] == [
        f"invoice {INV2} names buyer tax id {bad_tax}, the contract {B_TAX}"
    ]
    assert "waybill WB1 names consignee core-z, the contract core-b" in only(
        judge(swap(canonical(), 3, consignee="core-z")), "parties"
    )
    assert "warehouse entry IN1 names depositor sup-a, the contract core-b" in only(
        judge(swap(canonical(), 4, depositor="sup-a")), "parties"
    )
    assert "invoice 00000000000000000001 names signer core-b" in only(
        judge(swap(canonical(), 1, by="core-b")), "parties"
    )
    ok = judge(canonical()).check("parties")
    assert ok.detail == (
        f"Seller sup-a ({S_TAX}) and buyer core-b ({B_TAX}) are the same on all 5 documents, "
        "each signed by its issuer."
    )


def test_currency_rule() -> None:
    r = judge(swap(canonical(), 6, currency="USD"))
    assert (
        only(r, "currency") == "Currencies differ from the contract's CNY: payment BR1 is in USD."
    )


def test_invoiced_rule_at_its_boundary() -> None:
    at = judge(canonical())  # Σ amounts before tax = contract exactly
    assert at.check("invoiced").ok and at.check("invoiced").figures["allowed"] == 10_000_000
    r = judge(swap(canonical(), 1, amount=6_000_001, total=6_780_001))
    assert only(r, "invoiced") == (
        "Invoices total CNY 100,000.01 before tax, CNY 0.01 above the contract amount "
        "CNY 100,000.00 (tolerance CNY 0.00)."
    )
    assert r.check("invoiced").figures == {
        "invoiced": 10_000_001, "net": 10_000_001, "total": 11_300_001, "contract": 10_000_000,
        "contract_tax": "excluded", "allowed": 10_000_000,
    }  # fmt: skip
    assert r.check("invoiced").tolerance == 0
    assert judge(swap(canonical(), 1, amount=6_000_001), amount=1).status == "reconciled"


def test_quantity_rule_at_its_boundary() -> None:
    # spread 100 − 99.5 = 0.5 = 0.005 × 100: allowed
    assert judge(swap(canonical(), 4, quantity=D("99.5"))).status == "reconciled"
    r = judge(swap(canonical(), 4, quantity=D("99.499999")))
    assert only(r, "quantity") == (
        "Quantities disagree: invoiced 100 t and received 99.499999 t differ by 0.500001 t, "
        "more than 0.5 % (0.5 t)."
    )
    assert judge(swap(canonical(), 4, quantity=D("99.499999")), quantity=D("0.01")).failed() == ()
    # everything 100.6 t against a 100 t contract: above 100 × 1.005
    big = [swap(canonical(), i, quantity=D("100.6"))[i] for i in (3, 4, 5)]
    views = [contract(), invoice(quantity="60.6"), invoice(INV2, "40", 4_000_000, no="I2"), *big,
             payment()]  # fmt: skip
    assert "invoiced 100.6 t exceeds the contract's 100 t by more than 0.5 %" in only(
        judge(views), "quantity"
    )
    assert "waybill WB1 is in kg" in judge(swap(canonical(), 3, unit="kg")).check("quantity").detail


def test_delivery_rule_at_its_boundary() -> None:
    assert judge(swap(canonical(), 3, delivered=END)).status == "reconciled"
    r = judge(swap(canonical(), 3, delivered=END + 1))
    assert only(r, "delivery") == (
        "Delivery outside the contract window 2026-01-01 08:00 – 2026-01-31 08:00: "
        "waybill WB1 delivered 2026-01-31 08:00, after the window closed 2026-01-31 08:00."
    )
    assert judge(swap(canonical(), 3, delivered=END + 1), delivery_grace_ms=1).failed() == ()
    early = judge(swap(canonical(), 4, at=T0 - 1))
    assert "warehouse entry IN1 received 2026-01-01 07:59, before the window opened" in only(
        early, "delivery"
    )
    assert early.check("delivery").figures["earliest"] == T0 - 1


def test_payer_rule() -> None:
    r = judge(swap(canonical(), 6, payer="core-z"))
    assert only(r, "payer") == (
        "Payments not from buyer core-b to seller sup-a: payment BR1 is from core-z."
    )
    assert "payment BR1 is to sup-z" in only(judge(swap(canonical(), 6, payee="sup-z")), "payer")
    unpaid = judge(canonical()[:-1])
    assert unpaid.check("payer").detail == "No payment yet." and unpaid.paid == 0
    assert unpaid.amount == 11_300_000  # 100,000.00 + 13,000.00 VAT


def test_payment_invoice_rule() -> None:
    r = judge(swap(canonical(), 6, invoice="12345678"))
    assert only(r, "payment_invoice") == (
        "Payments elsewhere: payment BR1 names invoice 12345678, not one of this trade."
    )


def test_iot_rule_at_its_boundary() -> None:
    assert judge(swap(canonical(), 5, quantity=D("99.5"))).status == "reconciled"
    r = judge(swap(canonical(), 5, quantity=D("99.49")))
    assert only(r, "iot") == (
        "IoT does not match the waybills: devices measured 99.49 t, the waybills say 100 t: "
        "0.51 t apart, more than 0.5 % (0.5 t)."
    )
    assert "movement M-1 has no readings" in only(judge(swap(canonical(), 5, readings=0)), "iot")
    without = [v for v in canonical() if not isinstance(v, IotView)]
    req = ("contract", "invoice", "waybill", "warehouse_in")
    assert judge(without, required=req).check("iot").detail == "No IoT movement required."
    assert judge(without).failed() == ("documents", "iot")


def test_circular_and_related_party_flag_the_trade() -> None:
    cyc = Cycle(("sup-a", "core-b", "trader-c"), ("T1", "T2", "T3"))
    r = judge(canonical(), Related(cycle=cyc))
    assert only(r, "circular") == (
        "Circular trade: sup-a → core-b → trader-c → sup-a (trades T1, T2, T3), "
        "3 parties within 365 days."
    )
    assert r.check("circular").figures["cycle"] == ["sup-a", "core-b", "trader-c"]
    assert r.amount == 0
    rel = Related(links=(Link("person", "id-1"), Link("account", "6222")))
    assert only(judge(canonical(), rel), "related_party") == (
        "Seller sup-a and buyer core-b are related: they share 1 person, 1 bank account on file."
    )
    # a fraud flag outranks a mismatch
    both = judge(swap(canonical(), 6, payer="x"), Related(cycle=cyc))
    assert both.status == "flagged" and both.failed() == ("payer", "circular")


# -- tolerances -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"quantity": D(1)}, "tolerance quantity must be a Decimal in [0, 1), got Decimal('1')"),
        ({"iot": 0.005}, "tolerance iot must be a Decimal in [0, 1), got 0.005"),
        ({"amount": -1}, "tolerance amount must be an integer >= 0, got -1"),
        ({"delivery_grace_ms": True}, "tolerance delivery_grace_ms must be an integer >= 0"),
        ({"required": ("invoice",)}, "tolerance required must be a tuple of document kinds"),
        ({"required": ("contract", "memo")}, "got ('contract', 'memo')"),
        (
            {"contract_tax": "net"},
            "tolerance contract_tax must be 'excluded' or 'included', got 'net'",
        ),
    ],
)
def test_bad_tolerances_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as e:
        Tolerances(**kw)
    assert message in str(e.value)


def test_documents_of_another_trade_are_refused() -> None:
    with pytest.raises(ValueError, match="waybill W-1 belongs to trade 'T2', not 'T1'"):
        TradeDocs.of("T1", [contract(), waybill(trade="T2")])


# -- the report -----------------------------------------------------------------------------------


def test_report_is_deterministic_cbor_and_its_hash_is_the_result() -> None:
    views = [dataclasses.replace(v, ref=bytes([i + 1]) * 32) for i, v in enumerate(canonical())]
    r = judge(views)
    again = judge(list(reversed(views)))
    assert r.report_bytes() == again.report_bytes()
    assert r.result_hash(INTL) == INTL.hash(cbor.encode(r.report())) == again.result_hash(INTL)
    rep = cbor.decode(r.report_bytes())
    assert rep["status"] == "reconciled" and rep["amount"] == 8_300_000
    assert rep["docs"] == sorted(bytes([i + 1]) * 32 for i in range(7))
    assert [c["rule"] for c in rep["checks"]] == list(RULES)
    assert rep["tolerances"]["quantity"] == D("0.005")
    assert rep["checks"][4]["figures"]["received"] == D("99.8")
    changed = judge(swap(views, 6, amount=3_000_001))
    assert changed.result_hash(INTL) != r.result_hash(INTL)
    rec = r.record(INTL)
    assert set(rec) == {"v", "id", "seller", "buyer", "status", "amount", "currency", "invoiced",
                        "paid", "invoices", "waybills", "docs", "result", "reasons"}  # fmt: skip
    assert rec["result"] == r.result_hash(INTL) and rec["docs"] == rep["docs"]


def test_an_invoice_submitted_twice_is_named_once_in_the_record() -> None:
    ident = b"\x05" * 32
    twice = [invoice(ref=b"\x01" * 32, identity=ident), invoice(ref=b"\x02" * 32, identity=ident)]
    r = judge([contract(), *twice, *canonical()[2:]])
    assert "invoice 00000000000000000001 appears twice" in r.check("documents").detail
    assert r.invoices == (ident,) and r.docs == (b"\x01" * 32, b"\x02" * 32)


def test_reasons_fit_the_trade_record() -> None:
    long = "x" * 120
    views = [swap(canonical(), 3, shipper=long + "1", consignee=long + "2")[3], *canonical()[4:]]
    r = judge([*canonical()[:3], *views])
    (reason,) = r.reasons
    assert len(reason) == MAX_REASON and reason.endswith("…")
    assert reason.startswith("parties: Parties disagree: waybill WB1 names shipper xxx")
    assert len(r.check("parties").detail) > MAX_REASON  # the report keeps every word


# -- from real documents ------------------------------------------------------------------------


def _uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


def signed_trade(key: SigningKey, payer: str = "core-b") -> list[bytes]:
    s, b, c = _uscc("91310000MA1K00001"), _uscc("91440300MA5F00002"), _uscc("91110000MA0C00003")
    body = dict(seller="sup-a", buyer="core-b", seller_tax_id=s, buyer_tax_id=b)
    return [
        make_document(key, "contract", "C-1", "core-b", "T1", T0, dict(
            **body, goods="steel coil", quantity=D(100), unit="t", price=D(100_000),
            amount=10_000_000, currency="CNY", delivery_from=T0, delivery_to=END,
            payment_term_days=90)),
        make_document(key, "invoice", "I1", "sup-a", "T1", T0 + DAY, dict(
            **body, number=INV1, contract="C-1", quantity=D(100), unit="t", amount=10_000_000,
            tax=1_300_000, total=11_300_000, currency="CNY", issued=T0 + DAY)),
        make_document(key, "waybill", "W-1", "carrier-x", "T1", T0 + 2 * DAY, dict(
            number="WB1", carrier="carrier-x", carrier_tax_id=c, shipper="sup-a",
            consignee="core-b", quantity=D(100), unit="t", picked_up=T0 + 2 * DAY,
            delivered=T0 + 3 * DAY, origin="Tangshan", destination="Shanghai")),
        make_document(key, "warehouse_in", "R-1", "wh-1", "T1", T0 + 3 * DAY, dict(
            number="IN1", warehouse="wh-1", depositor="core-b", quantity=D("99.6"), unit="t",
            at=T0 + 3 * DAY)),
        make_document(key, "iot_movement", "M-1", "wh-1", "T1", T0 + 3 * DAY, dict(
            quantity=D("99.7"), unit="t", at=T0 + 3 * DAY, readings=[bytes(32), b"\1" * 32],
            site="site-1")),
        make_document(key, "payment", "P-1", payer, "T1", T0 + 9 * DAY, dict(
            number="BR1", payer=payer, payee="sup-a", amount=1_300_000, currency="CNY",
            invoice=INV1, paid=T0 + 9 * DAY)),
    ]  # fmt: skip


def test_signed_documents_through_the_store_reconcile(tmp_path: Any) -> None:
    key = SigningKey.generate("intl")
    store = DocStore(f"sqlite:///{tmp_path / 'docs.db'}")
    try:
        rows = [store.put(cose)[0] for cose in signed_trade(key)]
        r = reconcile(from_documents(store.by_trade("T1")), NONE)
    finally:
        store.close()
    assert r.status == "reconciled", r.reasons
    assert (r.invoiced, r.paid, r.amount) == (11_300_000, 1_300_000, 10_000_000)
    assert r.docs == tuple(sorted(row.hash for row in rows))
    inv = parse_document(rows[1].cose)
    assert r.invoices == (inv.identity(),) and len(r.waybills) == 1
    assert r.check("iot").figures["readings"] == 2
    record = r.record(INTL)
    assert record["invoices"] == [inv.identity()] and record["result"] == r.result_hash(INTL)


def test_signed_documents_without_the_store() -> None:
    key = SigningKey.generate("intl")
    signed = [parse_document(c) for c in signed_trade(key, payer="core-z")]
    r = reconcile(from_documents(signed), NONE)
    assert r.failed() == ("payer",) and r.docs == ()  # no salt known: no salted hashes
    assert r.invoices == (signed[1].identity(),)
    plain = from_documents([s.doc for s in signed], suite=INTL)
    assert plain.invoices[0].identity == signed[1].identity()
    owners = {s.doc.by for s in signed}
    assert from_documents(signed, keys=dict.fromkeys(owners, key.public)) == from_documents(signed)
    other = SigningKey.generate("intl").public
    with pytest.raises(DocumentError, match="signature does not verify with the key of 'core-b'"):
        from_documents(signed, keys=dict.fromkeys(owners, other))
    some = dict.fromkeys(owners - {"wh-1"}, key.public)
    with pytest.raises(ValueError, match="no key for 'wh-1', the signer of warehouse_in R-1"):
        from_documents(signed, keys=some)
    with pytest.raises(ValueError, match="contract C-1 carries no signature to verify"):
        from_documents([s.doc for s in signed], keys=some)
    with pytest.raises(ValueError, match="not a document: str"):
        from_documents(["x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no documents, and no trade named"):
        from_documents([])


# -- incremental ----------------------------------------------------------------------------------


def test_reconciler_waits_for_the_required_kinds_then_judges() -> None:
    rec = Reconciler()
    views = canonical()
    for v in views[:4]:
        rec.add(v)
    assert rec.judge() == {} and rec.result("T1") is None
    assert rec.missing("T1") == ["warehouse_in", "iot_movement"]
    rec.add(views[4])
    rec.add(views[5])
    out = rec.judge()
    assert list(out) == ["T1"] and out["T1"].status == "reconciled"
    assert out["T1"].paid == 0
    rec.add(views[6])  # the payment arrives: judged again
    assert rec.judge()["T1"].paid == 3_000_000
    assert rec.judge() == {}  # nothing new


def test_reconciler_result_does_not_depend_on_arrival_order() -> None:
    views = [dataclasses.replace(v, ref=bytes([i + 1]) * 32) for i, v in enumerate(canonical())]
    first = None
    for perm in itertools.islice(itertools.permutations(views), 0, 5040, 97):
        rec = Reconciler()
        for v in perm:
            rec.add(v)
            rec.judge()
        r = rec.result("T1")
        assert r is not None
        first = first or r.report_bytes()
        assert r.report_bytes() == first


def ring_trade(tid: str, seller: str, buyer: str) -> list[DocView]:
    out: list[DocView] = []
    for v in canonical():
        kw: dict[str, Any] = {"trade": tid}
        for f, want in (("seller", seller), ("buyer", buyer), ("shipper", seller),
                        ("consignee", buyer), ("depositor", buyer), ("payer", buyer),
                        ("payee", seller)):  # fmt: skip
            if hasattr(v, f):
                kw[f] = want
        if isinstance(v, ContractView):
            kw["by"] = buyer
        if isinstance(v, InvoiceView):
            kw["by"] = seller
        out.append(dataclasses.replace(v, **kw))
    return out


def test_reconciler_flags_a_ring_when_it_closes_and_a_shared_account() -> None:
    rec = Reconciler()
    for tid, s, b in (("T1", "a", "b"), ("T2", "b", "c")):
        for v in ring_trade(tid, s, b):
            rec.add(v)
    assert {t: r.status for t, r in rec.judge().items()} == {"T1": "reconciled", "T2": "reconciled"}
    for v in ring_trade("T3", "c", "a")[:1]:  # only the contract: T1 and T2 are judged again
        rec.add(v)
    out = rec.judge()
    assert {t: r.status for t, r in out.items()} == {"T1": "flagged", "T2": "flagged"}
    assert out["T1"].check("circular").figures["cycle"] == ["a", "b", "c"]
    assert out["T2"].check("circular").figures["trades"] == ["T2", "T3", "T1"]
    assert rec.missing("T3") == ["invoice", "waybill", "warehouse_in", "iot_movement"]
    rec.put_kyc(KycRecord("x", accounts=("6222-0001",)))
    rec.put_kyc(KycRecord("y", accounts=("6222 0001",)))
    for v in ring_trade("T4", "x", "y"):
        rec.add(v)
    assert rec.judge()["T4"].failed() == ("related_party",)
    rec.put_kyc(KycRecord("y", accounts=("6222 0002",)))  # the record corrected
    assert rec.judge()["T4"].status == "reconciled"


def test_reconciler_refuses_a_contract_without_parties_and_changes_nothing() -> None:
    rec = Reconciler()
    with pytest.raises(ValueError, match="trade 'T1': seller must be non-empty text, got ''"):
        rec.add(contract(seller=""))
    assert len(rec) == 0 and rec.missing("T1") == list(Tolerances().required)
    assert len(rec.graph) == 0


# -- properties ---------------------------------------------------------------------------------

TOLS = st.builds(
    Tolerances,
    quantity=st.sampled_from([D(0), D("0.001"), D("0.005"), D("0.02")]),
    iot=st.sampled_from([D(0), D("0.005"), D("0.01")]),
    amount=st.sampled_from([0, 1, 500]),
    delivery_grace_ms=st.sampled_from([0, 1, DAY]),
    contract_tax=st.sampled_from(["excluded", "included"]),
)


@st.composite
def trades(draw: st.DrawFn) -> tuple[list[DocView], Tolerances]:
    tol = draw(TOLS)
    q = draw(st.integers(10, 10**6))
    price = draw(st.integers(1, 10**6))
    k = draw(st.integers(1, min(4, q)))
    cuts = (
        sorted(draw(st.sets(st.integers(1, q - 1), min_size=k - 1, max_size=k - 1)))
        if k > 1
        else []
    )
    bounds = [0, *cuts, q]
    invs = [invoice(f"{j + 1:020d}", str(bounds[j + 1] - bounds[j]),
                    (bounds[j + 1] - bounds[j]) * price, no=f"I{j}") for j in range(k)]  # fmt: skip
    gross = sum(i.total for i in invs)
    c = contract(quantity=D(q), amount=q * price if tol.contract_tax == "excluded" else gross)
    short = draw(st.sampled_from([D(0), D("0.25"), D(1)])) * tol.quantity
    off = draw(st.sampled_from([D(0), D("0.5"), D(-1), D(1)])) * tol.iot
    when = draw(st.integers(T0, END + tol.delivery_grace_ms))
    pays = [payment(no=f"P{j}", number=f"BR{j}", invoice=invs[j].number, amount=invs[j].total)
            for j in range(draw(st.integers(1, k)))]  # fmt: skip
    views: list[DocView] = [c, *invs, waybill(quantity=D(q), delivered=when),
                            entry(quantity=D(q) * (1 - short), at=when),
                            movement(quantity=D(q) * (1 + off)),
                            *pays]  # fmt: skip
    return views, tol


@settings(max_examples=150, deadline=None)
@given(trades())
def test_a_consistent_trade_always_reconciles(t: tuple[list[DocView], Tolerances]) -> None:
    views, tol = t
    r = reconcile(TradeDocs.of("T1", views), NONE, tol)
    assert r.status == "reconciled", r.reasons
    paid = sum(v.amount for v in views if isinstance(v, PaymentView))
    assert r.amount == max(0, r.invoiced - paid)


def _perturb(views: list[DocView], rule: str, tol: Tolerances, k: int) -> list[DocView]:
    c = views[0]
    assert isinstance(c, ContractView)
    idx = {type(v): i for i, v in reversed(list(enumerate(views)))}
    beyond = D(k) / 10**6  # a little past the tolerance
    if rule == "quantity":
        return swap(views, idx[WarehouseView], quantity=c.quantity * (1 - tol.quantity - beyond))
    if rule == "iot":
        return swap(views, idx[IotView], quantity=c.quantity * (1 - tol.iot - beyond))
    if rule == "invoiced":
        inv = views[idx[InvoiceView]]
        assert isinstance(inv, InvoiceView)
        more = tol.amount + k
        return swap(views, idx[InvoiceView], amount=inv.amount + more, total=inv.total + more)
    if rule == "delivery":
        return swap(views, idx[WaybillView], delivered=END + tol.delivery_grace_ms + k)
    changes = {"payer": (PaymentView, {"payer": "someone-else"}),
               "payment_invoice": (PaymentView, {"invoice": "99999999"}),
               "parties": (InvoiceView, {"buyer_tax_id": "91000000000000000X"}),
               "currency": (InvoiceView, {"currency": "USD"}),
               "documents": (InvoiceView, {"contract": "C-other"})}  # fmt: skip
    kind, kw = changes[rule]
    return swap(views, idx[kind], **kw)


@settings(max_examples=300, deadline=None)
@given(
    trades(),
    st.sampled_from(
        [
            "quantity",
            "iot",
            "invoiced",
            "delivery",
            "payer",
            "payment_invoice",
            "parties",
            "currency",
            "documents",
        ]
    ),
    st.integers(1, 1000),
)
def test_one_flow_past_its_tolerance_fails_exactly_that_rule(
    t: tuple[list[DocView], Tolerances], rule: str, k: int
) -> None:
    views, tol = t
    r = reconcile(TradeDocs.of("T1", _perturb(views, rule, tol, k)), NONE, tol)
    assert r.failed() == (rule,), r.reasons
    assert r.status == "mismatch" and r.amount == 0


# -- attested on chain ----------------------------------------------------------------------------


def test_a_bank_attests_the_reconciliation_on_chain(tmp_path: Any) -> None:
    chain = TradeChain(tmp_path / "state.sqlite")
    store = DocStore(f"sqlite:///{tmp_path / 'docs.db'}")
    try:
        cose = [document("contract", no="C-2026-001")]
        cose += [document(k) for k in ("invoice", "waybill", "warehouse_in", "iot_movement")]
        for c in cose:
            chain.anchor(c)
            store.put(c, SALT)
        r = reconcile(from_documents(store.by_trade(TRADE)), NONE)
        assert r.status == "reconciled", r.reasons
        assert (r.invoiced, r.paid, r.amount) == (5_367_500, 0, 5_367_500)
        out = chain.ok("trades", "attest", TRADE, r.record(INTL), creator="bank-a")
        assert out == {"id": TRADE, "status": "reconciled", "amount": 5_367_500, "seq": 0}
        on_chain = chain.get(trade_key(TRADE))
        assert on_chain["result"] == r.result_hash(INTL) and on_chain["docs"] == list(r.docs)
        # a payment from someone else arrives: the bank attests the mismatch and says why
        late = document("payment", payer="sme-other-01")
        chain.anchor(late)
        store.put(late, SALT)
        r2 = reconcile(from_documents(store.by_trade(TRADE)), NONE)
        assert r2.failed() == ("payer",) and r2.amount == 0
        chain.ok("trades", "attest", TRADE, r2.record(INTL), creator="bank-a")
        assert chain.get(trade_key(TRADE))["reasons"] == list(r2.reasons)
        assert chain.get(trade_key(TRADE))["status"] == "mismatch"
    finally:
        store.close()
        chain.state.close()

"""The ``trades`` contract: documents anchored by salted hash (with the owner's consent or by
its bank), trades attested by a bank, and the double-financing registry that other contracts
use through reconciled_trade / claim_uses — across two banks, whatever salt an invoice is
anchored under. Every refusal is checked word for word and to change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_finance_documents import (
    BUYER,
    CARRIER,
    KEYS,
    SALT,
    SELLER,
    WH,
    T,
    document,
)

from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.trades import (
    Trades,
    claim_trade,
    claim_uses,
    reconciled_trade,
    release_uses,
)
from tally.finance.documents import parse_document
from tally.finance.keys import doc_key, trade_key, use_key
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.contract import Context, Contract, Execution, Registry, execute, function
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.policy import describe, satisfied
from tally.ledger.state import SqliteState

ORGS = {"bank-a": ("bank",), "bank-b": ("bank",), WH: ("warehouse",), "reg": ("regulator",),
        BUYER: ("core_enterprise",)}  # fmt: skip
RESULT = b"\x77" * 32
NINE = b"\x09" * 32


class Probe(Contract):
    """Stands for the notes and loans contracts: finances a trade as they do."""

    name = "probe"

    @function
    def finance(self, ctx: Context, trade_id: Any, backs: Any) -> int:
        what = f"probe.finance of {backs}"
        trade = reconciled_trade(ctx, trade_id, what)
        claim_trade(ctx, trade, backs, what)
        return int(trade["amount"])

    @function
    def claim(self, ctx: Context, identities: Any, backs: Any) -> None:
        claim_uses(ctx, identities, backs, "probe.claim")

    @function
    def release(self, ctx: Context, identities: Any, backs: Any) -> None:
        release_uses(ctx, identities, backs, "probe.release")


class TradeChain:
    """Members :data:`ORGS`; the seller and the carrier are parties of bank-a with the test
    keys of test_finance_documents; the finance contracts and :class:`Probe` registered."""

    def __init__(self, path: Path) -> None:
        keys = {o: SigningKey(INTL, bytes([0x50 + i]) * 32) for i, o in enumerate(ORGS)}
        self.keys = {**keys, **{p: KEYS[p] for p in (SELLER, CARRIER)}}
        self.genesis = Genesis(
            name="trades test", suite=INTL, t=T - 1000,
            members={o: Member(o, r, keys[o].public.raw) for o, r in ORGS.items()},
            policies={}, checkpoint_quorum=1,
        )  # fmt: skip
        self.state = SqliteState(path)
        self.registry = Registry(*system_contracts(), *finance_contracts(), Probe())
        self.height, self.t = 0, T
        for p in (SELLER, CARRIER):
            pub = KEYS[p].public.raw
            self.ok("parties", "register", p, f"{p} Ltd", "supplier", "intl", pub, creator="bank-a")

    def run(self, contract: str, fn: str, *args: Any, creator: str) -> Execution:
        self.t += 1
        p = Proposal(self.genesis.chain, contract, fn, args, creator, self.t.to_bytes(8), self.t)
        members = members_view(self.state, self.genesis)
        return execute(self.registry, self.state, p, INTL.hash(p.to_cbor()), members)

    def ok(self, contract: str, fn: str, *args: Any, creator: str) -> Any:
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error == "", ex.error
        self.height += 1
        self.state.apply(self.height, [(k, v, (self.height, 0)) for k, v in ex.writes], b"c")
        return ex.result

    def refused(self, contract: str, fn: str, *args: Any, creator: str) -> str:
        before = list(self.state.range(""))
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error, f"expected a refusal, got {ex.result!r}"
        assert (ex.reads, ex.writes, ex.result) == ((), (), None)
        assert list(self.state.range("")) == before
        return ex.error

    def get(self, key: str) -> Any:
        found = self.state.get(key)
        return None if found is None else found[0]

    # -- the business --------------------------------------------------------------------

    def anchor(self, data: bytes, salt: bytes = SALT, creator: str = "bank-a") -> bytes:
        signed = parse_document(data)
        h = signed.salted_hash(salt)
        self.ok("trades", "anchor", signed.doc.kind, h, signed.doc.trade, creator=creator)
        return h

    def trade(self, trade: str, bank: str = "bank-a", salt: bytes = SALT) -> dict[str, Any]:
        """Anchor a contract, an invoice, a waybill and a payment of ``trade``; the record
        a reconciler would attest (reconciled, 5,367,500 invoiced, nothing paid)."""
        docs = [document(k, trade=trade) for k in ("contract", "invoice", "waybill")]
        hashes = [self.anchor(d, salt, bank) for d in docs]
        return record(trade, hashes, parse_document(docs[1]).identity(),
                      parse_document(docs[2]).identity())  # fmt: skip


def record(trade: str, docs: list[bytes], invoice: Any, waybill: Any, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "v": 1, "id": trade, "seller": SELLER, "buyer": BUYER, "status": "reconciled",
        "amount": 5_367_500, "currency": "CNY", "invoiced": 5_367_500, "paid": 0,
        "invoices": [invoice], "waybills": [waybill], "docs": docs, "result": RESULT,
        "reasons": [],
    }  # fmt: skip
    r.update(kw)
    return r


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[TradeChain]:
    c = TradeChain(tmp_path / "state.sqlite")
    yield c
    c.state.close()


def short(h: bytes) -> str:
    return h.hex()[:16] + "…"


# -- anchor ------------------------------------------------------------------------------------


def test_a_bank_anchors_its_customers_document(chain: TradeChain) -> None:
    data = document("invoice")
    h = parse_document(data).salted_hash(SALT)
    out = chain.ok("trades", "anchor", "invoice", h, "T-1", creator="bank-a")
    assert out == {"doc": h.hex(), "kind": "invoice", "trade": "T-1", "by": "bank-a"}
    assert chain.get(doc_key(h)) == {
        "kind": "invoice",
        "by": "bank-a",
        "trade": "T-1",
        "t": chain.t,
    }
    assert chain.refused("trades", "anchor", "invoice", h, "T-2", creator="bank-b") == (
        f"trades.anchor: document {short(h)} is already anchored (invoice of trade 'T-1' by "
        "'bank-a')"
    )


def test_the_owner_consents_to_its_documents_anchor(chain: TradeChain) -> None:
    h = parse_document(document("invoice")).salted_hash(SALT)
    terms, cid = {"kind": "invoice", "hash": h, "trade": "T-1"}, chain.genesis.chain
    consent = make_consent(KEYS[SELLER], cid, SELLER, "trades.anchor", h.hex(), 0, terms)
    agreed = {"hash": h, "kind": "invoice", "trade": "T-2"}  # as decoded: CBOR key order
    bad = make_consent(KEYS[SELLER], cid, SELLER, "trades.anchor", h.hex(), 0,
                       {**terms, "trade": "T-2"})  # fmt: skip
    assert chain.refused("trades", "anchor", "invoice", h, "T-1", bad, creator=BUYER) == (
        f"trades.anchor of {h.hex()}: consent of {SELLER!r}: it agrees to terms "
        f"{agreed!r}, the proposal has {terms!r}"
    )
    forged = make_consent(SigningKey(INTL, b"\x01" * 32), cid, SELLER, "trades.anchor", h.hex(),
                          0, terms)  # fmt: skip
    assert chain.refused("trades", "anchor", "invoice", h, "T-1", forged, creator=BUYER) == (
        f"trades.anchor of {h.hex()}: consent of {SELLER!r}: the signature does not verify with "
        f"the key of {SELLER!r}"
    )
    out = chain.ok("trades", "anchor", "invoice", h, "T-1", consent, creator=BUYER)
    assert out["by"] == SELLER
    assert chain.get(doc_key(h))["by"] == SELLER


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("receipt", b"\x01" * 32, "T-1"), "trades.anchor: kind must be one of contract, order, "
         "invoice, waybill, warehouse_in, warehouse_out, iot_movement, payment, got str 'receipt'"),
        (("invoice", b"\x01" * 31, "T-1"), "trades.anchor: salted_hash must be a 32-byte hash, "
         "got bytes " + repr(b"\x01" * 31)),
        (("invoice", "01" * 32, "T-1"), "trades.anchor: salted_hash must be a 32-byte hash, got "
         "str '" + "01" * 32 + "'"),
        (("invoice", b"\x01" * 32, "T/1"), "trades.anchor: trade must not contain '/', got 'T/1'"),
        (("invoice", b"\x01" * 32, "T-1", "consent"), "trades.anchor of " + "01" * 32 + ": the "
         "consent must be COSE_Sign1 bytes, got str 'consent'"),
        (("invoice", b"\x01" * 32, "T-1", b"\x01"), "trades.anchor of " + "01" * 32 + ": "
         "consent: COSE_Sign1: not tagged 18 (COSE_Sign1)"),
    ],
)  # fmt: skip
def test_anchor_refusals(chain: TradeChain, args: tuple[Any, ...], message: str) -> None:
    assert chain.refused("trades", "anchor", *args, creator="bank-a") == message


# -- attest ------------------------------------------------------------------------------------


def test_a_bank_attests_a_reconciled_trade(chain: TradeChain) -> None:
    r = chain.trade("T-1")
    out = chain.ok("trades", "attest", "T-1", r, creator="bank-a")
    assert out == {"id": "T-1", "status": "reconciled", "amount": 5_367_500, "seq": 0}
    assert chain.get(trade_key("T-1")) == {**r, "by": "bank-a", "t": chain.t, "seq": 0}
    paid = {**r, "paid": 1_000_000, "amount": 4_367_500}
    assert chain.ok("trades", "attest", "T-1", paid, creator="bank-a")["seq"] == 1
    assert chain.get(trade_key("T-1"))["paid"] == 1_000_000


def test_attest_refusals(chain: TradeChain) -> None:
    r = chain.trade("T-1")
    other = chain.anchor(document("payment", trade="T-2"))
    inv, wb = r["invoices"][0], r["waybills"][0]
    w = "trades.attest of T-1"
    cases: list[tuple[Any, str]] = [
        ("not a map", f"{w}: the record must be a map, got str 'not a map'"),
        ({**r, "by": "bank-a"}, f"{w}: record field 'by' is unknown (the fields are v, id, "
         "seller, buyer, status, amount, currency, invoiced, paid, invoices, waybills, docs, "
         "result, reasons; by, t and seq are set by the contract)"),
        ({k: v for k, v in r.items() if k != "result"}, f"{w}: record field 'result' is missing"),
        ({**r, "v": 2}, f"{w}: record field 'v' must be 1, got 2"),
        ({**r, "id": "T-2"}, f"{w}: record field 'id' must be the trade id 'T-1', got str 'T-2'"),
        ({**r, "seller": "nobody"}, f"{w}: record field 'seller': 'nobody' is neither a "
         "registered party nor a member"),
        ({**r, "buyer": SELLER}, f"{w}: seller and buyer are both {SELLER!r}"),
        ({**r, "status": "ok"}, f"{w}: record field 'status' must be one of reconciled, "
         "mismatch, flagged, got str 'ok'"),
        ({**r, "paid": -1}, f"{w}: record field 'paid' must be an integer in [0, "
         "1000000000000000] minor units, got -1"),
        ({**r, "currency": "yuan"}, f"{w}: record field 'currency' must be an ISO 4217 code, "
         "got str 'yuan'"),
        ({**r, "paid": 1}, f"{w}: record field 'amount' must be at most invoiced − paid = "
         "5367500 − 1 = 5367499, got 5367500"),
        ({**r, "invoices": [inv, inv]}, f"{w}: record field 'invoices'[1] repeats {short(inv)}"),
        ({**r, "waybills": [b"x"]}, f"{w}: record field 'waybills'[0] must be a 32-byte hash, "
         "got bytes b'x'"),
        ({**r, "docs": []}, f"{w}: record field 'docs' must be a list of 1 to 256 hashes, got "
         "list []"),
        ({**r, "result": None}, f"{w}: record field 'result' must be a 32-byte hash, got "
         "NoneType None"),
        ({**r, "reasons": ["why"]}, f"{w}: a reconciled trade has no reasons, got 1"),
        ({**r, "status": "mismatch", "amount": 0}, f"{w}: a 'mismatch' trade must say why: "
         "reasons is empty"),
        ({**r, "reasons": [""], "status": "flagged"}, f"{w}: record field 'reasons'[0] must be "
         "non-empty text of at most 256 characters, got str ''"),
        ({**r, "invoices": []}, f"{w}: a reconciled trade names at least one invoice"),
        ({**r, "docs": [*r["docs"], NINE]}, f"{w}: document {short(NINE)} is "
         "not anchored"),
        ({**r, "docs": [*r["docs"], other]}, f"{w}: document {short(other)} is anchored for "
         "trade 'T-2'"),
        ({**r, "waybills": [wb, b"\x08" * 32]}, f"{w}: names 2 waybill identities but only 1 "
         "waybill documents"),
    ]  # fmt: skip
    for rec, message in cases:
        assert chain.refused("trades", "attest", "T-1", rec, creator="bank-a") == message
    assert chain.refused("trades", "attest", "T-1", r, creator=WH) == (
        f"trades.attest: {WH!r} is not a bank member"
    )
    assert chain.refused("trades", "attest", "T/1", r, creator="bank-a") == (
        "trades.attest: trade_id must not contain '/', got 'T/1'"
    )


def test_reattesting_keeps_the_banks_word_and_what_is_financed(chain: TradeChain) -> None:
    r = chain.trade("T-1")
    chain.ok("trades", "attest", "T-1", r, creator="bank-a")
    w = "trades.attest of T-1"
    assert chain.refused("trades", "attest", "T-1", r, creator="bank-b") == (
        f"{w}: attested by 'bank-a'; only it can attest the trade again"
    )
    assert chain.refused("trades", "attest", "T-1", {**r, "seller": CARRIER}, creator="bank-a") == (
        f"{w}: seller is {CARRIER!r}, attested before as {SELLER!r}"
    )
    mismatch = {**r, "status": "mismatch", "amount": 0, "reasons": ["quantity off by 3 %"]}
    chain.ok("trades", "attest", "T-1", mismatch, creator="bank-a")  # nothing financed yet
    assert chain.refused("probe", "finance", "T-1", "note:N-1", creator=BUYER) == (
        "probe.finance of note:N-1: trade T-1 is not reconciled: quantity off by 3 %"
    )
    chain.ok("trades", "attest", "T-1", r, creator="bank-a")
    assert chain.ok("probe", "finance", "T-1", "note:N-1", creator=BUYER) == 5_367_500
    inv, wb = r["invoices"][0], r["waybills"][0]
    assert chain.refused("trades", "attest", "T-1", mismatch, creator="bank-a") == (
        f"{w}: its invoice {short(inv)} backs note:N-1; the trade cannot become 'mismatch'"
    )
    assert chain.refused("trades", "attest", "T-1", {**r, "waybills": []}, creator="bank-a") == (
        f"{w}: its waybill {short(wb)} backs note:N-1; it cannot be dropped from the trade"
    )
    assert chain.ok("trades", "attest", "T-1", {**r, "paid": 5_367_500, "amount": 0},
                    creator="bank-a")["seq"] == 3  # fmt: skip


# -- the double-financing registry --------------------------------------------------------------


def test_an_invoice_backs_one_financing_across_banks_and_salts(chain: TradeChain) -> None:
    r1 = chain.trade("T-1", bank="bank-a")
    chain.ok("trades", "attest", "T-1", r1, creator="bank-a")
    # the same signed invoice and waybill, anchored again under another salt for another trade
    # at another bank: other salted hashes, the same identities
    r2 = chain.trade("T-1b", bank="bank-b", salt=b"\x5a" * 16)
    assert set(r2["docs"]).isdisjoint(r1["docs"])
    assert (r2["invoices"], r2["waybills"]) == (r1["invoices"], r1["waybills"])
    chain.ok("trades", "attest", "T-1b", r2, creator="bank-b")
    assert chain.refused("probe", "finance", "T-1", "bad", creator=BUYER) == (
        "probe.finance of bad: backs must be 'note:<id>' or 'loan:<id>', got str 'bad'"
    )
    assert chain.refused("probe", "finance", "T-9", "note:N-9", creator=BUYER) == (
        "probe.finance of note:N-9: trade T-9 is not attested"
    )
    chain.ok("probe", "finance", "T-1", "note:N-1", creator=BUYER)
    inv, wb = r1["invoices"][0], r1["waybills"][0]
    assert chain.get(use_key(inv)) == {"kind": "invoice", "backs": "note:N-1", "by": BUYER,
                                       "t": chain.t}  # fmt: skip
    assert chain.get(use_key(wb))["kind"] == "waybill"
    assert chain.refused("probe", "finance", "T-1b", "loan:L-7", creator="bank-b") == (
        f"probe.finance of loan:L-7: invoice {short(inv)} already backs note:N-1"
    )
    assert chain.refused("probe", "claim", [wb], "loan:L-7", creator="bank-b") == (
        f"probe.claim: waybill {short(wb)} already backs note:N-1"
    )
    # claiming again for the same note changes nothing
    again = chain.run("probe", "finance", "T-1", "note:N-1", creator=BUYER)
    assert again.error == "" and again.writes == ()
    # released (the note was refused), the invoice may back the loan
    assert chain.refused("probe", "release", [inv], "note:N-2", creator=BUYER) == (
        f"probe.release: invoice {short(inv)} backs note:N-1, not note:N-2"
    )
    chain.ok("probe", "release", [inv, wb], "note:N-1", creator=BUYER)
    assert chain.get(use_key(inv)) is None
    chain.ok("probe", "finance", "T-1b", "loan:L-7", creator="bank-b")
    assert chain.get(use_key(inv))["backs"] == "loan:L-7"


def test_claim_uses_checks_its_arguments(chain: TradeChain) -> None:
    assert chain.refused("probe", "claim", [b"\x01" * 31], "note:N-1", creator=BUYER) == (
        "probe.claim: identities[0] must be a 32-byte hash, got bytes " + repr(b"\x01" * 31)
    )
    assert chain.refused("probe", "claim", [b"\x01" * 32], "note:a/b", creator=BUYER) == (
        "probe.claim: backs must be 'note:<id>' or 'loan:<id>', got str 'note:a/b'"
    )
    chain.ok("probe", "claim", [b"\x01" * 32, b"\x01" * 32], "loan:L-1", creator="bank-a")
    assert chain.get(use_key(b"\x01" * 32))["backs"] == "loan:L-1"


# -- genesis -------------------------------------------------------------------------------------


def test_the_genesis_policy_of_trades() -> None:
    members = {"bank": ["bank"], "wh": ["warehouse"], "core": ["core_enterprise"]}
    p = default_policies(members)
    assert describe(p["trades.*"]) == (
        "AND(role:bank, OR(role:warehouse, role:regulator, role:core_enterprise))"
    )
    orgs = {o: Member(o, tuple(r), b"") for o, r in members.items()}
    assert satisfied(p["trades.*"], {"bank", "core"}, orgs)
    assert satisfied(p["trades.*"], {"bank", "wh"}, orgs)
    assert not satisfied(p["trades.*"], {"bank"}, orgs)
    assert not satisfied(p["trades.*"], {"wh", "core"}, orgs)
    assert "trades" in [c.name for c in finance_contracts()]
    assert any(isinstance(c, Trades) for c in finance_contracts())

"""A test harness for the loan and market contracts: proposals executed against a real
SQLite state and committed one per block, with the business around a loan set up.

Members: two banks ``bank`` and ``bank2``, a warehouse ``wh`` and a regulator ``reg``.
Parties: the borrowers ``sme`` and ``sme2``, registered by ``bank`` with keys the test holds.
Receipts are written straight into the state as ``receipts.issue`` leaves them (issuing
needs anchored IoT evidence, which the receipts tests cover) and pledged through the real
``receipts.pledge`` with the holder's and the custodian's consents.

A loan is approved only on a reconciled trade: :meth:`LoanChain.trade` anchors a minimal
trade's invoice and waybill (stand-in hashes: the chain never sees documents) and attests
it through the real ``trades`` contract; :meth:`LoanChain.attach` attests the trade a loan
pays for (bought by its borrower from its seller, for its amount) and attaches it with
``loans.attach_trade``. The seller ``smelter`` is registered as a party by ``bank`` when a
trade first names it.

Time is explicit: :attr:`LoanChain.t` is the proposal time of the next call (each call moves
it on by one ms); :meth:`LoanChain.at_day` jumps to a business day.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.contracts.receipt_ops import put_new
from tally.finance.interest import day, day_start
from tally.finance.keys import loan_key, party_key, receipt_key
from tally.finance.policies import default_policies, finance_contracts
from tally.finance.receipt import new_receipt
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.contract import Context, Execution, Registry, execute
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.state import SqliteState

ORGS = {"bank": ["bank"], "bank2": ["bank"], "wh": ["warehouse"], "reg": ["regulator"]}
PARTIES = ("sme", "sme2")
DAY0 = 19_783
"""2024-03-01, the business day the harness starts on (10:00 Beijing time)."""
T0 = day_start(DAY0) + 10 * 3_600_000
COPPER = "copper"
PRICE = Decimal("70000")
"""CNY per t of copper."""
PARAMS = {
    "haircut": Decimal("0.9"),
    "pledge_rate": Decimal("0.6"),
    "warning": Decimal("1.3"),
    "disposal": Decimal("1.2"),
    "cure_ms": 3 * 86_400_000,
}
YEAR_MS = 365 * 86_400_000


def posting(label: str) -> bytes:
    """A 32-byte stand-in for a book posting's anchored hash."""
    return hashlib.sha256(label.encode()).digest()


def stand_in(label: str) -> bytes:
    """A 32-byte stand-in for a hash the chain holds (a document's, a report's)."""
    return hashlib.sha256(label.encode()).digest()


def identity(kind: str, trade_id: str) -> bytes:
    """A stand-in identity hash of the ``kind`` (invoice, waybill) of trade ``trade_id``."""
    return stand_in(f"{kind} identity of {trade_id}")


def trade_docs(trade_id: str) -> list[tuple[str, bytes]]:
    """(kind, salted hash) of the two documents a minimal trade anchors: its invoice and
    its waybill (stand-ins: the chain never sees a document)."""
    return [(kind, stand_in(f"{kind} document of {trade_id}")) for kind in ("invoice", "waybill")]


def trade_record(
    trade_id: str, amount: int, buyer: str, seller: str, **record: Any
) -> dict[str, Any]:
    """The record a reconciler attests for a minimal trade (its documents
    :func:`trade_docs`): reconciled, ``amount`` invoiced and allowed to be financed, nothing
    paid, one invoice and one waybill identity; ``record`` overrides fields."""
    rec: dict[str, Any] = {
        "v": 1, "id": trade_id, "seller": seller, "buyer": buyer, "status": "reconciled",
        "amount": amount, "currency": "CNY", "invoiced": amount, "paid": 0,
        "invoices": [identity("invoice", trade_id)],
        "waybills": [identity("waybill", trade_id)],
        "docs": [h for _, h in trade_docs(trade_id)],
        "result": stand_in(f"reconciliation of {trade_id}"), "reasons": [],
    }  # fmt: skip
    return {**rec, **record}


class LoanChain:
    """The members, parties and contracts above over one SQLite state."""

    def __init__(self, path: Path, orgs: dict[str, list[str]] | None = None) -> None:
        orgs = orgs or ORGS
        self.orgs = orgs
        self.keys = {o: SigningKey.generate(INTL) for o in orgs}
        self.party_keys = {p: SigningKey.generate(INTL) for p in PARTIES}
        self.genesis = Genesis(
            name="loans test",
            suite=INTL,
            t=T0 - 1000,
            members={o: Member(o, tuple(r), self.keys[o].public.raw) for o, r in orgs.items()},
            policies={**system_policies(orgs), **default_policies(orgs)},
            checkpoint_quorum=1,
        )
        self.state = SqliteState(path / "state.sqlite")
        self.registry = Registry(*system_contracts(), *finance_contracts())
        self.height = 0
        self.t = T0
        self.postings = 0
        for p in PARTIES:
            pub = self.party_keys[p].public.raw
            self.ok("parties", "register", p, f"{p} Ltd", "supplier", "intl", pub)

    def close(self) -> None:
        self.state.close()

    # -- running proposals -------------------------------------------------------------------

    def at_day(self, d: int, hour: int = 10) -> None:
        """Make the next proposal's time ``hour``:00 Beijing time on business day ``d``, or
        stay at the current time if that is later the same day (time never goes back)."""
        assert day(self.t) <= d, f"day {d} is past"
        self.t = max(self.t, day_start(d) + hour * 3_600_000)

    @property
    def today(self) -> int:
        return day(self.t)

    def run(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Execution:
        p = Proposal(self.genesis.chain, contract, fn, args, creator, self.t.to_bytes(8), self.t)
        self.t += 1
        members = members_view(self.state, self.genesis)
        return execute(self.registry, self.state, p, INTL.hash(p.to_cbor()), members)

    def commit(self, writes: Any) -> None:
        self.height += 1
        self.state.apply(self.height, [(k, v, (self.height, 0)) for k, v in writes], b"c")

    def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Any:
        """Run and commit; the proposal must succeed. Returns its result."""
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error == "", ex.error
        self.commit(ex.writes)
        return ex.result

    def refused(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> str:
        """Run a proposal that must be refused; check it would change nothing. Returns the
        error."""
        before = self.snapshot()
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error, f"expected a refusal, got {ex.result!r}"
        assert (ex.reads, ex.writes, ex.result) == ((), (), None)
        self.commit(ex.writes)
        assert self.snapshot() == before
        return ex.error

    def snapshot(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v, _ in self.state.range("")]

    def get(self, key: str) -> Any:
        found = self.state.get(key)
        return None if found is None else found[0]

    def loan(self, loan_id: str) -> dict[str, Any]:
        value = self.get(loan_key(loan_id))
        assert value is not None, f"no loan {loan_id}"
        return dict(value)

    def receipt(self, no: str) -> dict[str, Any]:
        value = self.get(receipt_key(no))
        assert value is not None, f"no receipt {no}"
        return dict(value)

    def next_posting(self) -> bytes:
        self.postings += 1
        return posting(f"posting {self.postings}")

    # -- the business around a loan ----------------------------------------------------------

    def market(
        self,
        commodity: str = COPPER,
        price: Decimal = PRICE,
        bank: str = "bank",
        **params: Any,
    ) -> None:
        """The commodity, its price and ``bank``'s lending parameters."""
        self.ok("market", "set_commodity", commodity, "t", Decimal("0.01"), creator="reg")
        self.ok("market", "set_price", commodity, price, "CNY", creator=bank)
        p = {**PARAMS, **params}
        self.ok("market", "set_params", commodity, p["haircut"], p["pledge_rate"],
                p["warning"], p["disposal"], p["cure_ms"], creator=bank)  # fmt: skip

    def issue(
        self,
        no: str,
        weight: Decimal | str,
        holder: str = "sme",
        commodity: str = COPPER,
        location: str = "A1",
        period_to: int | None = None,
    ) -> dict[str, Any]:
        """A live receipt of ``weight`` t held by ``holder``, written as ``receipts.issue``
        would (custodian ``wh``)."""
        w = Decimal(weight)
        fields = {
            "no": no, "depositor": holder, "goods": "cathode copper", "spec": "Cu-CATH-1",
            "quantity": w, "unit": "t", "weight": w, "packaging": "bundles", "lot": f"lot-{no}",
            "site": "qd", "location": location,
            "period": {"from": self.t, "to": period_to or self.t + YEAR_MS},
            "fees": {"rate": 5, "currency": "CNY"}, "insurance": None, "commodity": commodity,
        }  # fmt: skip
        rec = new_receipt(fields, "wh", self.t, [posting(f"reading {no}")])
        ctx = Context(self.state, "wh", b"", self.t, {}, chain=self.genesis.chain)
        put_new(ctx, rec)  # the record and its live-receipt index entry
        self.commit(ctx.writes())
        return rec

    def consent(self, party: str, act: str, on: str, seq: int, terms: Any) -> bytes:
        key = self.party_keys[party] if party in self.party_keys else self.keys[party]
        return make_consent(key, self.genesis.chain, party, act, on, seq, terms)

    def pledge(self, no: str, bank: str = "bank") -> None:
        """Pledge receipt ``no`` to ``bank`` with its holder's and custodian's consents."""
        rec = self.receipt(no)
        terms = {"bank": bank}
        holder = self.consent(rec["holder"], "receipts.pledge", no, rec["seq"], terms)
        custodian = self.consent(rec["custodian"], "receipts.pledge", no, rec["seq"], terms)
        self.ok("receipts", "pledge", no, bank, holder, custodian, creator=bank)

    def apply_args(
        self,
        loan_id: str,
        receipts: list[str],
        amount: int,
        term_days: int = 90,
        borrower: str = "sme",
        bank: str = "bank",
        seller: str = "smelter",
        account: str = "6222 0000 1111",
    ) -> tuple[Any, ...]:
        """The arguments of ``loans.apply`` with the borrower's consent."""
        terms = {"bank": bank, "receipts": receipts, "amount": amount, "term_days": term_days,
                 "seller": seller, "seller_account": account}  # fmt: skip
        c = self.consent(borrower, "loans.apply", loan_id, 0, terms)
        return (loan_id, borrower, receipts, amount, term_days, seller, account, c)

    def known(self, party: str) -> None:
        """Register ``party`` (a seller) with ``bank`` unless it is a member or registered."""
        if party in self.orgs or self.get(party_key(party)) is not None:
            return
        self.party_keys[party] = SigningKey.generate(INTL)
        pub = self.party_keys[party].public.raw
        self.ok("parties", "register", party, f"{party} Ltd", "supplier", "intl", pub)

    def trade(
        self,
        trade_id: str,
        amount: int,
        buyer: str = "sme",
        seller: str = "smelter",
        bank: str = "bank",
        **record: Any,
    ) -> dict[str, Any]:
        """Attest trade ``trade_id`` through the real ``trades`` contract: one invoice and
        one waybill anchored by ``bank`` for it (stand-in salted hashes), reconciled,
        ``amount`` invoiced and allowed to be financed, nothing paid. ``record`` overrides
        fields of the record (``invoices`` to cite another trade's invoice, ``status`` and
        ``reasons``, …). Returns the record as attested."""
        self.known(buyer)
        self.known(seller)
        for kind, h in trade_docs(trade_id):
            self.ok("trades", "anchor", kind, h, trade_id, creator=bank)
        rec = trade_record(trade_id, amount, buyer, seller, **record)
        self.ok("trades", "attest", trade_id, rec, creator=bank)
        return rec

    def attach(self, loan_id: str, trade_id: str | None = None) -> dict[str, Any]:
        """Attest the trade loan ``loan_id`` pays for (``T-<loan>`` unless named: bought by
        its borrower from its seller, for its amount) and attach it; returns the trade."""
        loan = self.loan(loan_id)
        tid = trade_id or f"T-{loan_id}"
        rec = self.trade(tid, loan["amount"], loan["borrower"], loan["seller"])
        self.ok("loans", "attach_trade", loan_id, tid, creator=loan["bank"])
        return rec

    def active_loan(
        self,
        loan_id: str = "L1",
        weights: tuple[str, ...] = ("100",),
        amount: int = 300_000_000,
        rate: Decimal = Decimal("0.0435"),
        term_days: int = 90,
    ) -> dict[str, Any]:
        """Receipts ``<loan>-R<i>`` of ``weights`` t pledged to ``bank`` and a loan on them
        applied, its trade attached, approved and disbursed. 100 t of copper at 70 000 CNY
        is 7 000 000 CNY; 3 000 000 CNY against it is within the 60 % pledge rate, coverage
        2.1."""
        nos = [f"{loan_id}-R{i}" for i in range(len(weights))]
        for no, w in zip(nos, weights, strict=True):
            self.issue(no, w)
            self.pledge(no)
        self.ok("loans", "apply", *self.apply_args(loan_id, nos, amount, term_days))
        self.attach(loan_id)
        self.ok("loans", "approve", loan_id, rate)
        self.ok("loans", "disburse", loan_id, self.next_posting())
        return self.loan(loan_id)

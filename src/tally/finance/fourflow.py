"""Four-flow reconciliation: does one trade's paper agree with itself, and what may be financed.

A trade (贸易背景) is backed by documents of the four flows — commercial (contract, orders),
information (VAT invoices), logistics (waybills, warehouse entries and exits, IoT-measured
movements) and capital (payments) — each signed by its owner (:mod:`tally.finance.documents`).
:func:`reconcile` judges one trade's documents with the rules of
:mod:`tally.finance.fourflow_rules` and the related-party facts of :mod:`tally.finance.circular`
and returns a :class:`ReconResult`:

* ``status``: ``reconciled`` (every rule holds), ``flagged`` (a circular trade or related-party
  self-dealing: a sign of fake trade, whatever else holds) or ``mismatch`` (some documents
  disagree);
* one :class:`~tally.finance.fourflow_rules.Check` per rule, with its figures, tolerance and
  a sentence; ``reasons``: ``"<rule>: <sentence>"`` for every rule that failed;
* ``invoiced`` = Σ invoice totals (VAT included), ``paid`` = Σ payment amounts (every payment
  of the trade), ``contract_amount`` = the contract's amount, all in minor units of the
  contract's currency; ``amount``, what may be financed, when the trade is reconciled (else 0):
  max(0, min(contract_amount, Σ invoice amounts before tax) + Σ invoice tax − paid) for a
  contract priced before VAT (the default, ``Tolerances.contract_tax`` "excluded"), or
  max(0, min(contract_amount, invoiced) − paid) for one priced with VAT ("included"). Either
  way never more than invoiced − paid, and nothing invoiced beyond the contract is financed.

The rules read *views* (:class:`ContractView`, :class:`InvoiceView`, …): the document fields
they use plus ``ref`` (the salted hash the chain anchors) and, for invoices and waybills,
``identity`` (the unsalted identity hash of the double-financing registry).
:func:`from_documents` makes them from stored, signed or checked documents; the benchmark
builds them directly. The report (:meth:`ReconResult.report`) is deterministic CBOR; its suite
hash is the ``result`` a bank attests on chain with ``trades.attest``
(:meth:`ReconResult.record`). Nothing here reads a clock or iterates in an unsorted order.

The incremental form, :class:`Reconciler` (documents arriving one by one, trades judged again
as they complete), is in :mod:`tally.finance.fourflow_index` and re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from tally.crypto import Suite, VerifyKey, cbor
from tally.finance.circular import Related
from tally.finance.contracts.trades import MAX_REASON
from tally.finance.docstore import StoredDocument
from tally.finance.documents import Document, SignedDocument
from tally.finance.fourflow_rules import (
    FLAG_RULES,
    FLOW_RULES,
    KINDS,
    Check,
    Tolerances,
    circular,
    related_party,
)

__all__ = ["Check", "ReconResult", "Reconciler", "Tolerances", "TradeDocs", "from_documents",
           "reconcile", "view"]  # fmt: skip

if TYPE_CHECKING:
    from tally.finance.fourflow_index import Reconciler
else:

    def __getattr__(name: str) -> Any:
        # Reconciler builds on this module: imported when first asked for, so that either
        # module may be imported first
        if name == "Reconciler":
            from tally.finance.fourflow_index import Reconciler

            return Reconciler
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# -- the views the rules read -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Doc:
    no: str
    by: str
    trade: str
    t: int


@dataclass(frozen=True, slots=True)
class ContractView(_Doc):
    kind: ClassVar[str] = "contract"
    seller: str
    buyer: str
    seller_tax_id: str
    buyer_tax_id: str
    quantity: Decimal
    unit: str
    amount: int
    currency: str
    delivery_from: int
    delivery_to: int
    ref: bytes = b""


@dataclass(frozen=True, slots=True)
class OrderView(_Doc):
    kind: ClassVar[str] = "order"
    contract: str
    quantity: Decimal
    amount: int
    ref: bytes = b""


@dataclass(frozen=True, slots=True)
class InvoiceView(_Doc):
    kind: ClassVar[str] = "invoice"
    number: str
    seller: str
    buyer: str
    seller_tax_id: str
    buyer_tax_id: str
    contract: str
    quantity: Decimal
    unit: str
    amount: int  # before tax
    total: int  # amount + tax
    currency: str
    ref: bytes = b""
    identity: bytes = b""


@dataclass(frozen=True, slots=True)
class WaybillView(_Doc):
    kind: ClassVar[str] = "waybill"
    number: str
    carrier: str
    shipper: str
    consignee: str
    quantity: Decimal
    unit: str
    delivered: int
    ref: bytes = b""
    identity: bytes = b""


@dataclass(frozen=True, slots=True)
class WarehouseView(_Doc):
    kind: str  # warehouse_in or warehouse_out
    number: str
    warehouse: str
    depositor: str
    quantity: Decimal
    unit: str
    at: int
    ref: bytes = b""


@dataclass(frozen=True, slots=True)
class IotView(_Doc):
    kind: ClassVar[str] = "iot_movement"
    quantity: Decimal
    unit: str
    readings: int  # how many proven readings back the movement
    ref: bytes = b""


@dataclass(frozen=True, slots=True)
class PaymentView(_Doc):
    kind: ClassVar[str] = "payment"
    number: str
    payer: str
    payee: str
    amount: int
    currency: str
    invoice: str
    ref: bytes = b""


DocView = (ContractView | OrderView | InvoiceView | WaybillView | WarehouseView | IotView
           | PaymentView)  # fmt: skip
_GROUP = {"contract": "contracts", "order": "orders", "invoice": "invoices",
          "waybill": "waybills", "warehouse_in": "warehouse_in", "warehouse_out": "warehouse_out",
          "iot_movement": "iot", "payment": "payments"}  # fmt: skip


def _order(d: DocView) -> tuple[str, bytes]:
    return getattr(d, "number", d.no), d.ref


@dataclass(frozen=True, slots=True)
class TradeDocs:
    """One trade's documents, grouped by kind and sorted by number (then salted hash)."""

    trade: str
    contracts: tuple[ContractView, ...] = ()
    orders: tuple[OrderView, ...] = ()
    invoices: tuple[InvoiceView, ...] = ()
    waybills: tuple[WaybillView, ...] = ()
    warehouse_in: tuple[WarehouseView, ...] = ()
    warehouse_out: tuple[WarehouseView, ...] = ()
    iot: tuple[IotView, ...] = ()
    payments: tuple[PaymentView, ...] = ()

    @classmethod
    def of(cls, trade: str, docs: Iterable[DocView]) -> TradeDocs:
        """Group ``docs``; refuse (ValueError) one of another trade or an unknown kind."""
        groups: dict[str, list[Any]] = {g: [] for g in _GROUP.values()}
        for d in docs:
            if d.trade != trade:
                raise ValueError(f"{d.kind} {d.no} belongs to trade {d.trade!r}, not {trade!r}")
            if d.kind not in _GROUP:
                raise ValueError(f"{d.no}: unknown document kind {d.kind!r}")
            groups[_GROUP[d.kind]].append(d)
        return cls(trade, **{g: tuple(sorted(v, key=_order)) for g, v in groups.items()})

    def all(self) -> tuple[DocView, ...]:
        return (*self.contracts, *self.orders, *self.invoices, *self.waybills,
                *self.warehouse_in, *self.warehouse_out, *self.iot, *self.payments)  # fmt: skip

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, _GROUP[k])) for k in KINDS}


# -- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconResult:
    """One trade's judgement (see the module docstring); hashes in ``docs`` (salted),
    ``invoices`` and ``waybills`` (identity) are sorted, each once."""

    trade: str
    status: str
    checks: tuple[Check, ...]
    amount: int
    invoiced: int
    paid: int
    contract_amount: int
    currency: str
    seller: str
    buyer: str
    reasons: tuple[str, ...]
    tolerances: Tolerances
    docs: tuple[bytes, ...] = ()
    invoices: tuple[bytes, ...] = ()
    waybills: tuple[bytes, ...] = ()
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def failed(self) -> tuple[str, ...]:
        return tuple(c.rule for c in self.checks if not c.ok)

    def check(self, rule: str) -> Check:
        for c in self.checks:
            if c.rule == rule:
                return c
        raise KeyError(f"no rule {rule!r} (rules: {', '.join(c.rule for c in self.checks)})")

    def report(self) -> dict[str, Any]:
        """The reconciliation report (deterministic CBOR map; docs/finance-fourflow.md)."""
        return {"v": 1, "trade": self.trade, "status": self.status, "seller": self.seller,
                "buyer": self.buyer, "currency": self.currency, "amount": self.amount,
                "invoiced": self.invoiced, "paid": self.paid, "contract": self.contract_amount,
                "checks": [c.as_map() for c in self.checks], "reasons": list(self.reasons),
                "tolerances": self.tolerances.as_map(), "docs": list(self.docs)}  # fmt: skip

    def report_bytes(self) -> bytes:
        if "cbor" not in self._cache:
            self._cache["cbor"] = cbor.encode(self.report())
        return self._cache["cbor"]

    def result_hash(self, suite: Suite) -> bytes:
        """The suite hash of :meth:`report_bytes`: the ``result`` attested on chain."""
        return suite.hash(self.report_bytes())

    def record(self, suite: Suite) -> dict[str, Any]:
        """The fields of the ``trade/<id>`` record for ``trades.attest`` (the contract adds
        ``by``, ``t`` and ``seq``)."""
        return {"v": 1, "id": self.trade, "seller": self.seller, "buyer": self.buyer,
                "status": self.status, "amount": self.amount, "currency": self.currency,
                "invoiced": self.invoiced, "paid": self.paid, "invoices": list(self.invoices),
                "waybills": list(self.waybills), "docs": list(self.docs),
                "result": self.result_hash(suite), "reasons": list(self.reasons)}  # fmt: skip


def _reason(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def reconcile(
    docs: TradeDocs, related: Related, tolerances: Tolerances = Tolerances()
) -> ReconResult:
    """Judge one trade (see the module docstring)."""
    c = docs.contracts[0] if docs.contracts else None
    checks = [rule(docs, c, tolerances) for rule in FLOW_RULES]
    seller, buyer = (c.seller, c.buyer) if c is not None else ("", "")
    checks += [circular(related), related_party(related, seller, buyer)]
    failed = [x for x in checks if not x.ok]
    if any(x.rule in FLAG_RULES for x in failed):
        status = "flagged"
    else:
        status = "mismatch" if failed else "reconciled"
    invoiced = sum(i.total for i in docs.invoices)
    paid = sum(p.amount for p in docs.payments)
    contract_amount = c.amount if c is not None else 0
    if tolerances.contract_tax == "excluded":
        net = sum(i.amount for i in docs.invoices)
        basis = min(contract_amount, net) + invoiced - net  # + the invoices' tax
    else:
        basis = min(contract_amount, invoiced)
    amount = max(0, basis - paid) if status == "reconciled" else 0
    return ReconResult(
        docs.trade, status, tuple(checks), amount, invoiced, paid, contract_amount,
        c.currency if c is not None else "", seller, buyer,
        tuple(_reason(f"{x.rule}: {x.detail}") for x in failed), tolerances,
        tuple(sorted({d.ref for d in docs.all() if d.ref})),
        tuple(sorted({i.identity for i in docs.invoices if i.identity})),
        tuple(sorted({w.identity for w in docs.waybills if w.identity})),
    )  # fmt: skip


# -- from the documents -------------------------------------------------------------------------


_VIEWS: dict[str, type[DocView]] = {
    "contract": ContractView, "order": OrderView, "invoice": InvoiceView, "waybill": WaybillView,
    "warehouse_in": WarehouseView, "warehouse_out": WarehouseView, "iot_movement": IotView,
    "payment": PaymentView,
}  # fmt: skip


def view(doc: Document, ref: bytes = b"", identity: bytes = b"") -> DocView:
    """The view of a checked document (its fields are the body's of the same name; an IoT
    movement's ``readings`` is how many); ``ref`` its salted hash, ``identity`` its identity
    hash."""
    cls = _VIEWS.get(doc.kind)
    if cls is None:
        raise ValueError(f"document {doc.no}: unknown kind {doc.kind!r}")
    given: dict[str, Any] = {"no": doc.no, "by": doc.by, "trade": doc.trade, "t": doc.t,
                             "kind": doc.kind, "ref": ref, "identity": identity}  # fmt: skip
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        v = given[f.name] if f.name in given else getattr(doc.body, f.name)
        kw[f.name] = len(v) if f.name == "readings" else v
    return cls(**kw)


def from_documents(
    docs: Iterable[StoredDocument | SignedDocument | Document],
    trade: str | None = None,
    suite: Suite | None = None,
    keys: Mapping[str, VerifyKey] | None = None,
) -> TradeDocs:
    """The :class:`TradeDocs` of one trade's documents: rows of the document store (salted
    and identity hashes included; the bytes parsed again), signed documents (identity hash, no
    salted hash) or checked documents (identity hash only with ``suite``). With ``keys`` (owner
    -> key) every signature is verified first (DocumentError if one does not verify). ``trade``
    defaults to the first document's; a document of another trade is refused (ValueError)."""
    views: list[DocView] = []
    for d in docs:
        signed: SignedDocument | Document
        if isinstance(d, StoredDocument):
            signed, ref, ident = d.parsed(), d.hash, d.identity or b""
        elif isinstance(d, SignedDocument):
            signed, ref, ident = d, b"", d.identity() or b""
        elif isinstance(d, Document):
            signed, ref = d, b""
            ident = (d.identity(suite) if suite is not None else None) or b""
        else:
            raise ValueError(f"not a document: {type(d).__name__}")
        doc = signed.doc if isinstance(signed, SignedDocument) else signed
        if keys is not None:
            if not isinstance(signed, SignedDocument):
                raise ValueError(f"{doc.kind} {doc.no} carries no signature to verify")
            if doc.by not in keys:
                raise ValueError(f"no key for {doc.by!r}, the signer of {doc.kind} {doc.no}")
            signed.verify(keys[doc.by])
        views.append(view(doc, ref, ident))
    if trade is None:
        if not views:
            raise ValueError("no documents, and no trade named")
        trade = views[0].trade
    return TradeDocs.of(trade, views)

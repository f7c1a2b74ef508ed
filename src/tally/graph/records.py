"""The records the enterprise knowledge graph is built from, and their JSON form.

Each record is a frozen dataclass; its JSON object has exactly the dataclass's fields (a
``Role`` as ``{"person", "role", "share_bp"}``, tuples as arrays). Money is in integer
minor units (fen), times in ms since the epoch (UTC), shares in basis points. A record is
identified by its ``id`` (``Supply``: ``"<supplier>><buyer>"``; ``Telemetry`` and
``Outcome``: by firm and loan): adding a record with a known id replaces the old one.

=============  ===============  ===========================================================
file stem      record           what it says
=============  ===============  ===========================================================
``banks``      :class:`Bank`    a lending bank
``firms``      :class:`Firm`    a registration: kind (core enterprise or SME), industry,
                                capital, persons in their roles, addresses, accounts
``persons``    :class:`Person`  a natural person (by identity number)
``addresses``  :class:`Address` a registered or operating address
``accounts``   :class:`Account` a bank account (number and bank)
``supplies``   :class:`Supply`  a declared supply relation, supplier → buyer
``trades``     :class:`Trade`   a trade with its four-flow summary and payment
``notes``      :class:`Note`    a receivable certificate (docs/formats.md §35)
``guarantees`` :class:`Guarantee`  a guarantee of a loan, guarantor → debtor
``loans``      :class:`Loan`    a loan (docs/formats.md §31, summarised)
``receipts``   :class:`Receipt` a warehouse receipt (docs/formats.md §27, summarised)
``telemetry``  :class:`Telemetry`  a firm's device fleet and monthly series
``outcomes``   :class:`Outcome` whether a borrower defaulted (labelled history)
=============  ===============  ===========================================================

:func:`tally.graph.record_json.from_json` reads a record from its JSON object and refuses a
bad one with :class:`RecordError`, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIRM_KINDS = ("core", "sme")
ROLES = ("legal_rep", "director", "shareholder")
INDUSTRIES = (
    "pharmaceuticals",
    "grain",
    "warehousing_logistics",
    "automotive",
    "leasing",
    "machining",
    "bulk_commodities",
    "hotels",
)
NOTE_STATES = ("offered", "live", "split", "financed", "settled", "overdue", "refused")
LOAN_STATES = ("active", "margin_call", "overdue", "defaulted", "closed")
LOAN_KINDS = ("working", "receipt", "note")


class RecordError(ValueError):
    """Raised when a JSON object is not a valid record; carries the kind and field."""

    def __init__(self, kind: str, field: str, reason: str) -> None:
        super().__init__(f"{kind} record: field {field!r} {reason}")
        self.kind = kind
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Role:
    """A person's role in a firm; ``share_bp`` is a shareholder's share in basis points."""

    person: str
    role: str
    share_bp: int = 0


@dataclass(frozen=True, slots=True)
class Bank:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Firm:
    """A firm's registration. ``rating`` is an external rating of a core enterprise
    (``AAA`` … ``BBB``), empty for an SME; ``capital`` the registered capital."""

    id: str
    name: str
    kind: str
    industry: str
    capital: int
    founded: int
    rating: str = ""
    roles: tuple[Role, ...] = ()
    addresses: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Address:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    bank: str


@dataclass(frozen=True, slots=True)
class Supply:
    """``supplier`` sells to ``buyer`` (a declared relation, from contracts or KYC)."""

    supplier: str
    buyer: str
    since: int

    @property
    def id(self) -> str:
        return f"{self.supplier}>{self.buyer}"


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade, ``seller`` → ``buyer``, dated ``t``: its amount (the contract), what was paid
    by ``paid_t`` (0 and ``None``: unpaid), the payment due time, and the four-flow rules its
    documents failed (``mismatches``; empty: consistent)."""

    id: str
    seller: str
    buyer: str
    amount: int
    t: int
    due: int
    paid: int = 0
    paid_t: int | None = None
    mismatches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Note:
    """A receivable note: ``issuer`` (the core enterprise) owes ``amount`` to the current
    ``holder`` at ``due``; ``endorsers`` are the holders before, oldest first; ``confirmed``
    and ``financed`` name banks ("" for none)."""

    id: str
    issuer: str
    holder: str
    amount: int
    issued: int
    due: int
    trade: str
    state: str
    confirmed: str = ""
    financed: str = ""
    endorsers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Guarantee:
    """``guarantor`` guarantees up to ``amount`` of ``debtor``'s loan ``loan`` at ``bank``;
    a released guarantee has ``active`` false."""

    id: str
    guarantor: str
    debtor: str
    bank: str
    loan: str
    amount: int
    t: int
    active: bool = True


@dataclass(frozen=True, slots=True)
class Loan:
    """A loan of ``bank`` to ``borrower``: ``outstanding`` principal, days past due
    (``dpd``), collateral ``coverage`` (receipt loans; ``None`` otherwise)."""

    id: str
    bank: str
    borrower: str
    kind: str
    principal: int
    outstanding: int
    t: int
    due: int
    state: str = "active"
    dpd: int = 0
    coverage: float | None = None
    receipts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str
    holder: str
    custodian: str
    goods: str
    value: int
    t: int
    pledgee: str = ""
    loan: str = ""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A firm's devices as of ``t``: how many, how many report (``online``), since when the
    longest-dark one is dark (``None``: none), monthly electricity (kWh) and inventory value
    (minor units), oldest first, and gaps in the custody of its pledged goods."""

    firm: str
    t: int
    devices: int
    online: int
    dark_since: int | None = None
    electricity: tuple[int, ...] = ()
    inventory: tuple[int, ...] = ()
    custody_gaps: int = 0
    gap_hours: int = 0

    @property
    def id(self) -> str:
        return self.firm


@dataclass(frozen=True, slots=True)
class Outcome:
    """Whether ``firm`` defaulted on ``loan`` in the year after it was observed."""

    firm: str
    loan: str
    defaulted: bool

    @property
    def id(self) -> str:
        return self.loan


Record = (
    Bank
    | Firm
    | Person
    | Address
    | Account
    | Supply
    | Trade
    | Note
    | Guarantee
    | Loan
    | Receipt
    | Telemetry
    | Outcome
)
KINDS: dict[str, type[Any]] = {
    "banks": Bank,
    "firms": Firm,
    "persons": Person,
    "addresses": Address,
    "accounts": Account,
    "supplies": Supply,
    "trades": Trade,
    "notes": Note,
    "guarantees": Guarantee,
    "loans": Loan,
    "receipts": Receipt,
    "telemetry": Telemetry,
    "outcomes": Outcome,
}
"""File stem → record class, in the order a directory is written and read."""
KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in KINDS.items()}
__all__ = [
    "FIRM_KINDS",
    "INDUSTRIES",
    "KINDS",
    "KIND_OF",
    "LOAN_KINDS",
    "LOAN_STATES",
    "NOTE_STATES",
    "ROLES",
    "Account",
    "Address",
    "Bank",
    "Firm",
    "Guarantee",
    "Loan",
    "Note",
    "Outcome",
    "Person",
    "Receipt",
    "Record",
    "RecordError",
    "Role",
    "Supply",
    "Telemetry",
    "Trade",
]

"""The rules of the bank's account book (:mod:`tally.finance.book`): accounts, lines, drafts
and the posting body's format. Formats, chart of accounts and kinds: ``docs/finance-book.md``.

* An account is ``(org, purpose, currency)``, written ``org/purpose/currency``
  (:class:`AccountKey`); its purpose fixes its normal side (:data:`PURPOSES`). Customer
  accounts (``loans``, ``deposit``, ``margin``, ``disposal``) never go below zero on their
  normal side; the bank's own (``interest_income``, ``settlement``) can only be opened for the
  book's bank. :class:`Account` is an account's debit and credit totals and its balance.
* Amounts are integers of minor units (fen), at most :data:`MAX_AMOUNT`; one currency per
  account.
* A :class:`Draft` is a caller-named set of debit and credit lines (:func:`debit`,
  :func:`credit`) of one kind (:data:`KINDS`, which says the refs a kind must name and the
  purposes it may debit and credit) that balances per currency; :func:`check_draft` checks
  these rules and puts the lines in canonical order.
* A posting's body is deterministic CBOR (:func:`posting_body`, read back and checked by
  :func:`decode_body`); it names the previous posting's hash, so all postings form one chain.
* Everything refused raises :class:`BookError`, saying which field, value and rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tally.crypto import DecodeError, cbor

DEBIT = "debit"
CREDIT = "credit"
VERSION = 1
MAX_AMOUNT = 10**15
"""The largest amount of one line, in minor units (10 trillion yuan in fen)."""


@dataclass(frozen=True)
class Purpose:
    side: str
    bank_own: bool
    holds: str


PURPOSES: dict[str, Purpose] = {
    "loans": Purpose(DEBIT, False, "principal the customer owes the bank (asset)"),
    "deposit": Purpose(CREDIT, False, "the customer's current account (liability)"),
    "margin": Purpose(CREDIT, False, "cash margin the customer posted for a loan (liability)"),
    "disposal": Purpose(CREDIT, False, "disposal proceeds held for the customer (liability)"),
    "interest_income": Purpose(CREDIT, True, "interest the bank earned (income)"),
    "settlement": Purpose(DEBIT, True, "the bank's clearing position with other banks (asset)"),
}


@dataclass(frozen=True)
class Rule:
    refs: tuple[str, ...]
    debit: tuple[str, ...]
    credit: tuple[str, ...]


_PAY = ("deposit", "margin", "disposal", "settlement")
KINDS: dict[str, Rule] = {
    "disbursement": Rule(("loan", "borrower", "seller"), ("loans",), ("deposit", "settlement")),
    "repayment": Rule(("loan", "borrower"), _PAY, ("loans",)),
    "interest": Rule(("loan", "borrower"), _PAY, ("interest_income",)),
    "margin_deposit": Rule(("loan", "borrower"), ("deposit", "settlement"), ("margin",)),
    "margin_return": Rule(("loan", "borrower"), ("margin",), ("deposit", "settlement")),
    "settlement": Rule((), ("deposit", "settlement", "disposal"), ("deposit", "settlement")),
    "disposal": Rule(
        ("loan", "borrower", "buyer"),
        ("deposit", "settlement"),
        ("loans", "interest_income", "disposal"),
    ),
}
"""Per kind: the refs it must name, and the purposes it may debit and credit. Lines on
``loans``, ``margin`` and ``disposal`` accounts must be the borrower's; a disbursement's
deposit credit must be the seller's (entrusted payment)."""

_CURRENCY = re.compile(r"[A-Z]{3}")


class BookError(ValueError):
    """A refused account or posting; the message says which field, value and rule."""


def check_text(value: Any, what: str, limit: int = 200) -> str:
    """``value`` if it is non-empty text of at most ``limit`` characters, else BookError."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BookError(
            f"{what} must be non-empty text of at most {limit} characters, got {value!r}"
        )
    return value


@dataclass(frozen=True, order=True)
class AccountKey:
    """An account's identity: ``org/purpose/currency``."""

    org: str
    purpose: str
    currency: str

    def __post_init__(self) -> None:
        check_text(self.org, "account org")
        if "/" in self.org:
            raise BookError(f"account org must not contain '/', got {self.org!r}")
        if self.purpose not in PURPOSES:
            raise BookError(f"account purpose {self.purpose!r} is not one of {', '.join(PURPOSES)}")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise BookError(
                f"account currency must be three capital letters (ISO 4217), got {self.currency!r}"
            )

    @property
    def id(self) -> str:
        return f"{self.org}/{self.purpose}/{self.currency}"

    @property
    def side(self) -> str:
        return PURPOSES[self.purpose].side

    @classmethod
    def parse(cls, account_id: str) -> AccountKey:
        parts = account_id.split("/")
        if len(parts) != 3:
            raise BookError(f"an account id is org/purpose/currency, got {account_id!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Line:
    account: AccountKey
    side: str
    amount: int

    def sort_key(self) -> tuple[int, str, str, str, int]:
        a = self.account
        return (0 if self.side == DEBIT else 1, a.org, a.purpose, a.currency, self.amount)

    def __str__(self) -> str:
        return f"{'Dr' if self.side == DEBIT else 'Cr'} {self.account} {self.amount}"


def debit(account: AccountKey, amount: int) -> Line:
    return Line(account, DEBIT, amount)


def credit(account: AccountKey, amount: int) -> Line:
    return Line(account, CREDIT, amount)


@dataclass(frozen=True)
class Draft:
    """What a caller asks to post: kind, lines and references (e.g. ``{"loan": "L1"}``)."""

    kind: str
    lines: Sequence[Line]
    refs: dict[str, str] = field(default_factory=dict)
    memo: str = ""


@dataclass(frozen=True)
class Account:
    key: AccountKey
    debits: int
    credits: int

    @property
    def balance(self) -> int:
        """The balance on the account's normal side (debit-normal: debits − credits)."""
        d = self.debits - self.credits
        return d if self.key.side == DEBIT else -d


def check_draft(posting_id: str, draft: Draft) -> tuple[Line, ...]:
    """Validate a draft; return its lines in canonical order or raise :class:`BookError`."""
    check_text(posting_id, "posting id")
    p = f"posting {posting_id}"
    rule = KINDS.get(draft.kind) if isinstance(draft.kind, str) else None
    if rule is None:
        raise BookError(f"{p}: kind {draft.kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(draft.memo, str) or len(draft.memo) > 500:
        raise BookError(f"{p}: memo must be text of at most 500 characters")
    refs = draft.refs
    if not isinstance(refs, dict):
        raise BookError(f"{p}: refs must be a map of text to text, got {refs!r}")
    for k, v in sorted(refs.items()):
        check_text(k, f"{p}: a ref name", 64)
        check_text(v, f"{p}: ref {k!r}")
    missing = [r for r in rule.refs if r not in refs]
    if missing:
        raise BookError(f"{p} ({draft.kind}): refs must name {', '.join(map(repr, missing))}")
    if not draft.lines:
        raise BookError(f"{p}: no lines")
    for n, line in enumerate(draft.lines, 1):
        w = f"{p} line {n}"
        if not isinstance(line, Line) or not isinstance(line.account, AccountKey):
            raise BookError(f"{w}: not a Line of an AccountKey: {line!r}")
        a = line.amount
        if type(a) is not int or not 0 < a <= MAX_AMOUNT:
            raise BookError(
                f"{w}: amount must be a positive integer of minor units at most "
                f"{MAX_AMOUNT}, got {a!r}"
            )
        allowed = {DEBIT: rule.debit, CREDIT: rule.credit}.get(line.side)
        if allowed is None:
            raise BookError(f"{w}: side must be 'debit' or 'credit', got {line.side!r}")
        if line.account.purpose not in allowed:
            raise BookError(
                f"{w}: {draft.kind} may not {line.side} {line.account.purpose} accounts "
                f"(allowed: {', '.join(allowed)})"
            )
        owner = refs.get("borrower", refs.get("customer"))
        if line.account.purpose in ("loans", "margin", "disposal") and line.account.org != owner:
            whose = "borrower" if "borrower" in refs else "customer"
            raise BookError(f"{w}: account {line.account} is not the {whose}'s ({owner!r})")
        seller = refs.get("seller")
        if (
            draft.kind == "disbursement"
            and line.account.purpose == "deposit"
            and (line.account.org != seller)
        ):
            raise BookError(
                f"{w}: the entrusted payment must go to the seller {seller!r}, not "
                f"to {line.account}"
            )
    sums: dict[str, list[int]] = {}
    for line in draft.lines:
        sums.setdefault(line.account.currency, [0, 0])[line.side == CREDIT] += line.amount
    for cur, (d, c) in sorted(sums.items()):
        if d != c:
            raise BookError(f"{p} does not balance in {cur}: debits {d}, credits {c}")
    return tuple(sorted(draft.lines, key=Line.sort_key))


def posting_body(book: str, suite: str, seq: int, prev: bytes, posting_id: str, kind: str,
                 t: int, lines: Iterable[Line], refs: dict[str, str],
                 memo: str) -> bytes:  # fmt: skip
    """The deterministic CBOR of a posting (``docs/formats.md`` §32)."""
    return cbor.encode({
        "v": VERSION, "book": book, "suite": suite, "seq": seq, "prev": prev,
        "id": posting_id, "kind": kind, "t": t,
        "lines": [{"org": ln.account.org, "purpose": ln.account.purpose,
                   "currency": ln.account.currency, "side": ln.side, "amount": ln.amount}
                  for ln in lines],
        "refs": refs, "memo": memo,
    })  # fmt: skip


_BODY = {"v": int, "book": str, "suite": str, "seq": int, "prev": bytes, "id": str,
         "kind": str, "t": int, "lines": list, "refs": dict, "memo": str}  # fmt: skip
_LINE = {"org": str, "purpose": str, "currency": str, "side": str, "amount": int}


def _shape(m: Any, fields: dict[str, type], what: str) -> None:
    if not isinstance(m, dict) or set(m) != set(fields):
        got = sorted(map(str, m)) if isinstance(m, dict) else type(m).__name__
        raise BookError(f"{what} must have the members {sorted(fields)}, got {got}")
    for k, t in fields.items():
        if not isinstance(m[k], t) or isinstance(m[k], bool):
            raise BookError(f"{what}: {k} must be {t.__name__}, got {m[k]!r}")


def decode_body(body: bytes) -> dict[str, Any]:
    """Decode a posting body into its map, lines as :class:`Line`; raise BookError."""
    try:
        m = cbor.decode(body, "posting")
    except DecodeError as exc:
        raise BookError(str(exc)) from None
    _shape(m, _BODY, "the body")
    if m["v"] != VERSION:
        raise BookError(f"the body has v {m['v']}, not {VERSION}")
    lines = []
    for n, x in enumerate(m["lines"], 1):
        _shape(x, _LINE, f"the body's line {n}")
        lines.append(
            Line(AccountKey(x["org"], x["purpose"], x["currency"]), x["side"], x["amount"])
        )
    m["lines"] = lines
    out: dict[str, Any] = m
    return out


def describe(lines: Iterable[Line]) -> str:
    """``Dr org/purpose/currency amount, Cr …``"""
    return ", ".join(map(str, lines))

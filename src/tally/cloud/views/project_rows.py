"""How the projector turns the finance contracts' world state into read-model rows.

Pure functions of the chain's values (layouts in ``docs/formats.md`` §27–35) and of what the
projector passes in (the height and block time that changed a key, the row stored before,
the commodity's unit and price). Choices where the chain and the rows differ:

- receipt: ``quantity`` is the receipt's ``weight`` and ``unit`` the commodity's unit (t),
  the figure the dashboards add up (the count of coils stays on the chain); ``bank`` is the
  pledgee; ``value_fen`` = weight × the commodity's current price × 100 (None without a
  price); ``updated_ms`` the time of its last endorsement;
- loan: ``principal_fen`` is the approved ``amount``, ``outstanding_fen`` the principal
  outstanding (accrued interest is not included); ``rate`` is "0" until approval sets it;
  ``applied_ms`` the time of the first block that held the loan, ``disbursed_ms`` that of
  the first block that held it disbursed (the block times the projector saw: exact when it
  follows every block's writes); ``due_ms`` the start of the maturity business day;
  ``coverage`` as :func:`tally.finance.coverage.coverage` computes it, now;
- note: ``bank`` is the financing bank, else the confirming one; ``tier`` = 1 + the number
  of earlier holders (1: the core's direct supplier);
- trade: ``bank`` is the attesting bank; document: ``issuer`` is who anchored or consented,
  and what the chain does not hold (counterparty, number, amount) is kept from the stored row;
- org (``party/``): name, kind and sponsoring bank from the chain; industry, region, core,
  tier and ``simulated`` kept from a stored profile (``simulated`` is the projector's flag
  for an organisation it first sees on the chain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from tally.finance import coverage as cov
from tally.finance.interest import day_start
from tally.finance.keys import receipt_key

from .model import DocumentRow, LimitRow, LoanRow, NoteRow, OrgRow, ReceiptRow, TradeRow

SECURING = ("pledged", "frozen")


def num(d: Decimal | int) -> str:
    """A decimal as text without exponent or trailing zeros: ``12.500`` → ``12.5``."""
    n = Decimal(d).normalize()
    return f"{n:f}" if n != 0 else "0"


def value_fen(weight: Decimal, price: Decimal | None) -> int | None:
    """Market value in whole fen (truncated) of ``weight`` at ``price`` CNY per unit."""
    if price is None:
        return None
    return int(cov.market_value([(weight, price)]))


def receipt_row(rec: Mapping[str, Any], height: int, unit: str | None,
                price: Decimal | None) -> ReceiptRow:  # fmt: skip
    times = [e["t"] for e in rec.get("endorsements", ()) if isinstance(e.get("t"), int)]
    return ReceiptRow(
        no=rec["no"], holder=rec["holder"], custodian=rec.get("custodian") or None,
        bank=rec.get("pledgee") or None, site=rec["site"], location=rec["location"],
        commodity=rec["commodity"], quantity=num(rec["weight"]), unit=unit or "t",
        value_fen=value_fen(rec["weight"], price), status=rec["state"],
        loan=rec.get("loan") or None, issued_ms=rec["issued"],
        updated_ms=max([rec["issued"], *times]), height=height,
    )  # fmt: skip


def loan_row(loan: Mapping[str, Any], height: int, time_ms: int, coverage: Decimal | None,
             stored: LoanRow | None, first_ms: int | None = None,
             disbursed_ms: int | None = None) -> LoanRow:  # fmt: skip
    """``first_ms``: when the projector first saw the loan, ``disbursed_ms`` when it first
    saw it disbursed (None: not known; ``time_ms`` is used)."""
    rate = loan.get("rate")
    maturity = loan.get("maturity")
    applied = stored.applied_ms if stored is not None else (first_ms or time_ms)
    disbursed = stored.disbursed_ms if stored is not None else None
    if disbursed is None and loan.get("start") is not None:
        disbursed = disbursed_ms if disbursed_ms is not None else time_ms
    return LoanRow(
        id=loan["id"], borrower=loan["borrower"], bank=loan["bank"],
        principal_fen=loan["amount"], outstanding_fen=loan["principal"],
        rate=num(rate) if rate is not None else "0", status=loan["state"],
        coverage=None if coverage is None else float(coverage),
        receipts=tuple(loan["receipts"]), trade=loan.get("trade") or None,
        applied_ms=applied, disbursed_ms=disbursed,
        due_ms=None if maturity is None else day_start(maturity),
        updated_ms=time_ms, height=height,
    )  # fmt: skip


def note_row(note: Mapping[str, Any], height: int, time_ms: int) -> NoteRow:
    financed = note.get("financed")
    bank = (financed or {}).get("bank") or note.get("confirmed") or None
    return NoteRow(
        id=note["id"], root=note["root"], parent=note.get("parent") or None,
        issuer=note["issuer"], holder=note["holder"], bank=bank, amount_fen=note["amount"],
        status=note["state"], tier=1 + len(note.get("endorsers", ())),
        trade=note.get("trade") or None, issued_ms=note["issued"], due_ms=note["due"],
        updated_ms=time_ms, height=height,
    )  # fmt: skip


def trade_row(rec: Mapping[str, Any], height: int) -> TradeRow:
    return TradeRow(
        id=rec["id"], seller=rec["seller"], buyer=rec["buyer"], bank=rec.get("by") or None,
        status=rec["status"], amount_fen=rec["amount"], reasons=tuple(rec.get("reasons", ())),
        attested_ms=rec.get("t"), height=height,
    )  # fmt: skip


def document_row(hex_hash: str, rec: Mapping[str, Any], height: int,
                 stored: DocumentRow | None) -> DocumentRow:  # fmt: skip
    return DocumentRow(
        hash=hex_hash, kind=rec["kind"], issuer=rec["by"],
        counterparty=stored.counterparty if stored else None, trade=rec.get("trade") or None,
        number=stored.number if stored else None,
        amount_fen=stored.amount_fen if stored else None, at_ms=rec["t"], height=height,
    )  # fmt: skip


def org_row(rec: Mapping[str, Any], stored: OrgRow | None, simulated: bool) -> OrgRow:
    return OrgRow(
        id=rec["id"], name=rec["name"], kind=rec["kind"],
        industry=stored.industry if stored else None, region=stored.region if stored else None,
        core=stored.core if stored else None, tier=stored.tier if stored else None,
        bank=rec.get("by") or (stored.bank if stored else None),
        simulated=stored.simulated if stored else simulated,
    )  # fmt: skip


def limit_row(kind: str, bank: str, party: str, rec: Mapping[str, Any], height: int) -> LimitRow:
    """``kind``: "credit" (``credit/<bank>/<core>``) or "limit" (``limit/<bank>/<party>``)."""
    rate = rec.get("discount_rate")
    return LimitRow(
        bank=bank, party=party, kind=kind, limit_fen=rec["limit"], used_fen=rec["used"],
        currency=rec["currency"], rate=None if rate is None else num(rate),
        expires_ms=rec.get("expires"), updated_ms=rec["t"], height=height,
    )  # fmt: skip


def securing(loan: Mapping[str, Any], get: Callable[[str], Any]) -> list[Mapping[str, Any]]:
    """The receipts securing ``loan`` now: its list, a split receipt followed to its
    children, those pledged or frozen for this loan (as the ``loans`` contract walks it)."""
    out: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    todo = list(reversed(loan["receipts"]))
    while todo:
        no = todo.pop()
        if no in seen:
            continue
        seen.add(no)
        r = get(receipt_key(no))
        if r is None:
            continue
        if r["state"] == "split":
            todo.extend(reversed(r["children"]))
        elif r["state"] in SECURING and r.get("loan") == loan["id"]:
            out.append(r)
    return out


def loan_coverage(
    loan: Mapping[str, Any],
    get: Callable[[str], Any],
    price: Decimal | None,
    params: Mapping[str, Any] | None,
) -> Decimal | None:
    """The loan's coverage now; None when nothing is outstanding or the price or the bank's
    parameters are not on the chain."""
    if not loan.get("principal") or price is None or params is None:
        return None
    lines = [cov.Line(r["weight"], price, params["haircut"]) for r in securing(loan, get)]
    return cov.coverage(lines, loan.get("cash_margin", 0), loan["principal"])


def split_key(key: str, prefix: str) -> list[str]:
    """The ``/``-separated parts of ``key`` after ``prefix``."""
    return key[len(prefix) :].split("/")

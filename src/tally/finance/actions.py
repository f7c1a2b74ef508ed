"""Carrying out the collateral monitor's intents: the bank acts on the consortium ledger.

The monitor (:class:`tally.finance.monitor.CollateralMonitor`) never writes: below the warning
line it hands out a margin call, below the disposal line or when a cure period ends the
freeze of every receipt, a stop of outbound movements at every location holding them and the
loan's default (:class:`~tally.finance.monitor_model.Intent`). :class:`Executor` carries them
out as the bank, one after the other in the order given, through a :class:`Submitter` (the
consortium's ``submit``), reading the chain from the bank's own peer (a
:class:`~tally.ledger.state.StateView`):

===============================  ===========================================================
intent (args)                    what the executor does
===============================  ===========================================================
``loans.margin_call``            recomputes the coverage the contract will check — the
(id, coverage)                   chain's own, from the receipts' issued weights and the
                                 on-chain price (:func:`~.contracts.coverage.loan_coverage`),
                                 not the monitor's IoT-verified one — and submits
                                 ``loans.margin_call(id, coverage)``; skipped when the loan
                                 is under a call already
``receipts.freeze``              ``receipts.freeze(no, reason)``; skipped when the receipt
(no, reason)                     is frozen already
``warehouse.stop_outbound``      on chain: every receipt securing the loan at the location
(site, location, lots, loan)     (followed through splits) is frozen, freezing any that is
                                 not — a frozen receipt refuses release and delivery; at the
                                 edge: the site's :class:`SiteOutbound` (the custodian's
                                 :class:`~tally.finance.orders.OrderFeed`) revokes every
                                 release order it handed over for the location
``loans.default`` (id)           ``loans.default(id)``: the loan is ``defaulted`` and every
                                 receipt securing it frozen — disposal has started; the bank
                                 then sells and records ``loans.dispose``. Skipped when the
                                 loan is defaulted or disposing already
===============================  ===========================================================

Each intent gets an :class:`Outcome`: ``done``; ``refused`` with the contract's own reason
(the transaction is committed invalid and changes nothing); ``skipped``, saying the state
that makes it needless; or ``failed`` when the ledger could not be asked (endorsement,
timeout, an MVCC conflict: running the same intents again is safe, done ones are skipped).
A refusal does not stop the intents after it: the freezes protect the goods even when the
chain does not (yet) agree the loan is in default. A stop of outbound reaches the edge even
when its part on chain is refused or fails; its outcome's ``detail`` names the receipts held
there, those it froze and the release orders revoked.

Intents are checked before anything is submitted: an unknown action or malformed arguments
raise :class:`ActionError` naming the intent, the field, the value and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from tally.finance.contracts.coverage import loan_coverage, securing
from tally.finance.keys import loan_key, receipt_key
from tally.finance.monitor_model import Intent
from tally.finance.receipt import iso
from tally.ledger.consortium import TxResult
from tally.ledger.contract import Context, ContractError
from tally.ledger.errors import LedgerError
from tally.ledger.peer import CONTRACT_ERROR
from tally.ledger.state import StateView

DONE, REFUSED, SKIPPED, FAILED = "done", "refused", "skipped", "failed"
STATUSES = (DONE, REFUSED, SKIPPED, FAILED)

ARGS: dict[str, tuple[str, ...]] = {
    "loans.margin_call": ("id", "coverage"),
    "receipts.freeze": ("no", "reason"),
    "warehouse.stop_outbound": ("site", "location", "lots", "loan"),
    "loans.default": ("id",),
}
"""The actions the executor knows and the argument names of each."""

ENDED = ("defaulted", "disposing")
"""Loan states in which a default has happened."""


class ActionError(ValueError):
    """Intents the executor cannot take; nothing was submitted."""


class Submitter(Protocol):
    """Submits a transaction as member ``creator`` and waits for its outcome
    (:meth:`tally.ledger.consortium.Consortium.submit`)."""

    async def submit(
        self, contract: str, fn: str, args: Sequence[Any], creator: str
    ) -> TxResult: ...


class SiteOutbound(Protocol):
    """A site's edge as the custodian connects it (:class:`tally.finance.orders.OrderFeed`)."""

    def stop_outbound(self, location: str, lots: Sequence[str], loan: str) -> list[str]:
        """Revoke the location's authorised releases; return the revoked order ids."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What became of one intent (see the module docstring)."""

    intent: Intent
    status: str
    reason: str = ""
    txs: tuple[TxResult, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


# -- checking intents -------------------------------------------------------------------------


def _name(where: str, key: str, v: Any) -> str:
    if not isinstance(v, str) or not v or "/" in v:
        raise ActionError(f"{where}: {key} must be non-empty text without '/', got {v!r}")
    return v


def _check_args(where: str, action: str, args: Any) -> None:
    keys = ARGS[action]
    if not isinstance(args, Mapping):
        raise ActionError(f"{where}: args must be a map of {', '.join(keys)}, got {args!r}")
    missing = [k for k in keys if k not in args]
    if missing:
        raise ActionError(f"{where}: args must be {', '.join(keys)}; missing: {', '.join(missing)}")
    extra = sorted(str(k) for k in args if k not in keys)
    if extra:
        raise ActionError(f"{where}: args must be {', '.join(keys)}; unknown: {', '.join(extra)}")
    for key in ("id", "no", "site", "location", "loan"):
        if key in keys:
            _name(where, key, args[key])
    if action == "loans.margin_call":
        c = args["coverage"]
        if not isinstance(c, Decimal) or not c.is_finite() or c < 0:
            raise ActionError(f"{where}: coverage must be a non-negative Decimal, got {c!r}")
    if action == "receipts.freeze":
        r = args["reason"]
        if not isinstance(r, str) or not r.strip():
            raise ActionError(f"{where}: reason must be non-empty text, got {r!r}")
    if action == "warehouse.stop_outbound":
        lots = args["lots"]
        if not isinstance(lots, list | tuple) or not lots:
            raise ActionError(f"{where}: lots must be a non-empty list of lots, got {lots!r}")
        for lot in lots:
            _name(where, "each lot", lot)


def check_intents(intents: Sequence[Intent]) -> None:
    """Raise :class:`ActionError` for the first intent the executor cannot take."""
    for i, intent in enumerate(intents):
        if not isinstance(intent, Intent):
            raise ActionError(f"intent {i}: must be an Intent, got {type(intent).__name__}")
        if intent.action not in ARGS:
            raise ActionError(
                f"intent {i}: unknown action {intent.action!r} (known: {', '.join(ARGS)})"
            )
        _check_args(f"intent {i} ({intent.action} {intent.target})", intent.action, intent.args)


# -- the executor -----------------------------------------------------------------------------


def _judged(intent: Intent, r: TxResult, detail: Mapping[str, Any]) -> Outcome:
    if r.valid:
        return Outcome(intent, DONE, "", (r,), detail)
    if r.code == CONTRACT_ERROR:
        return Outcome(intent, REFUSED, r.error, (r,), detail)
    return Outcome(intent, FAILED, f"{r.code}: {r.reason or r.error}", (r,), detail)


class Executor:
    """Carries out monitor intents as ``bank`` (see the module docstring).

    ``state`` is the bank's own peer's state, read before each step; ``edges`` maps a site
    to its connected edge (``warehouse.stop_outbound`` reaches only the edges given here;
    the frozen receipts reach every site through the chain).
    """

    def __init__(
        self,
        bank: str,
        ledger: Submitter,
        state: StateView,
        *,
        edges: Mapping[str, SiteOutbound] | None = None,
    ) -> None:
        self.bank = bank
        self.ledger = ledger
        self.state = state
        self.edges: dict[str, SiteOutbound] = dict(edges or {})

    async def execute(self, intents: Sequence[Intent]) -> list[Outcome]:
        """Check every intent, then carry them out in order; one outcome per intent."""
        check_intents(intents)
        return [await self._one(intent) for intent in intents]

    async def _one(self, intent: Intent) -> Outcome:
        handlers = {
            "loans.margin_call": self._margin_call,
            "receipts.freeze": self._freeze,
            "warehouse.stop_outbound": self._stop_outbound,
            "loans.default": self._default,
        }
        try:
            return await handlers[intent.action](intent)
        except LedgerError as exc:
            return Outcome(intent, FAILED, str(exc))

    # -- reading the chain ----------------------------------------------------------------

    def _get(self, key: str) -> Any:
        found = self.state.get(key)
        return None if found is None else found[0]

    def _ctx(self) -> Context:
        # a read-only view for loan_coverage: no transaction, so no members, chain or consent
        return Context(self.state, self.bank, b"", 0, {}, chain=b"")

    async def _submit(self, contract: str, fn: str, *args: Any) -> TxResult:
        return await self.ledger.submit(contract, fn, list(args), creator=self.bank)

    # -- the actions ----------------------------------------------------------------------

    async def _margin_call(self, intent: Intent) -> Outcome:
        lid, claimed = intent.args["id"], intent.args["coverage"]
        loan = self._get(loan_key(lid))
        if loan is not None and loan["state"] == "margin_call":
            deadline = loan["margin_call"]["deadline"]
            why = f"loan {lid} is under a margin call already, until {iso(deadline)}"
            return Outcome(intent, SKIPPED, why, detail={"deadline": deadline})
        coverage: Decimal = claimed
        if loan is not None:
            try:
                chain = loan_coverage(self._ctx(), loan)
            except ContractError:
                chain = None  # no price or parameters: the contract says so
            if chain is not None:
                coverage = chain
        detail = {"coverage": coverage, "monitor_coverage": claimed}
        r = await self._submit("loans", "margin_call", lid, coverage)
        if r.valid:
            detail["deadline"] = r.result["deadline"]
        return _judged(intent, r, detail)

    async def _freeze(self, intent: Intent) -> Outcome:
        no, reason = intent.args["no"], intent.args["reason"]
        rec = self._get(receipt_key(no))
        if rec is not None and rec["state"] == "frozen":
            f = rec["frozen"]
            why = f"receipt {no} is frozen already by {f['by']} ({f['reason']})"
            return Outcome(intent, SKIPPED, why)
        return _judged(intent, await self._submit("receipts", "freeze", no, reason), {})

    async def _default(self, intent: Intent) -> Outcome:
        lid = intent.args["id"]
        loan = self._get(loan_key(lid))
        if loan is not None and loan["state"] in ENDED:
            return Outcome(intent, SKIPPED, f"loan {lid} is {loan['state']} already")
        r = await self._submit("loans", "default", lid)
        detail = {"reason": r.result["reason"], "owed": r.result["owed"]} if r.valid else {}
        return _judged(intent, r, detail)

    async def _stop_outbound(self, intent: Intent) -> Outcome:
        a = intent.args
        site, location, lots, lid = a["site"], a["location"], tuple(a["lots"]), a["loan"]
        place = f"{site}/{location}"
        txs: list[TxResult] = []
        refused: list[str] = []
        failed: list[str] = []
        held: list[str] = []
        frozen: list[str] = []
        loan = self._get(loan_key(lid))
        if loan is None:
            refused.append(f"loan {lid} is not on the chain")
        else:
            here = [r for r in securing(self._ctx(), loan)
                    if (r["site"], r["location"]) == (site, location)]  # fmt: skip
            for rec in sorted(here, key=lambda r: str(r["no"])):
                held.append(rec["no"])
                if rec["state"] == "frozen":
                    continue
                why = f"outbound stopped at {place}: loan {lid}"
                try:
                    r = await self._submit("receipts", "freeze", rec["no"], why)
                except LedgerError as exc:  # the edge is still told below
                    failed.append(f"receipt {rec['no']}: {exc}")
                    continue
                txs.append(r)
                if r.valid:
                    frozen.append(rec["no"])
                elif r.code == CONTRACT_ERROR:
                    refused.append(r.error)
                else:
                    failed.append(f"receipt {rec['no']}: {r.code}: {r.reason or r.error}")
        revoked: list[str] = []
        edge = self.edges.get(site)
        if edge is not None:
            try:
                revoked = list(edge.stop_outbound(location, lots, lid))
            except Exception as exc:  # the custodian's side: reported, not raised
                failed.append(f"the edge of site {site}: {exc}")
        detail = {"receipts": held, "frozen": frozen, "revoked": revoked,
                  "edge": edge is not None}  # fmt: skip
        if refused:
            return Outcome(intent, REFUSED, "; ".join(refused + failed), tuple(txs), detail)
        if failed:
            return Outcome(intent, FAILED, "; ".join(failed), tuple(txs), detail)
        if frozen or revoked:
            return Outcome(intent, DONE, "", tuple(txs), detail)
        chain = (
            f"every receipt of loan {lid} there is frozen"
            if held
            else f"loan {lid} holds no receipt there"
        )
        reach = (
            "no release order there was left to revoke"
            if edge is not None
            else f"no edge of site {site} is connected here: the frozen receipts carry the order"
        )
        why = f"outbound at {place} is stopped already: {chain}, {reach}"
        return Outcome(intent, SKIPPED, why, tuple(txs), detail)


__all__ = [
    "ARGS",
    "DONE",
    "FAILED",
    "REFUSED",
    "SKIPPED",
    "STATUSES",
    "ActionError",
    "Executor",
    "Outcome",
    "SiteOutbound",
    "Submitter",
    "check_intents",
]

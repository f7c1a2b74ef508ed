"""The harness of the notes and credit tests (it holds no tests itself): the ``notes``,
``credit`` and ``trades`` contracts executed against a real SQLite state and committed one
per block, with the business around a note set up.

Members: banks ``bank`` and ``bank2``, core enterprises ``core`` and ``core2``, a warehouse
``wh`` and a regulator ``reg``. Parties: suppliers ``sup-1``, ``sup-2``, ``sup-3`` (tiers 1
to 3), registered by ``bank`` with keys the test holds. Trades are attested through the real
``trades.anchor`` and ``trades.attest``: an invoice and a waybill document anchored for the
trade, identities derived from the trade id.

Time is explicit: :attr:`NoteChain.t` is the proposal time of the next call (each call moves
it on by one ms); :meth:`NoteChain.at_day` jumps to a business day.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.interest import day, day_start
from tally.finance.keys import credit_key, note_key, noteroot_key, trade_key
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.contract import Execution, Registry, execute
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.state import SqliteState

ORGS = {
    "bank": ["bank"],
    "bank2": ["bank"],
    "core": ["core_enterprise"],
    "core2": ["core_enterprise"],
    "wh": ["warehouse"],
    "reg": ["regulator"],
}
PARTIES = ("sup-1", "sup-2", "sup-3")
DAY0 = 19_783
"""2024-03-01, the business day the harness starts on (10:00 Beijing time)."""
T0 = day_start(DAY0) + 10 * 3_600_000
DAY = 86_400_000
RATE = Decimal("0.036")
"""bank's discount rate for core (annual)."""
LIMIT = 5_000_000_00
"""bank's credit line for core: 5 000 000.00 CNY."""
INVOICED = 1_000_000_00
"""A trade's invoiced total by default: 1 000 000.00 CNY."""


def digest(label: str) -> bytes:
    """A 32-byte hash standing for a document, an identity or a posting."""
    return hashlib.sha256(label.encode()).digest()


class NoteChain:
    """The members, parties and contracts above over one SQLite state."""

    def __init__(self, path: Path) -> None:
        self.keys = {o: SigningKey.generate(INTL) for o in ORGS}
        self.party_keys = {p: SigningKey.generate(INTL) for p in PARTIES}
        self.genesis = Genesis(
            name="notes test",
            suite=INTL,
            t=T0 - 1000,
            members={o: Member(o, tuple(r), self.keys[o].public.raw) for o, r in ORGS.items()},
            policies={**system_policies(ORGS), **default_policies(ORGS)},
            checkpoint_quorum=1,
        )
        self.state = SqliteState(path / "state.sqlite")
        self.registry = Registry(*system_contracts(), *finance_contracts())
        self.height = 0
        self.t = T0
        for p in PARTIES:
            pub = self.party_keys[p].public.raw
            self.ok("parties", "register", p, f"{p} Ltd", "supplier", "intl", pub)

    def close(self) -> None:
        self.state.close()

    # -- running proposals -------------------------------------------------------------------

    def at_day(self, d: int, hour: int = 10) -> None:
        """Make the next proposal's time ``hour``:00 Beijing time on business day ``d`` (or
        stay at the current time if that is later)."""
        assert day(self.t) <= d, f"day {d} is past"
        self.t = max(self.t, day_start(d) + hour * 3_600_000)

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
        """Run a proposal that must be refused; check it changes nothing. Returns the error."""
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

    def note(self, nid: str) -> dict[str, Any]:
        value = self.get(note_key(nid))
        assert value is not None, f"no note {nid}"
        return dict(value)

    def root(self, root: str) -> dict[str, Any]:
        value = self.get(noteroot_key(root))
        assert value is not None, f"no family {root}"
        return dict(value)

    def line(self, bank: str = "bank", core: str = "core") -> dict[str, Any]:
        value = self.get(credit_key(bank, core))
        assert value is not None, f"no credit line of {bank} for {core}"
        return dict(value)

    # -- the business around a note ----------------------------------------------------------

    def trade_record(
        self,
        tid: str,
        seller: str = "sup-1",
        buyer: str = "core",
        invoiced: int = INVOICED,
        paid: int = 0,
        amount: int | None = None,
        status: str = "reconciled",
        currency: str = "CNY",
    ) -> dict[str, Any]:
        """The record ``trades.attest`` takes for trade ``tid``: one invoice, one waybill."""
        return {
            "v": 1, "id": tid, "seller": seller, "buyer": buyer, "status": status,
            "amount": invoiced - paid if amount is None else amount, "currency": currency,
            "invoiced": invoiced, "paid": paid, "invoices": [digest(f"invoice {tid}")],
            "waybills": [digest(f"waybill {tid}")],
            "docs": [digest(f"invoice doc {tid}"), digest(f"waybill doc {tid}")],
            "result": digest(f"report {tid}"),
            "reasons": [] if status == "reconciled" else ["quantities differ by 3 %"],
        }  # fmt: skip

    def trade(self, tid: str = "T1", bank: str = "bank", **kw: Any) -> dict[str, Any]:
        """Trade ``tid`` anchored and attested by ``bank`` (see :meth:`trade_record`)."""
        r = self.trade_record(tid, **kw)
        if self.get(trade_key(tid)) is None:
            for kind, h in zip(("invoice", "waybill"), r["docs"], strict=True):
                self.ok("trades", "anchor", kind, h, tid, creator=bank)
        self.ok("trades", "attest", tid, r, creator=bank)
        return dict(self.get(trade_key(tid)))

    def grant(
        self,
        bank: str = "bank",
        core: str = "core",
        limit: int = LIMIT,
        rate: Decimal = RATE,
        expires: int | None = None,
        currency: str = "CNY",
    ) -> Any:
        until = T0 + 730 * DAY if expires is None else expires
        return self.ok("credit", "grant", core, limit, currency, rate, until, creator=bank)

    def consent(self, party: str, act: str, on: str, terms: Any, seq: int | None = None) -> bytes:
        key = self.party_keys[party] if party in self.party_keys else self.keys[party]
        if seq is None:
            seq = self.note(on)["seq"]
        return make_consent(key, self.genesis.chain, party, act, on, seq, terms)

    def due(self, days: int) -> int:
        """A due time ``days`` business days after today, at 10:00."""
        return day_start(day(self.t) + days) + 10 * 3_600_000

    def issue(
        self,
        nid: str = "N1",
        amount: int = 600_000_00,
        days: int = 90,
        trade: str = "T1",
        holder: str = "sup-1",
        creator: str = "core",
    ) -> Any:
        return self.ok("notes", "issue", nid, holder, amount, self.due(days), trade,
                       creator=creator)  # fmt: skip

    def accept(self, nid: str) -> Any:
        holder = self.note(nid)["holder"]
        return self.ok("notes", "accept", nid, self.consent(holder, "notes.accept", nid, None))

    def live(self, nid: str = "N1", amount: int = 600_000_00, days: int = 90, **kw: Any) -> None:
        """A trade T1 (if there is none) and note ``nid`` issued on it and accepted."""
        if self.get(trade_key(kw.get("trade", "T1"))) is None:
            self.trade(kw.get("trade", "T1"))
        self.issue(nid, amount, days, **kw)
        self.accept(nid)

    def split_args(self, nid: str, parts: list[tuple[str, int]]) -> tuple[Any, ...]:
        children = [{"id": c, "amount": a} for c, a in parts]
        holder = self.note(nid)["holder"]
        c = self.consent(holder, "notes.split", nid, {"children": children})
        return (nid, children, c)

    def split(self, nid: str, parts: list[tuple[str, int]]) -> Any:
        return self.ok("notes", "split", *self.split_args(nid, parts))

    def transfer_args(self, nid: str, to: str) -> tuple[Any, ...]:
        holder = self.note(nid)["holder"]
        return (nid, to, self.consent(holder, "notes.transfer", nid, {"to": to}))

    def transfer(self, nid: str, to: str) -> Any:
        return self.ok("notes", "transfer", *self.transfer_args(nid, to))

    def finance_args(
        self, nid: str, bank: str = "bank", kind: str = "discount", rate: Decimal = RATE
    ) -> tuple[Any, ...]:
        holder = self.note(nid)["holder"]
        terms = {"bank": bank, "kind": kind, "rate": rate}
        return (nid, bank, kind, self.consent(holder, "notes.finance", nid, terms))

    def finance(self, nid: str, bank: str = "bank", kind: str = "discount") -> Any:
        return self.ok("notes", "finance", *self.finance_args(nid, bank, kind), creator=bank)

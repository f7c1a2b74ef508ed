"""Properties of receivable notes under random sequences of operations (hypothesis): issue,
accept, confirm, split, transfer, finance, settle and overdue on random notes, executed
through the real contracts against a real state. After every step:

* every family's bookkeeping holds: Σ live amounts = issued − settled
  (:func:`tally.finance.notes.check_conservation`);
* no amount is created or lost: the notes that are not split (live, financed, overdue and
  settled alike) sum to what was issued;
* a transition the model says must fail is refused and changes nothing (the harness checks
  the state before and after);
* the off-chain index kept from the committed writes agrees with the state.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_finance_notes_harness import DAY0, INVOICED, NoteChain, digest

from tally.finance.interest import day
from tally.finance.keys import note_key
from tally.finance.notes import NoteIndex, check_conservation, provenance

PARTIES = ("sup-1", "sup-2", "sup-3")
OPS = ("split", "transfer", "finance", "confirm", "settle", "overdue", "issue", "later")


@dataclass
class Model:
    """What the test expects of each note: state, amount, holder, confirmed."""

    notes: dict[str, dict[str, Any]]
    issued: int = 0
    trades: int = 1
    serial: int = 0

    def live(self) -> list[str]:
        return sorted(n for n, r in self.notes.items() if r["state"] not in ("split",))

    def new_id(self) -> str:
        self.serial += 1
        return f"n{self.serial}"


def leaves_total(chain: NoteChain) -> int:
    return sum(v["amount"] for k, v in chain.snapshot() if k.startswith("note/")
               if v["state"] not in ("split", "refused"))  # fmt: skip


def step(chain: NoteChain, m: Model, index: NoteIndex, op: str, a: int, b: int) -> None:
    ids = m.live()
    nid = ids[a % len(ids)] if ids else None
    rec = m.notes.get(nid) if nid else None
    due_day = DAY0 + 90
    today = day(chain.t)

    def attempt(ok: bool, contract: str, fn: str, *args: Any, creator: str = "bank") -> Any:
        if not ok:
            chain.refused(contract, fn, *args, creator=creator)
            return None
        ex = chain.run(contract, fn, *args, creator=creator)
        assert ex.error == "", ex.error
        chain.commit(ex.writes)
        index.apply_writes(ex.writes)
        return ex.result

    if op == "issue":
        if today >= DAY0 + 1:
            return  # notes of the sequence share one due day
        tid = f"T{m.trades + 1}"
        m.trades += 1
        chain.trade(tid)
        amount = 1 + a * 997 % INVOICED
        new = m.new_id()
        attempt(True, "notes", "issue", new, "sup-1", amount, chain.due(90), tid, creator="core")
        m.issued += amount
        m.notes[new] = {"state": "offered", "amount": amount, "holder": "sup-1"}
        if b % 4:  # mostly accepted
            consent = chain.consent("sup-1", "notes.accept", new, None)
            attempt(True, "notes", "accept", new, consent)
            m.notes[new]["state"] = "live"
        return
    if op == "later":
        chain.at_day(min(today + 1 + b % 120, due_day + 2))
        return
    if nid is None or rec is None:
        return
    state = rec["state"]
    if op == "split":
        k = 2 + b % 2
        if rec["amount"] < k:
            return
        cut = sorted({1 + (a * 7919 + j * 104729) % (rec["amount"] - 1) for j in range(k - 1)})
        bounds = [0, *cut, rec["amount"]]
        parts = [(f"{nid}.{j}", bounds[j + 1] - bounds[j]) for j in range(len(bounds) - 1)]
        attempt(state == "live", "notes", "split", *chain.split_args(nid, parts))
        if state != "live":
            return
        rec["state"] = "split"
        for cid, amount in parts:
            m.notes[cid] = {"state": "live", "amount": amount, "holder": rec["holder"],
                            "confirmed": rec.get("confirmed")}  # fmt: skip
    elif op == "transfer":
        to = PARTIES[b % len(PARTIES)]
        ok = state == "live" and to != rec["holder"]
        attempt(ok, "notes", "transfer", *chain.transfer_args(nid, to))
        if ok:
            rec["holder"] = to
    elif op == "finance":
        bank = ("bank", "bank2")[b % 2]
        ok = state == "live" and chain.t < chain.note(nid)["due"] and bank == "bank"
        attempt(ok, "notes", "finance", *chain.finance_args(nid, bank), creator=bank)
        if ok:
            rec["state"] = "financed"
    elif op == "confirm":
        ok = state == "live" and not rec.get("confirmed")
        attempt(ok, "notes", "confirm", nid)
        if ok:
            rec["confirmed"] = True
    elif op == "settle":
        if b % 2:
            chain.at_day(max(today, due_day))
        ok = state in ("live", "financed", "overdue") and day(chain.t) >= due_day
        ok = ok and chain.t >= chain.note(nid)["due"]
        attempt(ok, "notes", "settle", nid, digest(f"posting {nid}"), creator="core")
        if ok:
            rec["state"] = "settled"
    elif op == "overdue":
        if b % 2:
            chain.at_day(max(today, due_day + 1))
        ok = state in ("live", "financed") and day(chain.t) > due_day
        attempt(ok, "notes", "overdue", nid, creator="reg")
        if ok:
            rec["state"] = "overdue"


def check(chain: NoteChain, m: Model, index: NoteIndex) -> None:
    assert check_conservation(chain.state) == []
    assert leaves_total(chain) == m.issued  # nothing created, nothing lost
    for nid, rec in m.notes.items():
        got = chain.note(nid)
        assert (got["state"], got["amount"], got["holder"]) == (
            rec["state"], rec["amount"], rec["holder"],
        ), nid  # fmt: skip
        assert index.get(nid).state == got["state"]
        assert index.provenance(nid) == provenance(chain.state, nid).ids
    assert len(index) == len(m.notes)
    held = {p: sorted(n for n, r in m.notes.items() if r["holder"] == p
                      and r["state"] not in ("split", "settled")) for p in PARTIES}  # fmt: skip
    for p in PARTIES:
        assert [r.id for r in index.holdings(p)] == held[p]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 10**6)),
        min_size=1,
        max_size=24,
    )
)
def test_random_sequences_conserve_every_amount(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        chain = NoteChain(Path(d))
        try:
            chain.grant()
            chain.trade("T1")
            chain.live("n0", 700_000_00)
            m = Model({"n0": {"state": "live", "amount": 700_000_00, "holder": "sup-1"}})
            m.issued = 700_000_00
            index = NoteIndex.load(chain.state)
            for op, a, b in ops:
                step(chain, m, index, op, a, b)
                check(chain, m, index)
            assert chain.get(note_key("n0")) is not None
        finally:
            chain.close()

"""``tally bench notes``: receivable notes passed down ten supplier tiers, 10^3 to 10^5 notes.

One state grows through the sizes. Each *family* is one trade (core enterprise ``core``
bought from ``tier-01``), one note issued on it and accepted, then at every tier the holder
splits its note in two, keeps one half and transfers the other to the next tier's supplier:
``tiers`` notes deep, ``2 × tiers − 1`` notes and ``2 × tiers`` operations per family (issue,
accept, ``tiers − 1`` splits and transfers), every split and transfer with the holder's
signed consent.

Executed: the real ``notes`` contract functions (:func:`tally.ledger.contract.execute`, with
the system and finance contracts registered) against a real SQLite world state, each
operation committed in its own block as a peer would; consents are signed beforehand and
the trades attested untimed. ``ops_per_s`` and ``op_us`` time execute + commit of the note
operations. A size of at most ``executed_max`` notes has every family executed; a larger
size executes and times ``sample`` of the families it adds, and writes the others as the
records an executed family left (``note/``, ``noteroot/`` and ``trade/`` keys, ids renamed): the
output says how many notes each size had of each (``executed_notes``, ``cloned_notes``).

Provenance: at each size, ``queries`` notes of the deepest tier chosen at random (seeded)
are traced back to their issue and trade with :func:`tally.finance.notes.provenance` over
the whole state (``provenance_us``: p50, p95), and with a :class:`~tally.finance.notes.
NoteIndex` loaded from it (``index_provenance_us``). ``flatness`` is the largest
``provenance_us.p50`` over the smallest: a walk reads one key per tier, so it stays near 1
however many notes exist (the goal is within 2×).
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tally.bench.common import emit, machine, median, note, percentile, rounded
from tally.crypto import INTL, SigningKey
from tally.finance.consent import make_consent
from tally.finance.interest import day_start
from tally.finance.keys import NOTE, note_key, noteroot_key, trade_key
from tally.finance.notes import NoteIndex, provenance
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import default_policies as system_policies
from tally.ledger.contract import Execution, Registry, execute
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.state import SqliteState

ORGS = {"bank": ("bank",), "core": ("core_enterprise",), "wh": ("warehouse",)}
T0 = day_start(20_454) + 10 * 3_600_000  # 2026-01-01 10:00 Beijing time
DUE = day_start(20_454 + 90) + 10 * 3_600_000
ROOT_AMOUNT = 1_024_000_00
GOAL_FLATNESS = 2.0
CLONE_BLOCK = 5_000
"""Cloned records are written this many per block."""


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def family_id(f: int) -> str:
    return f"F{f:06d}"


def trade_id(f: int) -> str:
    return f"T{f:06d}"


class NotesChain:
    """The members :data:`ORGS`, suppliers ``tier-01``… registered by ``bank``, and the
    contracts, over one SQLite state; a proposal's time moves on 1 ms per call."""

    def __init__(self, path: Path, tiers: int) -> None:
        self.tiers = tiers
        self.keys = {o: SigningKey.generate(INTL) for o in ORGS}
        self.parties = [f"tier-{k:02d}" for k in range(1, tiers + 1)]
        self.party_keys = {p: SigningKey.generate(INTL) for p in self.parties}
        self.genesis = Genesis(
            name="notes bench", suite=INTL, t=T0 - 1000,
            members={o: Member(o, r, self.keys[o].public.raw) for o, r in ORGS.items()},
            policies={**system_policies(ORGS), **default_policies(ORGS)}, checkpoint_quorum=1,
        )  # fmt: skip
        self.state = SqliteState(path / "state.sqlite")
        self.registry = Registry(*system_contracts(), *finance_contracts())
        self.height = 0
        self.t = T0
        for p in self.parties:
            pub = self.party_keys[p].public.raw
            self.ok("parties", "register", p, p, "supplier", "intl", pub)

    def close(self) -> None:
        self.state.close()

    def run(self, contract: str, fn: str, args: tuple[Any, ...], creator: str) -> Execution:
        p = Proposal(self.genesis.chain, contract, fn, args, creator, self.t.to_bytes(8), self.t)
        self.t += 1
        members = members_view(self.state, self.genesis)
        return execute(self.registry, self.state, p, INTL.hash(p.to_cbor()), members)

    def commit(self, writes: Any) -> None:
        self.height += 1
        self.state.apply(self.height, [(k, v, (self.height, 0)) for k, v in writes], b"c")

    def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Any:
        ex = self.run(contract, fn, args, creator)
        if ex.error:
            raise RuntimeError(f"{contract}.{fn}: {ex.error}")
        self.commit(ex.writes)
        return ex.result

    def attest(self, f: int) -> None:
        """Trade ``T<f>``: tier-01 sold to core; its invoice and waybill anchored."""
        tid = trade_id(f)
        docs = [_digest(f"invoice doc {tid}"), _digest(f"waybill doc {tid}")]
        for kind, h in zip(("invoice", "waybill"), docs, strict=True):
            self.ok("trades", "anchor", kind, h, tid)
        record = {
            "v": 1, "id": tid, "seller": self.parties[0], "buyer": "core",
            "status": "reconciled", "amount": ROOT_AMOUNT, "currency": "CNY",
            "invoiced": ROOT_AMOUNT, "paid": 0, "invoices": [_digest(f"invoice {tid}")],
            "waybills": [_digest(f"waybill {tid}")], "docs": docs,
            "result": _digest(f"report {tid}"), "reasons": [],
        }  # fmt: skip
        self.ok("trades", "attest", tid, record)

    def family_ops(self, f: int) -> Iterator[tuple[str, tuple[Any, ...], str]]:
        """(fn, args, creator) of family ``f``'s note operations, consents signed."""
        nid = family_id(f)
        yield "issue", (nid, self.parties[0], ROOT_AMOUNT, DUE, trade_id(f)), "core"
        first, chain = self.parties[0], self.genesis.chain
        accept = make_consent(self.party_keys[first], chain, first, "notes.accept", nid, 0, None)
        yield "accept", (nid, accept), "bank"
        amount = ROOT_AMOUNT
        for k in range(self.tiers - 1):
            holder, nxt = self.parties[k], self.parties[k + 1]
            keep, give = f"{nid}.k", f"{nid}.p"
            children = [{"id": keep, "amount": amount // 2},
                        {"id": give, "amount": amount - amount // 2}]  # fmt: skip
            key = self.party_keys[holder]
            c = make_consent(key, chain, holder, "notes.split", nid, 1, {"children": children})
            yield "split", (nid, children, c), "bank"
            c = make_consent(key, chain, holder, "notes.transfer", give, 0, {"to": nxt})
            yield "transfer", (give, nxt, c), "bank"
            nid, amount = give, amount - amount // 2

    def deepest(self, f: int) -> str:
        return family_id(f) + ".p" * (self.tiers - 1)


def _rename(value: Any, src: tuple[str, str], dst: tuple[str, str]) -> Any:
    if isinstance(value, str):
        for a, b in zip(src, dst, strict=True):
            if value.startswith(a):
                return b + value[len(a) :]
        return value
    if isinstance(value, list):
        return [_rename(v, src, dst) for v in value]
    if isinstance(value, dict):
        return {k: _rename(v, src, dst) for k, v in value.items()}
    return value


def family_records(chain: NotesChain, f: int) -> list[tuple[str, Any]]:
    """The ``note/``, ``noteroot/`` and ``trade/`` records of an executed family."""
    out = [(k, v) for k, v, _ in chain.state.range(note_key(family_id(f)))]
    for key in (noteroot_key(family_id(f)), trade_key(trade_id(f))):
        found = chain.state.get(key)
        assert found is not None, key
        out.append((key, found[0]))
    return out


def clone(chain: NotesChain, template: list[tuple[str, Any]], src: int, families: range) -> int:
    """Write ``families`` as copies of family ``src``'s records; return the notes written."""
    s = (family_id(src), trade_id(src))
    block: list[tuple[str, Any]] = []
    notes = 0
    for f in families:
        d = (family_id(f), trade_id(f))
        for key, value in template:
            new_key = key.replace(s[0], d[0], 1).replace(s[1], d[1], 1)
            block.append((new_key, _rename(value, s, d)))
            notes += key.startswith(NOTE)
        if len(block) >= CLONE_BLOCK:
            chain.commit(block)
            block = []
    if block:
        chain.commit(block)
    return notes


def _stats(seconds: list[float]) -> dict[str, Any]:
    us = [x * 1e6 for x in seconds]
    return {"p50": round(median(us), 2), "p95": round(percentile(us, 95), 2), "n": len(us)}


def _execute(chain: NotesChain, families: range, op_s: list[float]) -> float:
    """Execute ``families`` (trades attested untimed); return the timed seconds."""
    total = 0.0
    for f in families:
        chain.attest(f)
        for fn, args, creator in chain.family_ops(f):
            t = time.perf_counter()
            ex = chain.run("notes", fn, args, creator)
            if ex.error:
                raise RuntimeError(f"notes.{fn} of family {f}: {ex.error}")
            chain.commit(ex.writes)
            dt = time.perf_counter() - t
            op_s.append(dt)
            total += dt
    return total


def _provenance(chain: NotesChain, families: int, queries: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    picks = [chain.deepest(rng.randrange(families)) for _ in range(queries)]
    walk: list[float] = []
    for nid in picks:
        t = time.perf_counter()
        p = provenance(chain.state, nid)
        walk.append(time.perf_counter() - t)
        if len(p.notes) != chain.tiers or p.trade is None:
            raise RuntimeError(f"provenance of {nid}: {len(p.notes)} notes, trade {p.trade}")
    t = time.perf_counter()
    index = NoteIndex.load(chain.state)
    load_s = time.perf_counter() - t
    indexed: list[float] = []
    for nid in picks:
        t = time.perf_counter()
        ids = index.provenance(nid)
        indexed.append(time.perf_counter() - t)
        if len(ids) != chain.tiers:
            raise RuntimeError(f"indexed provenance of {nid}: {ids}")
    return {"provenance_us": _stats(walk), "index_provenance_us": _stats(indexed),
            "index_load_s": rounded(load_s)}  # fmt: skip


def run(
    sizes: tuple[int, ...] = (1000, 10000, 100000),
    tiers: int = 10,
    executed_max: int = 10000,
    sample: int = 100,
    queries: int = 1000,
    seed: int = 1,
    json_only: bool = True,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Grow one state through ``sizes`` notes and measure each (see the module docstring)."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes {sizes!r} must be positive note counts")
    if not 2 <= tiers <= 20:
        raise ValueError(f"tiers must be 2 to 20, got {tiers}")
    per_family = 2 * tiers - 1
    result: dict[str, Any] = {"benchmark": "notes", "tiers": tiers, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="tally-bench-notes-", dir=directory) as d:
        chain = NotesChain(Path(d), tiers)
        try:
            done = executed = cloned = 0
            template: list[tuple[str, Any]] = []
            for n in sorted(sizes):
                families = -(-n // per_family)
                step = range(done, max(done, families))
                op_s: list[float] = []
                if n <= executed_max:
                    run_now, copy = step, range(step.stop, step.stop)
                else:
                    cut = min(step.stop, step.start + sample)
                    run_now, copy = range(step.start, cut), range(cut, step.stop)
                note(json_only, f"notes bench: executing {len(run_now)} families to {n} notes")
                timed = _execute(chain, run_now, op_s)
                executed += len(run_now) * per_family
                if not template:  # family 0: the first size executes at least one family
                    template = family_records(chain, 0)
                if copy:
                    note(json_only, f"notes bench: writing {len(copy)} cloned families")
                    cloned += clone(chain, template, 0, copy)
                done = max(done, families)
                note(json_only, f"notes bench: {queries} provenance queries at {n} notes")
                row: dict[str, Any] = {
                    "notes": done * per_family, "tiers": tiers, "families": done,
                    "executed_notes": executed, "cloned_notes": cloned,
                    "executed_ops": len(op_s),
                    "ops_per_s": round(len(op_s) / timed, 1) if timed > 0 else 0.0,
                    "op_us": _stats(op_s),
                    **_provenance(chain, done, queries, seed),
                }  # fmt: skip
                result["sizes"].append(row)
        finally:
            chain.close()
    p50 = [r["provenance_us"]["p50"] for r in result["sizes"]]
    result["flatness"] = round(max(p50) / min(p50), 3) if min(p50) > 0 else 0.0
    result["goal_flatness"] = GOAL_FLATNESS
    result["goal_met"] = result["flatness"] <= GOAL_FLATNESS
    result["method"] = (
        f"notes operations executed through the contracts against SQLite up to {executed_max} "
        f"notes; beyond, {sample} families per size executed and timed, the rest cloned from "
        "an executed family's note/, noteroot/ and trade/ records; provenance over the full state"
    )
    result["params"] = {"executed_max": executed_max, "sample": sample, "queries": queries,
                        "seed": seed, "notes_per_family": per_family}  # fmt: skip
    result["machine"] = machine()
    return result


def run_notes_bench(sizes: tuple[int, ...], json_only: bool, executed_max: int = 10000) -> int:
    """The ``tally bench notes`` command (``executed_max``: the largest size executed in full;
    10^5 takes about two minutes)."""
    r = run(sizes, executed_max=executed_max, json_only=json_only)
    lines = [
        f"{s['notes']} notes ({s['executed_notes']} executed, {s['cloned_notes']} cloned): "
        f"{s['ops_per_s']} ops/s; provenance p50 {s['provenance_us']['p50']} µs, p95 "
        f"{s['provenance_us']['p95']} µs"
        for s in r["sizes"]
    ]
    lines.append(
        f"flatness {r['flatness']} (goal <= {GOAL_FLATNESS}: "
        f"{'met' if r['goal_met'] else 'NOT met'})"
    )
    return emit(r, json_only, lines)


__all__ = ["NotesChain", "run", "run_notes_bench"]

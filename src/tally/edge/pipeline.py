"""The ingest pipeline: decode → verify → continuity → outbox → rules, one transaction per call.

Per envelope the fast path is one strict parse (:func:`tally.device.envelope.parse_envelope`),
one registry dict lookup, one signature verification, one suite hash and one continuity
check; rows are collected in lists and written by :meth:`Pipeline.ingest_many` in a single
SQLite transaction (one fsync for the whole call). When a call returns, everything it
admitted is durable ("acknowledged").

Rejections never raise: each is counted under ``rejected.<reason>`` (reasons in
:mod:`tally.edge.errors`) and, except duplicates, stored in the quarantine table with the
raw bytes. Continuity findings become signed edge Events with rule ids
``continuity.gap``, ``continuity.counter_reset``, ``continuity.clock_skew``,
``continuity.chain_broken``, ``continuity.conflict`` and ``continuity.replay_old_epoch``;
rule firings become Events with the rule's id. Clock skew is reported once per episode
(kind ``clock_skew``) and again when it ends (kind ``clock_skew_cleared``). Gap
certificates (reason ``not_received``) are issued by :meth:`Pipeline.tick` for counters
still missing after the grace period, and at once for the old epoch's open ranges on a
counter reset.

Full outbox: when storing a reading would take the items' COSE bytes past ``max_bytes``,
the reading is admitted (continuity, rules) but condensed into its device's
:class:`~tally.edge.batcher.CondenseRun` (persisted in the same transaction). A run ends
after ``summary_window_ms``, on a new boot epoch or at :meth:`Pipeline.flush_runs`, and
becomes a signed Summary; if even the Summary does not fit within ``max_bytes`` plus a
reserve of ``max_bytes // 10``, a signed Gap certificate with reason ``disk_full`` replaces
it. Events and gap certificates are always stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tally.crypto import CryptoError, InvalidSignature, Sign1, VerifyKey, WrongSuite
from tally.device.envelope import Reading, parse_envelope
from tally.device.registration import Assurance
from tally.edge.batcher import CondenseRun, frontier_root
from tally.edge.continuity import Continuity, Decision, Verdict
from tally.edge.outbox import ItemRow, Outbox, QuarantineRow
from tally.edge.registry import Entry, Registry
from tally.edge.rules.model import Firing, Observation
from tally.edge.signer import EdgeSigner
from tally.merkle import Hasher

log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Edge time in ms since the Unix epoch."""


class RuleSink(Protocol):
    """The part of the rules engine the pipeline uses."""

    def observe(self, obs: Observation) -> list[Firing]: ...

    def tick(self, now_ms: int) -> list[Firing]: ...


_EVENT_SEV = {
    "gap": "warning",
    "counter_reset": "warning",
    "clock_skew": "warning",
    "chain_broken": "critical",
    "conflict": "critical",
    "replay_old_epoch": "critical",
}


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one envelope: ``outcome`` is a Verdict value or a reject reason."""

    accepted: bool
    outcome: str
    dev: str | None = None
    hash: bytes | None = None


@dataclass
class _Stage:
    """Rows collected during one call, written in one transaction."""

    items: list[ItemRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    staged: dict[tuple[str, int, int], tuple[bytes, bytes]] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)
    bytes: int = 0

    def add_item(self, row: ItemRow) -> None:
        self.items.append(row)
        self.bytes += len(row[8])


class Pipeline:
    """Admits envelopes into the outbox; see the module docstring for the semantics."""

    def __init__(
        self,
        signer: EdgeSigner,
        registry: Registry,
        outbox: Outbox,
        rules: RuleSink | None = None,
        clock: Clock | None = None,
        gap_grace_ms: int = 30_000,
        skew_tolerance_ms: int = 120_000,
        max_bytes: int = 1 << 30,
        summary_window_ms: int = 60_000,
    ) -> None:
        import time

        self.signer = signer
        self.suite = signer.suite
        self.site = signer.site
        self.registry = registry
        self.outbox = outbox
        self.rules = rules
        self.clock: Clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.max_bytes = max_bytes
        self.reserve = max_bytes // 10
        self.summary_window_ms = summary_window_ms
        self.hasher = Hasher.for_name(self.suite.hash_name)
        self._gap_grace_ms = gap_grace_ms
        self._skew_ms = skew_tolerance_ms
        self._skewed: set[str] = set()
        """Devices whose clock is off now: the next envelope within tolerance clears it.
        Not persisted: after a restart an ongoing skew is reported once more."""
        self._load()

    def _load(self) -> None:
        self.continuity = Continuity(self._gap_grace_ms, self._skew_ms, self.outbox.load_states())
        self.counts: dict[str, int] = self.outbox.counters()
        self._changed: set[str] = set()
        self._seq = self.outbox.meta_int("event_seq", 0)
        self.runs = {d: CondenseRun.from_cbor(s) for d, s in self.outbox.load_runs().items()}

    # entry points --------------------------------------------------------------------------

    def ingest(self, data: bytes, source: str = "") -> Result:
        """Admit one envelope (durable when this returns)."""
        return self.ingest_many([data], source)[0]

    def ingest_many(self, envelopes: Sequence[bytes], source: str = "") -> list[Result]:
        """Admit envelopes in order, in one transaction; return one Result per envelope."""
        now = self.clock()
        st = _Stage()
        self._count("received", len(envelopes))
        out = [self._one(st, data, source, now) for data in envelopes]
        self._commit(st)
        return out

    def refuse_input(self, detail: str, source: str = "") -> Result:
        """Count and quarantine (with empty raw bytes) an input that is not bytes at all."""
        st = _Stage()
        self._count("received")
        res = self._reject(st, b"", source, self.clock(), "malformed", detail)
        self._commit(st)
        return res

    def ingest_signed_by_edge(self, reading: Reading, now: int | None = None) -> Result:
        """Sign ``reading`` with the edge key (kid = edge id) and admit it with assurance EDGE.

        The caller has checked that the device is registered with assurance "edge".
        """
        now = self.clock() if now is None else now
        st = _Stage()
        self._count("received")
        data = self.signer.reading(reading)
        entry = self.registry.get(reading.dev)
        profile = entry.reg.profile if entry is not None else ""
        site = (entry.reg.site if entry is not None else "") or self.site
        res = self._admit(
            st, data, reading, self.suite.hash(data), Assurance.EDGE, profile, site, now, "edge"
        )
        self._commit(st)
        return res

    def tick(self, now: int | None = None) -> None:
        """Time-driven work: certify due gaps, tick the rules, end old condense runs."""
        now = self.clock() if now is None else now
        st = _Stage()
        for g in self.continuity.due_gaps(now):
            self._certify(st, g.dev, g.boot, g.first, g.last, "not_received", now)
        if self.rules is not None:
            try:
                firings = self.rules.tick(now)
            except Exception:
                log.exception("rules engine failed on tick")
                firings = []
                self._count("rules_errors")
            for f in firings:
                self._firing(st, f)
        for dev in sorted(self.runs):
            if now - self.runs[dev].started >= self.summary_window_ms:
                self._flush_run(st, dev, now)
        self._commit(st)

    def flush_runs(self, now: int | None = None) -> None:
        """End every condense run now (e.g. at shutdown)."""
        now = self.clock() if now is None else now
        st = _Stage()
        for dev in sorted(self.runs):
            self._flush_run(st, dev, now)
        self._commit(st)

    # the per-envelope path -------------------------------------------------------------------

    def _one(self, st: _Stage, data: bytes, source: str, now: int) -> Result:
        try:
            msg, r = parse_envelope(data, self.suite)
        except WrongSuite as exc:
            return self._reject(st, data, source, now, "wrong_suite", str(exc))
        except (CryptoError, ValueError, TypeError) as exc:
            return self._reject(st, data, source, now, "malformed", str(exc)[:200])
        entry = self.registry.get(msg.kid)
        if entry is None:
            manual = self.registry.get(r.dev)
            if (
                manual is not None
                and manual.reg.kind == "device"
                and manual.reg.assurance is Assurance.MANUAL
                and msg.kid == manual.reg.org
            ):
                # entered by hand: signed by the device's organisation (a trust anchor)
                org_key = self.registry.trust.orgs.get(manual.reg.org)
                if org_key is not None:
                    return self._checked(st, data, msg, r, manual, org_key, source, now)
            return self._reject(st, data, source, now, "unknown_device", msg.kid, r.dev)
        reg = entry.reg
        if msg.kid != r.dev or reg.kind != "device":
            return self._reject(
                st, data, source, now, "signer_mismatch", f"kid {msg.kid!r} dev {r.dev!r}", r.dev
            )
        if entry.key is None or reg.assurance is not Assurance.DEVICE:
            detail = f"{r.dev!r} does not sign for itself (assurance {reg.assurance.label})"
            return self._reject(st, data, source, now, "no_key", detail, r.dev)
        return self._checked(st, data, msg, r, entry, entry.key, source, now)

    def _checked(
        self,
        st: _Stage,
        data: bytes,
        msg: Sign1,
        r: Reading,
        entry: Entry,
        key: VerifyKey,
        source: str,
        now: int,
    ) -> Result:
        """Verify the signature under ``key`` and the revocation, then admit with the
        registration's assurance level."""
        try:
            msg.verify(key)
        except InvalidSignature:
            return self._reject(st, data, source, now, "bad_signature", msg.kid, r.dev)
        except WrongSuite as exc:
            return self._reject(st, data, source, now, "wrong_suite", str(exc), r.dev)
        if entry.revoked_t is not None and entry.revoked(r.t, now):
            return self._reject(
                st, data, source, now, "revoked", f"revoked at {entry.revoked_t}", r.dev
            )
        reg = entry.reg
        h = self.suite.hash(data)
        return self._admit(
            st, data, r, h, reg.assurance, reg.profile, reg.site or self.site, now, source
        )

    def _admit(
        self,
        st: _Stage,
        data: bytes,
        r: Reading,
        h: bytes,
        assurance: Assurance,
        profile: str,
        site: str,
        now: int,
        source: str,
    ) -> Result:
        staged = st.staged
        lookup = self.outbox.lookup

        def find(dev: str, boot: int, ctr: int) -> tuple[bytes, bytes] | None:
            hit = staged.get((dev, boot, ctr))
            return hit if hit is not None else lookup(dev, boot, ctr)

        d = self.continuity.check(r.dev, r.boot, r.ctr, r.prev, r.t, h, now, find)
        if d.verdict not in _ADMITTED:
            return self._refuse(st, data, r, h, d, source, now)
        self._count("accepted")
        self._findings(st, r, h, d, now)
        if self.outbox.live_bytes + st.bytes + len(data) > self.max_bytes:
            self._condense(st, r, data, now)
        else:
            st.add_item(("reading", r.dev, r.boot, r.ctr, h, r.prev, int(assurance), now, data))
        staged[(r.dev, r.boot, r.ctr)] = (h, r.prev)
        if self.rules is not None:
            try:
                firings = self.rules.observe(Observation(r.dev, profile, site, r, h, now))
            except Exception:
                log.exception("rules engine failed on a reading of %s", r.dev)
                firings = []
                self._count("rules_errors")
            for f in firings:
                self._firing(st, f)
        return Result(True, d.verdict.value, r.dev, h)

    def _refuse(
        self, st: _Stage, data: bytes, r: Reading, h: bytes, d: Decision, source: str, now: int
    ) -> Result:
        reason = d.verdict.value
        if d.verdict is Verdict.DUPLICATE:
            self._count("rejected.duplicate")
            return Result(False, reason, r.dev, h)
        self._reject(st, data, source, now, reason, d.detail, r.dev, h)
        if reason in _EVENT_SEV:
            self._event(
                st,
                "continuity." + reason,
                reason,
                _EVENT_SEV[reason],
                now,
                r.dev,
                h,
                (("boot", r.boot), ("ctr", r.ctr), ("why", d.detail)),
            )
        return Result(False, reason, r.dev, h)

    def _findings(self, st: _Stage, r: Reading, h: bytes, d: Decision, now: int) -> None:
        v = d.verdict
        if v is Verdict.ACCEPT or v is Verdict.FIRST:
            pass
        elif v is Verdict.ACCEPT_LATE:
            self._count("late")
        elif v is Verdict.GAP and d.opened is not None:
            self._event(
                st,
                "continuity.gap",
                "gap",
                "warning",
                now,
                r.dev,
                h,
                (("boot", r.boot), ("from", d.opened[0]), ("to", d.opened[1])),
            )
        elif v is Verdict.COUNTER_RESET:
            self._count("counter_resets")
            self._event(
                st,
                "continuity.counter_reset",
                "counter_reset",
                "warning",
                now,
                r.dev,
                h,
                (("boot", r.boot), ("ctr", r.ctr)),
            )
            for boot, first, last in d.certify:
                self._certify(st, r.dev, boot, first, last, "not_received", now)
            if r.dev in self.runs and self.runs[r.dev].boot != r.boot:
                self._flush_run(st, r.dev, now)
        if d.skew_ms is not None:
            self._count("clock_skew")
            if r.dev not in self._skewed:  # one event per episode, not per envelope
                self._skewed.add(r.dev)
                self._event(
                    st,
                    "continuity.clock_skew",
                    "clock_skew",
                    "warning",
                    now,
                    r.dev,
                    h,
                    (("skew_ms", d.skew_ms), ("t_device", r.t)),
                )
        elif r.dev in self._skewed:
            self._skewed.discard(r.dev)
            self._event(
                st,
                "continuity.clock_skew",
                "clock_skew_cleared",
                "info",
                now,
                r.dev,
                h,
                (("t_device", r.t),),
            )

    # helpers ----------------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
        self._changed.add(name)

    def _reject(
        self,
        st: _Stage,
        data: bytes,
        source: str,
        now: int,
        reason: str,
        detail: str,
        dev: str | None = None,
        h: bytes | None = None,
    ) -> Result:
        self._count("rejected." + reason)
        st.quarantine.append((now, source, reason, detail, dev, h, bytes(data)))
        return Result(False, reason, dev, h)

    def _event(
        self,
        st: _Stage,
        rule: str,
        kind: str,
        sev: str,
        t: int,
        dev: str,
        ref: bytes,
        detail: tuple[tuple[str, Any], ...],
    ) -> None:
        self._store_event(st, rule, kind, sev, t, (dev,), (ref,), tuple(sorted(detail)), t)

    def _firing(self, st: _Stage, f: Firing) -> None:
        self._store_event(st, f.rule, f.kind, f.sev, f.t, f.devs, f.refs, f.detail, f.t)

    def _store_event(
        self,
        st: _Stage,
        rule: str,
        kind: str,
        sev: str,
        t: int,
        devs: tuple[str, ...],
        refs: tuple[bytes, ...],
        detail: tuple[tuple[str, Any], ...],
        now: int,
    ) -> None:
        cose = self.signer.event(self._seq, rule, kind, sev, t, devs, refs, detail)
        self._seq += 1
        st.add_item(("event", None, None, None, self.suite.hash(cose), None, 0, now, cose))
        self._count("events." + rule)

    def _certify(
        self, st: _Stage, dev: str, boot: int, first: int, last: int, reason: str, now: int
    ) -> None:
        cose = self.signer.gap(dev, boot, first, last, reason, now)
        st.add_item(("gap", dev, None, None, self.suite.hash(cose), None, 0, now, cose))
        self._count("gap_certificates")
        self._count("gaps_certified", last - first + 1)

    def _condense(self, st: _Stage, r: Reading, data: bytes, now: int) -> None:
        run = self.runs.get(r.dev)
        if run is not None and run.boot != r.boot:
            self._flush_run(st, r.dev, now)
            run = None
        if run is None:
            run = self.runs[r.dev] = CondenseRun(r.boot, r.ctr, r.ctr, now)
        run.add(self.hasher, r, data)
        st.runs.add(r.dev)
        self._count("condensed")

    def _flush_run(self, st: _Stage, dev: str, now: int) -> None:
        run = self.runs.pop(dev, None)
        st.runs.add(dev)
        if run is None or run.n == 0:
            return
        root = frontier_root(self.hasher, run.frontier)
        cose = self.signer.summary(
            dev, run.boot, run.first, run.last, run.n, root, run.summary_stats(), now
        )
        if self.outbox.live_bytes + st.bytes + len(cose) <= self.max_bytes + self.reserve:
            st.add_item(("summary", dev, None, None, self.suite.hash(cose), None, 0, now, cose))
            self._count("summaries")
            self._count("summarised_readings", run.n)
            return
        gap = self.signer.gap(dev, run.boot, run.first, run.last, "disk_full", now)
        st.add_item(("gap", dev, None, None, self.suite.hash(gap), None, 0, now, gap))
        self._count("gap_certificates")
        self._count("gaps_disk_full", run.n)

    def _commit(self, st: _Stage) -> None:
        cont = self.continuity
        if not (st.items or st.quarantine or cont.dirty or self._changed or st.runs):
            return
        try:
            with self.outbox.transaction():
                if st.items:
                    self.outbox.insert_items(st.items)
                if st.quarantine:
                    self.outbox.insert_quarantine(st.quarantine)
                if cont.dirty:
                    self.outbox.save_states((d, cont.states[d]) for d in cont.dirty)
                for dev in st.runs:
                    run = self.runs.get(dev)
                    self.outbox.save_run(dev, None if run is None else run.to_cbor())
                if self._changed:
                    self.outbox.save_counters({n: self.counts[n] for n in self._changed})
                self.outbox.set_meta("event_seq", self._seq)
        except BaseException:
            log.exception("outbox write failed; reloading state from the outbox")
            self._load()
            raise
        cont.dirty.clear()
        self._changed.clear()


_ADMITTED = frozenset(
    {Verdict.FIRST, Verdict.ACCEPT, Verdict.GAP, Verdict.ACCEPT_LATE, Verdict.COUNTER_RESET}
)

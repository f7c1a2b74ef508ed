"""Per-device continuity of the counter chain: gaps, duplicates, replays, reordering, resets,
clock skew. Pure: no I/O; the pipeline persists :class:`DeviceState` in the outbox database
in the same transaction as the envelopes it admits.

For each device the edge keeps ``(boot, ctr, hash, t)`` of the highest envelope of the
current boot epoch and the list of missing counter ranges still held open. An envelope
``(dev, boot, ctr, prev, t)`` with suite hash ``h`` received at edge time ``now`` gets one
:class:`Verdict`:

==================  =========  ==============================================================
verdict             admitted   when
==================  =========  ==============================================================
FIRST               yes        the device was never seen: starts its state, no gap is opened
ACCEPT              yes        ``ctr == last + 1`` and ``prev`` equals the last envelope's hash
GAP                 yes        ``ctr > last + 1``: ``last+1 .. ctr-1`` is opened as missing
ACCEPT_LATE         yes        ``ctr`` lies in an open missing range (reordering); ``prev``
                               must equal the stored predecessor's hash and ``h`` the stored
                               successor's ``prev`` where those are stored
COUNTER_RESET       yes        ``boot`` greater than the current epoch: the old epoch's open
                               ranges are certified at once; ``0 .. ctr-1`` of the new epoch
                               is opened when ``ctr > 0``
DUPLICATE           no         same (dev, boot, ctr) and same hash as a stored envelope
CONFLICT            no         same (dev, boot, ctr) as a stored envelope, other hash
REPLAY_OLD_EPOCH    no         ``boot`` lower than the current epoch
CHAIN_BROKEN        no         ``prev`` does not match the stored neighbour (see ACCEPT/LATE)
STALE               no         ``ctr`` below the last, not open and not remembered
==================  =========  ==============================================================

Clock skew is a flag on any verdict: ``|t - now| > skew_tolerance_ms`` sets
:attr:`Decision.skew_ms` (device minus edge time). An open missing range is held for
``gap_grace_ms`` of edge time from when it was opened; :meth:`Continuity.due_gaps` then hands
out what is still missing so the pipeline can issue Gap certificates (reason
``not_received``). Nothing here mutates state for a rejected envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from tally.crypto import cbor

Lookup = Callable[[str, int, int], "tuple[bytes, bytes] | None"]
"""``lookup(dev, boot, ctr)`` → ``(hash, prev)`` of a stored envelope, or None."""


class Verdict(Enum):
    FIRST = "first"
    ACCEPT = "accept"
    GAP = "gap"
    ACCEPT_LATE = "accept_late"
    COUNTER_RESET = "counter_reset"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REPLAY_OLD_EPOCH = "replay_old_epoch"
    CHAIN_BROKEN = "chain_broken"
    STALE = "stale"

    @property
    def admitted(self) -> bool:
        return self in _ADMITTED


_ADMITTED = frozenset(
    {Verdict.FIRST, Verdict.ACCEPT, Verdict.GAP, Verdict.ACCEPT_LATE, Verdict.COUNTER_RESET}
)


@dataclass(slots=True)
class Missing:
    """Counters ``first``..``last`` (inclusive) of the current epoch, open since edge ``since``."""

    first: int
    last: int
    since: int


@dataclass(slots=True)
class DeviceState:
    """The continuity state of one device; persisted as one row of the outbox database."""

    boot: int
    ctr: int
    hash: bytes
    t: int
    missing: list[Missing] = field(default_factory=list)

    def missing_cbor(self) -> bytes:
        """``[[first, last, since], ...]`` as deterministic CBOR (the persisted form)."""
        return cbor.encode([[m.first, m.last, m.since] for m in self.missing])

    @staticmethod
    def missing_from_cbor(data: bytes) -> list[Missing]:
        return [Missing(int(a), int(b), int(c)) for a, b, c in cbor.decode(data, where="missing")]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one envelope.

    ``opened`` is the missing range a GAP or COUNTER_RESET opened; ``certify`` holds
    ``(boot, first, last)`` ranges to certify at once (the old epoch's open ranges on a
    counter reset); ``detail`` explains a rejection.
    """

    verdict: Verdict
    skew_ms: int | None = None
    opened: tuple[int, int] | None = None
    certify: tuple[tuple[int, int, int], ...] = ()
    detail: str = ""

    @property
    def admitted(self) -> bool:
        return self.verdict in _ADMITTED


@dataclass(frozen=True, slots=True)
class DueGap:
    """A missing range whose grace period has passed: certify it as not received."""

    dev: str
    boot: int
    first: int
    last: int


class Continuity:
    """The continuity checker over all devices' states (``states`` is shared with the caller).

    ``dirty`` collects the ids whose state changed since the caller last cleared it.
    """

    def __init__(
        self,
        gap_grace_ms: int = 30_000,
        skew_tolerance_ms: int = 120_000,
        states: dict[str, DeviceState] | None = None,
    ) -> None:
        self.gap_grace_ms = gap_grace_ms
        self.skew_tolerance_ms = skew_tolerance_ms
        self.states: dict[str, DeviceState] = {} if states is None else states
        self.dirty: set[str] = set()
        self._open: set[str] = {d for d, s in self.states.items() if s.missing}

    def check(
        self,
        dev: str,
        boot: int,
        ctr: int,
        prev: bytes,
        t: int,
        h: bytes,
        now: int,
        lookup: Lookup,
    ) -> Decision:
        """Decide on one envelope and, when it is admitted, advance ``dev``'s state."""
        skew = t - now
        skew_ms = (
            skew if (skew > self.skew_tolerance_ms or -skew > self.skew_tolerance_ms) else None
        )
        st = self.states.get(dev)
        if st is None:
            self.states[dev] = DeviceState(boot, ctr, h, t)
            self.dirty.add(dev)
            return Decision(Verdict.FIRST, skew_ms)
        if boot == st.boot:
            last = st.ctr
            if ctr == last + 1:
                if prev != st.hash:
                    return Decision(
                        Verdict.CHAIN_BROKEN, skew_ms, detail=f"prev does not match ctr {last}"
                    )
                st.ctr, st.hash, st.t = ctr, h, t
                self.dirty.add(dev)
                return Decision(Verdict.ACCEPT, skew_ms)
            if ctr > last + 1:
                st.missing.append(Missing(last + 1, ctr - 1, now))
                st.ctr, st.hash, st.t = ctr, h, t
                self.dirty.add(dev)
                self._open.add(dev)
                return Decision(Verdict.GAP, skew_ms, opened=(last + 1, ctr - 1))
            if ctr == last:
                v = Verdict.DUPLICATE if h == st.hash else Verdict.CONFLICT
                return Decision(v, skew_ms, detail=f"ctr {ctr} already stored")
            return self._older(st, dev, boot, ctr, prev, h, skew_ms, lookup)
        if boot < st.boot:
            return Decision(
                Verdict.REPLAY_OLD_EPOCH, skew_ms, detail=f"boot {boot} < current {st.boot}"
            )
        certify = tuple((st.boot, m.first, m.last) for m in st.missing)
        st.boot, st.ctr, st.hash, st.t = boot, ctr, h, t
        st.missing = [Missing(0, ctr - 1, now)] if ctr > 0 else []
        self.dirty.add(dev)
        if st.missing:
            self._open.add(dev)
        else:
            self._open.discard(dev)
        return Decision(
            Verdict.COUNTER_RESET,
            skew_ms,
            opened=(0, ctr - 1) if ctr > 0 else None,
            certify=certify,
        )

    def _older(
        self,
        st: DeviceState,
        dev: str,
        boot: int,
        ctr: int,
        prev: bytes,
        h: bytes,
        skew_ms: int | None,
        lookup: Lookup,
    ) -> Decision:
        for i, m in enumerate(st.missing):
            if m.first <= ctr <= m.last:
                if ctr > 0:
                    pred = lookup(dev, boot, ctr - 1)
                    if pred is not None and pred[0] != prev:
                        return Decision(
                            Verdict.CHAIN_BROKEN,
                            skew_ms,
                            detail=f"prev does not match ctr {ctr - 1}",
                        )
                succ = lookup(dev, boot, ctr + 1)
                if succ is not None and succ[1] != h:
                    return Decision(
                        Verdict.CHAIN_BROKEN, skew_ms, detail=f"ctr {ctr + 1}'s prev does not match"
                    )
                parts = []
                if m.first < ctr:
                    parts.append(Missing(m.first, ctr - 1, m.since))
                if ctr < m.last:
                    parts.append(Missing(ctr + 1, m.last, m.since))
                st.missing[i : i + 1] = parts
                if not st.missing:
                    self._open.discard(dev)
                self.dirty.add(dev)
                return Decision(Verdict.ACCEPT_LATE, skew_ms)
        known = lookup(dev, boot, ctr)
        if known is None:
            return Decision(Verdict.STALE, skew_ms, detail=f"ctr {ctr} is neither open nor known")
        v = Verdict.DUPLICATE if known[0] == h else Verdict.CONFLICT
        return Decision(v, skew_ms, detail=f"ctr {ctr} already stored")

    def due_gaps(self, now: int) -> list[DueGap]:
        """Remove and return the open ranges whose grace period has passed at edge ``now``."""
        out: list[DueGap] = []
        deadline = now - self.gap_grace_ms
        for dev in sorted(self._open):
            st = self.states[dev]
            keep = [m for m in st.missing if m.since > deadline]
            if len(keep) == len(st.missing):
                continue
            out.extend(
                DueGap(dev, st.boot, m.first, m.last) for m in st.missing if m.since <= deadline
            )
            st.missing = keep
            self.dirty.add(dev)
            if not keep:
                self._open.discard(dev)
        return out

    def next_for(self, dev: str) -> tuple[int, int, bytes]:
        """``(boot, ctr, prev)`` for the next envelope the edge signs for ``dev``."""
        st = self.states.get(dev)
        if st is None:
            return 0, 0, b""
        return st.boot, st.ctr + 1, st.hash

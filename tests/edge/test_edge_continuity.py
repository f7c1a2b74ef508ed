"""Continuity per device, as a table of envelope sequences and the verdicts they must get."""

from __future__ import annotations

import hashlib

import pytest

from tally.edge.continuity import Continuity, DeviceState, DueGap, Missing, Verdict

V = Verdict
GRACE = 30_000
NOW = 1_700_000_000_000


def H(boot: int, ctr: int, alt: str = "") -> bytes:
    return hashlib.sha256(f"{boot}:{ctr}{alt}".encode()).digest()


class Driver:
    """Feeds envelopes of one device; an envelope's chain is H(boot, ctr) unless overridden."""

    def __init__(self, tolerance: int = 120_000) -> None:
        self.c = Continuity(GRACE, tolerance)
        self.store: dict[tuple[str, int, int], tuple[bytes, bytes]] = {}

    def lookup(self, dev: str, boot: int, ctr: int) -> tuple[bytes, bytes] | None:
        return self.store.get((dev, boot, ctr))

    def send(
        self,
        ctr: int,
        boot: int = 0,
        *,
        h: bytes | None = None,
        prev: bytes | None = None,
        t: int = NOW,
        now: int = NOW,
        dev: str = "d",
    ) -> V:
        h = H(boot, ctr) if h is None else h
        prev = (H(boot, ctr - 1) if ctr > 0 else b"") if prev is None else prev
        d = self.c.check(dev, boot, ctr, prev, t, h, now, self.lookup)
        if d.admitted:
            self.store[(dev, boot, ctr)] = (h, prev)
        self.last = d
        return d.verdict


CASES = [
    ("in order", [0, 1, 2, 3], [V.FIRST, V.ACCEPT, V.ACCEPT, V.ACCEPT]),
    (
        "gap then late fill",
        [0, 1, 4, 2, 3],
        [V.FIRST, V.ACCEPT, V.GAP, V.ACCEPT_LATE, V.ACCEPT_LATE],
    ),
    ("duplicate of the last", [0, 1, 1], [V.FIRST, V.ACCEPT, V.DUPLICATE]),
    ("duplicate of an older one", [0, 1, 2, 0], [V.FIRST, V.ACCEPT, V.ACCEPT, V.DUPLICATE]),
    ("first seen mid-stream, older is stale", [5, 6, 3], [V.FIRST, V.ACCEPT, V.STALE]),
]


@pytest.mark.parametrize(("name", "ctrs", "want"), CASES, ids=[c[0] for c in CASES])
def test_sequences(name: str, ctrs: list[int], want: list[V]) -> None:
    d = Driver()
    assert [d.send(c) for c in ctrs] == want


def test_gap_opens_the_missing_range_and_late_fills_split_it() -> None:
    d = Driver()
    d.send(0)
    assert d.send(5) is V.GAP
    assert d.last.opened == (1, 4)
    d.send(3)
    assert d.c.states["d"].missing == [Missing(1, 2, NOW), Missing(4, 4, NOW)]
    assert d.c.states["d"].ctr == 5


def test_gap_is_certified_only_after_the_grace_period() -> None:
    d = Driver()
    d.send(0)
    d.send(4)
    d.send(2)
    assert d.c.due_gaps(NOW + GRACE - 1) == []
    due = d.c.due_gaps(NOW + GRACE)
    assert due == [DueGap("d", 0, 1, 1), DueGap("d", 0, 3, 3)]
    assert d.c.due_gaps(NOW + 10 * GRACE) == []  # certified once
    assert d.send(1, now=NOW + GRACE + 1) is V.STALE  # too late: its gap is certified


def test_conflict_same_counter_other_bytes() -> None:
    d = Driver()
    d.send(0)
    d.send(1)
    d.send(2)
    assert d.send(2, h=H(0, 2, "forged")) is V.CONFLICT
    assert d.send(1, h=H(0, 1, "forged")) is V.CONFLICT
    assert d.c.states["d"].hash == H(0, 2)


def test_old_epoch_is_a_replay() -> None:
    d = Driver()
    d.send(0, boot=1)
    d.send(1, boot=1)
    assert d.send(7, boot=0) is V.REPLAY_OLD_EPOCH
    assert d.c.states["d"].boot == 1


def test_counter_reset_certifies_the_old_epochs_open_ranges() -> None:
    d = Driver()
    d.send(0)
    d.send(3)  # 1..2 open
    assert d.send(0, boot=1) is V.COUNTER_RESET
    assert d.last.certify == ((0, 1, 2),)
    st = d.c.states["d"]
    assert (st.boot, st.ctr, st.missing) == (1, 0, [])
    assert d.send(1, boot=1) is V.ACCEPT


def test_counter_reset_into_the_middle_of_an_epoch_opens_its_start() -> None:
    d = Driver()
    d.send(0)
    assert d.send(3, boot=2) is V.COUNTER_RESET
    assert d.last.opened == (0, 2)
    assert d.send(1, boot=2) is V.ACCEPT_LATE


@pytest.mark.parametrize(
    ("offset", "flagged"), [(0, False), (120_000, False), (120_001, True), (-120_001, True)]
)
def test_clock_skew_is_flagged_but_accepted(offset: int, flagged: bool) -> None:
    d = Driver()
    d.send(0)
    assert d.send(1, t=NOW + offset) is V.ACCEPT
    assert (d.last.skew_ms is not None) is flagged
    if flagged:
        assert d.last.skew_ms == offset


def test_chain_broken_in_order_leaves_state_unchanged() -> None:
    d = Driver()
    d.send(0)
    assert d.send(1, prev=b"\x00" * 32, h=H(0, 1, "x")) is V.CHAIN_BROKEN
    assert d.c.states["d"].ctr == 0
    assert d.send(1) is V.ACCEPT


def test_chain_broken_on_a_late_fill() -> None:
    d = Driver()
    d.send(0)
    d.send(3)
    # predecessor 0 is stored: prev must be its hash
    assert d.send(1, prev=b"\x11" * 32) is V.CHAIN_BROKEN
    # successor 3 is stored and names H(0, 2) as prev: another ctr 2 does not fit
    assert d.send(2, h=H(0, 2, "other")) is V.CHAIN_BROKEN
    assert d.c.states["d"].missing == [Missing(1, 2, NOW)]
    assert d.send(1) is V.ACCEPT_LATE
    assert d.send(2) is V.ACCEPT_LATE


def test_devices_are_independent_and_nothing_changes_on_rejection() -> None:
    d = Driver()
    d.send(0, dev="a")
    d.send(0, dev="b")
    d.c.dirty.clear()
    d.send(0, dev="a")  # duplicate
    d.send(0, boot=0, dev="b", h=H(9, 9))  # conflict
    assert d.c.dirty == set()
    assert d.send(1, dev="b") is V.ACCEPT


def test_missing_ranges_round_trip_through_cbor() -> None:
    st = DeviceState(2, 9, b"h", NOW, [Missing(1, 3, NOW), Missing(5, 5, NOW + 1)])
    assert DeviceState.missing_from_cbor(st.missing_cbor()) == st.missing
    c = Continuity(GRACE, 1000, {"d": st})
    assert c.due_gaps(NOW + GRACE + 1) == [DueGap("d", 2, 1, 3), DueGap("d", 2, 5, 5)]
    assert c.next_for("d") == (2, 10, b"h")
    assert c.next_for("new") == (0, 0, b"")

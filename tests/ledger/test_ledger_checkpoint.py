"""Checkpoint collection: four members sign checkpoints by hand; the collector declares a
height final at the quorum of identical payloads and names, at once, a member whose payload
differs, whichever order the signatures arrive in."""

from __future__ import annotations

import pytest

from tally.crypto import INTL, SigningKey
from tally.ledger.checkpoint import Alarm, CheckpointCollector, verify_checkpoint, verify_final
from tally.ledger.errors import CheckpointInvalid, NotFinal
from tally.ledger.formats import Checkpoint
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis

ORGS = {"a": "bank", "b": "core_enterprise", "c": "warehouse", "d": "logistics"}
KEYS = {o: SigningKey.generate(INTL) for o in ORGS}


def make_genesis(quorum: int = 3) -> Genesis:
    draft = Genesis(
        name="checkpoint-test",
        suite=INTL,
        t=0,
        members={o: Member(o, (r,), KEYS[o].public.raw) for o, r in ORGS.items()},
        policies={},
        checkpoint_quorum=quorum,
        ordering=Ordering(),
    )
    return load_genesis(draft.to_file([draft.sign(o, KEYS[o]) for o in ORGS]))


GENESIS = make_genesis()


def cp(height: int = 5, state: bytes = b"\x11" * 32, chain: bytes | None = None) -> Checkpoint:
    return Checkpoint(chain or GENESIS.chain, height, b"\x22" * 32, state, 9, b"\x33" * 32)


def signed(org: str, checkpoint: Checkpoint, key: SigningKey | None = None) -> bytes:
    return checkpoint.sign(key or KEYS[org], org)


def test_final_at_quorum_of_identical_payloads() -> None:
    seen: list[Alarm] = []
    col = CheckpointCollector(GENESIS, on_alarm=seen.append)
    assert col.add(signed("a", cp())) is None
    assert col.add(signed("a", cp())) is None  # the same member twice counts once
    assert col.add(signed("b", cp())) is None
    final = col.add(signed("c", cp()))
    assert final is not None and final.signers == ("a", "b", "c")
    assert final.checkpoint == cp() and col.final(5) == final
    assert verify_final(GENESIS, final.signatures).checkpoint == cp()
    assert seen == [] and col.latest_final() == final


def test_a_diverging_member_is_named_at_once() -> None:
    seen: list[Alarm] = []
    col = CheckpointCollector(GENESIS, on_alarm=seen.append)
    for org in "abc":
        col.add(signed(org, cp()))
    col.add(signed("d", cp(state=b"\x66" * 32)))
    assert len(seen) == 1
    alarm = seen[0]
    assert (alarm.org, alarm.height, alarm.final) == ("d", 5, True)
    assert alarm.state == b"\x66" * 32 and alarm.expected_state == b"\x11" * 32
    assert alarm.expected_by == ("a", "b", "c") and "state" in alarm.reason
    assert col.alarms_for("d") == [alarm]


def test_a_diverging_member_first_in_line_is_named_once_final() -> None:
    """d signs first; b disagrees with d, so b is named provisionally; once a, b and c make
    the height final, d is named against the final payload and b never is."""
    col = CheckpointCollector(GENESIS)
    col.add(signed("d", cp(state=b"\x66" * 32)))
    col.add(signed("b", cp()))
    col.add(signed("a", cp()))
    final = col.add(signed("c", cp()))
    assert final is not None and final.signers == ("a", "b", "c")
    finals = [a for a in col.alarms if a.final]
    assert [a.org for a in finals] == ["d"]
    assert all(not a.final for a in col.alarms if a.org != "d")


def test_equivocation_is_named() -> None:
    col = CheckpointCollector(GENESIS)
    col.add(signed("a", cp()))
    col.add(signed("a", cp(state=b"\x01" * 32)))
    assert [(a.org, a.reason) for a in col.alarms] == [("a", "signed two different payloads")]
    assert col.signers(5) == {"a": cp().to_cbor()}


def test_invalid_signatures_are_refused() -> None:
    col = CheckpointCollector(GENESIS)
    outsider = SigningKey.generate(INTL)
    with pytest.raises(CheckpointInvalid, match="not a member"):
        col.add(signed("x", cp(), outsider))
    with pytest.raises(CheckpointInvalid, match="signature"):
        col.add(signed("a", cp(), KEYS["b"]))
    with pytest.raises(CheckpointInvalid, match="another chain"):
        col.add(signed("a", cp(chain=b"\x01" * 32)))
    with pytest.raises(CheckpointInvalid):
        col.add(b"not cose")
    assert col.signers(5) == {} and col.alarms == []
    assert verify_checkpoint(GENESIS, signed("c", cp())).org == "c"


def test_verify_final_needs_the_quorum() -> None:
    sigs = [signed("a", cp()), signed("b", cp()), signed("c", cp(state=b"\x01" * 32))]
    with pytest.raises(NotFinal) as err:
        verify_final(GENESIS, sigs)
    assert err.value.signers == ("a", "b") and err.value.quorum == 3
    assert verify_final(GENESIS, [*sigs, signed("d", cp())]).signers == ("a", "b", "d")

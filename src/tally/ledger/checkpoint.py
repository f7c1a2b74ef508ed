"""Checkpoints: verifying the members' signatures, finality at quorum, alarms on divergence.

After each block every peer signs a :class:`~tally.ledger.formats.Checkpoint` (COSE_Sign1,
cty ``application/tally.checkpoint+cbor``, kid = the member org). A checkpoint is *final*
when ``checkpoint_quorum`` distinct members signed identical payload bytes. Honest peers
that applied the same blocks sign identical bytes, so a member whose payload differs at a
height has diverged (or is lying) and is named in an :class:`Alarm` at once.

Naming rule: a payload that differs from the reference payload of its height (the final
one; before finality the one with most signers, the first seen on a tie) names its signer.
When a height becomes final, every signer of another payload not yet named is named
against the final payload (``Alarm.final`` is then True). A member that signs two different
payloads at one height is named for equivocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tally.crypto import CryptoError, VerifyKey, parse_sign1
from tally.ledger.errors import CheckpointInvalid, NotFinal
from tally.ledger.formats import CTY_CHECKPOINT, Checkpoint, decode_checkpoint
from tally.ledger.genesis import Genesis

KeyLookup = Callable[[str, int], VerifyKey | None]
"""``(org, height) -> the org's key valid at that height``, None for a non-member."""


@dataclass(frozen=True)
class Signed:
    """One verified checkpoint signature."""

    org: str
    checkpoint: Checkpoint
    payload: bytes
    cose: bytes


@dataclass(frozen=True)
class FinalCheckpoint:
    """A checkpoint signed by at least the quorum over identical payload bytes."""

    checkpoint: Checkpoint
    payload: bytes
    signatures: tuple[bytes, ...]
    """The COSE_Sign1 signatures, one per signer, in the order of ``signers``."""
    signers: tuple[str, ...]


@dataclass(frozen=True)
class Alarm:
    """A member whose checkpoint for ``height`` differs from the reference payload."""

    height: int
    org: str
    state: bytes
    """The state commitment the named member signed."""
    expected_state: bytes
    """The state commitment of the reference payload."""
    expected_by: tuple[str, ...]
    """The members that signed the reference payload."""
    final: bool
    """True when the reference payload is final."""
    reason: str

    def __str__(self) -> str:
        return (
            f"checkpoint {self.height}: {self.org} signed state {self.state.hex()[:16]}…, "
            f"{', '.join(self.expected_by)} signed {self.expected_state.hex()[:16]}… "
            f"({self.reason})"
        )


def genesis_keys(genesis: Genesis) -> KeyLookup:
    """A key lookup that knows only the genesis members."""
    return lambda org, _height: genesis.key(org)


def verify_checkpoint(genesis: Genesis, cose: bytes, key_for: KeyLookup | None = None) -> Signed:
    """Parse and verify one signed checkpoint; raise :class:`CheckpointInvalid`."""
    key_for = key_for or genesis_keys(genesis)
    try:
        msg = parse_sign1(cose, content_type=CTY_CHECKPOINT, suite=genesis.suite)
    except CryptoError as exc:
        raise CheckpointInvalid(str(exc)) from None
    try:
        cp = decode_checkpoint(msg.payload)
    except CryptoError as exc:
        raise CheckpointInvalid(str(exc), msg.kid) from None
    if cp.chain != genesis.chain:
        raise CheckpointInvalid("checkpoint of another chain", msg.kid)
    key = key_for(msg.kid, cp.height)
    if key is None:
        raise CheckpointInvalid(f"{msg.kid!r} is not a member at height {cp.height}", msg.kid)
    try:
        msg.verify(key)
    except CryptoError as exc:
        raise CheckpointInvalid(str(exc), msg.kid) from None
    return Signed(msg.kid, cp, msg.payload, cose)


def verify_final(
    genesis: Genesis, signatures: Iterable[bytes], key_for: KeyLookup | None = None
) -> FinalCheckpoint:
    """Check that ``signatures`` make one checkpoint final: at least ``checkpoint_quorum``
    distinct members over identical payload bytes. Signatures over other payloads are
    ignored; an invalid signature raises :class:`CheckpointInvalid`, too few :class:`NotFinal`.
    """
    groups: dict[bytes, dict[str, Signed]] = {}
    for cose in signatures:
        s = verify_checkpoint(genesis, cose, key_for)
        groups.setdefault(s.payload, {}).setdefault(s.org, s)
    if not groups:
        raise NotFinal(0, (), genesis.checkpoint_quorum)
    best = max(groups.values(), key=len)
    first = next(iter(best.values()))
    if len(best) < genesis.checkpoint_quorum:
        raise NotFinal(first.checkpoint.height, tuple(sorted(best)), genesis.checkpoint_quorum)
    orgs = tuple(sorted(best))
    return FinalCheckpoint(first.checkpoint, first.payload, tuple(best[o].cose for o in orgs), orgs)


@dataclass
class _Height:
    height: int
    groups: dict[bytes, dict[str, Signed]] = field(default_factory=dict)
    by_org: dict[str, bytes] = field(default_factory=dict)
    named_final: set[str] = field(default_factory=set)
    final: FinalCheckpoint | None = None


class CheckpointCollector:
    """Gathers the members' checkpoint signatures per height; knows which are final and
    raises alarms for members that disagree.

    ``on_alarm`` is called with each :class:`Alarm` as it is raised; all alarms are also
    kept in :attr:`alarms`.
    """

    def __init__(
        self,
        genesis: Genesis,
        key_for: KeyLookup | None = None,
        on_alarm: Callable[[Alarm], None] | None = None,
    ) -> None:
        self.genesis = genesis
        self.quorum = genesis.checkpoint_quorum
        self.key_for = key_for or genesis_keys(genesis)
        self.on_alarm = on_alarm
        self.alarms: list[Alarm] = []
        self._heights: dict[int, _Height] = {}

    def add(self, cose: bytes) -> FinalCheckpoint | None:
        """Add one signed checkpoint; return the height's final checkpoint if there is one.

        Raises :class:`CheckpointInvalid` when the signature does not verify (nothing is
        recorded then).
        """
        s = verify_checkpoint(self.genesis, cose, self.key_for)
        h = self._heights.setdefault(s.checkpoint.height, _Height(s.checkpoint.height))
        known = h.by_org.get(s.org)
        if known is not None:
            if known != s.payload:
                earlier = h.groups[known][s.org]
                self._alarm(
                    h, s, earlier.checkpoint, (s.org,), False, "signed two different payloads"
                )
            return h.final
        ref_payload = self._reference(h)
        h.by_org[s.org] = s.payload
        group = h.groups.setdefault(s.payload, {})
        group[s.org] = s
        if ref_payload is not None and ref_payload != s.payload:
            ref_group = h.groups[ref_payload]
            expected = next(iter(ref_group.values())).checkpoint
            self._alarm(h, s, expected, tuple(sorted(ref_group)), h.final is not None,
                        _differences(expected, s.checkpoint))  # fmt: skip
        if h.final is None and len(group) >= self.quorum:
            orgs = tuple(sorted(group))
            h.final = FinalCheckpoint(
                s.checkpoint, s.payload, tuple(group[o].cose for o in orgs), orgs
            )
            for payload, others in h.groups.items():
                if payload == s.payload:
                    continue
                for org, other in others.items():
                    if org not in h.named_final:
                        self._alarm(h, other, s.checkpoint, orgs, True,
                                    _differences(s.checkpoint, other.checkpoint))  # fmt: skip
        return h.final

    def final(self, height: int) -> FinalCheckpoint | None:
        """The final checkpoint of ``height``, None while it is not final."""
        h = self._heights.get(height)
        return h.final if h is not None else None

    def signers(self, height: int) -> dict[str, bytes]:
        """Every member that signed a checkpoint for ``height`` → its payload bytes."""
        h = self._heights.get(height)
        return dict(h.by_org) if h is not None else {}

    def latest_final(self) -> FinalCheckpoint | None:
        """The final checkpoint of the greatest height, None if none is final."""
        finals = [h.final for h in self._heights.values() if h.final is not None]
        return max(finals, key=lambda f: f.checkpoint.height) if finals else None

    def alarms_for(self, org: str) -> list[Alarm]:
        return [a for a in self.alarms if a.org == org]

    def _reference(self, h: _Height) -> bytes | None:
        if h.final is not None:
            return h.final.payload
        best: bytes | None = None
        for payload, group in h.groups.items():  # insertion order: first seen wins a tie
            if best is None or len(group) > len(h.groups[best]):
                best = payload
        return best

    def _alarm(
        self,
        h: _Height,
        s: Signed,
        expected: Checkpoint,
        expected_by: tuple[str, ...],
        final: bool,
        reason: str,
    ) -> None:
        if final:
            h.named_final.add(s.org)
        alarm = Alarm(
            s.checkpoint.height, s.org, s.checkpoint.state, expected.state, expected_by, final,
            reason,
        )  # fmt: skip
        self.alarms.append(alarm)
        if self.on_alarm is not None:
            self.on_alarm(alarm)


def _differences(expected: Checkpoint, got: Checkpoint) -> str:
    names = [
        n for n in ("block", "state", "size", "root")
        if getattr(expected, n) != getattr(got, n)
    ]  # fmt: skip
    return "differs in " + ", ".join(names) if names else "differs in encoding"

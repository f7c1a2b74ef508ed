"""``plausibility``: a weight drop at a storage location must be explained.

Weight side. Load cells of ``location`` (``devices``, or ``profile`` plus a reading label
``location`` equal to the rule's) report ``quantity`` (tonnes). Readings labelled
``stable = "0"`` (platform still settling) are skipped. Each device keeps a level that moves
only when a reading differs from it by more than ``min_delta``; a move down is a *drop*
(a move up, goods arriving, is not netted against drops). The first drop opens an
episode; drops until ``window_ms`` later join it; at ``t0 + window_ms`` (reached by a
reading's device time or by ``tick``) the episode is judged.

Explanations, gathered over ``[t0 - window_ms, t0 + window_ms]``:

* RFID out-scans: readings of the RFID devices (``rfid_devices``, else ``rfid_profile``)
  labelled ``direction = "out"`` and belonging to the location: a ``location`` label equal
  to the rule's, or (without that label) a ``lot`` label naming a lot of an authorised
  release for the location, or a ``release`` label naming such a release. A scan's quantity
  is its own ``quantity`` measurement or label if it carries one, else its lot's share of
  the release (release quantity / number of lots), else unknown (the scan is counted but
  explains nothing).
* Authorised releases (``RuleEngine.authorise_release``) for the location: each drop is
  covered by releases valid at its time (``valid_from_ms <= t <= valid_to_ms``), up to their
  remaining quantity, which the covered drop uses up.

A release can be revoked (``RuleEngine.revoke_release``, e.g. when the receipt is frozen and
the warehouse is ordered to stop outbound): its validity then ends at the latest time the
rule had seen (a reading's device time or a tick) when the revocation came. It still covers
drops up to then, even if their episode is judged later, but no later drop, and scans taken
after it no longer belong to the location by naming its lots. Re-authorising a revoked
release is refused. Same observations, ticks, releases and revocations in the same order
give the same firings.

Scans of lots of a release that covers the episode are part of that release's quantity and
are not counted twice. ``unexplained = drop - min(drop, independent scans + releases)``; if
it is above ``tolerance`` the rule fires ``unexplained_weight_drop`` with the numbers
(``drop_t``, ``explained_rfid_t``, ``explained_release_t``, ``unexplained_t``). Each scan
explains one episode at most.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.spec import Spec, to_decimal

_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
_SHOW = Decimal("0.000001")
ZERO = Decimal(0)
MAX_DROPS = 64
MAX_SCANS = 1024
MAX_RELEASES = 1024
MAX_REFS = 32


@dataclass
class Release:
    """An authorised release of lots from a location, with what is left of its quantity."""

    ref: str
    location: str
    quantity: Decimal
    lots: tuple[str, ...]
    valid_from_ms: int
    valid_to_ms: int
    remaining: Decimal = ZERO
    revoked_after: int | None = None
    """Once revoked: the last time (ms) the release still covers."""

    def share(self) -> Decimal | None:
        return _CTX.divide(self.quantity, len(self.lots)) if self.lots else None

    def valid_at(self, t: int) -> bool:
        """Whether the release covers a drop or a scan at ``t``."""
        if self.revoked_after is not None and t > self.revoked_after:
            return False
        return self.valid_from_ms <= t <= self.valid_to_ms


@dataclass
class _Scan:
    t: int
    dev: str
    ref: bytes
    lot: str | None
    release: str | None
    location: str | None
    quantity: Decimal | None
    used: bool = False


@dataclass
class _Drop:
    t: int
    amount: Decimal
    dev: str
    refs: tuple[bytes, ...]


@dataclass
class _Episode:
    t0: int
    deadline: int
    drops: list[_Drop] = field(default_factory=list)


def _show(d: Decimal) -> Decimal:
    """``d`` rounded to 1e-6 when it has more decimals (a lot's share of a release)."""
    exp = d.as_tuple().exponent
    return d.quantize(_SHOW, context=_CTX) if isinstance(exp, int) and exp < -6 else d


class Plausibility(Rule):
    TYPE = "plausibility"
    KEYS = SELECTOR_KEYS | {
        "location",
        "quantity",
        "tolerance",
        "window_ms",
        "min_delta",
        "rfid_devices",
        "rfid_profile",
    }
    DEFAULT_SEVERITY = "critical"
    TICKS = True

    def __init__(
        self,
        rule_id: str,
        sev: str,
        cells: Selector,
        rfid: Selector,
        location: str,
        quantity: str = "weight",
        tolerance: Decimal = Decimal("0.2"),
        window_ms: int = 900_000,
        min_delta: Decimal = Decimal("0.05"),
    ) -> None:
        super().__init__(rule_id, sev)
        self.cells = cells
        self.rfid = rfid
        self.location = location
        self.quantity = quantity
        self.tolerance = tolerance
        self.window_ms = window_ms
        self.min_delta = min_delta
        self._level: dict[str, tuple[Decimal, bytes]] = {}
        self._episode: _Episode | None = None
        self._scans: deque[_Scan] = deque(maxlen=MAX_SCANS)
        self._releases: dict[str, Release] = {}
        self._latest: int | None = None

    @classmethod
    def from_spec(cls, spec: Spec) -> Plausibility:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        cells = Selector.from_spec(spec, required=True)
        rfid_devices = spec.strings("rfid_devices", ())
        rfid_profile = spec.string("rfid_profile", None)
        if rfid_profile is None and not rfid_devices:
            rfid_profile = "rfid_gate"
        rfid = Selector(frozenset(rfid_devices), frozenset({rfid_profile} if rfid_profile else ()))
        return cls(
            spec.rule_id,
            sev,
            cells,
            rfid,
            spec.string("location"),
            spec.string("quantity", "weight"),
            spec.decimal("tolerance", Decimal("0.2"), minimum=ZERO),
            spec.integer("window_ms", 900_000, minimum=1),
            spec.decimal("min_delta", Decimal("0.05"), minimum=ZERO),
        )

    def selectors(self) -> tuple[Selector, ...]:
        return (self.cells, self.rfid)

    # -- input ----------------------------------------------------------------------------
    def authorise(self, release: Release) -> None:
        """Record an authorised release for this rule's location.

        Authorising the same release again is a no-op; raises ValueError when ``ref`` was
        already authorised with other terms.
        """
        old = self._releases.get(release.ref)
        if old is not None and old.revoked_after is not None:
            raise ValueError(f"release {release.ref!r} was revoked: it cannot be authorised again")
        if old is not None:
            terms = (old.quantity, old.lots, old.valid_from_ms, old.valid_to_ms)
            if terms == (
                release.quantity,
                release.lots,
                release.valid_from_ms,
                release.valid_to_ms,
            ):
                return
            raise ValueError(f"release {release.ref!r} was already authorised with other terms")
        release.remaining = release.quantity
        self._releases[release.ref] = release
        if len(self._releases) > MAX_RELEASES:
            oldest = min(self._releases.values(), key=lambda r: (r.valid_to_ms, r.ref))
            del self._releases[oldest.ref]

    def is_revoked(self, ref: str) -> bool:
        rel = self._releases.get(ref)
        return rel is not None and rel.revoked_after is not None

    def revoke(self, ref: str) -> bool:
        """Revoke release ``ref`` (see the module docstring): it covers nothing after the
        latest time this rule has seen. False when the rule holds no such release or it was
        revoked already."""
        rel = self._releases.get(ref)
        if rel is None or rel.revoked_after is not None:
            return False
        rel.revoked_after = self._latest if self._latest is not None else rel.valid_from_ms - 1
        return True

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        if r.heartbeat:
            return
        if self.cells.matches(obs.dev, obs.profile) and (
            obs.dev in self.cells.devices or r.label("location") == self.location
        ):
            self._advance(r.t, out)
            self._weigh(obs)
            return
        if self.rfid.matches(obs.dev, obs.profile) and r.label("direction") == "out":
            qty = r.value(self.quantity)
            if qty is None:
                qty = to_decimal(r.label(self.quantity))
            self._scans.append(
                _Scan(
                    r.t,
                    obs.dev,
                    obs.env_hash,
                    r.label("lot"),
                    r.label("release"),
                    r.label("location"),
                    qty,
                )
            )
        self._advance(r.t, out)

    def tick(self, now_ms: int, out: list[Firing]) -> None:
        self._advance(now_ms, out)

    def _advance(self, t: int, out: list[Firing]) -> None:
        if self._latest is None or t > self._latest:
            self._latest = t
        ep = self._episode
        if ep is not None and t >= ep.deadline:
            self._episode = None
            self._judge(ep, out)
        horizon = self._latest - 2 * self.window_ms
        while self._scans and self._scans[0].t < horizon:
            self._scans.popleft()
        for ref in [k for k, rel in self._releases.items() if rel.valid_to_ms < horizon]:
            del self._releases[ref]

    def _weigh(self, obs: Observation) -> None:
        r = obs.reading
        if r.label("stable") == "0":
            return
        w = r.value(self.quantity)
        if w is None:
            return
        prev = self._level.get(obs.dev)
        if prev is None:
            self._level[obs.dev] = (w, obs.env_hash)
            return
        level, level_ref = prev
        if abs(w - level) <= self.min_delta:
            return
        self._level[obs.dev] = (w, obs.env_hash)
        if w > level:
            return
        ep = self._episode
        if ep is None:
            ep = self._episode = _Episode(r.t, r.t + self.window_ms)
        drop = _Drop(r.t, _CTX.subtract(level, w), obs.dev, (level_ref, obs.env_hash))
        if len(ep.drops) < MAX_DROPS:
            ep.drops.append(drop)
        else:
            last = ep.drops[-1]
            ep.drops[-1] = _Drop(r.t, _CTX.add(last.amount, drop.amount), last.dev, last.refs)

    # -- judgement ------------------------------------------------------------------------
    def _release_of(self, scan: _Scan) -> Release | None:
        if scan.release is not None and scan.release in self._releases:
            rel = self._releases[scan.release]
            if rel.revoked_after is None or scan.t <= rel.revoked_after:
                return rel
        if scan.lot is not None:
            for rel in self._releases.values():
                if scan.lot in rel.lots and (
                    rel.revoked_after is None or scan.t <= rel.revoked_after
                ):
                    return rel
        return None

    def _judge(self, ep: _Episode, out: list[Firing]) -> None:
        lo, hi = ep.t0 - self.window_ms, ep.deadline
        valid = {rel.ref for rel in self._releases.values() for d in ep.drops if rel.valid_at(d.t)}
        scans: list[_Scan] = []
        rfid_t = indep_t = ZERO
        for s in self._scans:
            if s.used or not lo <= s.t <= hi:
                continue
            rel = self._release_of(s)
            if s.location is not None and s.location != self.location:
                continue
            if s.location is None and rel is None:
                continue
            s.used = True
            scans.append(s)
            qty = s.quantity if s.quantity is not None else (rel.share() if rel else None)
            if qty is None:
                continue
            rfid_t = _CTX.add(rfid_t, qty)
            if rel is None or rel.ref not in valid:
                indep_t = _CTX.add(indep_t, qty)
        total = release_t = used_indep = ZERO
        used: set[str] = set()
        ordered = sorted(
            (r for r in self._releases.values() if r.ref in valid),
            key=lambda r: (r.valid_from_ms, r.ref),
        )
        for d in ep.drops:
            total = _CTX.add(total, d.amount)
            take = min(d.amount, _CTX.subtract(indep_t, used_indep))
            used_indep = _CTX.add(used_indep, take)
            need = _CTX.subtract(d.amount, take)
            for rel in ordered:
                if need <= 0:
                    break
                if rel.remaining > 0 and rel.valid_at(d.t):
                    take = min(need, rel.remaining)
                    rel.remaining = _CTX.subtract(rel.remaining, take)
                    release_t = _CTX.add(release_t, take)
                    used.add(rel.ref)
                    need = _CTX.subtract(need, take)
        unexplained = _CTX.subtract(total, _CTX.add(used_indep, release_t))
        if unexplained <= self.tolerance:
            return
        devs = sorted({d.dev for d in ep.drops} | {s.dev for s in scans})
        refs: list[bytes] = []
        for ref in [x for d in ep.drops for x in d.refs] + [s.ref for s in scans]:
            if ref not in refs and len(refs) < MAX_REFS:
                refs.append(ref)
        out.append(
            self.firing(
                "unexplained_weight_drop",
                ep.deadline,
                tuple(devs),
                tuple(refs),
                detail(
                    location=self.location,
                    quantity=self.quantity,
                    drop_t=_show(total),
                    explained_rfid_t=_show(min(total, rfid_t)),
                    explained_release_t=_show(release_t),
                    unexplained_t=_show(unexplained),
                    tolerance_t=self.tolerance,
                    scans_out=len(scans),
                    releases=",".join(sorted(used)),
                    from_ms=ep.t0,
                    to_ms=ep.drops[-1].t,
                    window_ms=self.window_ms,
                ),
            )
        )

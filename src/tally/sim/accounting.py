"""What the demo proves at the end: every envelope a genuine device produced is stored in
the cloud or covered by a certified gap, and nothing is stored twice."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tally.cloud.storage.api import ANCHORED, ItemQuery, ItemRecord, Storage


@dataclass
class Accounting:
    produced: int = 0
    stored: int = 0
    stored_device_kinds: Counter[str] = field(default_factory=Counter)
    certified: int = 0
    unaccounted: list[tuple[str, int, int]] = field(default_factory=list)
    duplicates_stored: int = 0
    stored_by_kind: Counter[str] = field(default_factory=Counter)
    stored_by_assurance: Counter[int] = field(default_factory=Counter)
    events_by_rule: Counter[str] = field(default_factory=Counter)
    gap_certificates: int = 0


def all_items(storage: Storage, kinds: tuple[str, ...]) -> list[ItemRecord]:
    """Every stored item of ``kinds`` (any organisation), page by page."""
    out: list[ItemRecord] = []
    after: tuple[int, int] | None = None
    while True:
        page = storage.items(ItemQuery(kinds=kinds, limit=1000, after=after))
        out.extend(page.items)
        if page.next_after is None or not page.items:
            return out
        after = page.next_after


def account(storage: Storage, produced: dict[str, set[tuple[int, int]]]) -> Accounting:
    acc = Accounting(produced=sum(len(v) for v in produced.values()))
    seen: Counter[tuple[str, int, int]] = Counter()
    kinds: dict[tuple[str, int, int], str] = {}
    for it in all_items(storage, ("reading", "heartbeat")):
        acc.stored_by_kind[it.kind] += 1
        acc.stored_by_assurance[it.assurance] += 1
        if it.device is not None and it.boot is not None and it.ctr is not None:
            seen[(it.device, it.boot, it.ctr)] += 1
            kinds[(it.device, it.boot, it.ctr)] = it.kind
    acc.duplicates_stored = sum(n - 1 for n in seen.values() if n > 1)
    for ev in all_items(storage, ("event",)):
        acc.events_by_rule[ev.rule or "?"] += 1
    gaps: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for dev in produced:
        for g in storage.gaps(dev):
            gaps.setdefault((g.device, g.boot), []).append((g.first, g.last))
            acc.gap_certificates += 1
    for dev, ids in sorted(produced.items()):
        for boot, ctr in sorted(ids):
            if seen.get((dev, boot, ctr)):
                acc.stored += 1
                acc.stored_device_kinds[kinds[(dev, boot, ctr)]] += 1
            elif any(a <= ctr <= b for a, b in gaps.get((dev, boot), [])):
                acc.certified += 1
            else:
                acc.unaccounted.append((dev, boot, ctr))
    return acc


def reading_to_checkpoint_s(storage: Storage, sent_at_ms: Mapping[bytes, int]) -> list[float]:
    """For every stored reading whose send time is known (item hash -> wall ms), the wall
    seconds from its send to the final checkpoint covering its batch's anchor; sorted."""
    readings = all_items(storage, ("reading",))
    anchors = storage.anchors({r.batch_id for r in readings})
    out: list[float] = []
    for r in readings:
        sent = sent_at_ms.get(r.hash)
        a = anchors.get(r.batch_id)
        if sent is not None and a is not None and a.state == ANCHORED:
            out.append((a.t - sent) / 1000)
    return sorted(out)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]

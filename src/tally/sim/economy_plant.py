"""The patterns planted in the synthetic economy, and the ground truth they leave.

Chosen before the flows are generated (so the flows respect them), disjoint from each other:

* **Shell companies** — clusters of 3–5 young, thinly capitalised firms outside the supply
  chain with one legal representative (sometimes also one director) and one office-service
  address; no production, no outside trade; most borrow.
* **Family groups** (the hard negative) — 2–3 real SMEs of one tier sharing a founder and a
  factory compound, trading with each other; about 4 % of groups have a young trading arm
  with no production that trades only with its siblings (it looks like a shell).
* **A core enterprise in distress** — the AA+/AA-rated core with the most suppliers: its
  electricity falls, its notes due in the last quarter are overdue, its loans past due.
* **Guarantee circles** — 2–6 SMEs each guaranteeing the next one's loan; a fifth of them
  share one firm with an earlier circle (a figure eight: two circles, no more); the newest
  few closed within the last day. **Broken circles**: one guarantee released (no circle).
  Circle firms guarantee nobody else, so the planted circles are all the circles there are.
* **Circular trades** — 3–6 firms (shells, or SMEs of one tier) selling round within two
  months at almost the same amount, once or twice. **Slow loops** (not circular under the
  90-day window): 3–4 SMEs selling round with more than 90 days between hops.
* **Financing needs** — tier-1 suppliers of strong (AAA/AA+/AA), healthy cores holding
  confirmed notes, with no loan, rising electricity and steady inventory.
"""

from __future__ import annotations

from tally.graph.cycles import canonical
from tally.graph.records import Guarantee, Role
from tally.sim.economy_world import AS_OF, DAY, START, TRADE_BASE, WFirm, World

STRONG = ("AAA", "AA+", "AA")
CIRCLE_SIZES = (2, 3, 4, 5, 6)
CIRCLE_WEIGHTS = (40, 25, 15, 10, 10)


class Pools:
    """Upstream SMEs by tier, shuffled once; :meth:`take` hands out unplanted ones."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.by_tier: dict[int, list[WFirm]] = {t: [] for t in range(1, 5)}
        for f in w.firms:
            if 1 <= f.tier <= 4:
                self.by_tier[f.tier].append(f)
        for pool in self.by_tier.values():
            w.rng.shuffle(pool)

    def take(self, tier: int, planted: str) -> WFirm:
        pool = self.by_tier[tier]
        while pool:
            f = pool.pop()
            if not f.planted:
                f.planted = planted
                return f
        raise ValueError(f"the economy is too small: no unplanted SME left in tier {tier}")

    def any_tier(self, planted: str) -> WFirm:
        tiers = [t for t in range(1, 5) if self.by_tier[t]]
        return self.take(self.w.rng.choice(tiers), planted)


def shell_sizes(w: World) -> list[int]:
    return [3 + w.rng.randrange(3) for _ in range(w.count(120, 3))]


def choose(w: World, sizes: list[int]) -> None:
    """Pick every planted firm and give shells and families their shared registrations."""
    r = w.rng
    t = w.truth
    pools = Pools(w)
    shells = [f for f in w.firms if f.planted == "shell"]
    t["shell_clusters"] = []
    i = 0
    for size in sizes:
        cluster = shells[i : i + size]
        i += size
        rep = w.person()
        director = w.person() if r.random() < 0.5 else ""
        office = w.address(" (office service centre)")
        shared = w.account() if r.random() < 0.3 else ""
        for f in cluster:
            f.roles = [Role(rep, "legal_rep"), Role(rep, "shareholder", 10_000)]
            if director:
                f.roles.append(Role(director, "director"))
            f.addresses = [office]
            f.accounts = [w.account()] + ([shared] if shared else [])
        t["shell_clusters"].append([f.id for f in cluster])
    t["family_groups"] = []
    for _ in range(w.count(250, 3)):
        tier = r.randrange(1, 5)
        group = [pools.take(tier, "family") for _ in range(2 + (r.random() < 0.35))]
        founder, compound = w.person(), w.address(" (factory compound)")
        shared = w.account() if r.random() < 0.3 else ""
        for f in group:
            f.roles = [
                Role(founder, "legal_rep"),
                Role(founder, "shareholder", 6000),
                Role(w.person(), "shareholder", 4000),
            ]
            f.addresses = [compound]
            f.accounts = [w.account()] + ([shared] if shared else [])
        if r.random() < 0.04:
            arm = group[-1]
            arm.planted = "family_arm"
            arm.founded = AS_OF - r.randrange(200, 500) * DAY
            arm.capital = r.randrange(200_000, 800_000) * 100
        t["family_groups"].append([f.id for f in group])
    cores = [f for f in w.firms if f.kind == "core" and f.rating in ("AA+", "AA")]
    distress = max(cores, key=lambda f: len(f.suppliers))
    distress.planted = "distress"
    t["distressed_core"] = distress.id
    for s in distress.suppliers:
        sup = w.by_id[s]
        sup.distress_chain = True
        for s2 in sup.suppliers:
            w.by_id[s2].distress_chain = True
    _circles(w, pools)
    _cycles(w, pools, shells)
    t["financing_needs"] = []
    tier1 = list(pools.by_tier[1])
    for f in reversed(tier1):
        if len(t["financing_needs"]) >= w.count(400, 5):
            break
        if f.planted or f.industry in ("hotels", "leasing"):
            continue
        if any(w.by_id[b].rating in STRONG and not w.by_id[b].planted for b in f.buyers):
            f.planted = "need"
            t["financing_needs"].append(f.id)


def _circles(w: World, pools: Pools) -> None:
    r = w.rng
    circles: list[list[str]] = []
    eights: list[bool] = []
    for i in range(w.count(150, 6)):
        size = r.choices(CIRCLE_SIZES, weights=CIRCLE_WEIGHTS)[0]
        eight = i > 0 and r.random() < 0.2
        members = [pools.any_tier("circle").id for _ in range(size - eight)]
        if eight:
            members.insert(r.randrange(len(members) + 1), r.choice(r.choice(circles)))
        circles.append(members)
        eights.append(eight)
    plain = [i for i, e in enumerate(eights) if not e]
    w.truth["guarantee_circles"] = circles
    w.truth["new_circles"] = [circles[i] for i in plain[-w.count(3, 1) :]]
    w.truth["broken_circles"] = [
        [pools.any_tier("broken").id for _ in range(3 + r.randrange(3))]
        for _ in range(w.count(30, 2))
    ]
    for group in (*circles, *w.truth["broken_circles"]):
        for fid in group:
            w.by_id[fid].no_guarantor = True


def _cycles(w: World, pools: Pools, shells: list[WFirm]) -> None:
    r = w.rng
    free = list(shells)
    r.shuffle(free)
    cycles: list[list[str]] = []
    for i in range(w.count(80, 6)):
        n = 3 + r.randrange(4)
        if i % 2 == 0 and len(free) >= n:
            cycles.append([free.pop().id for _ in range(n)])
        else:
            tier = r.randrange(1, 5)
            cycles.append([pools.take(tier, "cycle").id for _ in range(n)])
    w.truth["circular_trades"] = cycles
    loops = []
    for _ in range(w.count(30, 2)):
        tier = r.randrange(1, 5)
        loops.append([pools.take(tier, "loop").id for _ in range(3 + r.randrange(2))])
    w.truth["slow_loops"] = loops


def cycle_trades(w: World) -> None:
    """The trades of circular trades, slow loops and family groups."""
    r = w.rng
    for cyc in w.truth["circular_trades"]:
        base = int(w.lognormal(2_000_000, 0.5)) * 100
        for _ in range(1 + (r.random() < 0.5)):
            t = w.date(START, AS_OF - 75 * DAY)
            for i, a in enumerate(cyc):
                b = cyc[(i + 1) % len(cyc)]
                amount = int(base * (1 + r.gauss(0, 0.02)))
                w.trade(w.by_id[a], w.by_id[b], amount, t, 15, r.randrange(-5, 2))
                t += r.randrange(2, 12) * DAY
    for loop in w.truth["slow_loops"]:
        t = START + r.randrange(0, 20) * DAY
        for i, a in enumerate(loop):
            fa, fb = w.by_id[a], w.by_id[loop[(i + 1) % len(loop)]]
            amount = int(w.lognormal(TRADE_BASE[fa.industry], 0.4)) * 100
            w.trade(fa, fb, amount, t, 30, r.randrange(-3, 6))
            t += r.randrange(95, 111) * DAY
    for group in w.truth["family_groups"]:
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                fa, fb = w.by_id[a], w.by_id[b]
                arm = "family_arm" in (fa.planted, fb.planted)
                for _ in range(1 + (r.random() < 0.5) + 2 * arm):
                    amount = int(w.lognormal(TRADE_BASE[fa.industry] / 2, 0.5)) * 100
                    w.trade(fa, fb, amount, w.date(), 30, r.randrange(-5, 10))


def circle_guarantees(w: World) -> None:
    """The guarantees of planted circles (creating a loan for a debtor without one)."""
    r = w.rng
    new = {tuple(c) for c in w.truth["new_circles"]}
    groups = [(c, tuple(c) in new, False) for c in w.truth["guarantee_circles"]]
    groups += [(c, False, True) for c in w.truth["broken_circles"]]
    for members, is_new, broken in groups:
        for i, g in enumerate(members):
            d = w.by_id[members[(i + 1) % len(members)]]
            idx = w.loans_of.get(d.id)
            if idx:
                loan = w.loans[idx[0]]
            else:
                p = int(w.lognormal(1_500_000, 0.5)) * 100
                loan = w.loan(w.bank(), d, "working", p, p, w.date())
            last = i == len(members) - 1
            t = AS_OF - r.randrange(1, 20) * 3_600_000 if is_new and last else w.date()
            amount = int(loan.principal * r.uniform(0.5, 1.0))
            w.guarantees.append(
                Guarantee(
                    w.next_id("G", 6), g, d.id, loan.bank, loan.id, amount, t, not (broken and last)
                )
            )


def truth(w: World) -> dict[str, object]:
    """The ground truth, canonical (cycles from their least firm, lists sorted)."""
    t = w.truth
    shells = sorted(f for c in t["shell_clusters"] for f in c)
    return {
        "simulated": True,
        "seed": w.seed,
        "scale": w.scale,
        "as_of": w.as_of,
        "guarantee_circles": sorted(list(canonical(c)) for c in t["guarantee_circles"]),
        "new_circles": sorted(list(canonical(c)) for c in t["new_circles"]),
        "broken_circles": sorted(list(canonical(c)) for c in t["broken_circles"]),
        "shell_companies": shells,
        "shell_clusters": sorted(sorted(c) for c in t["shell_clusters"]),
        "circular_trades": sorted(list(canonical(c)) for c in t["circular_trades"]),
        "slow_loops": sorted(list(canonical(c)) for c in t["slow_loops"]),
        "distressed_core": t["distressed_core"],
        "financing_needs": sorted(t["financing_needs"]),
        "family_groups": sorted(sorted(g) for g in t["family_groups"]),
        "family_arms": sorted(f.id for f in w.firms if f.planted == "family_arm"),
    }


__all__ = ["Pools", "choose", "circle_guarantees", "cycle_trades", "shell_sizes", "truth"]

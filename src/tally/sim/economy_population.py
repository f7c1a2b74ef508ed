"""The synthetic economy's population: banks, core enterprises, SMEs and their chains.

* 12 banks; core enterprises (4,800 at scale 1) spread over the eight industries with at
  least one each, rated ``AAA`` … ``BBB``; SMEs (34,000 at scale 1, shells included): 15 %
  downstream dealers buying from one or two cores, the rest upstream in tiers 1–4 (35, 28,
  22 and 15 %), each selling to one to three firms of the tier below it — its own industry
  85 % of the time. Supply edges always go from tier ``k`` to ``k − 1`` (and from a core to
  its dealers), so the chain has no cycle of its own.
* Registrations: a legal representative (6 % of them serial entrepreneurs who also run
  other firms elsewhere), one to three shareholders, an address (a quarter in a business
  park shared with unrelated firms), one or two bank accounts. Firms whose registration
  was planted (shells, family groups) keep what the plant gave them.
"""

from __future__ import annotations

import math
from itertools import pairwise

from tally.graph.records import INDUSTRIES, Bank, Role
from tally.sim.economy_world import DAY, N_CORES, N_SMES, START, WFirm, World

RATINGS = ("AAA", "AA+", "AA", "A", "BBB")
RATING_WEIGHTS = (10, 20, 30, 25, 15)
TIER_SHARES = (35, 28, 22, 15)
DEALER_SHARE = 0.15
SERIAL_SHARE = 0.06
PARK_SHARE = 0.25
PARK_FIRMS = 6  # firms per business-park address, on average


def banks(w: World) -> None:
    for i in range(1, 13):
        w.banks.append(Bank(f"BANK{i:02d}", f"Simulated Bank {i:02d}"))


def cores(w: World) -> None:
    n = w.count(N_CORES, len(INDUSTRIES))
    r = w.rng
    for i in range(n):
        industry = INDUSTRIES[i] if i < len(INDUSTRIES) else w.industry()
        rating = r.choices(RATINGS, weights=RATING_WEIGHTS)[0]
        capital = int(w.lognormal(500e6, 0.8)) * 100
        founded = START - r.randrange(8 * 365, 40 * 365) * DAY
        z = {"AAA": -1.5, "AA+": -1.0, "AA": -0.6, "A": 0.0, "BBB": 0.6}[rating]
        f = WFirm(f"C{i + 1:05d}", "core", industry, 0, z, capital, founded, rating)
        f.banks = sorted({w.bank() for _ in range(r.randrange(1, 3))})
        w.add_firm(f)


def _sme(w: World, tier: int, industry: str, z: float) -> WFirm:
    r = w.rng
    capital = int(w.lognormal(5e6 * 0.7 ** max(0, tier - 1), 0.7)) * 100
    founded = START - r.randrange(3 * 365, 25 * 365) * DAY
    return w.add_firm(WFirm(w.next_id("S", 6), "sme", industry, tier, z, capital, founded))


def smes(w: World, n_shells: int) -> None:
    """The SMEs, of which the first ``n_shells`` ids are shells (tier 9, outside the
    chain: their registration, trades and loans are planted)."""
    n = w.count(N_SMES, 60)
    r = w.rng
    for _ in range(n_shells):
        f = _sme(w, 9, r.choice(("bulk_commodities", "grain", "machining")), 1.5)
        f.capital = r.randrange(10_000, 600_000) * 100
        f.founded = w.as_of - r.randrange(120, 600) * DAY
        f.planted = "shell"
    rest = n - n_shells
    dealers = round(rest * DEALER_SHARE)
    for _ in range(dealers):
        _sme(w, -1, w.industry(), r.gauss(0.0, 1.0))
    upstream = rest - dealers
    counts = [round(upstream * s / 100) for s in TIER_SHARES]
    counts[0] += upstream - sum(counts)
    for tier, k in enumerate(counts, start=1):
        for _ in range(k):
            _sme(w, tier, w.industry(), r.gauss(0.12 * (tier - 2), 1.0))


def supply_chains(w: World) -> None:
    """Supply relations (see the module docstring)."""
    r = w.rng
    by_tier: dict[int, list[WFirm]] = {}
    by_tier_ind: dict[tuple[int, str], list[WFirm]] = {}
    for f in w.firms:
        by_tier.setdefault(f.tier, []).append(f)
        by_tier_ind.setdefault((f.tier, f.industry), []).append(f)
    for f in w.firms:
        if f.tier == -1:
            for core in _distinct(w, by_tier[0], 1 + (r.random() < 0.4)):
                w.supply(core, f)
            continue
        if not 1 <= f.tier <= 4:
            continue
        k = 1 + (r.random() < 0.45) + (r.random() < 0.15)
        pool_same = by_tier_ind.get((f.tier - 1, f.industry))
        pool_all = by_tier[f.tier - 1]
        chosen: list[WFirm] = []
        for _ in range(k):
            pool = pool_same if pool_same and r.random() < 0.85 else pool_all
            b = r.choice(pool)
            if b not in chosen:
                chosen.append(b)
        for b in chosen:
            w.supply(f, b)


def _distinct(w: World, pool: list[WFirm], k: int) -> list[WFirm]:
    out: list[WFirm] = []
    for _ in range(k):
        b = w.rng.choice(pool)
        if b not in out:
            out.append(b)
    return out


def registrations(w: World) -> None:
    """Persons, addresses and accounts of every firm the plant left unregistered."""
    r = w.rng
    serial: list[str] = []
    parks = [
        w.address(" (business park)")
        for _ in range(max(3, math.ceil(len(w.firms) * PARK_SHARE / PARK_FIRMS)))
    ]
    for f in w.firms:
        if f.roles:
            continue
        if serial and r.random() < SERIAL_SHARE:
            rep = r.choice(serial)
        else:
            rep = w.person()
            if r.random() < 0.1:
                serial.append(rep)
        f.roles.append(Role(rep, "legal_rep"))
        holders = [rep] if r.random() < 0.7 else []
        holders += [w.person() for _ in range(r.randrange(0, 3) if holders else 1 + r.randrange(2))]
        shares = _split_bp(w, len(holders))
        f.roles += [Role(p, "shareholder", s) for p, s in zip(holders, shares, strict=True)]
        if f.kind == "core":
            f.roles.append(Role(w.person(), "director"))
        if f.kind == "sme" and r.random() < PARK_SHARE:
            f.addresses.append(r.choice(parks))
        else:
            f.addresses.append(w.address())
        f.accounts.append(w.account(f.banks[0] if f.banks else None))
        if r.random() < 0.4 or f.kind == "core":
            f.accounts.append(w.account())


def _split_bp(w: World, n: int) -> list[int]:
    if n == 1:
        return [10_000]
    cuts = sorted(w.rng.randrange(1, 10_000) for _ in range(n - 1))
    edges = [0, *cuts, 10_000]
    return [b - a for a, b in pairwise(edges)]


__all__ = ["banks", "cores", "registrations", "smes", "supply_chains"]

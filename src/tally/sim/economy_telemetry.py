"""The synthetic economy's device fleets, telemetry summaries and loan outcomes.

* **Telemetry** — every firm has a fleet (cores 20–120 devices, SMEs by industry, shells
  none or one); a firm has dark devices (up to half its fleet, for up to four days) with a
  probability that grows with risk (about 3 %). Twelve monthly
  electricity readings follow the firm's trend (SMEs: about +0.4 % a month less 1.2 % per unit
  of latent risk; the distressed core −8 %; planted financing needs +2 … +5 %) with 4 % noise.
  Twelve monthly inventory values sit at annual sales ÷ turnover (turnover falls with risk)
  with a spread that grows with risk (planted needs: steady); hotels and leasing hold none.
  Firms with pledged goods have custody gaps that grow with risk.
* **Outcomes** — each SME borrower gets one label: whether it defaulted in the following
  year, drawn from ``σ(−3 + 1.1 z + 1.2 circle + 1.8 shell + 1.0 distressed chain + 0.8
  circular trade)`` with ``z`` its latent risk. The scorecard sees ``z`` only through the
  features, and the planted patterns only through the graph.
"""

from __future__ import annotations

import math

from tally.graph.records import Outcome, Telemetry
from tally.sim.economy_world import AS_OF, DEVICES, WFirm, World

HOUR = 3_600_000
NO_STOCK = ("hotels", "leasing")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _devices(w: World, f: WFirm) -> int:
    r = w.rng
    if f.kind == "core":
        return r.randrange(20, 121)
    if f.planted == "family_arm":
        return 0
    if f.planted == "shell":
        return int(r.random() < 0.1)
    lo, hi = DEVICES[f.industry]
    return r.randrange(lo, hi + 1)


def _slope(w: World, f: WFirm) -> float:
    r = w.rng
    if f.planted == "distress":
        return -0.08
    if f.planted == "need":
        return r.uniform(0.02, 0.05)
    if f.kind == "core":
        return r.gauss(0.005, 0.01)
    return r.gauss(0.004 - 0.012 * f.z, 0.012)


def _one(w: World, f: WFirm) -> Telemetry:
    r = w.rng
    devices = _devices(w, f)
    p_dark = 0.03 if f.kind == "core" else _sigmoid(-4.0 + 1.0 * f.z)
    dark = 1 + r.randrange(max(1, devices // 2)) if devices and r.random() < p_dark else 0
    if f.planted == "distress":
        dark = devices // 3
    since = AS_OF - r.randrange(1, 97) * HOUR if dark else None
    elec: list[int] = []
    if devices:
        if f.kind == "core":
            base = w.lognormal(2_000_000, 0.6)
        elif f.planted == "shell":
            base = w.lognormal(100, 0.3)
        else:
            base = w.lognormal(40_000 * 0.75 ** max(0, f.tier - 1), 0.6)
        slope = _slope(w, f)
        elec = [max(0, int(base * math.exp(slope * m) * (1 + r.gauss(0, 0.04)))) for m in range(12)]
    inv: list[int] = []
    volume = max(f.sales, f.bought)
    if devices and volume and f.industry not in NO_STOCK:
        turnover = math.exp(r.gauss(math.log(8) - 0.3 * f.z, 0.35))
        level = volume / turnover
        sd = 0.03 if f.planted == "need" else 0.05 + 0.05 * max(0.0, f.z)
        inv = [int(level * max(0.05, 1 + r.gauss(0, sd))) for _ in range(12)]
    gaps = hours = 0
    if f.pledges:
        hours = int(r.expovariate(1 / (4 * math.exp(0.8 * f.z))))
        gaps = (hours + 5) // 6
    return Telemetry(
        f.id, AS_OF, devices, devices - dark, since, tuple(elec), tuple(inv), gaps, hours
    )


def telemetry(w: World) -> None:
    for f in w.firms:
        w.telemetry.append(_one(w, f))


def outcomes(w: World) -> None:
    r = w.rng
    in_cycle = {fid for c in w.truth["circular_trades"] for fid in c}
    for f in w.firms:
        idx = w.loans_of.get(f.id)
        if f.kind != "sme" or not idx:
            continue
        x = -3.0 + 1.1 * f.z
        x += 1.2 * (f.planted == "circle") + 1.8 * (f.planted == "shell")
        x += 1.0 * f.distress_chain + 0.8 * (f.id in in_cycle)
        w.outcomes.append(Outcome(f.id, w.loans[idx[0]].id, r.random() < _sigmoid(x)))


__all__ = ["outcomes", "telemetry"]

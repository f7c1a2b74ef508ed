"""``tally bench collateral``: the bank's collateral monitor at 10^3 to 10^5 open loans.

For each portfolio size a :class:`tally.finance.monitor.CollateralMonitor` is filled with
``loans`` open loans spread over eight exchange-traded commodities (shares and start prices
like China's warehouse-receipt market: copper, aluminium, rebar, iron ore, soybeans, corn,
cotton, rubber), about eight loans per storage location and twenty locations per warehouse
site, one to three receipts of 20–500 t per loan and principals giving coverage 1.5–1.8.
Every location is measured by a load cell, then the simulated price walk
(:class:`tally.finance.prices.RandomWalk`, ``steps`` steps, 0.2 % steps) is applied tick by
tick. Timed: each tick; reported per size the median of (tick time ÷ loans the tick touched)
in µs (``per_loan_us``) and the median tick in ms. ``flatness`` is the largest ``per_loan_us``
over the smallest: incremental coverage keeps it near 1 (the goal is within 2×).

Removal to alert, on the largest portfolio: ``removals`` signed ``unexplained_weight_drop``
edge events (the edge's plausibility rule, each at a different pledged location, signed by
the edge key beforehand) are each parsed, verified with the edge's key, mapped to a fact
and applied; timed until the critical ``unauthorised_removal`` alert is in hand (median and
p95, µs). ``drop_reading_to_alert_us`` times the monitor's own detection from a load-cell
reading showing the drop. Every removal must raise its alert, else the benchmark fails.
"""

from __future__ import annotations

import gc
import random
import time
from decimal import Decimal
from typing import Any

from tally import formats as F
from tally.bench.common import emit, machine, median, note, percentile, rounded
from tally.crypto import SigningKey
from tally.edge.formats import Event, sign_object
from tally.finance.monitor import CollateralMonitor
from tally.finance.monitor_edge import facts_from_signed_event
from tally.finance.monitor_model import CommodityParams, Loan, PledgedReceipt, Ref, WeightReading
from tally.finance.prices import RandomWalk

BANK = "bank-a"
EDGE = "edge-bench"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GOAL_FLATNESS = 2.0
LOANS_PER_LOCATION = 8
LOCATIONS_PER_SITE = 20

# name: (start price CNY/t, share of loans in %, haircut)
COMMODITIES: dict[str, tuple[str, int, str]] = {
    "copper": ("68000", 22, "0.85"),
    "aluminium": ("19000", 15, "0.85"),
    "rebar": ("3700", 20, "0.75"),
    "iron_ore": ("800", 10, "0.70"),
    "soybean": ("4500", 10, "0.75"),
    "corn": ("2700", 8, "0.75"),
    "cotton": ("15500", 7, "0.75"),
    "rubber": ("13000", 8, "0.70"),
}


def _params(haircut: str) -> CommodityParams:
    return CommodityParams(
        Decimal(haircut), Decimal("0.7"), Decimal("1.3"), Decimal("1.2"), 3 * 86_400_000
    )


def build(loans: int, seed: int) -> tuple[CollateralMonitor, RandomWalk, list[tuple[str, str]]]:
    """A monitor holding ``loans`` measured and priced loans, its price walk, its locations."""
    rng = random.Random(seed)
    mon = CollateralMonitor(BANK)
    walk = RandomWalk(
        {c: v[0] for c, v in COMMODITIES.items()}, seed=seed, t0_ms=T0, step_ms=60_000, step_bp=20
    )
    for c, (_, _, haircut) in COMMODITIES.items():
        mon.set_params(c, _params(haircut), T0)
    n_locs = max(1, loans // LOANS_PER_LOCATION)
    locations = [(f"site-{i // LOCATIONS_PER_SITE:04d}", f"bay-{i:06d}") for i in range(n_locs)]
    for i, (site, loc) in enumerate(locations):
        mon.add_device(f"lc-{i:06d}", site, loc)
    names = list(COMMODITIES)
    shares = [v[1] for v in COMMODITIES.values()]
    stock: dict[tuple[str, str], Decimal] = {}
    prices = walk.prices()
    for i in range(loans):
        c = rng.choices(names, weights=shares)[0]
        receipts = []
        value = Decimal(0)
        for j in range(rng.randint(1, 3)):
            site, loc = locations[rng.randrange(n_locs)]
            w = Decimal(rng.randint(20, 500))
            receipts.append(PledgedReceipt(f"R{i:07d}.{j}", site, loc, f"lot-{i:07d}-{j}", w))
            stock[(site, loc)] = stock.get((site, loc), Decimal(0)) + w
            value += w * prices[c] * 100 * Decimal(COMMODITIES[c][2])
        principal = int(value * 100 / rng.randint(150, 180))
        loan = Loan(f"L{i:07d}", BANK, f"sme-{i % 997}", principal, 0, c, tuple(receipts))
        mon.add_loan(loan, T0)
    for i, key in enumerate(locations):
        weight = stock.get(key, Decimal(0)) + Decimal("1.500")
        ref = Ref("reading", f"lc-{i:06d}/0/0")
        mon.apply(WeightReading(key[0], key[1], f"lc-{i:06d}", weight, T0, ref))
    for tick in walk.step():
        mon.apply_price(tick)
    return mon, walk, locations


def time_ticks(mon: CollateralMonitor, walk: RandomWalk, steps: int) -> dict[str, Any]:
    per_loan: list[float] = []
    tick_s: list[float] = []
    touched = 0
    gc.collect()
    gc.disable()
    try:
        for _ in range(steps):
            for tick in walk.step():
                n = mon.loans_holding(tick.commodity)
                t = time.perf_counter()
                mon.apply_price(tick)
                dt = time.perf_counter() - t
                if n:
                    per_loan.append(dt / n)
                    tick_s.append(dt)
                    touched += n
    finally:
        gc.enable()
    return {
        "per_loan_us": round(median(per_loan) * 1e6, 3),
        "tick_ms": round(median(tick_s) * 1e3, 3),
        "ticks": len(tick_s),
        "loans_per_tick": round(touched / max(1, len(tick_s))),
    }


def _removal_events(
    key: SigningKey, locations: list[tuple[str, str]], n: int, seed: int
) -> list[bytes]:
    rng = random.Random(seed)
    picks = rng.sample(range(len(locations)), min(n, len(locations)))
    out = []
    for seq, i in enumerate(picks):
        site, loc = locations[i]
        detail = {
            "location": loc,
            "drop_t": Decimal("12.5"),
            "unexplained_t": Decimal("12.5"),
            "explained_rfid_t": Decimal(0),
            "explained_release_t": Decimal(0),
            "tolerance_t": Decimal("0.2"),
        }
        ev = Event(
            EDGE,
            site,
            seq,
            "plausibility." + loc,
            "unexplained_weight_drop",
            "critical",
            T0 + 3_600_000 + seq,
            (f"lc-{i:06d}",),
            (bytes(32),),
            tuple(sorted(detail.items())),
        )
        out.append(sign_object(key, F.CTY_EVENT, EDGE, ev.to_cbor()))
    return out


def _check(alerts: list[str], what: str) -> None:
    if "unauthorised_removal" not in alerts:
        raise RuntimeError(f"{what} raised no unauthorised_removal alert (got {alerts})")


def time_removals(
    mon: CollateralMonitor, locations: list[tuple[str, str]], n: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    key = SigningKey.generate("intl")
    events = _removal_events(key, locations, n, seed)
    edge: list[float] = []
    for cose in events:
        t = time.perf_counter()
        (fact,) = facts_from_signed_event(cose, key.public)
        res = mon.apply(fact)
        edge.append(time.perf_counter() - t)
        _check(res.kinds(), "an edge removal event")
    own: list[float] = []
    rng = random.Random(seed + 1)
    for k, i in enumerate(rng.sample(range(len(locations)), min(n, len(locations)))):
        site, loc = locations[i]
        dev = f"lc-{i:06d}"
        reading = WeightReading(
            site, loc, dev, Decimal("1.000"), T0 + 7_200_000 + k, Ref("reading", f"{dev}/0/1")
        )
        t = time.perf_counter()
        res = mon.apply(reading)
        own.append(time.perf_counter() - t)
        _check(res.kinds(), "a load-cell drop")

    def stats(xs: list[float]) -> dict[str, Any]:
        us = [x * 1e6 for x in xs]
        return {"p50": round(median(us), 2), "p95": round(percentile(us, 95), 2), "n": len(us)}

    return stats(edge), stats(own)


def run(
    sizes: tuple[int, ...] = (1000, 10000, 100000),
    steps: int = 10,
    removals: int = 200,
    seed: int = 1,
    json_only: bool = True,
) -> dict[str, Any]:
    """Measure each portfolio size; the removal latencies on the largest."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes {sizes!r} must be positive loan counts")
    result: dict[str, Any] = {"benchmark": "collateral", "sizes": []}
    largest = max(sizes)
    for n in sizes:
        note(json_only, f"collateral bench: building {n} loans")
        t = time.perf_counter()
        mon, walk, locations = build(n, seed)
        built = time.perf_counter() - t
        note(json_only, f"collateral bench: {steps} price steps over {n} loans")
        row = {"loans": n, **time_ticks(mon, walk, steps), "build_s": rounded(built)}
        result["sizes"].append(row)
        if n == largest and "removal_to_alert_us" not in result:
            edge, own = time_removals(mon, locations, removals, seed)
            result["removal_to_alert_us"] = edge
            result["drop_reading_to_alert_us"] = own
        del mon, walk, locations
    per = [r["per_loan_us"] for r in result["sizes"]]
    result["flatness"] = round(max(per) / min(per), 3) if min(per) > 0 else 0.0
    result["goal_flatness"] = GOAL_FLATNESS
    result["goal_met"] = result["flatness"] <= GOAL_FLATNESS
    result["params"] = {
        "steps": steps,
        "removals": removals,
        "seed": seed,
        "commodities": len(COMMODITIES),
        "loans_per_location": LOANS_PER_LOCATION,
    }
    result["machine"] = machine()
    return result


def run_collateral_bench(sizes: tuple[int, ...], steps: int, removals: int, json_only: bool) -> int:
    """The ``tally bench collateral`` command."""
    r = run(sizes, steps, removals, json_only=json_only)
    lines = [
        f"{s['loans']} loans: {s['per_loan_us']} µs per touched loan, tick {s['tick_ms']} ms"
        for s in r["sizes"]
    ]
    rem = r["removal_to_alert_us"]
    lines.append(
        f"flatness {r['flatness']} (goal <= {GOAL_FLATNESS}: "
        f"{'met' if r['goal_met'] else 'NOT met'}); removal event to alert "
        f"p50 {rem['p50']} µs, p95 {rem['p95']} µs"
    )
    return emit(r, json_only, lines)

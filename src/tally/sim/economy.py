"""A labelled synthetic economy at the seed's scale, for the knowledge graph and scorecard.

``generate(scale, seed)`` builds, at scale 1, 4,800 core enterprises and 34,000 upstream and
downstream SMEs across the eight industries of the domain (pharmaceuticals, grain,
warehousing & logistics, automotive, leasing, machining, bulk commodities, hotels), with
12 banks, the persons behind the firms (legal representatives, directors, shareholders),
addresses, bank accounts, supply relations four tiers deep, trades with their four-flow
summaries and payments, receivable notes, loans, warehouse receipts, guarantees, device
fleets with monthly electricity and inventory, and a default label for each SME borrower
drawn from a latent risk. Every size scales with ``scale`` (with small minimums, so a tiny
economy still holds every pattern).

It plants known patterns (:mod:`tally.sim.economy_plant`): guarantee circles, shell
companies sharing a director and an address, circular trades, a core enterprise in distress,
suppliers with strong receivables and no financing — and decoys that look like them (family
groups, broken circles, slow trade loops). :attr:`Economy.truth` is the ground truth.

Everything is simulated and says so (names end in "(simulated)", files carry ``"sim": 1``,
``truth.json`` and ``manifest.json`` ``"simulated": true``). The same ``(scale, seed)`` gives
the same records in the same order, in any process (:mod:`tally.sim.economy_io` writes them
byte for byte the same). Stages: population → plant → registrations → flows → telemetry →
outcomes (modules ``economy_population``, ``economy_plant``, ``economy_flows``,
``economy_telemetry``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tally.graph.records import (
    Account,
    Address,
    Bank,
    Firm,
    Guarantee,
    Loan,
    Note,
    Outcome,
    Person,
    Receipt,
    Supply,
    Telemetry,
    Trade,
)
from tally.sim import economy_flows as flows
from tally.sim import economy_plant as plant
from tally.sim import economy_population as population
from tally.sim import economy_telemetry as tele
from tally.sim.economy_world import CITIES, World

MAX_SCALE = 10.0
WORDS = (
    "Huaxin",
    "Hengtai",
    "Jinlong",
    "Ruifeng",
    "Dongsheng",
    "Xinyuan",
    "Tianhe",
    "Zhongda",
    "Yongli",
    "Baosheng",
    "Hongda",
    "Shunfa",
)
INDUSTRY_NAMES = {
    "pharmaceuticals": "Pharmaceutical",
    "grain": "Grain",
    "warehousing_logistics": "Logistics",
    "automotive": "Auto Parts",
    "leasing": "Leasing",
    "machining": "Machinery",
    "bulk_commodities": "Metals Trading",
    "hotels": "Hotel",
}


@dataclass
class Economy:
    """The generated records, in dependency order, and the ground truth."""

    seed: int
    scale: float
    as_of: int
    banks: list[Bank]
    firms: list[Firm]
    persons: list[Person]
    addresses: list[Address]
    accounts: list[Account]
    supplies: list[Supply]
    trades: list[Trade]
    notes: list[Note]
    guarantees: list[Guarantee]
    loans: list[Loan]
    receipts: list[Receipt]
    telemetry: list[Telemetry]
    outcomes: list[Outcome]
    truth: dict[str, Any]

    def tables(self) -> dict[str, list[Any]]:
        """File stem → records (the order of :data:`tally.graph.records.KINDS`)."""
        return {
            "banks": self.banks,
            "firms": self.firms,
            "persons": self.persons,
            "addresses": self.addresses,
            "accounts": self.accounts,
            "supplies": self.supplies,
            "trades": self.trades,
            "notes": self.notes,
            "guarantees": self.guarantees,
            "loans": self.loans,
            "receipts": self.receipts,
            "telemetry": self.telemetry,
            "outcomes": self.outcomes,
        }

    def records(self) -> Iterator[Any]:
        """Every record, table by table."""
        for rows in self.tables().values():
            yield from rows

    def labels(self) -> dict[str, bool]:
        """firm → defaulted, from the outcomes."""
        return {o.firm: o.defaulted for o in self.outcomes}


def _firm(w: World, f: Any) -> Firm:
    r = w.rng
    name = (
        f"{r.choice(CITIES)} {r.choice(WORDS)} {INDUSTRY_NAMES[f.industry]} "
        f"{'Group' if f.kind == 'core' else 'Co.'} {f.id} (simulated)"
    )
    return Firm(
        f.id,
        name,
        f.kind,
        f.industry,
        f.capital,
        f.founded,
        f.rating,
        tuple(f.roles),
        tuple(f.addresses),
        tuple(f.accounts),
    )


def generate(scale: float = 1.0, seed: int = 7) -> Economy:
    """The synthetic economy at ``scale`` (1.0: the seed's 4,800 cores and 34,000 SMEs)."""
    if not 0 < scale <= MAX_SCALE:
        raise ValueError(f"scale must be in (0, {MAX_SCALE}], got {scale}")
    w = World(seed, scale, random.Random(seed))
    population.banks(w)
    population.cores(w)
    sizes = plant.shell_sizes(w)
    population.smes(w, sum(sizes))
    population.supply_chains(w)
    plant.choose(w, sizes)
    population.registrations(w)
    flows.trades(w)
    plant.cycle_trades(w)
    flows.notes(w)
    flows.loans(w)
    plant.circle_guarantees(w)
    flows.guarantees(w)
    tele.telemetry(w)
    tele.outcomes(w)
    truth = plant.truth(w)
    firms = [_firm(w, f) for f in w.firms]
    return Economy(
        seed,
        scale,
        w.as_of,
        w.banks,
        firms,
        w.persons,
        w.addresses,
        w.accounts,
        w.supplies,
        w.trades,
        w.notes,
        w.guarantees,
        w.loans,
        w.receipts,
        w.telemetry,
        w.outcomes,
        truth,
    )


__all__ = ["MAX_SCALE", "Economy", "generate"]

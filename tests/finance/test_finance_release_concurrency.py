"""Races around pledged collateral on a running consortium, with solo ordering in process and
with JetStream ordering on a real local 3-server NATS cluster (race_world.py):

* two partial releases of the receipts securing one loan, each keeping its coverage at the
  warning line alone but not together: only one commits;
* a release racing a margin call: no release commits after the call;
* a repayment racing a release of the same receipt: both effects, never more collateral out
  than the loan allows;
* a double-dealing holder transferring one receipt to three buyers at once: one controller;
* a split racing a pledge of the same receipt: exactly one of them.

Contenders are endorsed against one state and ordered together; a loser is invalidated at
commit (MVCC, naming the key the winner changed) and, endorsed again, refused with the
reason. At the end every peer holds the same state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from race_world import PRICE, WARNING, Call, World, open_world

from tally.finance.keys import loan_key, receipt_key, relord_prefix
from tally.ledger.consortium import TxResult

D = Decimal
AMOUNT = 300_000_000
"""3 000 000.00 CNY against 100 t of copper at 70 000 CNY/t with haircut 0.9: coverage 2.1;
the warning line 1.3 needs 61.905 t."""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["solo", "jetstream"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(request.param, tmp_path) as w:
        yield w


def mvcc_on(r: TxResult, key: str) -> bool:
    """Whether ``r`` lost an MVCC conflict on ``key``."""
    return r.code == "mvcc_conflict" and r.reason.startswith(f"read {key!r} at version ")


def one_winner(first: dict[str, TxResult]) -> str:
    """The one contender that committed in the first round; the others lost on MVCC."""
    winners = [name for name, r in first.items() if r.valid]
    assert len(winners) == 1, {n: (r.code, r.reason or r.error) for n, r in first.items()}
    assert all(r.code == "mvcc_conflict" for n, r in first.items() if n != winners[0])
    return winners[0]


def family(state: dict[str, Any], no: str) -> list[dict[str, Any]]:
    """Receipt ``no`` and every receipt split from it, the leaves (unsplit) only."""
    rec = state[receipt_key(no)]
    if rec["state"] != "split":
        return [rec]
    return [leaf for child in rec["children"] for leaf in family(state, child)]


def release_orders(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for k, v in state.items() if k.startswith(relord_prefix("S"))]


async def test_two_partial_releases_cannot_together_breach_the_warning_line(
    world: World,
) -> None:
    await world.active_loan("L-1", {"W-1": "50", "W-2": "50"}, AMOUNT)
    calls = {no: ("receipts", "release", [no, D(20)], "bank-a") for no in ("W-1", "W-2")}
    first, final = await world.race(calls)
    winner = one_winner(first)
    loser = "W-2" if winner == "W-1" else "W-1"
    # each passed the coverage check on the state both were endorsed on; the loser read the
    # winner's receipt to compute the loan's coverage, and is refused on the new state
    assert mvcc_on(first[loser], receipt_key(winner)), first[loser].reason
    assert (final[loser].code, final[loser].error) == ("contract_error", (
        f"releasing 20 t of {loser} would bring coverage of L-1 to 1.26, below the warning "
        "line 1.3"
    ))  # fmt: skip
    state = await world.agreed()
    for org in world.c.peers:
        coverage = world.coverage(org, "L-1")
        assert coverage is not None and coverage == D("1.68") >= WARNING
    assert state[receipt_key(loser)]["state"] == "pledged"
    assert state[receipt_key(loser)]["weight"] == D(50)
    [order] = release_orders(state)
    assert (order["receipt"], order["weight"], order["loan"]) == (f"{winner}.1", D(20), "L-1")


@pytest.mark.parametrize("lead", ["release", "call"])
async def test_no_release_commits_after_a_margin_call(world: World, lead: str) -> None:
    """A release endorsed while the loan was well covered races the margin call made after
    the price fell; ``lead`` is handed to the orderer first (and usually wins)."""
    await world.active_loan("L-1", {"W-1": "100"}, AMOUNT)
    release: Call = ("receipts", "release", ["W-1", D(10)], "bank-a")
    stale = world.endorsed(release)  # 90 t: coverage 1.89 at the price it read
    await world.ok("market", "set_price", "copper", D(42000), "CNY")  # coverage 1.26
    both: dict[str, Call] = {
        "release": release,
        "call": ("loans", "margin_call", ["L-1", D("1.26")], "bank-a"),
    }
    first, final = await world.race({lead: both[lead]} | both, {"release": stale})
    call_at = (final["call"].height, final["call"].index)
    assert first["call"].valid and final["call"] == first["call"]
    r = first["release"]
    # never a release committed after the call: ordered after it, the release loses on the
    # loan the call changed; before it, on the price that fell
    assert not r.valid
    assert mvcc_on(r, loan_key("L-1") if (r.height, r.index) > call_at else "price/copper")
    assert (final["release"].code, final["release"].error) == (
        "contract_error",
        "loan L-1 is under a margin call: releases are blocked",
    )
    state = await world.agreed()
    loan = state[loan_key("L-1")]
    assert loan["state"] == "margin_call" and loan["margin_call"]["coverage"] == D("1.26")
    rec = state[receipt_key("W-1")]
    assert (rec["state"], rec["weight"], rec["children"]) == ("pledged", D(100), [])
    assert release_orders(state) == []
    # the price recovers: the next accrual ends the call, and the release goes through
    await world.ok("market", "set_price", "copper", PRICE, "CNY")
    assert (await world.ok("loans", "accrue", "L-1"))["cured"]
    r = await world.again(release)
    assert r.valid and r.result == {"released": "W-1.1", "kept": "W-1.2"}


@pytest.mark.parametrize("lead", ["repay", "release"])
async def test_a_repayment_racing_a_release_keeps_the_coverage(world: World, lead: str) -> None:
    """``lead`` is handed to the orderer first (and usually wins)."""
    await world.active_loan("L-1", {"W-1": "100"}, AMOUNT)
    both: dict[str, Call] = {
        "repay": ("loans", "repay", ["L-1", 100_000_000, b"\x01" * 32], "bank-a"),
        "release": ("receipts", "release", ["W-1", D(20)], "bank-a"),
    }
    calls = {lead: both[lead]} | both
    first, final = await world.race(calls)
    winner = one_winner(first)
    assert final["repay"].valid  # a repayment is owed whatever the collateral did
    if winner == "repay":
        assert mvcc_on(first["release"], loan_key("L-1")), first["release"].reason
        assert (final["release"].code, final["release"].error) == (
            "contract_error",
            "receipt W-1 is split, not pledged",
        )
        # a third of the loan repaid frees a third of the goods, to the kilogram
        assert final["repay"].result["released"] == ["W-1.1"]
        expected = {"W-1.1": ("live", D("33.333")), "W-1.2": ("pledged", D("66.667"))}
    else:
        assert mvcc_on(first["repay"], receipt_key("W-1")), first["repay"].reason
        assert final["release"].valid
        assert final["repay"].result["released"] == ["W-1.2.1"]
        expected = {
            "W-1.1": ("live", D(20)),
            "W-1.2.1": ("live", D("26.666")),
            "W-1.2.2": ("pledged", D("53.334")),
        }
    state = await world.agreed()
    leaves = {r["no"]: (r["state"], r["weight"]) for r in family(state, "W-1")}
    assert leaves == expected
    assert sum((w for _, w in leaves.values()), D(0)) == D(100)
    out = sum((o["weight"] for o in release_orders(state)), D(0))
    pledged = sum((w for s, w in leaves.values() if s == "pledged"), D(0))
    assert out + pledged == D(100)
    assert state[loan_key("L-1")]["principal"] == 200_000_000
    for org in world.c.peers:
        coverage = world.coverage(org, "L-1")
        assert coverage is not None and coverage >= WARNING


async def test_three_buyers_of_one_receipt_one_controller(world: World) -> None:
    await world.issue({"W-1": "40"})
    # the holder signs away the same receipt three times, each consent at seq 0
    buyers = {"sme-2": "bank-a", "sme-3": "bank-b", "wh": "wh"}
    calls = {
        buyer: (
            "receipts",
            "transfer",
            ["W-1", buyer, world.consent("sme-1", "receipts.transfer", "W-1", 0, {"to": buyer})],
            creator,
        )
        for buyer, creator in buyers.items()
    }
    first, final = await world.race(calls)
    winner = one_winner(first)
    for buyer, r in final.items():
        if buyer == winner:
            continue
        assert mvcc_on(first[buyer], receipt_key("W-1")), first[buyer].reason
        assert (r.code, r.error) == ("contract_error", (
            f"receipts.transfer of W-1: consent of '{winner}': it is signed by 'sme-1'"
        ))  # fmt: skip
    state = await world.agreed()
    rec = state[receipt_key("W-1")]
    assert (rec["holder"], rec["state"], rec["seq"]) == (winner, "live", 1)
    transfers = [e for e in rec["endorsements"] if e["act"] == "receipts.transfer"]
    assert transfers == [
        {"t": transfers[0]["t"], "act": "receipts.transfer", "by": "sme-1", "holder": winner}
    ]
    assert state["rloc/S/A1/W-1"] == D(40)


@pytest.mark.parametrize("lead", ["split", "pledge"])
async def test_a_split_racing_a_pledge_of_one_receipt_exactly_one(world: World, lead: str) -> None:
    """``lead`` is handed to the orderer first (and usually wins)."""
    await world.issue({"W-1": "40"})
    kids = [{"no": n, "quantity": D(10), "weight": D(20)} for n in ("W-1a", "W-1b")]
    split = world.consent("sme-1", "receipts.split", "W-1", 0, {"children": kids})
    both: dict[str, Call] = {
        "split": ("receipts", "split", ["W-1", kids, split], "wh"),
        "pledge": world.pledge_call("W-1"),
    }
    calls = {lead: both[lead]} | both
    first, final = await world.race(calls)
    winner = one_winner(first)
    loser = "pledge" if winner == "split" else "split"
    assert mvcc_on(first[loser], receipt_key("W-1")), first[loser].reason
    refusal = "receipt W-1 is split" if winner == "split" else "receipt W-1 is pledged to bank-a"
    assert (final[loser].code, final[loser].error) == ("contract_error", refusal)
    state = await world.agreed()
    rec = state[receipt_key("W-1")]
    index = {k.rsplit("/", 1)[1]: v for k, v in state.items() if k.startswith("rloc/S/A1/")}
    if winner == "split":
        assert (rec["state"], rec["pledgee"], rec["children"]) == ("split", None, ["W-1a", "W-1b"])
        for no in ("W-1a", "W-1b"):
            kid = state[receipt_key(no)]
            assert (kid["state"], kid["pledgee"], kid["holder"]) == ("live", None, "sme-1")
        assert index == {"W-1a": D(20), "W-1b": D(20)}
    else:
        assert (rec["state"], rec["pledgee"], rec["children"]) == ("pledged", "bank-a", [])
        assert receipt_key("W-1a") not in state and receipt_key("W-1b") not in state
        assert index == {"W-1": D(40)}

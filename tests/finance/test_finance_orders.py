"""The order feed: release orders reach the site's edge once; orders whose receipt is frozen
or disposed on chain are revoked once (or withheld); stopping outbound at a location revokes
its orders."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loans_harness import LoanChain, posting

from tally.finance.keys import receipt_key, relord_key
from tally.finance.orders import OrderFeed, Stop
from tally.ledger.state import SqliteState

D = Decimal
WEEK = 7 * 86_400_000


class Edge:
    """Records what the feed hands over and takes back."""

    def __init__(self) -> None:
        self.authorised: list[tuple[Any, ...]] = []
        self.revoked: list[str] = []
        self.fail = False

    def authorise(self, *args: Any) -> None:
        self.authorised.append(args)

    def revoke(self, ref: str) -> bool:
        if self.fail:
            raise RuntimeError("edge unreachable")
        self.revoked.append(ref)
        return True


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LoanChain]:
    c = LoanChain(tmp_path)
    c.market()
    yield c
    c.close()


# -- on the loan contracts ----------------------------------------------------------------------


def test_orders_reach_the_edge_once_and_the_old_api_never_revokes(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("receipts", "release", "L1-R0", D(10))
    edge = Edge()
    feed = OrderFeed("qd", edge.authorise)
    (order,) = feed.poll(chain.state)
    assert order.receipt == "L1-R0.1" and order.kind == "release"
    assert edge.authorised == [
        ("A1", D(10), ("lot-L1-R0",), order.valid_from, order.valid_to, order.id)
    ]
    assert feed.poll(chain.state) == [] and feed.handed == [order]
    chain.ok("receipts", "freeze", "L1-R0.1", "court order", creator="reg")
    assert feed.poll(chain.state) == [] and feed.revoked == []  # no revoke callback


def test_an_order_whose_receipt_is_frozen_later_is_revoked_once(chain: LoanChain) -> None:
    chain.active_loan()
    chain.ok("receipts", "release", "L1-R0", D(10))
    edge = Edge()
    feed = OrderFeed("qd", edge.authorise, edge.revoke)
    (order,) = feed.poll(chain.state)
    chain.ok("receipts", "freeze", "L1-R0.1", "court order", creator="reg")
    assert feed.poll(chain.state) == []
    assert edge.revoked == [order.id] and feed.revoked == [order.id]
    assert feed.poll(chain.state) == [] and edge.revoked == [order.id]  # once
    chain.ok("receipts", "unfreeze", "L1-R0.1", creator="reg")
    feed.poll(chain.state)
    assert edge.revoked == [order.id] and len(edge.authorised) == 1  # not authorised again


def test_disposal_orders_reach_the_edge_and_stay(chain: LoanChain) -> None:
    chain.active_loan(term_days=30)
    chain.ok("receipts", "release", "L1-R0", D(10))
    edge = Edge()
    feed = OrderFeed("qd", edge.authorise, edge.revoke)
    (release,) = feed.poll(chain.state)
    chain.at_day(chain.today + 31)
    chain.ok("loans", "overdue", "L1")
    chain.ok("loans", "default", "L1")
    assert feed.poll(chain.state) == [] and edge.revoked == []  # L1-R0.1 was freed, not frozen
    chain.ok("loans", "dispose", "L1", 200_000_000, posting("sale"))
    (sale,) = feed.poll(chain.state)
    assert (sale.receipt, sale.kind, sale.loan) == ("L1-R0.2", "disposal", "L1")
    assert feed.poll(chain.state) == [] and edge.revoked == []
    assert [o.id for o in feed.handed] == [release.id, sale.id]


# -- on a seeded state ----------------------------------------------------------------------------


class Seeded:
    """A state holding receipts and release orders written directly."""

    def __init__(self, path: Path) -> None:
        self.state = SqliteState(path / "s.sqlite")
        self.height = 0
        self.n = 0

    def put(self, key: str, value: Any) -> None:
        self.height += 1
        self.state.apply(self.height, [(key, value, (self.height, 0))], b"c")

    def receipt(self, no: str, state: str) -> None:
        frozen = {"by": "bank", "reason": "loan L defaulted", "t": 1, "was": "pledged"}
        self.put(receipt_key(no), {"no": no, "state": state,
                                   "frozen": frozen if state == "frozen" else None})  # fmt: skip

    def order(self, no: str, kind: str = "release", location: str = "A1", t: int = 1000) -> str:
        self.n += 1
        oid = f"{no}:{kind}:{self.n}"
        self.put(relord_key("S", oid), {
            "id": oid, "receipt": no, "site": "S", "location": location, "lot": f"lot-{no}",
            "weight": D(5), "from": t, "to": t + WEEK, "by": "bank", "loan": None, "kind": kind,
            "t": t,
        })  # fmt: skip
        return oid


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = Seeded(tmp_path)
    yield s
    s.state.close()


@pytest.mark.parametrize(
    ("state", "kind", "revoked"),
    [
        ("live", "release", False),
        ("pledged", "release", False),
        ("frozen", "release", True),
        ("frozen", "delivery", True),
        ("disposed", "release", True),
        ("disposed", "disposal", False),
        ("delivered", "delivery", False),
    ],
)
def test_which_receipt_states_revoke_an_order(
    seeded: Seeded, state: str, kind: str, revoked: bool
) -> None:
    seeded.receipt("R1", "live")
    oid = seeded.order("R1", kind)
    edge = Edge()
    feed = OrderFeed("S", edge.authorise, edge.revoke)
    assert [o.id for o in feed.poll(seeded.state)] == [oid]
    seeded.receipt("R1", state)
    feed.poll(seeded.state)
    assert edge.revoked == ([oid] if revoked else [])


def test_an_order_first_seen_for_a_frozen_receipt_is_withheld(seeded: Seeded) -> None:
    seeded.receipt("R1", "frozen")
    oid = seeded.order("R1")
    edge = Edge()
    feed = OrderFeed("S", edge.authorise, edge.revoke)
    assert feed.poll(seeded.state) == []
    assert edge.authorised == [] and edge.revoked == []
    assert [o.id for o in feed.withheld] == [oid] and feed.handed == []
    assert feed.poll(seeded.state) == [] and len(feed.withheld) == 1


def test_stop_outbound_revokes_the_locations_orders(seeded: Seeded) -> None:
    for no in ("R1", "R2", "R3"):
        seeded.receipt(no, "live")
    a1 = [seeded.order("R1"), seeded.order("R2")]
    a2 = seeded.order("R3", location="A2")
    edge = Edge()
    feed = OrderFeed("S", edge.authorise, edge.revoke)
    feed.poll(seeded.state)
    assert feed.stop_outbound("A1", ["lot-R1"], "L1") == sorted(a1)
    assert edge.revoked == sorted(a1)
    assert feed.stop_outbound("A1", ["lot-R1"], "L1") == []  # each once
    assert feed.stops == [
        Stop("A1", ("lot-R1",), "L1", tuple(sorted(a1))),
        Stop("A1", ("lot-R1",), "L1", ()),
    ]
    assert a2 not in edge.revoked
    seeded.receipt("R1", "frozen")
    feed.poll(seeded.state)
    assert edge.revoked == sorted(a1)  # R1's order is revoked already


def test_stop_outbound_without_a_revoke_callback_is_refused(seeded: Seeded) -> None:
    seeded.receipt("R1", "live")
    seeded.order("R1")
    feed = OrderFeed("S", Edge().authorise)
    feed.poll(seeded.state)
    with pytest.raises(ValueError) as exc:
        feed.stop_outbound("A1", ["lot-R1"], "L1")
    assert str(exc.value) == (
        "the order feed of site S has no revoke callback: outbound at S/A1 cannot be stopped "
        "at the edge"
    )
    assert feed.stops == [] and feed.revoked == []


def test_a_failed_revocation_is_tried_again_at_the_next_poll(seeded: Seeded) -> None:
    seeded.receipt("R1", "live")
    oid = seeded.order("R1")
    edge = Edge()
    feed = OrderFeed("S", edge.authorise, edge.revoke)
    feed.poll(seeded.state)
    seeded.receipt("R1", "frozen")
    edge.fail = True
    with pytest.raises(RuntimeError, match="edge unreachable"):
        feed.poll(seeded.state)
    assert feed.revoked == []
    edge.fail = False
    feed.poll(seeded.state)
    assert edge.revoked == [oid] and feed.revoked == [oid]


def test_expired_orders_are_no_longer_revoked(seeded: Seeded) -> None:
    seeded.receipt("R1", "live")
    seeded.receipt("R2", "live")
    old = seeded.order("R1", t=1000)
    edge = Edge()
    feed = OrderFeed("S", edge.authorise, edge.revoke)
    feed.poll(seeded.state)
    new = seeded.order("R2", t=1000 + WEEK + 1)  # written after the first order expired
    assert [o.id for o in feed.poll(seeded.state)] == [new]
    assert feed.stop_outbound("A1") == [new]
    assert old not in edge.revoked


def test_a_malformed_order_is_reported(seeded: Seeded) -> None:
    seeded.put(relord_key("S", "X"), {"id": "X"})
    feed = OrderFeed("S", Edge().authorise, Edge().revoke)
    with pytest.raises(ValueError, match=r"^relord/S/X: missing field 'weight'$"):
        feed.poll(seeded.state)
    assert feed.handed == [] and feed.seen == set()

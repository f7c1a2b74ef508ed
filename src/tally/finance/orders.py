"""Release orders: how the chain tells a site's edge which outbound movements are authorised.

When a bank releases pledged goods (or a receipt is delivered or disposed of), the
``receipts`` contract writes a release order under ``relord/<site>/<id>``. The warehouse's
system reads the orders of its site from its own peer and hands each to its edge
(``EdgeGateway.authorise_release``), so the edge can tell an authorised movement from
theft: a weight drop that no scan and no valid order explains is an unauthorised removal.

:class:`OrderFeed` remembers which orders it has handed over, so each reaches the edge once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.finance.keys import relord_prefix
from tally.ledger.state import StateView


class OrderFormatError(ValueError):
    """A release order in the state is not of the documented shape."""


@dataclass(frozen=True)
class ReleaseOrder:
    """One release order (``docs/finance-receipts.md``)."""

    id: str
    receipt: str
    site: str
    location: str
    lot: str
    weight: Decimal
    valid_from: int
    valid_to: int
    by: str
    loan: str | None
    kind: str
    t: int

    @classmethod
    def from_state(cls, key: str, value: Any) -> ReleaseOrder:
        if not isinstance(value, dict):
            raise OrderFormatError(f"{key}: a release order must be a map")
        try:
            weight = value["weight"]
            if not isinstance(weight, Decimal) or weight <= 0:
                raise OrderFormatError(f"{key}: weight must be a positive Decimal")
            return cls(
                id=str(value["id"]),
                receipt=str(value["receipt"]),
                site=str(value["site"]),
                location=str(value["location"]),
                lot=str(value["lot"]),
                weight=weight,
                valid_from=int(value["from"]),
                valid_to=int(value["to"]),
                by=str(value["by"]),
                loan=None if value.get("loan") is None else str(value["loan"]),
                kind=str(value["kind"]),
                t=int(value["t"]),
            )
        except KeyError as exc:
            raise OrderFormatError(f"{key}: missing field {exc.args[0]!r}") from None


def release_orders(state: StateView, site: str) -> list[ReleaseOrder]:
    """Every release order of ``site`` in ``state``, in key order."""
    return [ReleaseOrder.from_state(k, v) for k, v, _ in state.range(relord_prefix(site))]


Authorise = Callable[[str, Decimal, tuple[str, ...], int, int, str], None]
"""``EdgeGateway.authorise_release(location, quantity, lots, valid_from_ms, valid_to_ms,
ref)``."""


class OrderFeed:
    """Hands the new release orders of one site to its edge, each once."""

    def __init__(self, site: str, authorise: Authorise) -> None:
        self.site = site
        self.authorise = authorise
        self.seen: set[str] = set()
        self.handed: list[ReleaseOrder] = []

    def poll(self, state: StateView) -> list[ReleaseOrder]:
        """Hand over the orders not seen before; return them."""
        new = [o for o in release_orders(state, self.site) if o.id not in self.seen]
        for o in new:
            self.authorise(o.location, o.weight, (o.lot,), o.valid_from, o.valid_to, o.id)
            self.seen.add(o.id)
            self.handed.append(o)
        return new

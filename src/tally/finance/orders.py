"""Release orders: how the chain tells a site's edge which outbound movements are authorised.

When a bank releases pledged goods (or a receipt is delivered or disposed of), the
``receipts`` contract writes a release order under ``relord/<site>/<id>``. The warehouse's
system reads the orders of its site from its own peer and hands each to its edge
(``EdgeGateway.authorise_release``), so the edge can tell an authorised movement from
theft: a weight drop that no scan and no valid order explains is an unauthorised removal.

:class:`OrderFeed` remembers which orders it has handed over, so each reaches the edge once.
Given a ``revoke`` callback (``EdgeGateway.revoke_release``), it also takes authorisations
back, each once:

* at every poll, an order whose receipt is now *stopped* on chain — ``frozen`` (a bank or the
  regulator froze it, a loan defaulted), or ``disposed`` when the order is not itself the
  disposal's (a ``disposal`` order lets the bank's sale leave) — is revoked; such an order
  seen for the first time is withheld, never handed over;
* :meth:`OrderFeed.stop_outbound` revokes every order handed over for a location: the
  custodian's answer to the bank's ``warehouse.stop_outbound`` (the edge weighs a location, not
  a lot, so any order there could cover the pledged goods leaving).

Orders written later are handed over as usual (a frozen receipt cannot be released on chain;
the bank's disposal orders must reach the edge). A revoked order is not authorised again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.finance.keys import receipt_key, relord_prefix
from tally.ledger.state import StateView


class OrderFormatError(ValueError):
    """A release order in the state is not of the documented shape."""


@dataclass(frozen=True)
class ReleaseOrder:
    """One release order (``docs/formats.md`` §28)."""

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

Revoke = Callable[[str], object]
"""``EdgeGateway.revoke_release(ref)`` (its answer, whether the edge held it, is not needed)."""


def stopped(state: StateView, order: ReleaseOrder) -> str | None:
    """Why ``order`` may no longer be honoured, from its receipt on chain; None if it may."""
    found = state.get(receipt_key(order.receipt))
    if found is None:
        return None
    rec = found[0]
    if rec.get("state") == "frozen":
        f = rec.get("frozen") or {}
        return f"receipt {order.receipt} is frozen by {f.get('by')} ({f.get('reason')})"
    if rec.get("state") == "disposed" and order.kind != "disposal":
        return f"receipt {order.receipt} is disposed"
    return None


@dataclass(frozen=True)
class Stop:
    """Outbound stopped at a location: why (the lots and the loan named) and the orders
    revoked then."""

    location: str
    lots: tuple[str, ...]
    loan: str
    revoked: tuple[str, ...]


class OrderFeed:
    """Hands the new release orders of one site to its edge, each once; with ``revoke``,
    takes back those that may no longer be honoured, each once."""

    def __init__(self, site: str, authorise: Authorise, revoke: Revoke | None = None) -> None:
        self.site = site
        self.authorise = authorise
        self.revoke = revoke
        self.seen: set[str] = set()
        self.handed: list[ReleaseOrder] = []
        """Every order handed to the edge, in the order handed."""
        self.revoked: list[str] = []
        """The ids of the orders revoked at the edge, in the order revoked."""
        self.withheld: list[ReleaseOrder] = []
        """Orders first seen when their receipt was already stopped: never handed over."""
        self.stops: list[Stop] = []
        """Every :meth:`stop_outbound`, in order."""
        self._live: dict[str, ReleaseOrder] = {}

    def poll(self, state: StateView) -> list[ReleaseOrder]:
        """Hand over the orders not seen before and (with ``revoke``) revoke the handed ones
        whose receipt is now stopped; return the orders handed over."""
        new: list[ReleaseOrder] = []
        for o in release_orders(state, self.site):
            if o.id in self.seen:
                continue
            self.seen.add(o.id)
            if self.revoke is not None and stopped(state, o) is not None:
                self.withheld.append(o)
                continue
            self.authorise(o.location, o.weight, (o.lot,), o.valid_from, o.valid_to, o.id)
            self.handed.append(o)
            self._live[o.id] = o
            new.append(o)
        if new:  # orders expired by the chain's latest order time explain nothing any more
            now = max(o.t for o in new)
            self._live = {ref: o for ref, o in self._live.items() if o.valid_to >= now}
        if self.revoke is not None:
            for ref in sorted(self._live):
                if stopped(state, self._live[ref]) is not None:
                    self._take_back(ref)
        return new

    def stop_outbound(self, location: str, lots: Sequence[str] = (), loan: str = "") -> list[str]:
        """Revoke every order handed over for ``location`` (all lots: see the module
        docstring; ``lots`` and ``loan`` name the cause, kept in :attr:`stops`); return the
        revoked ids, sorted."""
        if self.revoke is None:
            raise ValueError(
                f"the order feed of site {self.site} has no revoke callback: outbound at "
                f"{self.site}/{location} cannot be stopped at the edge"
            )
        refs = sorted(ref for ref, o in self._live.items() if o.location == location)
        for ref in refs:
            self._take_back(ref)
        self.stops.append(Stop(location, tuple(lots), loan, tuple(refs)))
        return refs

    def _take_back(self, ref: str) -> None:
        assert self.revoke is not None
        self.revoke(ref)
        del self._live[ref]
        self.revoked.append(ref)

"""The alert feed: the bank's collateral monitor's alerts into the read model and live stream.

:meth:`AlertFeed.publish` takes an alert of :mod:`tally.finance.monitor_model` (or an
:class:`AlertRow` made elsewhere), stores it with :meth:`Views.add_alert
<tally.cloud.views.store.Views.add_alert>`, counts it in the cloud's metrics (when given) and
publishes an ``alert`` event on the hub whose ``resource`` is the alert's
(:func:`~tally.cloud.views.access.resource_of`): the borrower owns it, the lending bank and
the site's warehouse see it.

A monitor alert becomes a row thus:

- ``id``: ``al-`` and the first 24 hex digits of SHA-256 over the alert's kind, loan, time
  and evidence — the same alert published twice is stored (and published) once;
- ``owner``, ``bank``, ``site``, ``receipt``: as given, else from the read model: the
  loan's borrower and bank, its first receipt and that receipt's site (an alert about a
  loan the view does not know yet needs ``owner``);
- ``message``: what happened in words, with the coverage before and after when known
  (``margin_call on loan LN-1: coverage 1.402 → 1.251``) and the monitor's detail;
- ``evidence``: each reference as ``<kind>:<id>`` (``reading:<hex>``, ``event:<hex>`` when
  the reference carries a suite hash, which then stands for the id).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tally.cloud.errors import BadRequest
from tally.cloud.live import EventHub
from tally.cloud.metrics import CloudMetrics, check_alert, record_alert
from tally.finance.monitor_model import Alert

from .model import AlertRow
from .store import Views

MAX_MESSAGE = 1000


def alert_id(alert: Alert) -> str:
    """The deterministic id of a monitor alert (see the module text)."""
    h = hashlib.sha256()
    for part in (alert.kind, alert.loan, str(alert.t), *(_ref(r) for r in alert.evidence)):
        h.update(part.encode("utf-8") + b"\0")
    return "al-" + h.hexdigest()[:24]


def _ref(r: Any) -> str:
    return f"{r.kind}:{r.hash.hex() if r.hash else r.id}"


def _num(d: Decimal | None) -> str:
    if d is None:
        return "none"
    n = d.normalize()
    return f"{n:f}"


def message_of(alert: Alert) -> str:
    """The alert in words (see the module text)."""
    text = f"{alert.kind} on loan {alert.loan}"
    if alert.coverage_before is not None or alert.coverage_after is not None:
        text += f": coverage {_num(alert.coverage_before)} → {_num(alert.coverage_after)}"
    if alert.detail:
        parts = [f"{k} {_num(v) if isinstance(v, Decimal) else v}" for k, v in
                 sorted(alert.detail.items())]  # fmt: skip
        text += " (" + ", ".join(parts) + ")"
    return text[:MAX_MESSAGE]


class AlertFeed:
    """Stores and publishes alerts (see the module text)."""

    def __init__(
        self, views: Views, hub: EventHub | None, metrics: CloudMetrics | None = None
    ) -> None:
        self.views = views
        self.hub = hub
        self.metrics = metrics
        self.published = 0
        self.duplicates = 0

    def row_of(
        self,
        alert: Alert,
        *,
        owner: str | None = None,
        bank: str | None = None,
        site: str | None = None,
        receipt: str | None = None,
    ) -> AlertRow:
        """The row of a monitor alert, with what is not given taken from the read model."""
        loan = self.views.loan(alert.loan) if alert.loan else None
        if loan is not None:
            owner = owner or loan.borrower
            bank = bank or loan.bank
            receipt = receipt or (loan.receipts[0] if loan.receipts else None)
        if receipt is not None and site is None:
            r = self.views.receipt(receipt)
            site = r.site if r is not None else None
        if not owner:
            raise BadRequest(
                f"alert {alert.kind} on loan {alert.loan!r}: the read model does not know the "
                "loan; name the alert's owner"
            )
        return AlertRow(
            id=alert_id(alert), kind=alert.kind, severity=alert.severity, owner=owner,
            bank=bank, site=site, loan=alert.loan or None, receipt=receipt,
            message=message_of(alert), at_ms=alert.t,
            evidence=tuple(_ref(r) for r in alert.evidence), acked_by=None, acked_ms=None,
        )  # fmt: skip

    def publish(
        self,
        alert: Alert | AlertRow,
        *,
        owner: str | None = None,
        bank: str | None = None,
        site: str | None = None,
        receipt: str | None = None,
    ) -> AlertRow | None:
        """Store ``alert``, count it, publish it; return its row, or None when an alert of
        that id was stored before (then nothing is counted or published). A kind that is not
        lower-case snake case or an unknown severity raises ValueError, storing nothing."""
        if isinstance(alert, AlertRow):
            row = dataclasses.replace(
                alert,
                owner=owner or alert.owner,
                bank=bank or alert.bank,
                site=site or alert.site,
                receipt=receipt or alert.receipt,
            )
        else:
            row = self.row_of(alert, owner=owner, bank=bank, site=site, receipt=receipt)
        check_alert(row.kind, row.severity)  # before anything is stored
        if not self.views.add_alert(row):
            self.duplicates += 1
            return None
        self.published += 1
        if self.metrics is not None:
            record_alert(self.metrics, row.kind, row.severity)
        if self.hub is not None:
            self.hub.publish("alert", _data(row), self.views.resource("alert", row))
        return row


def _data(row: AlertRow) -> Mapping[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(row).items()}

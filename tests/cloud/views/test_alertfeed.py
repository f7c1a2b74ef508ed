"""The alert feed: a collateral monitor's alert stored in the read model with its owner, bank,
site and receipt found from the loan, counted in the metrics and published on the hub with its
authz resource; the same alert twice stored once; an alert about an unknown loan needs its
owner; a row made elsewhere (a site alarm) goes through as it is; bad kinds are refused before
anything is stored."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tally.cloud.authz import ResourceRef
from tally.cloud.errors import BadRequest
from tally.cloud.live import EventHub
from tally.cloud.metrics import CloudMetrics
from tally.cloud.storage import open_storage
from tally.cloud.views.alertfeed import AlertFeed, alert_id
from tally.cloud.views.model import AlertRow, LoanRow, ReceiptRow, Scope
from tally.cloud.views.store import Views
from tally.finance.monitor_model import Alert, Ref

T = 1_767_225_600_000
CALL = Alert(
    "margin_call", "LN-1", "warning", T, Decimal("1.402"), Decimal("1.251"),
    (Ref("price", "copper@1", b"\x01" * 32), Ref("loan", "LN-1")),
    {"warning": Decimal("1.30"), "deadline": T + 3_600_000},
)  # fmt: skip


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    storage = open_storage(f"sqlite:///{tmp_path / 'cloud.db'}")
    storage.migrate()
    v = Views(storage.engine)
    v.upsert_receipt(ReceiptRow("W-1", "sme-1", "wh", "bank-a", "S", "A1", "copper", "100", "t",
                                700_000_000, "pledged", "LN-1", T, T, 5))  # fmt: skip
    v.upsert_loan(LoanRow("LN-1", "sme-1", "bank-a", 300_000_000, 300_000_000, "0.0435",
                          "active", 2.1, ("W-1",), None, T, T, None, T, 6))  # fmt: skip
    yield v
    storage.close()


def alerts_counted(metrics: CloudMetrics, kind: str, severity: str) -> float:
    value = metrics.registry.get_sample_value("tally_alerts_total", {"kind": kind,
                                              "severity": severity})  # fmt: skip
    return value or 0.0


async def test_a_monitor_alert_is_stored_counted_and_published(views: Views) -> None:
    hub, metrics = EventHub(), CloudMetrics()
    sub = hub.subscribe()
    feed = AlertFeed(views, hub, metrics)
    row = feed.publish(CALL)
    assert row is not None and row.id == alert_id(CALL) and row.id.startswith("al-")
    assert (row.owner, row.bank, row.site, row.loan, row.receipt) == (
        "sme-1", "bank-a", "S", "LN-1", "W-1")  # fmt: skip
    assert (row.kind, row.severity, row.at_ms, row.acked_by) == ("margin_call", "warning", T, None)
    assert row.message == (
        f"margin_call on loan LN-1: coverage 1.402 → 1.251 (deadline {T + 3_600_000}, warning 1.3)"
    )
    assert row.evidence == ("price:" + "01" * 32, "loan:LN-1")
    assert views.alert(row.id) == row
    assert [a.id for a in views.list_alerts(Scope("bank-a")).items] == [row.id]
    assert alerts_counted(metrics, "margin_call", "warning") == 1
    event = await sub.next(1.0)
    assert event is not None and event.kind == "alert"
    assert event.data["id"] == row.id and event.data["evidence"] == list(row.evidence)
    assert event.resource == ResourceRef("alert", "sme-1", frozenset(), "bank-a", "S")

    assert feed.publish(CALL) is None  # the same alert again: stored once, counted once
    assert (feed.published, feed.duplicates) == (1, 1)
    assert alerts_counted(metrics, "margin_call", "warning") == 1
    assert await sub.next(0.05) is None


async def test_an_unknown_loan_needs_an_owner_and_given_fields_win(views: Views) -> None:
    feed = AlertFeed(views, None)
    stranger = Alert("unauthorised_removal", "LN-9", "critical", T, None, None, (), {})
    with pytest.raises(BadRequest, match="does not know the loan; name the alert's owner"):
        feed.publish(stranger)
    row = feed.publish(stranger, owner="sme-2", bank="bank-b", site="S2")
    assert row is not None
    assert (row.owner, row.bank, row.site, row.receipt) == ("sme-2", "bank-b", "S2", None)
    assert row.message == "unauthorised_removal on loan LN-9"


async def test_a_row_made_elsewhere_goes_through_and_bad_kinds_are_refused(views: Views) -> None:
    hub = EventHub()
    sub = hub.subscribe()
    feed = AlertFeed(views, hub, CloudMetrics())
    site = AlertRow("site-1", "sensor_offline", "warning", "wh", None, "S", None, None,
                    "a sensor stopped reporting (simulated)", T, (), None, None)  # fmt: skip
    assert feed.publish(site) == site
    event = await sub.next(1.0)
    assert event is not None and event.resource == ResourceRef("alert", "wh", site="S")
    bad = AlertRow("site-2", "Sensor Offline", "warning", "wh", None, "S", None, None, "x", T, (),
                   None, None)  # fmt: skip
    with pytest.raises(ValueError, match="alert kind 'Sensor Offline' must be lower-case"):
        feed.publish(bad)
    with pytest.raises(ValueError, match="severity 'loud' must be one of"):
        feed.publish(Alert("cured", "LN-1", "loud", T, None, None, (), {}))
    assert views.alert("site-2") is None and feed.published == 1

"""The government aggregates are kept between calls: recomputed after any write through the
same :class:`Views`, and after ``aggregates_max_age_ms`` for writes by another process
(another ``Views`` on the same database stands in for it), with a clock the test moves."""

from __future__ import annotations

import threading

import pytest
from views_factory import loan, org

from tally.cloud.storage.api import Storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views import Views

H = 3_600_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def financed(views: Views, n: int) -> None:
    views.upsert_org(org(f"sme{n}", "supplier"))
    views.upsert_loan(loan(f"K{n}", f"sme{n}", "bank1", 1_000, 1_000, "0.05", "active", 1.4,
                           (), 0, H))  # fmt: skip


def test_a_write_through_the_same_views_is_seen_at_once(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)
    clock = Clock()
    views = Views(storage.engine, aggregates_max_age_ms=3_600_000, clock=clock)
    assert views.aggregates()["loans"]["count"] == 0
    financed(views, 1)
    assert views.aggregates()["loans"] == {"count": 1, "amount_fen": 1_000}
    got = views.aggregates()
    got["loans"]["count"] = 99  # the caller's copy, not the kept one
    assert views.aggregates()["loans"]["count"] == 1


def test_another_writer_is_seen_once_the_kept_answer_is_too_old(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)
    clock = Clock()
    reader = Views(storage.engine, aggregates_max_age_ms=60_000, clock=clock)
    writer = Views(storage.engine)
    assert reader.aggregates()["loans"]["count"] == 0
    financed(writer, 1)
    clock.now += 59.0
    assert reader.aggregates()["loans"]["count"] == 0  # kept, within the age allowed
    clock.now += 2.0
    assert reader.aggregates()["loans"]["count"] == 1


def test_concurrent_callers_get_the_same_figures(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)
    views = Views(storage.engine)
    financed(views, 1)
    financed(views, 2)
    out: list[dict[str, object]] = []
    threads = [threading.Thread(target=lambda: out.append(views.aggregates())) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(out) == 8 and all(o == out[0] for o in out)
    assert out[0]["smes_reached"] == 2


def test_a_negative_age_is_refused(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)
    with pytest.raises(ValueError, match="aggregates_max_age_ms must be >= 0"):
        Views(storage.engine, aggregates_max_age_ms=-1)

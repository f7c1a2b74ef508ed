"""Dashboards of the read model: a handful of GROUP BY queries each, never a loop over rows.

Every dashboard is a plain JSON-able dict (money in integer fen, quantities and rates as
decimal strings, times in hours as floats); its keys are listed in its method's docstring:
:meth:`Dashboards.portfolio` (a bank), :meth:`Dashboards.supplier` (a party),
:meth:`~.dashboards_chain.ChainDashboards.core_tiers` (a core enterprise),
:meth:`~.dashboards_chain.ChainDashboards.warehouse` (a warehouse's sites) and
:meth:`Dashboards.aggregates` (the government portal: no firm names or ids). Status sets
(live loans, outstanding notes, free and pledged receipts) are those of :mod:`.dashq`.

They answer at benchmark scale (tens of thousands of organisations, ~100k receipts, loans,
notes) from the indexes of :mod:`.tables`: each query is bounded by a bank, party, core or
site index range, except :meth:`Dashboards.aggregates`, a few full aggregations.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tally.cloud.views import tables as t
from tally.cloud.views.dashboards_chain import ChainDashboards
from tally.cloud.views.dashq import (
    COVERAGE_BUCKETS,
    FREE,
    HOUR_MS,
    LIVE_LOANS,
    OUTSTANDING_NOTES,
    PLEDGED,
    RATE_PLACES,
    SEVERITIES,
    TOP,
    as_int,
    as_number,
    by_status,
    coverage_bucket,
    dec_text,
    percentile,
)


def fold(cells: Sequence[Any], i: int, name: str) -> list[dict[str, Any]]:
    """Sum (industry, region, count, amount) cells by column ``i``; largest amount first."""
    sums: dict[str | None, list[int]] = {}
    for cell in cells:
        acc = sums.setdefault(cell[i], [0, 0])
        acc[0] += int(cell[2])
        acc[1] += as_int(cell[3])
    order = sorted(sums.items(), key=lambda kv: (-kv[1][1], kv[0] is None, kv[0] or ""))
    return [{name: g, "loans": c, "amount_fen": a} for g, (c, a) in order]


class Dashboards(ChainDashboards):
    """The dashboard part of :class:`~tally.cloud.views.store.Views`.

    :meth:`aggregates` scans every financed loan and note, so its answer is kept: it is
    computed again after any write through this object (:meth:`_wrote`) and, for writes by
    other processes on the same database, once it is older than ``aggregates_max_age_ms``.
    One caller computes while concurrent callers wait for its answer.
    """

    def _init_cache(self, max_age_ms: int, clock: Callable[[], float]) -> None:
        if max_age_ms < 0:
            raise ValueError(f"aggregates_max_age_ms must be >= 0, got {max_age_ms}")
        self._max_age_s = max_age_ms / 1000
        self._clock = clock
        self._generation = 0
        self._cached: tuple[int, float, dict[str, Any]] | None = None
        self._cache_lock = threading.Lock()

    def _wrote(self) -> None:
        """Called after every write transaction: kept figures are stale."""
        self._generation += 1

    def portfolio(self, bank: str) -> dict[str, Any]:
        """A bank's loan book.

        Keys: ``bank``; ``loans``: {status: {count, outstanding_fen}} of every loan of the
        bank; ``live``: {count, principal_fen, outstanding_fen} of its live loans;
        ``coverage``: {"<1.2" | "1.2-1.3" | "1.3-1.5" | ">=1.5" | "unknown": {count,
        outstanding_fen}} of its live loans (lower bound inclusive); ``alerts_open``:
        {info, warning, critical: count} of unacknowledged alerts whose bank it is;
        ``margin_calls_open``: its loans in status margin_call; ``applications_waiting``:
        applications to it still submitted; ``top_exposures``: up to 10 {borrower, name,
        loans, outstanding_fen} of live loans by outstanding, largest first.
        """
        lo, al, ap, o = t.loans, t.alerts, t.applications, t.orgs
        live = [lo.c.bank == bank, lo.c.status.in_(LIVE_LOANS)]
        with self._engine.connect() as conn:
            # one pass over the bank's loans: by status and coverage bucket
            bucket = coverage_bucket().label("bucket")
            cells = conn.execute(
                sa.select(lo.c.status, bucket, sa.func.count(), sa.func.sum(lo.c.principal_fen),
                          sa.func.sum(lo.c.outstanding_fen))
                .where(lo.c.bank == bank)
                .group_by(lo.c.status, bucket)
            ).all()  # fmt: skip
            loans: dict[str, Any] = {}
            cov = {b: {"count": 0, "outstanding_fen": 0} for b in COVERAGE_BUCKETS}
            n = principal = outstanding = 0
            for status, b, c, p_sum, o_sum in sorted(cells, key=lambda r: (r[0], r[1])):
                acc = loans.setdefault(status, {"count": 0, "outstanding_fen": 0})
                acc["count"] += int(c)
                acc["outstanding_fen"] += as_int(o_sum)
                if status in LIVE_LOANS:
                    n, principal = n + int(c), principal + as_int(p_sum)
                    outstanding += as_int(o_sum)
                    cov[b]["count"] += int(c)
                    cov[b]["outstanding_fen"] += as_int(o_sum)
            alerts = dict.fromkeys(SEVERITIES, 0)
            for sev, c in conn.execute(
                sa.select(al.c.severity, sa.func.count())
                .where(al.c.bank == bank, al.c.acked_ms.is_(None))
                .group_by(al.c.severity)
            ):
                alerts[sev] = int(c)
            waiting = conn.execute(
                sa.select(sa.func.count()).where(ap.c.bank == bank, ap.c.status == "submitted")
            ).scalar_one()
            total = sa.func.sum(lo.c.outstanding_fen).label("total")
            top = (
                sa.select(lo.c.borrower, sa.func.count().label("n"), total)
                .where(*live)
                .group_by(lo.c.borrower)
                .order_by(total.desc(), lo.c.borrower)
                .limit(TOP)
                .subquery()
            )
            exposures = conn.execute(
                sa.select(top.c.borrower, o.c.name, top.c.n, top.c.total)
                .select_from(top.outerjoin(o, o.c.id == top.c.borrower))
                .order_by(top.c.total.desc(), top.c.borrower)
            ).all()
        return {
            "bank": bank,
            "loans": loans,
            "live": {
                "count": int(n),
                "principal_fen": as_int(principal),
                "outstanding_fen": as_int(outstanding),
            },
            "coverage": cov,
            "alerts_open": alerts,
            "margin_calls_open": loans.get("margin_call", {}).get("count", 0),
            "applications_waiting": int(waiting),
            "top_exposures": [
                {"borrower": b, "name": name, "loans": int(c), "outstanding_fen": as_int(s)}
                for b, name, c, s in exposures
            ],
        }

    def supplier(self, party: str) -> dict[str, Any]:
        """A supplier's (or any party's) financing position.

        Keys: ``party``; ``receipts``: {free, pledged, other: {count, value_fen}} of the
        receipts it holds (free: live; pledged: pledged or frozen; other: every other
        status); ``notes_held``: {count, amount_fen, by_status: {status: {count,
        amount_fen}}} of outstanding notes it holds; ``loans``: {status: {count,
        outstanding_fen}} of its loans; ``limits``: [{bank, kind, limit_fen, used_fen,
        available_fen, currency, rate, expires_ms}] of the banks' lines for it, by bank;
        ``applications``: {status: count} of its financing applications.
        """
        r, n, lo, lim, ap = t.receipts, t.notes, t.loans, t.limits, t.applications
        group = sa.case((r.c.status.in_(FREE), "free"), (r.c.status.in_(PLEDGED), "pledged"),
                        else_="other").label("g")  # fmt: skip
        with self._engine.connect() as conn:
            receipts = {g: {"count": 0, "value_fen": 0} for g in ("free", "pledged", "other")}
            for g, c, v in conn.execute(
                sa.select(group, sa.func.count(), sa.func.sum(r.c.value_fen))
                .where(r.c.holder == party)
                .group_by(group)
            ):
                receipts[g] = {"count": int(c), "value_fen": as_int(v)}
            held = [n.c.holder == party, n.c.status.in_(OUTSTANDING_NOTES)]
            notes = by_status(conn, n, "amount_fen", *held)
            loans = by_status(conn, lo, "outstanding_fen", lo.c.borrower == party)
            limits = [
                {"bank": x.bank, "kind": x.kind, "limit_fen": int(x.limit_fen),
                 "used_fen": int(x.used_fen),
                 "available_fen": max(0, int(x.limit_fen) - int(x.used_fen)),
                 "currency": x.currency, "rate": x.rate, "expires_ms": x.expires_ms}
                for x in conn.execute(
                    sa.select(lim).where(lim.c.party == party).order_by(lim.c.bank, lim.c.kind)
                )
            ]  # fmt: skip
            apps = by_status(conn, ap, None, ap.c.applicant == party)
        return {
            "party": party,
            "receipts": receipts,
            "notes_held": {
                "count": sum(v["count"] for v in notes.values()),
                "amount_fen": sum(v["amount_fen"] for v in notes.values()),
                "by_status": notes,
            },
            "loans": loans,
            "limits": limits,
            "applications": apps,
        }

    def aggregates(self) -> dict[str, Any]:
        """Figures for the government portal (kept: see the class); a fresh copy each call."""
        with self._cache_lock:
            now, gen, kept = self._clock(), self._generation, self._cached
            if kept is not None and kept[0] == gen and now - kept[1] <= self._max_age_s:
                return copy.deepcopy(kept[2])
            figures = self._aggregates()
            self._cached = (gen, now, figures)
            return copy.deepcopy(figures)

    def _aggregates(self) -> dict[str, Any]:
        """Figures for the government portal; no firm's name or id appears in them.

        Financed loans are those disbursed (``disbursed_ms`` set). Keys: ``loans``: {count,
        amount_fen} of financed loans (amount = principal); ``by_industry`` and
        ``by_region``: [{industry | region (null: not recorded), loans, amount_fen}] of
        financed loans by the borrower's industry / region, largest amount first;
        ``smes_reached``: distinct non-bank organisations financed (borrowers of financed
        loans, holders of financed notes); ``notes_financed``: {count, amount_fen};
        ``mean_rate``: principal-weighted mean annual rate of financed loans (decimal
        string, 6 places; null when none); ``time_to_loan_hours``: {count, median, p90} of
        applied → disbursed (null quantiles when none).
        """
        lo, n, o = t.loans, t.notes, t.orgs
        fin = [lo.c.disbursed_ms.is_not(None)]
        with self._engine.connect() as conn:
            rate = as_number(lo.c.rate, self._engine.dialect.name)
            count, amount, weighted = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(lo.c.principal_fen),
                    sa.func.sum(lo.c.principal_fen * rate),
                ).where(*fin)
            ).one()
            cells = conn.execute(  # one pass; industries × regions cells, folded below
                sa.select(
                    o.c.industry, o.c.region, sa.func.count(), sa.func.sum(lo.c.principal_fen)
                )
                .select_from(lo.outerjoin(o, o.c.id == lo.c.borrower))
                .where(*fin)
                .group_by(o.c.industry, o.c.region)
            ).all()
            groups = {name: fold(cells, i, name) for i, name in enumerate(("industry", "region"))}
            reached = sa.union(
                sa.select(lo.c.borrower.label("who")).where(*fin),
                sa.select(n.c.holder.label("who")).where(n.c.status == "financed"),
            ).subquery()
            banks = sa.select(o.c.id).where(o.c.kind == "bank")
            smes = conn.execute(
                sa.select(sa.func.count()).select_from(reached).where(reached.c.who.not_in(banks))
            ).scalar_one()
            notes_n, notes_amount = conn.execute(
                sa.select(sa.func.count(), sa.func.sum(n.c.amount_fen)).where(
                    n.c.status == "financed"
                )
            ).one()
            wait = lo.c.disbursed_ms - lo.c.applied_ms
            quantiles: dict[str, float | None] = {"median": None, "p90": None}
            if count:
                for key, q in (("median", 0.5), ("p90", 0.9)):
                    quantiles[key] = round(percentile(conn, wait, fin, int(count), q) / HOUR_MS, 3)
        mean = None
        if amount:
            mean = dec_text(Decimal(str(weighted)) / Decimal(int(amount)), RATE_PLACES)
        return {
            "loans": {"count": int(count), "amount_fen": as_int(amount)},
            "by_industry": groups["industry"],
            "by_region": groups["region"],
            "smes_reached": int(smes),
            "notes_financed": {"count": int(notes_n), "amount_fen": as_int(notes_amount)},
            "mean_rate": mean,
            "time_to_loan_hours": {"count": int(count), **quantiles},
        }

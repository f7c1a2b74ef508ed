"""SQL building blocks of the dashboards: status sets, number conversions, group counts.

Status sets used by every dashboard:

- live loans (:data:`LIVE_LOANS`, the statuses that accrue interest): active, margin_call,
  overdue, defaulted, disposing;
- outstanding notes (:data:`OUTSTANDING_NOTES`, the ``live`` of ``noteroot/``): offered, live,
  financed, overdue;
- free receipts (:data:`FREE`): live; pledged receipts (:data:`PLEDGED`): pledged, frozen.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tally.cloud.views import tables as t

LIVE_LOANS = ("active", "margin_call", "overdue", "defaulted", "disposing")
OUTSTANDING_NOTES = ("offered", "live", "financed", "overdue")
PLEDGED = ("pledged", "frozen")
FREE = ("live",)
SEVERITIES = ("info", "warning", "critical")
COVERAGE_BUCKETS = ("<1.2", "1.2-1.3", "1.3-1.5", ">=1.5", "unknown")
TOP = 10
MAX_EDGES = 5000
HOUR_MS = 3_600_000
RATE_PLACES = Decimal("0.000001")
QTY_PLACES = Decimal("0.000000001")


def as_int(v: Any) -> int:
    return 0 if v is None else int(v)


def dec_text(v: Any, places: Decimal = QTY_PLACES) -> str:
    """A SQL sum of decimals as a string (SQLite sums them as floats: round those)."""
    if v is None:
        return "0"
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    d = d.quantize(places).normalize()
    return f"{d:f}"


def as_number(col: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """A decimal text column as a number: exact NUMERIC on PostgreSQL, REAL on SQLite."""
    return sa.cast(col, sa.Numeric() if dialect == "postgresql" else sa.Float())


def by_status(conn: Connection, table: sa.Table, amount: str | None, *where: Any) -> dict[str, Any]:
    cols: list[Any] = [table.c.status, sa.func.count()]
    if amount is not None:
        cols.append(sa.func.sum(table.c[amount]))
    rows = conn.execute(sa.select(*cols).where(*where).group_by(table.c.status)).all()
    if amount is None:
        return {r[0]: int(r[1]) for r in sorted(rows)}
    return {r[0]: {"count": int(r[1]), amount: as_int(r[2])} for r in sorted(rows)}


def coverage_bucket() -> sa.ColumnElement[str]:
    c = t.loans.c.coverage
    return sa.case(
        (c.is_(None), "unknown"),
        (c < 1.2, "<1.2"),
        (c < 1.3, "1.2-1.3"),
        (c < 1.5, "1.3-1.5"),
        else_=">=1.5",
    )


def percentile(conn: Connection, expr: sa.ColumnElement[Any], where: list[Any], n: int,
                q: float) -> float:  # fmt: skip
    """The q-quantile of ``expr`` (linear interpolation, as percentile_cont), in SQL."""
    pos = q * (n - 1)
    lo = int(pos)
    query = sa.select(expr).where(*where).order_by(expr).offset(lo).limit(2)
    vals = [float(v) for v in conn.execute(query).scalars()]
    if len(vals) == 1 or pos == lo:
        return vals[0]
    return vals[0] + (vals[1] - vals[0]) * (pos - lo)

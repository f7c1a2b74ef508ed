"""The daily brief (:func:`tally.graph.brief.daily_brief`) as a PDF report with charts.

:func:`render_brief` lays the brief out with reportlab: a title page part (the date, the
window, a "simulated" label when the graph holds synthetic data), a bar chart of the items
per section for every bank portfolio and core chain, then per portfolio and chain a table of
each non-empty section (its first :data:`MAX_ROWS` items, with their evidence). Text is
Latin (the built-in Helvetica): firm names stay ids. A4, deterministic for one brief
(reportlab's invariant mode: no creation time, a fixed document id).
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart  # type: ignore[import-untyped]
from reportlab.graphics.shapes import Drawing, String  # type: ignore[import-untyped]
from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]

from tally.graph.brief import SECTIONS

MAX_ROWS = 25
TITLES = {
    "coverage_below_lines": "Coverage below the lines",
    "devices_dark": "Devices dark",
    "fourflow_mismatches": "Four-flow mismatches",
    "notes_near_maturity": "Notes near maturity",
    "new_guarantee_circles": "New guarantee circles",
    "scores_moved": "Scores that moved",
}
COLUMNS = {
    "coverage_below_lines": ("firm", "loan", "coverage", "below", "outstanding"),
    "devices_dark": ("firm", "dark", "devices", "dark_since"),
    "fourflow_mismatches": ("trade", "seller", "buyer", "amount", "rules"),
    "notes_near_maturity": ("note", "issuer", "holder", "amount", "due"),
    "new_guarantee_circles": ("text", "amount", "closed"),
    "scores_moved": ("firm", "from", "to", "delta"),
}
MONEY = frozenset({"outstanding", "amount"})
BLUE = colors.HexColor("#1c5fa8")
GREY = colors.HexColor("#e8ecf2")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in MONEY and isinstance(value, int):
        return f"{value / 100:,.2f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _chart(title: str, counts: dict[str, int]) -> Drawing:
    """A horizontal bar chart of the items per section."""
    d = Drawing(170 * mm, 52 * mm)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 48 * mm, 4 * mm, 112 * mm, 40 * mm
    chart.data = [[counts.get(s, 0) for s in SECTIONS]]
    chart.categoryAxis.categoryNames = [TITLES[s] for s in SECTIONS]
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.reverseDirection = 1
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(1, *chart.data[0])
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueStep = max(1, chart.valueAxis.valueMax // 5)
    chart.bars[0].fillColor = BLUE
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 7
    chart.barLabels.nudge = 6
    d.add(chart)
    d.add(String(0, 47 * mm, title, fontName="Helvetica-Bold", fontSize=9))
    return d


def _table(section: str, items: list[dict[str, Any]]) -> Table:
    cols = COLUMNS[section]
    rows = [[*cols, "evidence"]]
    for it in items[:MAX_ROWS]:
        ev = ", ".join(f"{e['kind']}/{e['id']}" for e in it.get("evidence", [])[:3])
        rows.append([_cell(c, it.get(c)) for c in cols] + [ev])
    t = Table(rows, repeatRows=1, hAlign="LEFT")
    t.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", 7),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7),
                ("BACKGROUND", (0, 0), (-1, 0), GREY),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b8c1cc")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return t


def _part(kind: str, name: str, part: dict[str, Any], styles: Any) -> list[Any]:
    out: list[Any] = [
        Paragraph(f"{kind} {name}: {part['firms']} firms", styles["Heading2"]),
        _chart("Items per section", part["counts"]),
    ]
    for section in SECTIONS:
        items = part.get(section) or []
        if not items:
            continue
        more = f" (first {MAX_ROWS} of {len(items)})" if len(items) > MAX_ROWS else ""
        out += [Paragraph(f"{TITLES[section]}{more}", styles["Heading4"]), _table(section, items)]
    out.append(Spacer(1, 6 * mm))
    return out


def render_brief(brief: dict[str, Any], *, simulated: bool) -> bytes:
    """The PDF of a brief (the dict :func:`~tally.graph.brief.daily_brief` returns)."""
    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    label = " (SIMULATED data)" if simulated else ""
    doc = SimpleDocTemplate(
        buf, pagesize=A4, title=f"tally daily brief {brief['as_of'][:10]}{label}",
        author="tally", leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
        bottomMargin=15 * mm, invariant=1,
    )  # fmt: skip
    w = brief["window"]
    story: list[Any] = [
        Paragraph(f"Daily brief of the digital risk manager{label}", styles["Title"]),
        Paragraph(
            f"As of {brief['as_of']}; window {w['from']} to {w['to']}; notes due within "
            f"{w['near_days']} days. Every item cites its evidence (record file / id).",
            styles["Normal"],
        ),
    ]
    if simulated:
        story.append(
            Paragraph(
                "All firms, banks and figures in this report are simulated.", styles["Italic"]
            )
        )
    story.append(Spacer(1, 5 * mm))
    for bank, part in sorted(brief["banks"].items()):
        story += _part("Portfolio of bank", bank, part, styles)
    for core, part in sorted(brief["chains"].items()):
        story += _part("Chain of core enterprise", core, part, styles)
    if not brief["banks"] and not brief["chains"]:
        story.append(Paragraph("Nothing to report.", styles["Normal"]))
    doc.build(story)
    return buf.getvalue()


__all__ = ["MAX_ROWS", "render_brief"]

"""Exact point-in-polygon on integer nano-degrees.

Coordinates are Decimal degrees scaled to integers of 1e-9 degree (exact for inputs with up
to nine decimals, rounded half-even beyond), so every test below is integer arithmetic:
the same answer on every machine, no floats. Latitude is the y axis, longitude the x axis,
on the plane of the coordinates (fine for fences of a site or a region, not for polygons
spanning the antimeridian or a pole).

The rule is even-odd (ray casting towards +longitude); a point on an edge or a vertex is
inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal

_CTX = Context(prec=40, rounding=ROUND_HALF_EVEN)

Point = tuple[int, int]
"""(latitude, longitude) in nano-degrees."""


def to_nano(degrees: Decimal) -> int:
    """Decimal degrees as an integer number of nano-degrees (rounded half-even)."""
    return int(_CTX.to_integral_value(_CTX.scaleb(degrees, 9)))


def contains(polygon: Sequence[Point], point: Point) -> bool:
    """Whether ``point`` lies inside ``polygon`` or on its boundary (even-odd rule)."""
    y, x = point
    inside = False
    y2, x2 = polygon[-1]
    for y1, x1 in polygon:
        if (
            (x2 - x1) * (y - y1) == (y2 - y1) * (x - x1)
            and min(x1, x2) <= x <= max(x1, x2)
            and min(y1, y2) <= y <= max(y1, y2)
        ):
            return True
        if (y1 > y) != (y2 > y):
            lhs = (x - x1) * (y2 - y1)
            rhs = (y - y1) * (x2 - x1)
            if (lhs < rhs) if y2 > y1 else (lhs > rhs):
                inside = not inside
        y2, x2 = y1, x1
    return inside


def twice_area(polygon: Sequence[Point]) -> int:
    """Twice the signed area (shoelace); 0 for a degenerate polygon."""
    total = 0
    y2, x2 = polygon[-1]
    for y1, x1 in polygon:
        total += x2 * y1 - x1 * y2
        y2, x2 = y1, x1
    return total

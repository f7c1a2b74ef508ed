"""Geofence: exact point-in-polygon, exit and re-entry firings."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from edge_rules_support import Feed, det, engine, kinds
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.edge.rules.polygon import contains, to_nano

# A port area: a square with a notch (concave), corners as strings like in TOML.
FENCE = {
    "id": "port",
    "type": "geofence",
    "profile": "gps_tracker",
    "polygon": [
        ["31.2", "121.4"],
        ["31.2", "121.6"],
        ["31.4", "121.6"],
        ["31.4", "121.5"],
        ["31.3", "121.5"],
        ["31.3", "121.45"],
        ["31.4", "121.45"],
        ["31.4", "121.4"],
    ],
}


def fix(lat: str, lon: str) -> dict[str, str]:
    return {"latitude": lat, "longitude": lon, "speed": "40"}


def test_exit_and_reentry() -> None:
    e, f = engine(FENCE), Feed()
    path = [
        ("31.25", "121.5"),
        ("31.25", "121.55"),
        ("31.35", "121.47"),
        ("31.35", "121.42"),
        ("31.35", "121.42"),
        ("31.1", "121.5"),
        ("31.3", "121.5"),
    ]
    got = [kinds(e.observe(f.obs("gps-1", "gps_tracker", i, fix(*p)))) for i, p in enumerate(path)]
    assert got == [
        [],
        [],
        ["geofence_exit"],
        ["geofence_enter"],
        [],
        ["geofence_exit"],
        ["geofence_enter"],
    ]


def test_first_fix_outside_fires_and_detail_is_exact() -> None:
    e, f = engine(FENCE), Feed()
    o = f.obs("gps-2", "gps_tracker", 7, fix("30.000001", "121.5"))
    (fire,) = e.observe(o)
    assert (fire.kind, fire.sev, fire.t, fire.refs) == (
        "geofence_exit",
        "warning",
        7,
        (o.env_hash,),
    )
    assert det(fire) == {"lat": Decimal("30.000001"), "lon": Decimal("121.5")}


def test_boundary_is_inside() -> None:
    e, f = engine(FENCE), Feed()
    on_edge = [("31.2", "121.5"), ("31.4", "121.6"), ("31.3", "121.475"), ("31.35", "121.45")]
    for i, p in enumerate(on_edge):
        assert e.observe(f.obs(f"g{i}", "gps_tracker", 0, fix(*p))) == [], p
    just_out = ("31.199999", "121.5")
    assert kinds(e.observe(f.obs("g9", "gps_tracker", 0, fix(*just_out)))) == ["geofence_exit"]


def test_fix_needs_both_coordinates_and_custom_names() -> None:
    rule = {**FENCE, "lat_quantity": "lat", "lon_quantity": "lon"}
    e, f = engine(rule), Feed()
    assert e.observe(f.obs("g", "gps_tracker", 0, {"lat": "0"})) == []
    assert e.observe(f.obs("g", "gps_tracker", 0, fix("0", "0"))) == []
    assert kinds(e.observe(f.obs("g", "gps_tracker", 0, {"lat": "0", "lon": "0"}))) == [
        "geofence_exit"
    ]


# -- property: the exact test agrees with a simple reference on convex polygons ----------


def _cross(
    o: tuple[Fraction, Fraction], a: tuple[Fraction, Fraction], b: tuple[Fraction, Fraction]
) -> Fraction:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def convex_hull(pts: list[tuple[Fraction, Fraction]]) -> list[tuple[Fraction, Fraction]]:
    pts = sorted(set(pts))
    lower: list[tuple[Fraction, Fraction]] = []
    upper: list[tuple[Fraction, Fraction]] = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def reference_inside(hull: list[tuple[Fraction, Fraction]], p: tuple[Fraction, Fraction]) -> bool:
    """Counter-clockwise convex polygon: inside or on the boundary iff left of every edge."""
    return all(_cross(hull[i - 1], hull[i], p) >= 0 for i in range(len(hull)))


coord = st.integers(min_value=-40, max_value=40)
scale = st.sampled_from([Decimal("0.000001"), Decimal("0.25"), Decimal("1.5")])


@settings(max_examples=300, deadline=None)
@given(
    vertices=st.lists(st.tuples(coord, coord), min_size=3, max_size=12),
    point=st.tuples(coord, coord),
    unit=scale,
    origin=st.tuples(st.integers(-80, 80), st.integers(-170, 170)),
    reverse=st.booleans(),
)
def test_point_in_convex_polygon_matches_reference(
    vertices: list[tuple[int, int]],
    point: tuple[int, int],
    unit: Decimal,
    origin: tuple[int, int],
    reverse: bool,
) -> None:
    def deg(p: tuple[int, int]) -> tuple[Decimal, Decimal]:
        return origin[0] + p[0] * unit, origin[1] + p[1] * unit

    hull = convex_hull([(Fraction(a), Fraction(b)) for a, b in (deg(v) for v in vertices)])
    if len(hull) < 3:
        return
    poly = [
        (
            to_nano(Decimal(a.numerator) / a.denominator),
            to_nano(Decimal(b.numerator) / b.denominator),
        )
        for a, b in hull
    ]
    if reverse:
        poly.reverse()
    plat, plon = deg(point)
    want = reference_inside(hull, (Fraction(plat), Fraction(plon)))
    assert contains(poly, (to_nano(plat), to_nano(plon))) is want


@settings(max_examples=200, deadline=None)
@given(
    vertices=st.lists(st.tuples(coord, coord), min_size=3, max_size=8),
    pick=st.integers(min_value=0),
    frac=st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(1, 4)]),
)
def test_points_on_the_boundary_are_inside(
    vertices: list[tuple[int, int]], pick: int, frac: Fraction
) -> None:
    hull = convex_hull([(Fraction(a), Fraction(b)) for a, b in vertices])
    if len(hull) < 3:
        return
    a, b = hull[pick % len(hull)], hull[(pick + 1) % len(hull)]
    p = (a[0] + (b[0] - a[0]) * frac, a[1] + (b[1] - a[1]) * frac)
    nano = 10**9 // 4  # a quarter degree per unit keeps the points exact
    poly = [(int(y * nano), int(x * nano)) for y, x in hull]
    assert contains(poly, (int(p[0] * nano), int(p[1] * nano)))
    outside = (int(max(y for y, _ in hull) * nano) + 1, int(p[1] * nano))
    assert not contains(poly, outside)

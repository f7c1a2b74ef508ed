"""``geofence``: a tracker's position outside a polygon.

A reading with both ``lat_quantity`` and ``lon_quantity`` (degrees) is a fix. The first fix
outside the polygon, and every later fix outside after one inside, fires ``geofence_exit``;
the first fix inside after an exit fires ``geofence_enter`` (info). See
:mod:`tally.edge.rules.polygon` for the exact arithmetic (a point on the boundary is inside).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.edge.rules.base import SELECTOR_KEYS, Rule, Selector
from tally.edge.rules.model import Firing, Observation, detail
from tally.edge.rules.polygon import Point, contains, to_nano, twice_area
from tally.edge.rules.spec import Spec, to_decimal


def parse_polygon(spec: Spec, key: str = "polygon") -> tuple[Point, ...]:
    """``[[lat, lon], ...]`` (strings or numbers, degrees) as nano-degree points."""
    raw: Any = spec.value(key)
    if not isinstance(raw, list | tuple):
        raise spec.error(key, f"must be a list of [lat, lon] pairs, got {raw!r}")
    pts: list[Point] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise spec.error(key, f"vertex {i} must be a [lat, lon] pair, got {pair!r}")
        lat, lon = to_decimal(pair[0]), to_decimal(pair[1])
        if lat is None or lon is None:
            raise spec.error(key, f"vertex {i} must hold two decimal numbers, got {pair!r}")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise spec.error(key, f"vertex {i} ({lat}, {lon}) is not a valid latitude/longitude")
        pts.append((to_nano(lat), to_nano(lon)))
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    if len(pts) < 3:
        raise spec.error(key, f"needs at least 3 distinct vertices, got {len(pts)}")
    if twice_area(pts) == 0:
        raise spec.error(key, "has no area (all vertices on one line)")
    return tuple(pts)


class Geofence(Rule):
    TYPE = "geofence"
    KEYS = SELECTOR_KEYS | {"polygon", "lat_quantity", "lon_quantity"}

    def __init__(
        self,
        rule_id: str,
        sev: str,
        selector: Selector,
        polygon: tuple[Point, ...],
        lat_quantity: str = "latitude",
        lon_quantity: str = "longitude",
    ) -> None:
        super().__init__(rule_id, sev)
        self.selector = selector
        self.polygon = polygon
        self.lat_quantity = lat_quantity
        self.lon_quantity = lon_quantity
        self._inside: dict[str, bool] = {}

    @classmethod
    def from_spec(cls, spec: Spec) -> Geofence:
        sev = spec.severity(cls.DEFAULT_SEVERITY)
        selector = Selector.from_spec(spec)
        polygon = parse_polygon(spec)
        return cls(
            spec.rule_id,
            sev,
            selector,
            polygon,
            spec.string("lat_quantity", "latitude"),
            spec.string("lon_quantity", "longitude"),
        )

    def selectors(self) -> tuple[Selector, ...]:
        return (self.selector,)

    def contains(self, lat: Decimal, lon: Decimal) -> bool:
        return contains(self.polygon, (to_nano(lat), to_nano(lon)))

    def observe(self, obs: Observation, out: list[Firing]) -> None:
        r = obs.reading
        lat = r.value(self.lat_quantity)
        lon = r.value(self.lon_quantity)
        if lat is None or lon is None:
            return
        inside = self.contains(lat, lon)
        was = self._inside.get(obs.dev)
        self._inside[obs.dev] = inside
        if inside == was or (inside and was is None):
            return
        kind, sev = ("geofence_enter", "info") if inside else ("geofence_exit", None)
        out.append(
            self.firing(kind, r.t, (obs.dev,), (obs.env_hash,), detail(lat=lat, lon=lon), sev=sev)
        )

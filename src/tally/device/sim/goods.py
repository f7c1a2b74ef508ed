"""Goods on a site: tagged lots, authorised releases, and the ground-truth movement log."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass
class Lot:
    """A tagged lot of goods in a storage location."""

    lot_id: str
    tag: str
    location: str
    quantity_t: Decimal
    commodity: str
    on_platform_ms: int = 0  # when the lot came to rest on its location's load cell


@dataclass(frozen=True)
class Release:
    """An authorised release of lots, as recorded by the site."""

    release_id: str
    at_ms: int
    lot_ids: tuple[str, ...]


@dataclass(frozen=True)
class Movement:
    """Ground truth: stock on a location's platform changed at ``at_ms``."""

    at_ms: int
    location: str
    delta_t: Decimal
    kind: str  # "receipt" | "release" | "unauthorised"
    lot_id: str | None = None
    ref: str | None = None

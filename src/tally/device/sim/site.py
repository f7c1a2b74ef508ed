"""A simulated warehouse site whose sensors agree with each other physically.

Goods lots sit in storage locations, each location on a load cell (or weighbridge).
Goods come in through the RFID gate (in-scan, then the load cell rises); an authorised
release, recorded by the site with an id, takes lots out (the load cell drops, then the
gate scans them out).  Scripted incidents (:mod:`tally.device.sim.incidents`) break this
on purpose.  The site is driven with simulated timestamps: ``tick(t_ms)`` moves it to
``t_ms`` and returns what the devices reported since the previous tick.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from tally.device.sim.base import (
    PoissonProcess,
    Sample,
    SensorModel,
    derive_seed,
    is_working_time,
)
from tally.device.sim.camera_ai import CameraAi
from tally.device.sim.clock import DEMO_TIME_SCALE, SimClock
from tally.device.sim.door_tamper import DoorTamper
from tally.device.sim.goods import Lot, Movement, Release
from tally.device.sim.incidents import (
    CLOCK_SKEW,
    COOLING_FAILURE,
    DEVICE_UNPLUGGED,
    GOODS_REMOVED_AT_NIGHT,
    Incident,
)
from tally.device.sim.load_cell import LoadCell
from tally.device.sim.rfid_gate import RfidGate, epc_tag
from tally.device.sim.temp_humidity import TempHumidity

T = Decimal("0.001")
MAX_EVENTS_PER_TICK = 10_000
PICK_MS = 120_000  # one lot through the dock every two minutes


class Site:
    """Devices, goods and incidents of one warehouse site."""

    def __init__(
        self,
        site_id: str,
        seed: int | str,
        *,
        utc_offset_min: int = 480,
        time_scale: float = DEMO_TIME_SCALE,
        auto_activity: bool = True,
        receipts_per_h: float = 1.0,
        releases_per_h: float = 0.8,
    ) -> None:
        self.site_id = site_id
        self.seed = seed
        self.utc_offset_min = utc_offset_min
        self.time_scale = time_scale
        self.rng = random.Random(derive_seed(seed, "site", site_id))
        self.devices: dict[str, SensorModel] = {}
        self.locations: dict[str, str] = {}  # location -> load cell device id
        self.lots: dict[str, Lot] = {}
        self.releases: list[Release] = []
        self.held: set[str] = set()
        """Locations whose goods are under pledge: the site's own business never releases
        from them (only an order from the chain does, through :meth:`pick_up`)."""
        self.movements: list[Movement] = []
        self.incidents: list[Incident] = []
        self.gate: RfidGate | None = None
        self._initial: dict[str, Decimal] = {}
        self._cells: dict[str, LoadCell] = {}
        self._doors: list[DoorTamper] = []
        self._cameras: list[CameraAi] = []
        self._n_lots = 0
        self._last_tick: int | None = None
        self._prev_tick: int | None = None
        self._auto = auto_activity
        self._receipts = PoissonProcess(self.rng, self._work_rate(receipts_per_h), receipts_per_h)
        self._releases = PoissonProcess(self.rng, self._work_rate(releases_per_h), releases_per_h)

    def _work_rate(self, rate: float) -> Callable[[int], float]:
        return lambda t: rate if is_working_time(t, self.utc_offset_min) else 0.0

    # -- devices ------------------------------------------------------------------------
    def add_device(self, model: SensorModel) -> None:
        if model.device_id in self.devices:
            raise ValueError(f"duplicate device id {model.device_id!r}")
        self.devices[model.device_id] = model
        if isinstance(model, RfidGate) and self.gate is None:
            self.gate = model
        elif isinstance(model, DoorTamper):
            self._doors.append(model)
        elif isinstance(model, CameraAi):
            self._cameras.append(model)

    def add_location(
        self, location: str, cell: LoadCell, lots: Iterable[tuple[Decimal, str]] = ()
    ) -> list[Lot]:
        """A storage location weighed by ``cell``; its initial lots set the cell's stock."""
        if location in self.locations:
            raise ValueError(f"duplicate location {location!r}")
        self.add_device(cell)
        self.locations[location] = cell.device_id
        self._cells[location] = cell
        created = [self._new_lot(location, q, c) for q, c in lots]
        self._initial[location] = sum((lot.quantity_t for lot in created), Decimal("0.000"))
        cell.initial_t = self._initial[location]
        return created

    def device_ids(self, profile: str | None = None) -> list[str]:
        return [d for d, m in self.devices.items() if profile is None or m.profile == profile]

    def is_cold_room(self, device_id: str) -> bool:
        m = self.devices.get(device_id)
        return isinstance(m, TempHumidity) and m.mode == "cold_chain"

    # -- goods --------------------------------------------------------------------------
    def _new_lot(self, location: str, quantity_t: Decimal, commodity: str) -> Lot:
        self._n_lots += 1
        lot = Lot(
            f"LOT-{self._n_lots:05d}",
            epc_tag(self.rng),
            location,
            quantity_t.quantize(T),
            commodity,
        )
        self.lots[lot.lot_id] = lot
        return lot

    def lots_in(self, location: str) -> list[Lot]:
        return [lot for lot in self.lots.values() if lot.location == location]

    def stock_t(self, location: str, t_ms: int | None = None) -> Decimal:
        """Ground truth on the platform: initial stock plus movements up to ``t_ms``."""
        return self._initial[location] + sum(
            (
                m.delta_t
                for m in self.movements
                if m.location == location and (t_ms is None or m.at_ms <= t_ms)
            ),
            Decimal("0.000"),
        )

    def _move(
        self,
        at_ms: int,
        location: str,
        delta: Decimal,
        kind: str,
        lot_id: str | None,
        ref: str | None,
    ) -> Movement:
        mv = Movement(at_ms, location, delta, kind, lot_id, ref)
        self.movements.append(mv)
        self._cells[location].schedule_movement(at_ms, delta)
        return mv

    def receive(self, location: str, quantity_t: Decimal, commodity: str, t_ms: int) -> Lot:
        """A lot arrives: scanned in at the gate at ``t_ms``, on the platform a minute later."""
        lot = self._new_lot(location, quantity_t, commodity)
        lot.on_platform_ms = t_ms + 60_000
        if self.gate is not None:
            self.gate.enqueue_scan(t_ms, lot.tag, "in", lot=lot.lot_id)
        self._move(t_ms + 60_000, location, lot.quantity_t, "receipt", lot.lot_id, None)
        return lot

    def release(self, lot_ids: Iterable[str], t_ms: int, release_id: str | None = None) -> Release:
        """Authorised release: lots leave their platforms one by one and are scanned out."""
        ids = tuple(lot_ids)
        missing = [i for i in ids if i not in self.lots]
        if missing or not ids:
            raise ValueError(f"cannot release lots {missing or ids!r}")
        rel = Release(release_id or f"REL-{self.site_id}-{len(self.releases) + 1:05d}", t_ms, ids)
        self.releases.append(rel)
        for i, lot_id in enumerate(ids):
            lot = self.lots.pop(lot_id)
            at = max(t_ms + i * PICK_MS, lot.on_platform_ms)
            self._move(
                at + 30_000, lot.location, -lot.quantity_t, "release", lot_id, rel.release_id
            )
            if self.gate is not None:
                self.gate.enqueue_scan(
                    at + 60_000, lot.tag, "out", lot=lot_id, release=rel.release_id
                )
        return rel

    def pick_up(self, lot_id: str, amount_t: Decimal, t_ms: int, release_id: str) -> Movement:
        """Part of a lot leaves under a release order ``release_id`` the chain issued: the
        load cell drops by ``amount_t`` and the gate scans the lot out naming the order."""
        lot = self.lots.get(lot_id)
        if lot is None or not 0 < amount_t <= lot.quantity_t:
            raise ValueError(f"cannot pick up {amount_t} t of lot {lot_id!r}")
        lot.quantity_t -= amount_t
        mv = self._move(t_ms + 30_000, lot.location, -amount_t, "release", lot_id, release_id)
        if self.gate is not None:
            self.gate.enqueue_scan(t_ms + 60_000, lot.tag, "out", lot=lot_id, release=release_id)
        return mv

    def remove_unauthorised(
        self, location: str, amount_t: Decimal, t_ms: int, ref: str | None = None
    ) -> Movement | None:
        """Goods vanish from the largest lot: no scan, no release; door and camera notice."""
        lots = sorted(self.lots_in(location), key=lambda lot: (-lot.quantity_t, lot.lot_id))
        if not lots:
            return None
        lot = lots[0]
        amount = min(amount_t, (lot.quantity_t * Decimal("0.6")).quantize(T))
        lot.quantity_t -= amount
        if self._doors:
            self._doors[0].open_door(t_ms, 6 * 60_000)
        if self._cameras:
            self._cameras[0].detect(t_ms + 20_000, "person_detected", 2)
        return self._move(t_ms, location, -amount, "unauthorised", lot.lot_id, ref)

    def _business(self, t_ms: int) -> None:
        for at in self._receipts.events_until(t_ms):
            loc = min(self.locations, key=lambda x: (self.stock_t(x), x))
            q = Decimal(self.rng.uniform(3.0, 12.0)).quantize(T)
            self.receive(loc, q, self.rng.choice(("grain", "steel coil", "cotton")), at)
        for at in self._releases.events_until(t_ms):
            full = [x for x in self.locations if len(self.lots_in(x)) >= 2 and x not in self.held]
            if full:
                lots = sorted(self.lots_in(self.rng.choice(sorted(full))), key=lambda x: x.lot_id)
                n = 2 if len(lots) >= 3 else 1
                self.release([lot.lot_id for lot in self.rng.sample(lots, n)], at)

    # -- incidents ----------------------------------------------------------------------
    def schedule(self, incidents: Iterable[Incident]) -> None:
        self.incidents.extend(incidents)
        self.incidents.sort(key=lambda i: (i.at_ms, i.kind, i.device_id))

    def is_unplugged(self, device_id: str, t_ms: int) -> bool:
        return any(
            i.kind == DEVICE_UNPLUGGED and i.device_id == device_id and i.active(t_ms)
            for i in self.incidents
        )

    def clock_offset_ms(self, device_id: str, t_ms: int) -> int:
        """How far the device's clock is ahead of true time at ``t_ms``."""
        return sum(
            int(i.param("skew_minutes") or 0) * 60_000
            for i in self.incidents
            if i.kind == CLOCK_SKEW and i.device_id == device_id and i.active(t_ms)
        )

    def incidents_due(self, t_ms: int) -> list[Incident]:
        """Incidents (of all kinds) starting within the last tick, i.e. in (previous, t_ms]."""
        lo = self._prev_tick if t_ms == self._last_tick else self._last_tick
        return [i for i in self.incidents if (lo is None or i.at_ms > lo) and i.at_ms <= t_ms]

    # -- time ---------------------------------------------------------------------------
    def tick(self, t_ms: int) -> list[Sample]:
        """Advance the site to simulated time ``t_ms``; return the samples reported."""
        if self._last_tick is not None and t_ms < self._last_tick:
            raise ValueError("simulated time must not go backwards")
        lo = self._last_tick
        self._prev_tick, self._last_tick = lo, t_ms
        for inc in self.incidents:
            if (
                inc.kind == GOODS_REMOVED_AT_NIGHT
                and (lo is None or inc.at_ms > lo)
                and inc.at_ms <= t_ms
            ):
                self.remove_unauthorised(
                    inc.param("location") or "",
                    Decimal(inc.param("amount_t") or "0"),
                    inc.at_ms,
                    ref=inc.kind,
                )
        if self._auto and lo is not None:
            self._business(t_ms)
        for dev_id, model in self.devices.items():
            if isinstance(model, TempHumidity):
                model.set_cooling_failed(
                    any(
                        i.kind == COOLING_FAILURE and i.device_id == dev_id and i.active(t_ms)
                        for i in self.incidents
                    )
                )
        out: list[tuple[int, int, Sample]] = []
        for n, (dev_id, model) in enumerate(self.devices.items()):
            for _ in range(MAX_EVENTS_PER_TICK):
                s = model.step(t_ms)
                if s is None:
                    break
                if self.is_unplugged(dev_id, s.t_ms):
                    continue
                skew = self.clock_offset_ms(dev_id, s.t_ms)
                out.append((s.t_ms, n, dataclasses.replace(s, t_ms=s.t_ms + skew) if skew else s))
        out.sort(key=lambda x: (x[0], x[1]))
        return [s for _, _, s in out]

    def run(
        self,
        start_ms: int,
        wall_seconds: float,
        *,
        wall_tick_ms: int = 1000,
        time_scale: float | None = None,
    ) -> Iterator[tuple[int, list[Sample]]]:
        """Tick every ``wall_tick_ms`` of wall time over ``wall_seconds`` (no sleeping)."""
        clock = SimClock(start_ms, self.time_scale if time_scale is None else time_scale)
        for t in clock.ticks(wall_seconds, wall_tick_ms):
            yield t, self.tick(t)


def build_demo_site(
    seed: int | str,
    n_devices: int = 30,
    *,
    site_id: str = "wh-demo",
    utc_offset_min: int = 480,
    time_scale: float = DEMO_TIME_SCALE,
    auto_activity: bool = True,
) -> Site:
    """A warehouse site with ``n_devices`` devices across all profiles (at least 14).

    See :func:`tally.device.sim.demo.populate_demo_site` for what is on it.
    """
    from tally.device.sim.demo import populate_demo_site

    site = Site(
        site_id,
        seed,
        utc_offset_min=utc_offset_min,
        time_scale=time_scale,
        auto_activity=auto_activity,
    )
    populate_demo_site(site, n_devices)
    return site

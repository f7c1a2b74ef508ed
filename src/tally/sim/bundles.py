"""Pick, for each scripted incident, the stored item that shows it, and export its proof
bundle through the cloud's API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tally.cloud.storage.api import ItemQuery, ItemRecord, Storage
from tally.device.sim import Incident
from tally.device.sim.incidents import (
    CLOCK_SKEW,
    COUNTER_RESET,
    DEVICE_UNPLUGGED,
    FORGED_SIGNATURE,
    GOODS_REMOVED_AT_NIGHT,
    LINK_LOSS,
    REPLAYED_MESSAGES,
)
from tally.sim.accounting import all_items
from tally.sim.fleet import Fleet


def _events_for(events: list[ItemRecord], device: str, after: int) -> list[ItemRecord]:
    out = []
    for e in events:
        meta = json.loads(e.meta)
        if device in meta.get("devs", []) and e.t >= after - 600_000:
            out.append(e)
    return out


def _first(items: list[ItemRecord], pred: Any) -> ItemRecord | None:
    return next((i for i in items if pred(i)), None)


def pick_item(
    storage: Storage, fleet: Fleet, inc: Incident, events: list[ItemRecord]
) -> tuple[ItemRecord | None, str]:
    """The item that best shows ``inc``, and a sentence saying what it proves."""
    dev = inc.device_id
    mine = _events_for(events, dev, inc.at_ms)
    readings = storage.items(
        ItemQuery(
            kinds=("reading", "heartbeat"), device=dev, t_from=inc.at_ms - 3_600_000, limit=1000
        )
    ).items
    if inc.kind == GOODS_REMOVED_AT_NIGHT:
        for rule in ("plausibility", "night-movement"):
            it = _first(mine, lambda e, r=rule: (e.rule or "").startswith(r))
            if it:
                return it, f"edge event {it.rule}: weight left {dev} with no scan or release"
    elif inc.kind == DEVICE_UNPLUGGED:
        it = _first(mine, lambda e: json.loads(e.meta).get("kind") == "device_offline")
        if it:
            return it, f"edge event: {dev} went silent (no signed heartbeat)"
    elif inc.kind == CLOCK_SKEW:
        it = _first(mine, lambda e: "skew" in (e.rule or ""))
        if it:
            return it, f"edge event: {dev}'s clock disagrees with the edge's"
    elif inc.kind == COUNTER_RESET:
        it = _first(mine, lambda e: "reset" in (e.rule or ""))
        if it:
            return it, f"edge event: {dev} restarted its counter in a new boot epoch"
    elif inc.kind == REPLAYED_MESSAGES:
        for env in fleet.replayed:
            it = storage.item(fleet.prov.suite.hash(env))
            if it is not None and it.device == dev:
                return it, f"the original of an envelope of {dev} an attacker replayed: stored once"
    elif inc.kind == FORGED_SIGNATURE:
        for target in fleet.forged:
            it = _first(readings, lambda r, x=target: (r.device, r.boot, r.ctr) == x)
            if it is not None:
                return it, f"the genuine envelope of {dev} at the counter a forger tried to take"
    elif inc.kind == LINK_LOSS:
        gaps = storage.gaps(dev)
        if gaps:
            g = gaps[0]
            it = storage.item(g.item_hash)
            if it:
                return it, f"gap certificate: {dev} ctr {g.first}..{g.last} lost in transit"
    fallback = _first(readings, lambda r: r.t >= inc.at_ms) or (readings[0] if readings else None)
    return fallback, f"a stored envelope of {dev} near the incident"


async def export_bundles(
    client: httpx.AsyncClient,
    storage: Storage,
    fleet: Fleet,
    incidents: list[Incident],
    out: Path,
) -> list[dict[str, Any]]:
    """Write one bundle per incident to ``out``; return what was written."""
    out.mkdir(parents=True, exist_ok=True)
    events = all_items(storage, ("event",))
    written: list[dict[str, Any]] = []
    for inc in incidents:
        item, why = pick_item(storage, fleet, inc, events)
        if item is None:
            written.append(
                {
                    "incident": inc.kind,
                    "device": inc.device_id,
                    "bundle": None,
                    "why": "nothing stored for this device",
                }
            )
            continue
        resp = await client.get(f"/v1/proofs/items/{item.hash.hex()}")
        resp.raise_for_status()
        name = f"{inc.kind}.cbor"
        (out / name).write_bytes(resp.content)
        written.append(
            {
                "incident": inc.kind,
                "device": inc.device_id,
                "bundle": f"bundles/{name}",
                "item": item.hash.hex(),
                "kind": item.kind,
                "why": why,
            }
        )
    return written

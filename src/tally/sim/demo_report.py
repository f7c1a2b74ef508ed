"""The flow part of ``tally demo``'s report: what the devices produced, what the edge and the
cloud did with it, what was lost, refused or detected, and the scripted incidents.

Keys (counts unless said): ``readings_produced``, ``heartbeats_produced``,
``envelopes_produced``, ``readings_stored``, ``heartbeats_stored``,
``edge_signed_readings_stored`` (meter readings the edge signed for), ``envelopes_stored``,
``gaps_certified`` and ``gap_certificates``, ``lost_in_transit``, ``unaccounted`` (and a
sample), ``duplicates_stored``, ``injected`` (by attack), ``sent`` and ``send_failures`` (by
transport), ``rejected`` (by reason), ``events`` (by rule), ``edge`` (the gateway's
counters), ``drained`` and ``incidents``; with the run's ``suite``, ``duration_s``,
``time_scale``, ``simulated_start`` (ms) and ``devices``. Everything is simulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tally.sim.accounting import Accounting
from tally.sim.fleet import Fleet

if TYPE_CHECKING:
    from tally.sim.demo import Demo

EDGE_COUNTERS = ("received", "accepted", "late", "counter_resets", "clock_skew",
                 "batches_sealed", "batches_acked", "internal_errors")  # fmt: skip


def flow_report(
    demo: Demo, fleet: Fleet, acc: Accounting, edge: dict[str, Any], drained: bool
) -> dict[str, Any]:
    """The report's flow keys (see the module text) for one finished run."""
    from tally.sim.demo import TIME_SCALE

    return {
        "simulated": True,
        "suite": demo.opts.suite,
        "duration_s": demo.opts.duration_s,
        "time_scale": TIME_SCALE,
        "simulated_start": demo.start_ms,
        "devices": len(demo.site.devices) + 1,
        "readings_produced": fleet.produced_kinds["reading"],
        "heartbeats_produced": fleet.produced_kinds["heartbeat"],
        "envelopes_produced": acc.produced,
        "readings_stored": acc.stored_device_kinds["reading"],
        "heartbeats_stored": acc.stored_device_kinds["heartbeat"],
        "edge_signed_readings_stored": acc.stored_by_assurance[2],
        "envelopes_stored": acc.stored,
        "gaps_certified": acc.certified,
        "gap_certificates": acc.gap_certificates,
        "lost_in_transit": len(fleet.lost),
        "unaccounted": len(acc.unaccounted),
        "unaccounted_sample": [list(x) for x in acc.unaccounted[:10]],
        "duplicates_stored": acc.duplicates_stored,
        "injected": dict(fleet.injected),
        "sent": dict(demo.sent.by_transport),
        "send_failures": dict(demo.sent.failed),
        "rejected": dict(edge["rejected"]),
        "events": dict(sorted(acc.events_by_rule.items())),
        "edge": {k: edge[k] for k in EDGE_COUNTERS},
        "drained": drained,
        "incidents": [
            {"kind": i.kind, "device": i.device_id, "at": i.at_ms, "params": dict(i.params)}
            for i in demo.incidents
        ],
    }

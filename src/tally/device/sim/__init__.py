"""Sensor simulators: believable physics and noise, deterministic given a seed.

Every model implements :class:`SensorModel`; :func:`make_model` builds one by profile id.
:func:`build_demo_site` ties a few dozen of them together on a warehouse site that can be
driven with simulated time (``site.tick(t_ms)``) and scripted incidents
(:func:`demo_incidents`).  All samples carry the label ``sim=1``.
"""

from __future__ import annotations

from tally.device.sim.base import (
    QUANTITIES,
    SIM_LABEL,
    Measurement,
    Sample,
    SensorModel,
    derive_seed,
    measure,
)
from tally.device.sim.clock import DEMO_TIME_SCALE, SimClock, local_ms
from tally.device.sim.goods import Lot, Movement, Release
from tally.device.sim.incidents import (
    INCIDENT_KINDS,
    MARKER_KINDS,
    PHYSICAL_KINDS,
    Incident,
    demo_incidents,
    make_incident,
)
from tally.device.sim.registry import PROFILES, make_model
from tally.device.sim.site import Site, build_demo_site

__all__ = [
    "DEMO_TIME_SCALE",
    "INCIDENT_KINDS",
    "MARKER_KINDS",
    "PHYSICAL_KINDS",
    "PROFILES",
    "QUANTITIES",
    "SIM_LABEL",
    "Incident",
    "Lot",
    "Measurement",
    "Movement",
    "Release",
    "Sample",
    "SensorModel",
    "SimClock",
    "Site",
    "build_demo_site",
    "demo_incidents",
    "derive_seed",
    "local_ms",
    "make_incident",
    "make_model",
    "measure",
]

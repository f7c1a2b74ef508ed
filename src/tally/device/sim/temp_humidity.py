"""Temperature and relative humidity: a cold room or a grain silo.

``cold_chain``: a thermostat keeps a cold room between 2 and 8 degC.  The compressor
switches on at ``on_at`` and off at ``off_at``; the room warms towards the ambient
temperature when it is off and cools towards the coil temperature when it runs (Newton
cooling), so the temperature saw-tooths in cycles of about an hour.  Running the
compressor dries the air.  :meth:`TempHumidity.set_cooling_failed` stops cooling.

``silo``: the grain follows the outside day slowly (small amplitude, hours of lag), the
headspace humidity moves the other way.
"""

from __future__ import annotations

import math
import random

from tally.device.sim.base import (
    Clock,
    Periodic,
    Sample,
    local_hour,
    make_sample,
    measure,
    substeps,
)

MODES = ("cold_chain", "silo")


class TempHumidity:
    """Temperature (0.01 Cel) and relative humidity (0.1 %) of a cold room or silo."""

    profile = "temp_humidity"

    def __init__(
        self,
        device_id: str,
        rng: random.Random,
        *,
        mode: str = "cold_chain",
        interval_ms: int = 30_000,
        ambient_c: float = 20.0,
        on_at: float = 6.5,
        off_at: float = 3.0,
        coil_c: float = -6.0,
        tau_warm_s: float = 3 * 3600.0,
        tau_cool_s: float = 40 * 60.0,
        silo_mean_c: float = 14.0,
        silo_amplitude_c: float = 1.5,
        silo_lag_h: float = 4.0,
        utc_offset_min: int = 0,
        location: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.device_id = device_id
        self.mode = mode
        self.location = location
        self._rng = rng
        self._periodic = Periodic(interval_ms)
        self._clock = Clock()
        self._ambient = ambient_c
        self._on_at, self._off_at, self._coil = on_at, off_at, coil_c
        self._tau_warm, self._tau_cool = tau_warm_s, tau_cool_s
        self._silo = (silo_mean_c, silo_amplitude_c, silo_lag_h)
        self._offset_min = utc_offset_min
        self.temperature_c = rng.uniform(off_at + 0.5, on_at - 0.5)
        self.humidity = rng.uniform(86.0, 92.0) if mode == "cold_chain" else 62.0
        self.compressor_on = rng.random() < 0.3
        self.cooling_failed = False
        self._wander = 0.0

    def set_cooling_failed(self, failed: bool) -> None:
        """A compressor fault: the room warms towards ambient until repaired."""
        self.cooling_failed = failed

    def _cold_substep(self, h: float) -> None:
        t = self.temperature_c
        if self.cooling_failed or (self.compressor_on and t <= self._off_at):
            self.compressor_on = False
        elif not self.compressor_on and t >= self._on_at:
            self.compressor_on = True
        if self.compressor_on:
            t += (self._coil - t) * (1 - math.exp(-h / self._tau_cool))
            rh_target, rh_tau = 80.0, 1200.0
        else:
            t += (self._ambient - t) * (1 - math.exp(-h / self._tau_warm))
            rh_target, rh_tau = 94.0, 2400.0
        self.temperature_c = t
        self.humidity += (rh_target - self.humidity) * (1 - math.exp(-h / rh_tau))

    def _silo_state(self, t_ms: int, dt_s: float) -> None:
        mean, amp, lag = self._silo
        if dt_s > 0:
            a = math.exp(-dt_s / (12 * 3600.0))
            self._wander = self._wander * a + 0.3 * math.sqrt(1 - a * a) * self._rng.gauss(0, 1)
        hour = local_hour(t_ms, self._offset_min)
        phase = 2 * math.pi * (hour - 15.0 - lag) / 24.0
        self.temperature_c = mean + amp * math.cos(phase) + self._wander
        self.humidity = min(100.0, max(0.0, 62.0 - 2.5 * (self.temperature_c - mean)))

    def step(self, t_ms: int) -> Sample | None:
        dt_s = self._clock.advance(t_ms)
        if self.mode == "cold_chain":
            for h in substeps(dt_s, 10.0):
                self._cold_substep(h)
        else:
            self._silo_state(t_ms, dt_s)
        if not self._periodic.due(t_ms):
            return None
        temp = self.temperature_c + self._rng.gauss(0, 0.03)
        rh = min(100.0, max(0.0, self.humidity + self._rng.gauss(0, 0.3)))
        labels = {"mode": self.mode}
        if self.mode == "cold_chain":
            labels["compressor"] = "on" if self.compressor_on else "off"
        if self.location is not None:
            labels["location"] = self.location
        return make_sample(
            self.device_id, t_ms, (measure("temperature", temp), measure("humidity", rh)), labels
        )

"""What every edge adapter shares: the callback shapes, frame checks and counters.

An adapter turns frames from one transport into calls of the gateway's entry point
``on_envelope(data, source)``. It never crashes on bad input: a frame that is empty, larger
than ``max_bytes`` or arrives where no envelope may (a wrong topic) is refused, counted
and logged; an exception raised by the callback is counted and logged, and the adapter
goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tally.device.envelope import Measurement

OnEnvelope = Callable[[bytes, str], None]
"""``on_envelope(data, source)``: raw envelope bytes and where they came from, e.g.
``"mqtt:tally/site-1/dev-7/up"``, ``"http:127.0.0.1:50312"``, ``"coap:127.0.0.1:40211"``."""

OnUnsigned = Callable[
    [str, int, tuple[Measurement, ...], tuple[tuple[str, str], ...]],
    None,
]
"""``on_unsigned(device_id, t_ms, measurements, labels)``: a reading of a device that cannot
sign; the gateway signs it with the edge key."""

log = logging.getLogger(__name__)


@dataclass
class AdapterStats:
    """Counters of one adapter (read them; the adapter updates them)."""

    delivered: int = 0
    """Frames handed to the callback."""
    refused: int = 0
    """Frames refused before the callback (empty, oversized, wrong topic or media type)."""
    callback_errors: int = 0
    """Callback calls that raised (the gateway's entry point should never raise)."""
    last_refusal: str = ""
    """Why the most recent frame was refused."""

    def refuse(self, source: str, reason: str) -> None:
        self.refused += 1
        self.last_refusal = reason
        log.warning("refused frame from %s: %s", source, reason)


def deliver(callback: OnEnvelope, data: bytes, source: str, stats: AdapterStats) -> bool:
    """Call ``callback(data, source)``; count and log (never propagate) an exception."""
    try:
        callback(data, source)
    except Exception:
        stats.callback_errors += 1
        log.exception("envelope callback raised for a frame from %s", source)
        return False
    stats.delivered += 1
    return True


def size_problem(size: int, max_bytes: int) -> str | None:
    """Why a frame of ``size`` bytes is refused, or ``None`` if its size is acceptable."""
    if size == 0:
        return "empty frame"
    if size > max_bytes:
        return f"frame of {size} bytes exceeds the limit of {max_bytes} bytes"
    return None

"""What every benchmark shares: the machine description, timing helpers and JSON output.

Benchmarks never assert speed. Each prints one JSON object whose ratios compare two
things measured side by side in the same run, so a shared, noisy machine moves both sides
together.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

# -- the machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _mem_total_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """The ``machine`` object of every benchmark's JSON; ``loadavg_1m`` (taken when the
    result is assembled) shows how busy the machine was with other work."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "mem_total_mb": _mem_total_mb(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "libs": {
            "cryptography": _version("cryptography"),
            "pynacl": _version("pynacl"),
            "gmssl_pyx": _version("gmssl-pyx"),
            "sqlalchemy": _version("sqlalchemy"),
            "psycopg": _version("psycopg"),
        },
    }


def rss_mb() -> dict[str, float]:
    """Resident memory of this process now and at its peak (``VmRSS``, ``VmHWM``), in MB."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# -- output -----------------------------------------------------------------------------------


def emit(result: dict[str, Any], json_only: bool, summary: Sequence[str] = ()) -> int:
    """Print ``result`` as JSON (after a short human summary unless ``json_only``); return 0."""
    if not json_only:
        for line in summary:
            print(line, file=sys.stderr)
    print(json.dumps(result, indent=2, sort_keys=False, default=str))
    return 0


def note(json_only: bool, text: str) -> None:
    """A progress line on stderr (silent with ``json_only``)."""
    if not json_only:
        print(text, file=sys.stderr, flush=True)


def rounded(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}") if x >= 1000 else round(x, digits)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def best_rate(runs: int, fn: Callable[[], int]) -> float:
    """Run ``fn`` (which returns how many operations it did) ``runs`` times; the best rate/s.

    The best of a few runs is the least disturbed by other work on a shared machine.
    """
    best = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t
        if dt > 0:
            best = max(best, n / dt)
    return best

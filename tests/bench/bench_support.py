"""Checks shared by the benchmark smoke tests (holds no tests itself).

The smoke tests run each benchmark at a tiny size and check the shape of its JSON and that
every measured number is positive. They never assert speed: speed is what the benchmarks
measure, on whatever machine runs them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

MACHINE_KEYS = {"cpu", "cores", "python", "os", "libs"}
LIBS = {"cryptography", "pynacl", "gmssl_pyx"}


def unavailable(what: str, why: str) -> None:
    """Skip a test whose service is missing, or fail it when ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI: {why}")
    pytest.skip(f"{what} not reachable: {why}")


def check_machine(result: dict[str, Any]) -> None:
    m = result["machine"]
    assert set(m) >= MACHINE_KEYS
    assert m["cores"] >= 1
    assert set(m["libs"]) >= LIBS
    assert m["cpu"]


def positive(*values: Any) -> None:
    for v in values:
        assert isinstance(v, int | float) and not isinstance(v, bool), v
        assert v > 0, v


def round_trips_as_json(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result)) == result

"""What the tests need from the machine, checked in one place: a missing service or tool
fails the test when ``CI=true`` and skips it, with the reason, elsewhere."""

from __future__ import annotations

import os

import pytest

from tally.ledger.natscluster import NatsServerNotFound, find_nats_server


def service_unavailable(name: str, why: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI: {why}")
    pytest.skip(f"{name} not reachable: {why}")


def require_nats_server() -> None:
    """A ``nats-server`` binary is installed (the JetStream tests start their own)."""
    try:
        find_nats_server()
    except NatsServerNotFound as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nats-server is required in CI: {exc}")
        pytest.skip(str(exc))

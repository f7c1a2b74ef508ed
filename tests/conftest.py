"""Fixtures shared by every test area: the machine's real services, and free ports.

A test that needs PostgreSQL or Mosquitto and does not find it fails when ``CI=true`` and is
skipped otherwise (a developer machine may not run them).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator

import pytest

from services import service_unavailable

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"tally_t_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_unavailable("PostgreSQL", str(exc).strip())
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mosquitto() -> tuple[str, int]:
    """The machine's Mosquitto broker (host, port), checked reachable."""
    try:
        with socket.create_connection(MOSQUITTO, timeout=3):
            pass
    except OSError as exc:
        service_unavailable("Mosquitto", str(exc))
    return MOSQUITTO


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Returns a function giving a TCP port that was free a moment ago on 127.0.0.1."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return pick

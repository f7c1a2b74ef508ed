"""Smoke test of ``tally bench latency``: a few devices for two seconds through the
machine's Mosquitto (skipped without it, failed when ``CI=true``)."""

from __future__ import annotations

from bench_support import check_machine, positive, round_trips_as_json, unavailable

from tally.bench.latency import broker_available, latency_bench

BROKER = ("127.0.0.1", 1883)


def test_latency_bench_small() -> None:
    why = broker_available(*BROKER)
    if why is not None:
        unavailable("Mosquitto", why)
    r = latency_bench(devices=5, seconds=2, broker=BROKER)
    assert r["published"] == 10
    assert r["stored"] == 10
    positive(r["p50_ms"], r["p95_ms"], r["max_ms"])
    assert r["p95_ms"] >= r["p50_ms"]
    assert r["goal_met"] == (r["p95_ms"] < 2000)
    check_machine(r)
    round_trips_as_json(r)


def test_latency_bench_without_broker_says_skipped() -> None:
    r = latency_bench(devices=2, seconds=1, broker=("127.0.0.1", 1))
    assert "skipped" in r and "127.0.0.1:1" in r["skipped"]

"""Smoke test of ``tally bench memory``: tiny sizes, JSON shape, positive numbers."""

from __future__ import annotations

from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.memory import memory_bench


def test_memory_bench_small() -> None:
    r = memory_bench(devices=40, minutes=3, interval_s=60, producers=2)
    assert r["benchmark"] == "memory"
    assert r["envelopes"] == 120
    assert r["pipeline_check"]["accepted"] == 120
    assert r["pipeline_check"]["batches_sealed"] == 3
    assert r["outbox"]["items"] == 120
    positive(r["peak_rss_mb"], r["outbox_file_mb"], *[s["rss_mb"] for s in r["rss_samples"]])
    # the high-water mark is at least every sample (each rounded to 0.1 MB on its own)
    assert r["peak_rss_mb"] >= max(s["rss_mb"] for s in r["rss_samples"]) - 0.1
    assert r["goal_met"] == (r["peak_rss_mb"] < 200)
    assert r["params"]["readings_per_device"] == 3
    check_machine(r)
    round_trips_as_json(r)

"""Scorecard: weights as configuration, points that add up, reason codes, limits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tally.finance.contracts.credit import MAX_LIMIT
from tally.graph.calibrate import auc
from tally.graph.features import FEATURES, FeatureRow, feature_table
from tally.graph.scorecard import (
    LimitPolicy,
    Weights,
    WeightsError,
    limit_for,
    load_weights,
    parse_weights,
    score_row,
    weights_toml,
)
from tally.graph.store import Graph
from tally.sim.economy import generate

W = Weights(intercept=2.0, weights=dict.fromkeys(FEATURES, 1.0), base=600, base_odds=50, pdo=20)


def _row(**values: float) -> FeatureRow:
    v = {f: values.get(f, 1.0) for f in FEATURES}
    return FeatureRow("S1", v, {f: f"fact of {f}" for f in FEATURES})


def test_points_add_up_and_follow_the_odds() -> None:
    s = score_row(_row(), W)
    factor = 20 / math.log(2)
    assert s.base == round(600 - factor * math.log(50) - factor * 2.0)
    assert s.points == dict.fromkeys(FEATURES, round(factor))
    assert s.score == s.base + sum(s.points.values())
    assert s.pd == pytest.approx(1 / (1 + math.exp(-(2.0 - 7))))
    assert s.reasons == ()  # every feature at its best
    worse = score_row(_row(production=0.0, payment=0.5), W)
    assert s.score - worse.score == pytest.approx(1.5 * factor, abs=1)
    assert [r.code for r in worse.reasons] == ["P01", "T01"]
    assert worse.reasons[0].text == "P01 production activity: fact of production (-29 points)"
    assert worse.reasons[0].points_lost == 29
    assert worse.as_json()["reasons"][1]["feature"] == "payment"


def test_a_negative_weight_costs_points_when_the_feature_is_high() -> None:
    w = Weights(0.0, {**dict.fromkeys(FEATURES, 0.0), "custody": -1.0})
    assert [r.feature for r in score_row(_row(custody=1.0), w).reasons] == ["custody"]
    assert score_row(_row(custody=0.0), w).reasons == ()


def test_weights_round_trip_and_the_packaged_file() -> None:
    assert parse_weights(weights_toml(W, "a comment\nover two lines")) == W
    packaged = load_weights()
    assert set(packaged.weights) == set(FEATURES)
    assert packaged.pdo > 0 and packaged.base_odds > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "weights: not TOML"),
        ("[scaling]\n[model]\nintercept = 1\n", r"missing the \[weights\] table"),
        (
            "[scaling]\n[model]\nintercept = 1\n[weights]\nproduction = 1\nluck = 2\n",
            "must name exactly the features .*; unknown: luck; missing: inventory_turnover",
        ),
        (
            weights_toml(W).replace("intercept = 2.0", 'intercept = "high"'),
            "model.intercept must be a number, got 'high'",
        ),
        (weights_toml(W).replace("pdo = 20", "pdo = 0"), "scaling.pdo must be > 0, got 0"),
        (
            weights_toml(W).replace("custody = 1.0", "custody = true"),
            "weights.custody must be a number",
        ),
    ],
)
def test_bad_weights_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        parse_weights(text)


def test_unreadable_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "missing.toml")


def test_limits_follow_bands_cutoff_and_caps() -> None:
    low = limit_for(500, "S1", receivables=10**8, annual_sales=10**9)
    assert low.limit == 0 and low.reasons == ("score 500 below the cutoff 540",)
    mid = limit_for(575, "S1", receivables=10**8, annual_sales=10**9)  # band 60 %
    assert mid.band == 0.6
    assert mid.limit == int((0.9 * 10**8 + 0.2 * 10**9) * 0.6) // 1_000_000 * 1_000_000
    assert mid.args() == {"party": "S1", "limit": mid.limit, "currency": "CNY"}
    assert mid.key("BANK01") == "limit/BANK01/S1"
    top = limit_for(800, "S1", receivables=10**14, annual_sales=0)
    assert top.limit == LimitPolicy().cap and top.reasons[-1].startswith("capped at")
    huge = limit_for(800, "S1", receivables=10**17, policy=LimitPolicy(cap=10**18))
    assert huge.limit == MAX_LIMIT
    with pytest.raises(ValueError, match="must be >= 0"):
        limit_for(700, "S1", receivables=-1)


def test_packaged_weights_discriminate_on_a_fresh_synthetic_economy() -> None:
    e = generate(0.05, seed=11)  # not the economy the weights were fitted on
    g = Graph()
    g.add_all(e.records())
    rows = feature_table(g, as_of=e.as_of)
    w = load_weights()
    labels = e.labels()
    firms = sorted(labels)
    scores = [score_row(rows[f], w) for f in firms]
    risk = [-s.score for s in scores]
    assert auc(risk, [int(labels[f]) for f in firms]) > 0.7
    assert all(s.score == s.base + sum(s.points.values()) for s in scores)

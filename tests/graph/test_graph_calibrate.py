"""Logistic regression, AUC and KS against hand values and a known model."""

from __future__ import annotations

import math
import random

import pytest

from tally.graph.calibrate import _solve, auc, calibrate, fit_logistic, held_out, ks
from tally.graph.features import FEATURES, FeatureRow


def test_solve_a_small_system() -> None:
    assert _solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]) == pytest.approx([0.8, 1.4])
    assert _solve([[0.0, 1.0], [1.0, 0.0]], [2.0, 3.0]) == pytest.approx([3.0, 2.0])  # pivoting
    with pytest.raises(ValueError, match="singular"):
        _solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0])


def test_auc_and_ks_by_hand() -> None:
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([1, 2], [1, 1]) == 0.5
    assert ks([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.5
    assert ks([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert ks([1, 2], [0, 0]) == 0.0


def test_fit_recovers_a_known_model() -> None:
    rng = random.Random(3)
    xs, ys = [], []
    for _ in range(4000):
        x = [rng.random(), rng.random()]
        p = 1 / (1 + math.exp(-(-1.0 + 2.0 * x[0] - 3.0 * x[1])))
        xs.append(x)
        ys.append(int(rng.random() < p))
    b = fit_logistic(xs, ys, l2=0.0)
    assert b == pytest.approx([-1.0, 2.0, -3.0], abs=0.35)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        fit_logistic([[1.0]], [2])
    with pytest.raises(ValueError, match="need as many rows as labels"):
        fit_logistic([[1.0]], [])


def test_calibrate_splits_by_hash_and_reports() -> None:
    rng = random.Random(5)
    rows, labels = {}, {}
    for i in range(1500):
        v = {f: rng.random() for f in FEATURES}
        p = 1 / (1 + math.exp(-(1.0 - 4.0 * v["payment"])))
        rows[f"S{i}"] = FeatureRow(f"S{i}", v, {})
        labels[f"S{i}"] = rng.random() < p
    cal = calibrate(rows, labels, seed=7)
    assert cal.n_fit + cal.n_held_out == 1500
    assert cal.n_held_out == sum(held_out(f, 7, 0.3) for f in rows)
    assert cal.weights.weights["payment"] == pytest.approx(4.0, abs=0.8)
    assert 0.7 < cal.auc_held_out < 0.9 and 0.3 < cal.ks_held_out < 0.7
    assert cal.as_json()["n_fit"] == cal.n_fit
    with pytest.raises(ValueError, match="needs defaulters and others on both sides"):
        calibrate(rows, dict.fromkeys(rows, False))
    with pytest.raises(ValueError, match="holdout must be a share"):
        calibrate(rows, labels, holdout=1.0)

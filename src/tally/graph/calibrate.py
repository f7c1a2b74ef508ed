"""Calibration of the scorecard: logistic regression on labelled outcomes, AUC and KS.

:func:`fit_logistic` fits ``P(y = 1) = σ(b0 + Σ b_j x_j)`` by Newton's method (iteratively
reweighted least squares) with a small ridge penalty ``l2`` on the slopes (not the
intercept), which keeps the Hessian invertible when a feature is constant. Each step
solves the ``(p + 1)``-square system by Gaussian elimination with partial pivoting; it stops
when no coefficient moves by more than ``tol`` (or after ``max_iter`` steps), in pure
Python: ``O(n p²)`` a step.

:func:`auc` is the area under the ROC curve (the Mann–Whitney statistic, ties counted
half); :func:`ks` the Kolmogorov–Smirnov statistic, the largest gap between the cumulative
score distributions of defaulters and non-defaulters. Both take a risk (higher = more likely
to default) and labels.

:func:`calibrate` splits the labelled firms into a fitting and a held-out part by a hash of
seed and firm id (so the split does not depend on order), fits on the first, and reports
AUC and KS on both. Scorecard weights are the negated slopes (the scorecard's features are
"1 good").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tally.graph.features import FEATURES, FeatureRow
from tally.graph.scorecard import Weights, logit


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a·x = b (Gaussian elimination, partial pivoting); ValueError if singular."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[p][c]) < 1e-12:
            raise ValueError("singular system: a feature is a combination of others")
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            if f:
                row, top = m[r], m[c]
                for k in range(c, n + 1):
                    row[k] -= f * top[k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def fit_logistic(
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    l2: float = 1e-3,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> list[float]:
    """Coefficients ``[b0, b1, …, bp]`` (see the module docstring)."""
    if not xs or len(xs) != len(ys):
        raise ValueError(f"need as many rows as labels, and some: {len(xs)} and {len(ys)}")
    if set(ys) - {0, 1}:
        raise ValueError("labels must be 0 or 1")
    p = len(xs[0]) + 1
    rows = [[1.0, *x] for x in xs]
    beta = [0.0] * p
    for _ in range(max_iter):
        grad = [0.0] * p
        hess = [[0.0] * p for _ in range(p)]
        for r, y in zip(rows, ys, strict=True):
            mu = _sigmoid(sum(b * v for b, v in zip(beta, r, strict=True)))
            w = mu * (1 - mu)
            d = y - mu
            for i in range(p):
                ri = r[i]
                grad[i] += d * ri
                wr = w * ri
                hi = hess[i]
                for j in range(i + 1):
                    hi[j] += wr * r[j]
        for i in range(p):
            for j in range(i + 1, p):
                hess[i][j] = hess[j][i]
            if i:
                hess[i][i] += l2 * len(rows)
                grad[i] -= l2 * len(rows) * beta[i]
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < tol:
            break
    return beta


def auc(risk: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve of ``risk`` for ``labels`` (1 = default); 0.5 if one class
    is empty."""
    pairs = sorted(zip(risk, labels, strict=True))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return 0.5
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # average 1-based rank of the tie group
        rank_sum += mid * sum(1 for k in range(i, j) if pairs[k][1] == 1)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def ks(risk: Sequence[float], labels: Sequence[int]) -> float:
    """Kolmogorov–Smirnov statistic of ``risk`` between defaulters and the others."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return 0.0
    pairs = sorted(zip(risk, labels, strict=True))
    best = cp = cn = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            if pairs[j][1]:
                cp += 1
            else:
                cn += 1
            j += 1
        best = max(best, abs(cn / neg - cp / pos))
        i = j
    return best


def held_out(firm: str, seed: int, share: float) -> bool:
    """Whether ``firm`` falls in the held-out part (a hash of seed and id, not order)."""
    h = hashlib.sha256(f"{seed}:{firm}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < share


@dataclass(frozen=True, slots=True)
class Calibration:
    weights: Weights
    n_fit: int
    n_held_out: int
    defaults_fit: int
    defaults_held_out: int
    auc_fit: float
    auc_held_out: float
    ks_held_out: float

    def as_json(self) -> dict[str, Any]:
        return {
            "n_fit": self.n_fit,
            "n_held_out": self.n_held_out,
            "defaults_fit": self.defaults_fit,
            "defaults_held_out": self.defaults_held_out,
            "auc_fit": round(self.auc_fit, 4),
            "auc_held_out": round(self.auc_held_out, 4),
            "ks_held_out": round(self.ks_held_out, 4),
            "intercept": round(self.weights.intercept, 6),
            "weights": {k: round(v, 6) for k, v in self.weights.weights.items()},
        }


def calibrate(
    rows: Mapping[str, FeatureRow],
    labels: Mapping[str, bool],
    *,
    seed: int = 7,
    holdout: float = 0.3,
    scaling: Weights | None = None,
) -> Calibration:
    """Fit weights on the labelled firms' rows and report discrimination (see the module
    docstring). ``labels``: firm → defaulted; firms without a row are skipped. The points
    scale is taken from ``scaling`` (default 600 at 50:1, 20 to double)."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a share in (0, 1), got {holdout}")
    fit_x, fit_y, test = [], [], []
    for firm in sorted(labels):
        r = rows.get(firm)
        if r is None:
            continue
        y = int(labels[firm])
        if held_out(firm, seed, holdout):
            test.append((r, y))
        else:
            fit_x.append([r.values[f] for f in FEATURES])
            fit_y.append(y)
    if not fit_y or not test or len(set(fit_y)) < 2:
        raise ValueError(
            f"calibration needs defaulters and others on both sides: {len(fit_y)} firms to "
            f"fit ({sum(fit_y)} defaulted), {len(test)} held out"
        )
    beta = fit_logistic(fit_x, fit_y)
    base = scaling or Weights(0.0, dict.fromkeys(FEATURES, 0.0))
    w = Weights(
        beta[0],
        {f: -b for f, b in zip(FEATURES, beta[1:], strict=True)},
        base.base,
        base.base_odds,
        base.pdo,
    )
    fit_risk = [logit(w, dict(zip(FEATURES, x, strict=True))) for x in fit_x]
    test_risk = [logit(w, r.values) for r, _ in test]
    test_y = [y for _, y in test]
    return Calibration(
        w,
        len(fit_y),
        len(test),
        sum(fit_y),
        sum(test_y),
        auc(fit_risk, fit_y),
        auc(test_risk, test_y),
        ks(test_risk, test_y),
    )


__all__ = ["Calibration", "auc", "calibrate", "fit_logistic", "held_out", "ks"]

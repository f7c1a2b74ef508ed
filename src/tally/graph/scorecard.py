"""The objective credit scorecard: points, reason codes and the supplier limit they lead to.

The model is a logistic one over the features of :mod:`tally.graph.features` (each in
[0, 1], 1 good)::

    logit(P(default)) = intercept − Σ weight_f × x_f

and the score is the usual points scale: ``factor = pdo / ln 2``, ``offset = base − factor ×
ln(base_odds)``, score = ``offset + factor × ln(odds good:bad)``, so ``base`` points mean odds
of ``base_odds`` to 1 and every ``pdo`` points double them. The score splits into a base
(``offset − factor × intercept``) and one part per feature (``factor × weight_f × x_f``),
each rounded; the score is their sum, so a credit officer can add it up.

**Reason codes** name the features that cost the most points against their best value
(``factor × max(0, w) − factor × w × x``), largest first, at most three, each at least one
point, with the measured facts (``P01 production: electricity −3.1 % a month, 4 of 6
devices reporting (-22 points)``).

**Weights are configuration**: a TOML file with ``[scaling]`` (base, base_odds, pdo),
``[model]`` (intercept) and ``[weights]`` (one per feature, every feature named). The
packaged ``scorecard.toml`` holds the weights fitted on the synthetic economy; ``tally graph
calibrate`` fits new ones on labelled outcomes (:mod:`tally.graph.calibrate`).
:class:`WeightsError` names what is wrong in a file.

**Limits.** :func:`limit_for` maps a score to a supplier limit for the credit contract's
``set_limit(party, limit, currency)`` (key ``limit/<bank>/<party>``,
:func:`tally.finance.keys.limit_key`): zero below the policy's cutoff, else a band's share of
(``receivables_advance`` × confirmed receivables + ``sales_share`` × annual sales), rounded
down to ``step`` and capped (by the policy and by the contract's largest limit).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tally.finance.contracts.credit import MAX_LIMIT
from tally.finance.keys import limit_key
from tally.graph.features import FEATURES, FeatureRow

CODES = {
    "production": "P01",
    "inventory_turnover": "I01",
    "custody": "C01",
    "fourflow": "F01",
    "payment": "T01",
    "tier_distance": "D01",
    "graph_risk": "G01",
}
TITLES = {
    "production": "production activity",
    "inventory_turnover": "inventory turnover",
    "custody": "custody of pledged goods",
    "fourflow": "four-flow consistency",
    "payment": "payment timeliness",
    "tier_distance": "distance to a strong core enterprise",
    "graph_risk": "graph risk",
}
MAX_REASONS = 3


class WeightsError(ValueError):
    """Raised when a weights file is not valid; says which file and what."""


@dataclass(frozen=True, slots=True)
class Weights:
    intercept: float
    weights: dict[str, float]
    base: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base - self.factor * math.log(self.base_odds)


def _number(source: str, where: str, value: Any, positive: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise WeightsError(f"{source}: {where} must be a number, got {value!r}")
    if positive and value <= 0:
        raise WeightsError(f"{source}: {where} must be > 0, got {value!r}")
    return float(value)


def parse_weights(text: str, source: str = "weights") -> Weights:
    """Weights from TOML text (see the module docstring); :class:`WeightsError` if bad."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{source}: not TOML: {exc}") from None
    for section in ("scaling", "model", "weights"):
        if not isinstance(data.get(section), dict):
            raise WeightsError(f"{source}: missing the [{section}] table")
    raw = data["weights"]
    unknown = sorted(set(raw) - set(FEATURES))
    missing = [f for f in FEATURES if f not in raw]
    if unknown or missing:
        raise WeightsError(
            f"{source}: [weights] must name exactly the features {', '.join(FEATURES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    sc = data["scaling"]
    return Weights(
        intercept=_number(source, "model.intercept", data["model"].get("intercept")),
        weights={f: _number(source, f"weights.{f}", raw[f]) for f in FEATURES},
        base=_number(source, "scaling.base", sc.get("base", 600)),
        base_odds=_number(source, "scaling.base_odds", sc.get("base_odds", 50), True),
        pdo=_number(source, "scaling.pdo", sc.get("pdo", 20), True),
    )


def load_weights(path: Path | None = None) -> Weights:
    """Weights from a TOML file, or the packaged ``scorecard.toml``."""
    if path is None:
        text = resources.files("tally.graph").joinpath("scorecard.toml").read_text("utf-8")
        return parse_weights(text, "scorecard.toml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_weights(text, str(path))


def weights_toml(w: Weights, comment: str = "") -> str:
    """TOML text of weights that :func:`parse_weights` reads back exactly."""
    lines = [f"# {c}" for c in comment.splitlines()] if comment else []
    lines += [
        "[scaling]",
        f"base = {w.base!r}",
        f"base_odds = {w.base_odds!r}",
        f"pdo = {w.pdo!r}",
        "",
        "[model]",
        f"intercept = {w.intercept!r}",
        "",
        "[weights]",
    ]
    lines += [f"{f} = {w.weights[f]!r}" for f in FEATURES]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    feature: str
    points_lost: int
    text: str


@dataclass(frozen=True, slots=True)
class Score:
    firm: str
    score: int
    pd: float
    base: int
    points: dict[str, int]
    reasons: tuple[Reason, ...]
    features: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "firm": self.firm,
            "score": self.score,
            "pd": round(self.pd, 6),
            "base_points": self.base,
            "points": self.points,
            "features": {k: round(v, 4) for k, v in self.features.items()},
            "reasons": [
                {"code": r.code, "feature": r.feature, "points_lost": r.points_lost, "text": r.text}
                for r in self.reasons
            ],
        }


def logit(w: Weights, x: Mapping[str, float]) -> float:
    """``intercept − Σ w_f x_f``: the log-odds of default."""
    return w.intercept - sum(w.weights[f] * x[f] for f in FEATURES)


def score_row(r: FeatureRow, w: Weights) -> Score:
    """The score, points and reason codes of one firm's features."""
    k = w.factor
    base = round(w.offset - k * w.intercept)
    points = {f: round(k * w.weights[f] * r.values[f]) for f in FEATURES}
    z = logit(w, r.values)
    pd = 1 / (1 + math.exp(-z)) if z > -700 else 0.0
    lost = []
    for f in FEATURES:
        wf = w.weights[f]
        gap = k * max(0.0, wf) - k * wf * r.values[f]
        if gap >= 1:
            lost.append((-gap, f))
    lost.sort()
    reasons = tuple(
        Reason(CODES[f], f, round(-g), f"{CODES[f]} {TITLES[f]}: {r.facts[f]} ({round(g)} points)")
        for g, f in lost[:MAX_REASONS]
    )
    return Score(r.firm, base + sum(points.values()), pd, base, points, reasons, dict(r.values))


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """How a score becomes a limit. The default bands follow the packaged points scale (600
    points = odds 50:1, 20 points double them): a score of 540 means a default probability of
    about 14 %, 610 about 1.4 %. Money in minor units: ``cap`` 50,000,000 CNY, ``step``
    10,000 CNY."""

    cutoff: int = 540
    bands: tuple[tuple[int, float], ...] = (
        (610, 1.0),
        (590, 0.8),
        (570, 0.6),
        (555, 0.4),
        (540, 0.2),
    )
    receivables_advance: float = 0.9
    sales_share: float = 0.2
    cap: int = 5_000_000_000
    step: int = 1_000_000
    currency: str = "CNY"


@dataclass(frozen=True, slots=True)
class LimitAdvice:
    """A limit to record with ``credit.set_limit``; ``band`` the share of the base used."""

    party: str
    limit: int
    currency: str
    band: float
    reasons: tuple[str, ...]

    def key(self, bank: str) -> str:
        """The state key the bank's limit lands under: ``limit/<bank>/<party>``."""
        return limit_key(bank, self.party)

    def args(self) -> dict[str, Any]:
        """The arguments of ``credit.set_limit``."""
        return {"party": self.party, "limit": self.limit, "currency": self.currency}


def limit_for(
    score: int,
    party: str,
    receivables: int = 0,
    annual_sales: int = 0,
    policy: LimitPolicy | None = None,
) -> LimitAdvice:
    """The supplier limit a score leads to (see the module docstring)."""
    p = policy or LimitPolicy()
    if receivables < 0 or annual_sales < 0:
        raise ValueError("receivables and annual_sales must be >= 0 (minor units)")
    if score < p.cutoff:
        return LimitAdvice(
            party, 0, p.currency, 0.0, (f"score {score} below the cutoff {p.cutoff}",)
        )
    band = next((share for floor, share in p.bands if score >= floor), 0.0)
    base = p.receivables_advance * receivables + p.sales_share * annual_sales
    cap = min(p.cap, MAX_LIMIT)
    limit = min(cap, int(base * band) // p.step * p.step)
    why: tuple[str, ...] = (
        f"score {score}: band {band:.0%}",
        f"base {base / 100:,.2f} {p.currency} = {p.receivables_advance:.0%} of receivables "
        f"{receivables / 100:,.2f} + {p.sales_share:.0%} of annual sales {annual_sales / 100:,.2f}",
    ) + ((f"capped at {cap / 100:,.2f} {p.currency}",) if limit == cap else ())
    return LimitAdvice(party, limit, p.currency, band, why)


__all__ = [
    "CODES",
    "LimitAdvice",
    "LimitPolicy",
    "Reason",
    "Score",
    "Weights",
    "WeightsError",
    "limit_for",
    "load_weights",
    "logit",
    "parse_weights",
    "score_row",
    "weights_toml",
]

"""The command line of the knowledge graph: ``tally sim generate``, ``tally graph …`` and
``tally bench graph`` (registered by tally.cli).

Every ``tally graph`` command reads a directory of records (``--data``, as written by
``tally sim generate``) and prints JSON on stdout. Bad input (an unreadable directory, a bad
record line, an unknown firm, a bad weights file) prints ``tally: <what is wrong>`` on stderr
and exits with status 2. Heavy imports happen inside the commands, so ``tally --help`` stays
fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

sim_app = typer.Typer(help="Synthetic data, labelled simulated.", no_args_is_help=True)
graph_app = typer.Typer(
    help="The enterprise knowledge graph: queries, objective credit, the daily brief.",
    no_args_is_help=True,
)
DataOpt = Annotated[
    Path, typer.Option("--data", help="Directory of records (from tally sim generate).")
]
FirmArg = Annotated[str, typer.Argument(help="A firm id.")]
WeightsOpt = Annotated[
    Path | None, typer.Option(help="Scorecard weights (TOML) [default: the packaged ones].")
]


def _fail(exc: Exception) -> typer.Exit:
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"tally: {msg}", file=sys.stderr)
    return typer.Exit(2)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _load(data: Path) -> Any:
    from tally.graph.load import DataError, load_dir

    try:
        return load_dir(data)
    except DataError as exc:
        raise _fail(exc) from None


@sim_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files into.")],
    scale: Annotated[float, typer.Option(help="1.0 = 4,800 cores and 34,000 SMEs.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same files.")] = 7,
) -> None:
    """Generate a labelled synthetic economy and its ground truth (truth.json)."""
    from tally.sim.economy import generate as make
    from tally.sim.economy_io import write_economy

    try:
        manifest = write_economy(make(scale, seed), out)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from None
    counts = {k: v["records"] for k, v in manifest["files"].items() if "records" in v}
    print(
        f"{out}: simulated economy, scale {scale}, seed {seed}: "
        + ", ".join(f"{n} {k.removesuffix('.jsonl')}" for k, n in counts.items())
    )


@graph_app.command("tiers")
def tiers(data: DataOpt, core: FirmArg, max_tier: Annotated[int, typer.Option(min=1)] = 10) -> None:
    """A core enterprise's supplier tiers."""
    from tally.graph.queries import supplier_tiers

    try:
        _print({str(k): v for k, v in supplier_tiers(_load(data).graph, core, max_tier).items()})
    except KeyError as exc:
        raise _fail(exc) from None


@graph_app.command("relatives")
def relatives(data: DataOpt, firm: FirmArg) -> None:
    """Firms sharing a person, address or account with a firm, with the shared facts."""
    from tally.graph.queries import relatives as find

    try:
        rel = find(_load(data).graph, firm)
    except KeyError as exc:
        raise _fail(exc) from None
    _print(
        [
            {
                "firm": r.firm,
                "links": [
                    {"kind": k.kind, "value": k.value, "role": k.role, "other_role": k.other_role}
                    for k in r.links
                ],
            }
            for r in rel
        ]
    )


@graph_app.command("circles")
def circles(data: DataOpt, max_len: Annotated[int, typer.Option(min=2)] = 10) -> None:
    """Every guarantee circle."""
    from tally.graph.queries import guarantee_circles

    _print(
        [
            {
                "firms": list(c.firms),
                "guarantees": [list(h) for h in c.hops],
                "amount": c.amount,
                "closed": c.closed,
            }
            for c in guarantee_circles(_load(data).graph, max_len)
        ]
    )


@graph_app.command("exposure")
def exposure(
    data: DataOpt,
    firm: FirmArg,
    bank: Annotated[str | None, typer.Option(help="One bank [default: every bank].")] = None,
) -> None:
    """A bank's exposure to a firm through loans, notes and guarantees."""
    from tally.graph.exposure import exposure as one
    from tally.graph.exposure import exposures

    g = _load(data).graph
    if firm not in g.firms:
        raise _fail(KeyError(f"no firm {firm!r} in the graph"))
    if bank is not None:
        _print(one(g, bank, firm).as_json())
    else:
        _print([ex.as_json() for _, ex in sorted(exposures(g).get(firm, {}).items())])


@graph_app.command("contagion")
def contagion(
    data: DataOpt,
    firm: FirmArg,
    absorb: Annotated[float, typer.Option(help="Losses ≥ absorb × capital default a firm.")] = 1.0,
) -> None:
    """Who loses what if a firm defaults, round by round and by supplier tier."""
    from tally.graph.contagion import contagion as spread

    try:
        _print(spread(_load(data).graph, firm, absorb).as_json())
    except (KeyError, ValueError) as exc:
        raise _fail(exc) from None


@graph_app.command("shells")
def shells(data: DataOpt) -> None:
    """Shell-company groups (shared director and address) and the flagged firms."""
    from tally.graph.patterns import shell_companies

    loaded = _load(data)
    _print(
        [
            {
                "firms": [
                    {"firm": f.firm, "signals": list(f.signals), "flagged": f.flagged}
                    for f in grp.firms
                ],
                "persons": list(grp.persons),
                "addresses": list(grp.addresses),
            }
            for grp in shell_companies(loaded.graph, loaded.as_of)
        ]
    )


@graph_app.command("circular")
def circular(data: DataOpt, window_days: Annotated[int, typer.Option(min=1)] = 90) -> None:
    """Circular trades (3–6 firms selling round within the window)."""
    from tally.graph.patterns import circular_trades

    found = circular_trades(_load(data).graph, window_days)
    _print(
        [
            {
                "firms": list(c.firms),
                "trades": list(c.trades),
                "span_ms": c.span_ms,
                "amount": c.amount,
            }
            for c in found
        ]
    )


@graph_app.command("needs")
def needs(data: DataOpt, top: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """The ranked financing needs, with their reasons."""
    from tally.graph.mining import financing_needs

    _print([n.as_json() for n in financing_needs(_load(data).graph)[:top]])


@graph_app.command("score")
def score(
    data: DataOpt,
    firm: FirmArg,
    weights: WeightsOpt = None,
    bank: Annotated[str, typer.Option(help="The bank whose limit key is shown.")] = "BANK01",
) -> None:
    """A firm's score, points, reason codes and the supplier limit it leads to."""
    from tally.graph.features import context, row
    from tally.graph.scorecard import WeightsError, limit_for, load_weights, score_row

    loaded = _load(data)
    g = loaded.graph
    if firm not in g.firms:
        raise _fail(KeyError(f"no firm {firm!r} in the graph"))
    try:
        w = load_weights(weights)
    except WeightsError as exc:
        raise _fail(exc) from None
    s = score_row(row(g, firm, context(g, loaded.as_of)), w)
    receivables = sum(
        n.amount
        for n in g.endorsed_notes(firm)
        if n.holder == firm and n.state == "live" and n.confirmed
    )
    sales = sum(e.amount for e in g.out_edges("trades", firm))
    advice = limit_for(s.score, firm, receivables, sales)
    _print(
        {
            **s.as_json(),
            "limit": {**advice.args(), "key": advice.key(bank), "reasons": list(advice.reasons)},
        }
    )


@graph_app.command("calibrate")
def calibrate(
    data: DataOpt,
    out: Annotated[Path | None, typer.Option(help="Write the fitted weights (TOML) here.")] = None,
    holdout: Annotated[float, typer.Option(help="Share held out for AUC and KS.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 7,
) -> None:
    """Fit the scorecard's weights on the labelled outcomes; report AUC and KS held out."""
    from tally.graph.calibrate import calibrate as fit
    from tally.graph.features import feature_table
    from tally.graph.scorecard import weights_toml

    loaded = _load(data)
    labels = {o.firm: o.defaulted for o in loaded.graph.outcomes.values()}
    try:
        cal = fit(
            feature_table(loaded.graph, as_of=loaded.as_of), labels, seed=seed, holdout=holdout
        )
    except ValueError as exc:
        raise _fail(exc) from None
    report = {**cal.as_json(), "simulated": loaded.simulated}
    if out is not None:
        what = "simulated " if loaded.simulated else ""
        comment = (
            f"Fitted by tally graph calibrate on {cal.n_fit} {what}outcomes; held-out "
            f"AUC {cal.auc_held_out:.4f}, KS {cal.ks_held_out:.4f} (n={cal.n_held_out})."
        )
        out.write_text(weights_toml(cal.weights, comment), encoding="utf-8")
        report["written"] = str(out)
    _print(report)


@graph_app.command("brief")
def brief(
    data: DataOpt,
    bank: Annotated[list[str] | None, typer.Option(help="Only this bank (repeatable).")] = None,
    core: Annotated[list[str] | None, typer.Option(help="Only this core's chain.")] = None,
    state: Annotated[
        Path | None, typer.Option(help="Yesterday's state (read if present, then replaced).")
    ] = None,
    weights: WeightsOpt = None,
) -> None:
    """The daily brief per bank portfolio and core-enterprise chain (JSON; the cloud also
    serves it as a PDF: GET /v1/graph/brief.pdf)."""
    from tally.graph.brief import daily_brief
    from tally.graph.features import feature_table
    from tally.graph.scorecard import WeightsError, load_weights, score_row

    loaded = _load(data)
    previous = None
    try:
        w = load_weights(weights)
        if state is not None and state.exists():
            previous = json.loads(state.read_text(encoding="utf-8"))
    except (WeightsError, OSError, json.JSONDecodeError) as exc:
        raise _fail(exc) from None
    scores = {
        f: score_row(r, w).score for f, r in feature_table(loaded.graph, as_of=loaded.as_of).items()
    }
    out = daily_brief(
        loaded.graph, as_of=loaded.as_of, scores=scores, previous=previous, banks=bank, cores=core
    )
    if state is not None:
        state.write_text(json.dumps(out["state"]), encoding="utf-8")
    out["simulated"] = loaded.simulated
    _print(out)


def bench_graph(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    scales: Annotated[str, typer.Option(help="Scales, comma-separated.")] = "0.1,0.5,1.0",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic economy.")] = 7,
) -> None:
    """Knowledge graph: build, guarantee circles, exposure at 1/10 to full scale; detection
    precision/recall and scorecard AUC against the planted (synthetic) truth."""
    from tally.bench.graph import parse_scales, run_graph_bench

    try:
        parsed = parse_scales(scales)
        code = run_graph_bench(parsed, seed, json_out)
    except ValueError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


__all__ = ["bench_graph", "graph_app", "sim_app"]

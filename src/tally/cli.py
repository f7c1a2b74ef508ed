"""The ``tally`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tally.config import ConfigError

app = typer.Typer(
    name="tally",
    help="Signed IoT evidence from device to edge to cloud, provable offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: print JSON measured side by side in one run.")
app.add_typer(bench_app, name="bench")


@app.command()
def demo(
    headless: Annotated[
        bool, typer.Option(help="Run without waiting for the user; inject scripted incidents.")
    ] = False,
    duration: Annotated[float, typer.Option(help="Seconds to run (headless).", min=5)] = 60.0,
    report: Annotated[
        Path | None, typer.Option(help="Directory for report.json and proof bundles.")
    ] = None,
    suite: Annotated[str, typer.Option(help="Crypto suite: intl or gm.")] = "intl",
    devices: Annotated[int, typer.Option(help="Number of simulated devices.", min=5)] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the simulated site.")] = 7,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where keys and databases live (default: a temp dir).")
    ] = None,
) -> None:
    """Run the whole system on this machine: simulated site, edge, embedded broker, cloud."""
    from tally.sim.demo import DemoOptions, run_demo

    opts = DemoOptions(
        headless=headless,
        duration_s=duration,
        report_dir=report,
        suite=suite,
        devices=devices,
        seed=seed,
        data_dir=data_dir,
    )
    raise typer.Exit(run_demo(opts))


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="A proof bundle (.cbor).")],
    trust: Annotated[
        Path | None, typer.Option(help="Trust file naming the organisations' root keys.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check a proof bundle offline; print one line: VALID … or INVALID: reason."""
    from tally.verify.cli import run_verify

    raise typer.Exit(run_verify(bundle, trust, json_out))


@bench_app.command("edge")
def bench_edge(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    suite: Annotated[str, typer.Option(help="Crypto suite: intl or gm.")] = "intl",
    n: Annotated[int, typer.Option(help="Envelopes per measurement.", min=100)] = 20000,
) -> None:
    """Edge pipeline rate against this machine's bare signature-verify rate."""
    from tally.bench.edge import run_edge_bench

    raise typer.Exit(run_edge_bench(suite=suite, n=n, json_only=json_out))


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

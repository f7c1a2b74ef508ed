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
    n: Annotated[
        int | None,
        typer.Option(help="Envelopes per measurement [default: 20000 intl, 4000 gm].", min=100),
    ] = None,
) -> None:
    """Edge pipeline rate against this machine's bare signature-verify rate."""
    from tally.bench.edge import default_n, run_edge_bench

    raise typer.Exit(run_edge_bench(suite=suite, n=n or default_n(suite), json_only=json_out))


@bench_app.command("memory")
def bench_memory(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    devices: Annotated[int, typer.Option(help="Registered devices.", min=10)] = 10_000,
    minutes: Annotated[int, typer.Option(help="Simulated minutes of cloud outage.", min=1)] = 60,
    interval: Annotated[
        int, typer.Option(help="Simulated seconds between two readings of a device.", min=1)
    ] = 120,
) -> None:
    """Edge resident memory with many devices and an outage buffered in the outbox."""
    from tally.bench.memory import run_memory_bench

    raise typer.Exit(run_memory_bench(devices, minutes, interval, json_out))


@bench_app.command("ingest")
def bench_ingest(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    suite: Annotated[str, typer.Option(help="Crypto suite: intl or gm.")] = "intl",
    n: Annotated[int, typer.Option(help="Readings to ingest per backend.", min=100)] = 20_000,
    batch: Annotated[int, typer.Option(help="Readings per edge batch.", min=1)] = 1000,
) -> None:
    """Cloud ingest into PostgreSQL (and SQLite) against a plain bulk insert of the same rows."""
    from tally.bench.ingest import run_ingest_bench

    raise typer.Exit(run_ingest_bench(suite, n, batch, json_out))


@bench_app.command("verify")
def bench_verify(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    suite: Annotated[
        list[str] | None, typer.Option(help="Suite(s) to measure [default: intl and gm].")
    ] = None,
    bundles: Annotated[int, typer.Option(help="Different proof bundles.", min=1)] = 200,
    rounds: Annotated[int, typer.Option(help="Passes over the bundles.", min=1)] = 5,
) -> None:
    """Time to verify one reading's proof bundle offline: median and p95."""
    from tally.bench.verify import run_verify_bench

    suites = tuple(suite) if suite else ("intl", "gm")
    raise typer.Exit(run_verify_bench(suites, bundles, rounds, json_out))


@bench_app.command("latency")
def bench_latency(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    devices: Annotated[
        int, typer.Option(help="Simulated devices, 1 reading/s each.", min=1)
    ] = 1000,
    seconds: Annotated[int, typer.Option(help="How long the devices publish.", min=1)] = 30,
    mqtt_host: Annotated[str, typer.Option(help="MQTT broker host.")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
) -> None:
    """Device publish -> stored in the cloud through MQTT, edge and cloud: p50 and p95."""
    from tally.bench.latency import run_latency_bench

    raise typer.Exit(run_latency_bench(devices, seconds, mqtt_host, mqtt_port, json_out))


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

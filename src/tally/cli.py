"""The ``tally`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tally.cli_admin import ConfigOpt, admin_app, certs_app, keys_app, load_config, trust_app
from tally.cli_graph import bench_graph, graph_app, sim_app
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
app.add_typer(keys_app, name="keys")
app.add_typer(trust_app, name="trust")
consortium_app = typer.Typer(help="The consortium ledger: members, genesis.")
app.add_typer(consortium_app, name="consortium")
app.add_typer(certs_app, name="certs")
app.add_typer(admin_app, name="admin")
app.add_typer(sim_app, name="sim")
app.add_typer(graph_app, name="graph")
bench_app.command("graph")(bench_graph)
LogJsonOpt = Annotated[
    bool, typer.Option("--log-json", help="Log JSON lines to stderr (or TALLY_LOG_JSON=1).")
]


@app.command()
def demo(
    headless: Annotated[
        bool, typer.Option(help="Run without waiting for the user; inject scripted incidents.")
    ] = False,
    duration: Annotated[
        float,
        typer.Option(
            help="Seconds to run (headless); the stories need 30 (02:00 and a note's maturity).",
            min=30,
        ),
    ] = 60.0,
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
    genesis: Annotated[
        Path | None,
        typer.Option(
            help="The consortium's genesis: its members are the anchors; checks the chain."
        ),
    ] = None,
    require_anchor: Annotated[
        bool,
        typer.Option("--require-anchor", help="INVALID unless anchored up to a final checkpoint."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check a proof bundle offline; print one line: VALID … or INVALID: reason.

    Without --genesis and --trust, genesis.cbor (preferred) or trust.cbor is looked for
    beside the bundle and one directory up.
    """
    from tally.verify.cli import run_verify

    raise typer.Exit(run_verify(bundle, trust, json_out, genesis, require_anchor))


@bench_app.command("edge")
def bench_edge(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    suite: Annotated[str, typer.Option(help="Crypto suite: intl or gm.")] = "intl",
    n: Annotated[
        int | None,
        typer.Option(help="Envelopes per measurement \\[default: 20000 intl, 4000 gm].", min=100),
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
        list[str] | None, typer.Option(help="Suite(s) to measure \\[default: intl and gm].")
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


@bench_app.command("collateral")
def bench_collateral(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    size: Annotated[
        list[int] | None, typer.Option(help="Portfolio sizes \\[default: 1000, 10000, 100000].")
    ] = None,
    steps: Annotated[int, typer.Option(help="Price-walk steps (8 ticks each).", min=1)] = 10,
    removals: Annotated[int, typer.Option(help="Removal events timed.", min=1)] = 200,
) -> None:
    """Collateral monitor: µs per affected loan on price ticks, and removal → alert latency."""
    from tally.bench.collateral import run_collateral_bench

    sizes = tuple(size) if size else (1000, 10000, 100000)
    raise typer.Exit(run_collateral_bench(sizes, steps, removals, json_out))


@bench_app.command("fourflow")
def bench_fourflow(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    size: Annotated[
        list[int] | None,
        typer.Option(help="Document counts \\[default: 10000, 100000, 1000000]."),
    ] = None,
) -> None:
    """Four-flow reconciliation: cost per trade from 10^4 to 10^6 documents, trades per second."""
    from tally.bench.fourflow import run_fourflow_bench

    sizes = tuple(size) if size else (10_000, 100_000, 1_000_000)
    raise typer.Exit(run_fourflow_bench(sizes, json_out))


@bench_app.command("notes")
def bench_notes(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    size: Annotated[
        list[int] | None, typer.Option(help="Note counts \\[default: 1000, 10000, 100000].")
    ] = None,
    executed_max: Annotated[
        int, typer.Option(help="Largest size executed in full through the contracts.", min=1)
    ] = 10000,
) -> None:
    """Receivable notes: 10-tier split/transfer chains; ops/s and provenance time vs note count."""
    from tally.bench.notes import run_notes_bench

    sizes = tuple(size) if size else (1000, 10000, 100000)
    raise typer.Exit(run_notes_bench(sizes, json_out, executed_max))


@bench_app.command("ledger")
def bench_ledger(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    n: Annotated[int, typer.Option(help="Transactions per orderer.", min=10)] = 2000,
    concurrency: Annotated[int, typer.Option(help="Transactions in flight.", min=1)] = 200,
    max_txs: Annotated[int, typer.Option(help="Ordering: most transactions a block.", min=1)] = 100,
    max_ms: Annotated[int, typer.Option(help="Ordering: ms before a block is cut.", min=1)] = 20,
    catchup_blocks: Annotated[
        int, typer.Option(help="Blocks a restarted peer catches up (0: skip).", min=0)
    ] = 10_000,
) -> None:
    """Ledger tx/s and time to a final checkpoint (solo, JetStream); proofs; catch-up."""
    from tally.bench.ledger import run_ledger_bench

    raise typer.Exit(run_ledger_bench(n, concurrency, max_txs, max_ms, catchup_blocks, json_out))


@bench_app.command("api")
def bench_api(
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    scale: Annotated[
        float, typer.Option(help="Size of the seeded read model (1.0: 38,800 organisations).")
    ] = 1.0,
    clients: Annotated[int, typer.Option(help="Concurrent API clients.", min=1)] = 50,
    seconds: Annotated[float, typer.Option(help="How long the clients run.", min=1)] = 10.0,
    database_url: Annotated[
        str | None, typer.Option(help="The database to seed (default: a temporary SQLite file).")
    ] = None,
) -> None:
    """Platform API throughput and latency per endpoint under concurrent clients."""
    from tally.bench.api import run_api_bench

    raise typer.Exit(run_api_bench(scale, clients, seconds, json_out, database_url))


@app.command()
def cloud(config_file: ConfigOpt = None, log_json: LogJsonOpt = False) -> None:
    """Run the cloud service (\\[cloud] section) until interrupted."""
    import asyncio
    import contextlib

    from tally import config, logjson

    logjson.configure(logjson.json_wanted(log_json))
    from tally.cloud.config import load_settings
    from tally.cloud.keys import load_identity
    from tally.cloud.server import serve_forever

    settings = load_settings(load_config(config_file), str(config_file or "environment"))
    identity = load_identity(settings, config.passphrase())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(settings, identity))


@app.command()
def edge(config_file: ConfigOpt = None, log_json: LogJsonOpt = False) -> None:
    """Run an edge gateway (\\[edge] section) and its adapters until interrupted."""
    import asyncio
    import contextlib
    import signal

    from tally import config, logjson

    logjson.configure(logjson.json_wanted(log_json))
    from tally.edge.config import load_edge_config
    from tally.edge.gateway import EdgeGateway
    from tally.edge.service import EdgeService

    cfg = load_edge_config(config.load(config_file), str(config_file or "environment"))

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        service = EdgeService(EdgeGateway(cfg))
        await service.start()
        print(f"tally edge {cfg.id} at site {cfg.site}: running (Ctrl-C stops)", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


@app.command()
def peer(config_file: ConfigOpt = None, log_json: LogJsonOpt = False) -> None:
    """Run a member's ledger peer (\\[peer] section) until SIGTERM or Ctrl-C."""
    import asyncio
    import contextlib

    from tally import config, logjson

    logjson.configure(logjson.json_wanted(log_json))
    from tally.finance.policies import finance_contracts
    from tally.ledger.contract import Registry
    from tally.ledger.contracts import system_contracts
    from tally.ledger.errors import LedgerError
    from tally.ledger.peerservice import load_peer_config, run

    cfg = load_peer_config(config_file)
    contracts = Registry(*system_contracts(), *finance_contracts())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(cfg, config.passphrase(), contracts))
    except LedgerError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


@app.command()
def register(
    kind: Annotated[str, typer.Argument(help="device, edge or cloud.")],
    subject: Annotated[str, typer.Argument(help="Its id.")],
    org: Annotated[str, typer.Option(help="The owning organisation (signs).")],
    org_key: Annotated[Path, typer.Option(help="The organisation's root key file.")],
    out: Annotated[Path, typer.Option(help="Directory of registrations.")],
    key: Annotated[Path | None, typer.Option(help="The subject's key file.")] = None,
    site: Annotated[str, typer.Option(help="Site id.")] = "",
    profile: Annotated[str, typer.Option(help="Sensor profile (devices).")] = "",
    assurance: Annotated[
        str, typer.Option(help="device (signs itself), edge (the edge signs for it), manual.")
    ] = "device",
) -> None:
    """Sign a registration of a device, edge or cloud by its organisation."""
    from tally.deploy import register as reg

    path = reg(
        kind,
        subject,
        org,
        org_key,
        out,
        site=site,
        profile=profile,
        subject_key_path=key,
        assurance=assurance,
    )
    print(path)


@app.command()
def enter(
    device: Annotated[str, typer.Argument(help="A device registered with assurance manual.")],
    org: Annotated[str, typer.Option(help="The device's organisation (signs the entry).")],
    org_key: Annotated[Path, typer.Option(help="The organisation's key file.")],
    edge_url: Annotated[str, typer.Option(help="The site edge's HTTP endpoint base URL.")],
    value: Annotated[
        list[str], typer.Option(help="quantity=value:unit, e.g. weight=12.345:t (repeatable).")
    ],
    label: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
    state_dir: Annotated[
        Path, typer.Option(help="Where the counter of each manual device is kept.")
    ] = Path("var/manual"),
) -> None:
    """Enter a reading by hand (assurance manual), signed by the organisation's key."""
    import asyncio
    import time

    from tally import config
    from tally.crypto.keystore import load_key
    from tally.device.manual import load_signer, parse_label, parse_value, save_signer
    from tally.device.publish import HttpPublisher

    measurements = tuple(parse_value(v) for v in value)
    labels = tuple(sorted(parse_label(x) for x in (label or [])))
    signer = load_signer(state_dir, device, org, load_key(org_key, config.passphrase()))
    env = signer.next(int(time.time() * 1000), measurements, labels)

    async def send() -> None:
        async with HttpPublisher(edge_url) as pub:
            await pub.publish("", device, env)

    asyncio.run(send())
    save_signer(state_dir, signer)
    print(f"entered {device} boot {signer.boot} ctr {signer.ctr - 1} (assurance manual)")


@consortium_app.command("init")
def consortium_init(
    directory: Annotated[Path, typer.Argument(help="Where genesis.cbor and members/ go.")],
    member: Annotated[
        list[str], typer.Option(help="org:role[,role…], e.g. bank-1:bank (repeatable).")
    ],
    policy: Annotated[
        list[str] | None,
        typer.Option(help="contract.fn=POLICY, e.g. 'anchoring.*=2-OF(org:a, org:b, org:c)'."),
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(help="Checkpoint quorum (default: majority).")
    ] = None,
    suite: Annotated[str, typer.Option(help="intl or gm.")] = "intl",
    ordering: Annotated[str, typer.Option(help="solo or jetstream.")] = "solo",
    name: Annotated[str, typer.Option(help="The consortium's name.")] = "tally",
) -> None:
    """Create a consortium: each member's key (encrypted) and the genesis they all sign."""
    from tally import config
    from tally.finance.policies import default_policies as finance_policies
    from tally.ledger.bootstrap import create_consortium
    from tally.ledger.genesis import Ordering
    from tally.ledger.policy import parse_policy

    members: dict[str, list[str]] = {}
    for m in member:
        org, sep, roles = m.partition(":")
        if not sep or not org or not roles:
            raise typer.BadParameter(f"{m!r} is not org:role[,role…]", param_hint="--member")
        members[org] = [r.strip() for r in roles.split(",")]
    try:  # the finance contracts' policies, when the members can satisfy them
        policies: dict[str, Any] = dict(finance_policies(members))
    except ValueError as exc:
        print(f"tally: no finance policies in this genesis: {exc}", file=sys.stderr)
        policies = {}
    for p in policy or []:
        fn, sep, text = p.partition("=")
        if not sep:
            raise typer.BadParameter(f"{p!r} is not contract.fn=POLICY", param_hint="--policy")
        policies[fn.strip()] = parse_policy(text)
    created = create_consortium(
        directory,
        members,
        config.passphrase(),
        name=name,
        suite=suite,
        quorum=quorum,
        policies=policies,
        ordering=Ordering(kind=ordering),
    )
    g = created.genesis
    print(
        f"{created.genesis_path}: consortium {g.name!r}, chain {g.chain.hex()[:16]}…, "
        f"{len(g.members)} members, quorum {g.checkpoint_quorum}, {g.suite.name}"
    )


@app.command()
def audit(
    genesis: Annotated[Path, typer.Option(help="The consortium's genesis file.")],
    peer_state: Annotated[
        Path, typer.Option(help="A member peer's state database (SQLite) to read the chain from.")
    ],
    config_file: ConfigOpt = None,
    database_url: Annotated[
        str | None, typer.Option(help="The cloud database (default: \\[cloud] database_url).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check the cloud database against the chain: altered, deleted or never-anchored records."""
    import json

    from tally import config
    from tally.cloud.audit import audit as run_audit
    from tally.cloud.config import load_settings
    from tally.cloud.storage import open_storage
    from tally.cloud.storage.sql import SqlStorage
    from tally.ledger.genesis import read_genesis
    from tally.ledger.state import SqliteState

    if not peer_state.is_file():
        raise FileNotFoundError(f"peer state {peer_state} does not exist")
    g = read_genesis(genesis)
    url = database_url or load_settings(config.load(config_file)).database_url
    storage = open_storage(url)
    state = SqliteState(peer_state)
    try:
        assert isinstance(storage, SqlStorage)
        report = run_audit(storage, state, g)
    finally:
        state.close()
        storage.close()
    if json_out:
        print(
            json.dumps(
                {
                    "batches": report.batches,
                    "items": report.items,
                    "anchored": report.anchored,
                    "counts": report.counts(),
                    "findings": [f.__dict__ for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        for f in report.findings:
            print(f.line())
        verdict = "clean" if report.clean else f"{len(report.findings)} findings"
        print(
            f"audited {report.batches} batches, {report.items} items against "
            f"{report.anchored} anchors: {verdict}"
        )
    raise typer.Exit(0 if report.clean else 1)


@consortium_app.command("up")
def consortium_up(
    directory: Annotated[Path, typer.Argument(help="The consortium's directory (made if new).")],
    nats_servers: Annotated[int, typer.Option(help="NATS JetStream servers.", min=1)] = 3,
) -> None:
    """Run a whole consortium here: a peer process per member and a NATS JetStream cluster.

    A new directory gets a consortium of four members (bank, core enterprise, warehouse,
    regulator) with the system and finance contracts' policies; an existing one is restarted
    with its data. Ctrl-C stops everything.
    """
    import asyncio
    import contextlib

    from tally import config
    from tally.finance.policies import default_policies
    from tally.ledger.localnet import LocalNet, describe, run_localnet

    def ready(net: LocalNet) -> None:
        print(describe(net), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_localnet(
                directory,
                config.passphrase(),
                nats_servers=nats_servers,
                on_ready=ready,
                policies=default_policies,
            )
        )


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        from tally.cloud.deployment import ServerError
        from tally.cloud.errors import CloudError
        from tally.cloud.keys import IdentityError
        from tally.crypto import CryptoError
        from tally.deploy import DeployError
        from tally.device.manual import ManualEntryError
        from tally.device.publish import PublishError
        from tally.edge.errors import EdgeError

        if isinstance(exc, CloudError):
            print(f"tally: {exc.detail}", file=sys.stderr)
            sys.exit(2)
        known = (
            ServerError,
            CryptoError,
            DeployError,
            IdentityError,
            EdgeError,
            OSError,
            ManualEntryError,
            PublishError,
        )
        if isinstance(exc, known):
            print(f"tally: {exc}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

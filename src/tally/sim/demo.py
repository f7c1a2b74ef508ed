"""``tally demo``: a whole site, its edge and the cloud in one process on 127.0.0.1.

What runs: a simulated warehouse site (load cells, RFID gate, doors, cameras, cold room,
silo, trucks, a leased forklift, a hotel's till feed, an electricity meter) whose devices
sign every reading; MQTT through the embedded broker, HTTP and CoAP into the edge gateway;
a Modbus meter that cannot sign, polled by the edge; the edge's rules, batches and uplink;
the cloud on SQLite with its signed receipts and proof export, served over HTTPS with a CA
made for the run and a demo login per console role (:mod:`tally.sim.demo_access`), with the
read model, live events and the projector following the chain behind the console and API v1
(:mod:`tally.sim.demo_console`); and the
consortium ledger of two banks, a core enterprise, the warehouse, the logistics firm and the
regulator (a peer each, a solo orderer, checkpoints final with four of six signatures), on
which the chain registers every device, edge and cloud key and the cloud anchors every stored
batch as the bank. On top of it run the warehouse-receipt financing story
(:mod:`tally.sim.finance_story`) and the receivables story (:mod:`tally.sim.receivables_story`).

Time is simulated and compressed (``TIME_SCALE`` simulated seconds per wall second) so that
a one-minute run covers an hour of the night, with the scripted incidents: goods removed at
02:00, a device unplugged, a skewed clock, replayed messages, a forged signature, a counter
reset and a lost radio link. Every value is simulated and labelled ``sim=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tally.cloud.anchoring import ConsortiumLink
from tally.cloud.config import ApiToken, CloudSettings, token_digest
from tally.cloud.fieldcrypt import FieldRef
from tally.cloud.keys import CloudIdentity
from tally.cloud.server import CloudService, build_service
from tally.crypto import get_suite
from tally.device.broker import EmbeddedBroker
from tally.device.modbus_meter import ModbusMeter
from tally.device.publish.coap import CoapPublisher
from tally.device.publish.http import HttpPublisher
from tally.device.publish.mqtt import MqttPublisher
from tally.device.sim import Site, build_demo_site, demo_incidents
from tally.edge.config import load_edge_config
from tally.edge.gateway import EdgeGateway
from tally.edge.service import EdgeService
from tally.ledger.consortium import Consortium
from tally.sim.accounting import account
from tally.sim.bundles import export_bundles
from tally.sim.chain import chain_report, create_consortium, drain_anchors, register_on_chain
from tally.sim.demo_access import DemoAccess, make_demo_access
from tally.sim.demo_console import CONSOLE_TENANTS, EXTRA_ROLES, DemoConsole
from tally.sim.demo_report import flow_report
from tally.sim.display import Display
from tally.sim.finance_chain import TRADER, FinanceChain
from tally.sim.finance_purchase import Sealing
from tally.sim.finance_story import FinanceStory
from tally.sim.finance_watch import AlertSink
from tally.sim.fleet import COAP, HTTP, MQTT, Fleet, Outgoing
from tally.sim.orgs import (
    ORG_BANK,
    ORG_LOGISTICS,
    ORG_REGULATOR,
    ORG_ROLES,
    ORG_WAREHOUSE,
    ORGS,
)
from tally.sim.provision import DeviceSpec, Provisioned, provision
from tally.sim.receivables_story import ReceivablesStory
from tally.sim.rules import demo_rules
from tally.sim.stories import finance_story, receivables_story

TIME_SCALE = 60
"""Simulated seconds per wall second."""
UTC_OFFSET_MIN = 480
"""The site's local time: China Standard Time."""
START_LOCAL = (1, 45)
"""Simulated local time at which the run starts: 15 simulated minutes before 02:00."""
HEARTBEAT_MS = 60_000
OFFLINE_MS = 240_000
WARMUP_S = 0.5

ANCHOR_DRAIN_S = 30.0
"""How long the end of the run waits for every stored batch to be anchored."""


@dataclass
class DemoOptions:
    headless: bool = False
    duration_s: float = 60.0
    report_dir: Path | None = None
    suite: str = "intl"
    devices: int = 30
    seed: int = 7
    data_dir: Path | None = None


@dataclass
class Sent:
    by_transport: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    at_ms: dict[bytes, int] = field(default_factory=dict)
    """Wall time (ms) of the first send of each genuine envelope, by its hash."""

    @property
    def total(self) -> int:
        return sum(self.by_transport.values())


def simulated_start_ms(now: dt.datetime | None = None) -> int:
    """Today's START_LOCAL in the site's time zone, in ms since the Unix epoch."""
    tz = dt.timezone(dt.timedelta(minutes=UTC_OFFSET_MIN))
    day = (now or dt.datetime.now(tz)).astimezone(tz).date()
    start = dt.datetime(day.year, day.month, day.day, *START_LOCAL, tzinfo=tz)
    return int(start.timestamp() * 1000)


def make_clock(start_ms: int) -> Callable[[], int]:
    wall0 = time.monotonic()

    def clock() -> int:
        return start_ms + int((time.monotonic() - wall0) * 1000 * TIME_SCALE)

    return clock


def transports_for(site: Site) -> dict[str, str]:
    out = {d: MQTT for d in site.device_ids()}
    for d in site.device_ids("rfid_gate") + site.device_ids("camera_ai"):
        out[d] = HTTP
    for d in site.device_ids("door_tamper"):
        out[d] = COAP
    return out


def device_specs(site: Site, meter_id: str) -> list[DeviceSpec]:
    logistics = set(site.device_ids("gps_tracker") + site.device_ids("vehicle_obd"))
    specs = [
        DeviceSpec(
            d,
            site.site_id,
            site.devices[d].profile,
            ORG_LOGISTICS if d in logistics else ORG_WAREHOUSE,
        )
        for d in site.device_ids()
    ]
    specs.append(DeviceSpec(meter_id, site.site_id, "electricity_meter", ORG_WAREHOUSE, False))
    return specs


class Demo:
    """One run of the demo; :meth:`run` returns the process exit code."""

    def __init__(self, opts: DemoOptions, data_dir: Path) -> None:
        self.opts = opts
        self.data_dir = data_dir
        self.start_ms = simulated_start_ms()
        self.clock = make_clock(self.start_ms)
        self.site = build_demo_site(
            opts.seed, opts.devices, time_scale=TIME_SCALE, utc_offset_min=UTC_OFFSET_MIN
        )
        self.meter_id = f"{self.site.site_id}-mb-01"
        self.duration_ms = int(opts.duration_s * 1000 * TIME_SCALE)
        self.incidents = demo_incidents(self.site, self.start_ms, self.duration_ms)
        self.site.schedule(self.incidents)
        self.sent = Sent()
        self.token = secrets.token_urlsafe(24)
        self.passphrase = os.environ.get("TALLY_KEY_PASSPHRASE") or secrets.token_urlsafe(24)
        self.releases_seen = 0
        self.suite = get_suite(opts.suite)
        self.link: ConsortiumLink | None = None
        self.cloud: CloudService | None = None
        self.story: FinanceStory | None = None
        self.receivables: ReceivablesStory | None = None
        self.access: DemoAccess | None = None
        self.console: DemoConsole | None = None

    # setup -------------------------------------------------------------------------------

    def _provision(self) -> Provisioned:
        site = self.site
        return provision(
            self.data_dir,
            self.opts.suite,
            list(ORGS),
            ("edge-" + site.site_id, ORG_WAREHOUSE, site.site_id),
            ("cloud-bank", ORG_BANK),
            device_specs(site, self.meter_id),
            self.passphrase,
            scrypt_n=1 << 12,
            now_ms=self.start_ms - 86_400_000,
        )

    def _cloud(
        self, prov: Provisioned, link: ConsortiumLink, access: DemoAccess, console: DemoConsole
    ) -> CloudService:
        settings = CloudSettings(
            id=prov.cloud_id,
            org=ORG_BANK,
            data_dir=self.data_dir / "cloud",
            database_url=self.database_url,
            trust_file=prov.trust_path,
            registrations_dir=prov.registrations_dir,
            # the demo's own reads (evidence for receipts, proof bundles of every device) go
            # through the regulator's read-only token: the one tenant that reads every member's
            api_tokens=[
                ApiToken(sha256=token_digest(self.token), org=ORG_REGULATOR, role="auditor")
            ],
            tls_cert_file=access.server.cert_file,
            tls_key_file=access.server.key_file,
        )
        identity = CloudIdentity(
            prov.cloud_id, ORG_BANK, prov.cloud_key, prov.registrations[prov.cloud_id]
        )
        return build_service(
            settings,
            identity,
            prov.trust,
            ledger=link,
            identities=access.identities,
            audit_log=access.audit_log,
            views=console.views,
            hub=console.hub,
            cipher=console.cipher,
        )

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'cloud' / 'cloud.db'}"

    def _edge(
        self, prov: Provisioned, broker_port: int, meter_port: int, cloud_url: str, ca_file: Path
    ) -> EdgeService:
        site = self.site
        edge_section = {
            "id": prov.edge_id,
            "org": ORG_WAREHOUSE,
            "site": site.site_id,
            "suite": self.opts.suite,
            "data_dir": str(self.data_dir / "edge"),
            "cloud_url": cloud_url,
            "cloud_ca_file": str(ca_file),
            "trust_file": str(prov.trust_path),
            "registrations_dir": str(prov.registrations_dir),
            "window_ms": 1000,
            "gap_grace_ms": 30_000,
            "clock_skew_tolerance_ms": 120_000,
            "heartbeat_timeout_ms": OFFLINE_MS,
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker_port,
                "topic": f"tally/{site.site_id}/+/up",
            },
            "modbus": [
                {
                    "device": self.meter_id,
                    "host": "127.0.0.1",
                    "port": meter_port,
                    "interval_ms": 1000,
                    "labels": {"sim": "1"},
                }
            ],
            "rules": demo_rules(site, offline_ms=OFFLINE_MS),
        }
        cfg = load_edge_config({"edge": edge_section}, source="demo")
        gateway = EdgeGateway(cfg, key=prov.edge_key, trust=prov.trust, clock=self.clock)
        return EdgeService(gateway, listen_http=0, listen_coap=0)

    def _story(self, consortium: Consortium) -> FinanceStory:
        return finance_story(
            consortium,
            self.site,
            self.incidents,
            self.clock,
            self.data_dir / "bank",
            self.opts.seed,
            sealing=self._sealing(),
        )

    def _receivables(self, consortium: Consortium, chain: FinanceChain) -> ReceivablesStory:
        return receivables_story(consortium, chain, self.site, self.incidents, self.clock,
                                 self.data_dir / "bank", sealing=self._sealing())  # fmt: skip

    def _sealing(self) -> Sealing | None:
        """Document bodies sealed at rest with the cloud's field cipher (per issuing tenant)."""
        if self.console is None:
            return None
        return (self.console.cipher, FieldRef)

    # the run -----------------------------------------------------------------------------

    def _authorise_releases(self, gateway: EdgeGateway) -> None:
        """Pass new authorised releases of the site to the edge (the warehouse system's job)."""
        for rel in self.site.releases[self.releases_seen :]:
            by_loc: dict[str, tuple[Decimal, list[str]]] = {}
            for lot_id in rel.lot_ids:
                lot = self.site.lots[lot_id]
                q, lots = by_loc.get(lot.location, (Decimal(0), []))
                by_loc[lot.location] = (q + lot.quantity_t, [*lots, lot_id])
            for loc, (q, lots) in by_loc.items():
                gateway.authorise_release(
                    loc, q, tuple(lots), rel.at_ms - 60_000, rel.at_ms + 3_600_000, rel.release_id
                )
        self.releases_seen = len(self.site.releases)

    async def _send(self, outs: list[Outgoing], pubs: dict[str, Any]) -> None:
        site_id = self.site.site_id

        now = time.time_ns() // 1_000_000
        for o in outs:
            if o.genuine:
                self.sent.at_ms.setdefault(self.suite.hash(o.payload), now)

        async def one(o: Outgoing) -> None:
            try:
                await pubs[o.transport].publish(site_id, o.device, o.payload)
                self.sent.by_transport[o.transport] += 1
            except Exception as exc:  # refused forged envelopes over HTTP/CoAP land here
                self.sent.by_transport[o.transport] += 1
                self.sent.failed[f"{o.transport}: {type(exc).__name__}"] += 1

        await asyncio.gather(*(one(o) for o in outs))

    async def _drain(self, edge: EdgeService, deadline_s: float = 30.0) -> bool:
        """Wait until the edge has everything sent, certified what is missing, and the
        cloud has acknowledged every batch."""
        gw = edge.gateway
        end = time.monotonic() + deadline_s
        stable = 0
        last: tuple[int, ...] = ()
        while time.monotonic() < end:
            await asyncio.sleep(0.2)
            s = gw.stats()
            received = s["received"]
            box = s["outbox"]
            state = (received, s["batches_sealed"], s["batches_acked"], s["gap_certificates"])
            done = received >= self.sent.total and box["items"] == 0 and box["batches"] == 0
            if done and state == last:
                stable += 1
                if stable >= 8:  # ~1.6 s (~100 simulated s) of quiet: gap grace has passed
                    return True
            else:
                stable = 0
            last = state
        return False

    def chain_status(self) -> tuple[int, int]:
        """(batches anchored, final checkpoints) so far, for the live view."""
        anchorer = self.cloud.anchorer if self.cloud is not None else None
        anchored = anchorer.stats.anchored if anchorer is not None else 0
        return anchored, self.link.checkpoints_final() if self.link is not None else 0

    async def run(self) -> int:
        prov = self._provision()
        fleet = Fleet(prov, self.site, transports_for(self.site), HEARTBEAT_MS)
        directory = self.data_dir / "ledger"
        for earlier in (directory, *(self.data_dir / d for d in ("bank", "cloud", "edge"))):
            if earlier.exists():  # an earlier run's ledger, book, cloud, edge: its keys are gone
                shutil.rmtree(earlier)
        consortium = await create_consortium(
            directory, self.opts.suite, ORG_ROLES, prov.org_keys, self.clock
        )
        self.access = make_demo_access(
            self.data_dir, ORG_ROLES, ORG_BANK, suite=self.opts.suite, extra_roles=EXTRA_ROLES,
            tenants=CONSOLE_TENANTS, sites={ORG_WAREHOUSE: [self.site.site_id]},
        )  # fmt: skip
        try:
            return await self._run_with(prov, fleet, consortium)
        finally:
            await consortium.close()
            self.access.close()

    async def _run_with(self, prov: Provisioned, fleet: Fleet, consortium: Consortium) -> int:
        opts = self.opts
        self.link = link = ConsortiumLink(consortium, ORG_BANK)
        chain = await register_on_chain(link, prov.registrations)
        assert self.access is not None
        (self.data_dir / "cloud").mkdir(parents=True, exist_ok=True)
        self.console = console = DemoConsole(self.data_dir / "cloud", self.database_url,
                                             opts.suite)  # fmt: skip
        try:
            self.cloud = cloud = self._cloud(prov, link, self.access, console)
        except BaseException:
            console.close()
            raise
        await cloud.start()
        display = Display(self, fleet, headless=opts.headless)
        try:
            console.seed_profiles()
            console.start(consortium, ORG_BANK, cloud.server.app)
            assert console.feed is not None
            self.story = story = self._story(consortium)
            story.on_alerts = AlertSink(console.feed, owner=TRADER, bank=ORG_BANK,
                                        site=self.site.site_id)  # fmt: skip
            await story.start()
            self.receivables = receivables = self._receivables(consortium, story.chain)
            await receivables.start()
            await console.record_limits(story.chain, ORG_BANK)  # objective credit → chain
            async with (
                EmbeddedBroker() as broker,
                ModbusMeter(clock=self.clock, device_id=self.meter_id, seed=opts.seed) as meter,
            ):
                edge = self._edge(
                    prov, broker.port, meter.port, cloud.server.url, self.access.ca_file
                )
                await edge.start()
                assert edge.http is not None and edge.coap is not None
                pubs: dict[str, Any] = {
                    MQTT: MqttPublisher(
                        "127.0.0.1", broker.port, "3.1.1", client_id="demo-devices"
                    ),
                    HTTP: HttpPublisher(edge.http.url),
                    COAP: CoapPublisher("127.0.0.1", edge.coap.port),
                }
                await pubs[MQTT].connect()
                display.start(cloud.server.url, self.token, self.access)
                console.banner(display.console, cloud.server.url, self.access)
                api = self._client(cloud)
                try:
                    end = time.monotonic() + opts.duration_s
                    while time.monotonic() < end:
                        t = self.clock()
                        outs = fleet.step(t)
                        self._authorise_releases(edge.gateway)
                        await self._send(outs, pubs)
                        await story.step(cloud.storage, api, edge.gateway)
                        await receivables.step(cloud.storage, api)
                        display.update(edge)
                        await asyncio.sleep(0.25)
                    for poller in edge.pollers:  # the meter is a device too: it stops
                        await poller.stop()
                    display.note("devices stopped; draining the edge and the uplink")
                    drained = await self._drain(edge)
                    display.note("waiting for every stored batch to be anchored on the ledger")
                    chain.anchors_drained = await drain_anchors(cloud, ANCHOR_DRAIN_S)
                    await story.step(cloud.storage, api, edge.gateway)
                    await receivables.step(cloud.storage, api)
                    await story.export(api)
                    receivables_missing = await receivables.export(api)
                    await story.finish()
                    receivables.close()
                    display.note("projecting the chain's final state into the read model")
                    await console.stop()
                    edge_stats = edge.gateway.stats()
                finally:
                    await api.aclose()
                    for p in pubs.values():
                        with contextlib.suppress(Exception):
                            await p.close()
                    await edge.stop()
            acc = account(cloud.storage, fleet.produced)
            report = flow_report(self, fleet, acc, edge_stats, drained)
            report.update(chain_report(cloud, link, chain, self.sent.at_ms))
            report["scenarios"] = story.scenarios() + receivables.scenarios()
            report["finance"] = story.summary()
            report["receivables"] = receivables.summary()
            report["receivables"]["bundles_missing"] = receivables_missing
            report["cloud_url"] = cloud.server.url
            report.update(self.access.report(opts.report_dir))
            report["console"] = console.report(cloud.server.url, self.access)
            if opts.report_dir is not None:
                await self._write_report(opts.report_dir, report, fleet, cloud, prov, consortium)
                story.write_bundles(opts.report_dir / "bundles" / "finance")
                receivables.write_bundles(opts.report_dir / "bundles" / "receivables")
            display.finish(report)
            ok = not acc.unaccounted and acc.duplicates_stored == 0
            all_anchored = report["batches_anchored"] == report["batches_stored"]
            story_ok = all(sc["ok"] for sc in report["scenarios"])
            return 0 if ok and all_anchored and story_ok and not chain.registrations_refused else 1
        finally:
            display.stop()
            console.hub.close()  # live streams end, so that the server can stop
            await console.stop(final=False)
            await cloud.stop()
            console.close()

    def _client(self, cloud: CloudService) -> httpx.AsyncClient:
        """A client of the cloud's API with the read token, trusting the demo CA."""
        assert self.access is not None
        return httpx.AsyncClient(
            base_url=cloud.server.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.access.client_ssl(),
        )

    # the report --------------------------------------------------------------------------

    async def _write_report(
        self,
        out: Path,
        report: dict[str, Any],
        fleet: Fleet,
        cloud: CloudService,
        prov: Provisioned,
        consortium: Consortium,
    ) -> None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prov.trust_path, out / "trust.cbor")
        shutil.copyfile(consortium.directory / "genesis.cbor", out / "genesis.cbor")
        async with self._client(cloud) as client:
            report["bundles"] = await export_bundles(
                client, cloud.storage, fleet, self.incidents, out / "bundles"
            )
        (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; return 0 when every produced envelope is accounted for."""
    if opts.data_dir is not None:
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(Demo(opts, opts.data_dir).run())
    with tempfile.TemporaryDirectory(prefix="tally-demo-") as tmp:
        return asyncio.run(Demo(opts, Path(tmp)).run())

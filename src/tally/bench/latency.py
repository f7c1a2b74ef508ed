"""``tally bench latency``: device publish → stored in the cloud, p50/p95, through the
machine's MQTT broker.

The whole chain runs on 127.0.0.1, each tier in its own process:

* **devices** (this process): ``devices`` simulated devices, one reading per second each,
  spread evenly over the second; envelopes are signed before the run with device time =
  the scheduled publish time, and published at that wall time over one MQTT connection
  (:class:`tally.device.publish.MqttPublisher`, QoS 1) to the broker (default Mosquitto
  at 127.0.0.1:1883);
* **edge** (subprocess): :class:`tally.edge.gateway.EdgeGateway` with its outbox in a temp
  dir, the site rules, subscribed through :class:`tally.edge.adapters.MqttSubscriber`, its
  tick loop sealing a batch every ``window_ms`` and its uplink posting to the cloud;
* **cloud** (subprocess): the cloud service (:func:`tally.cloud.server.build_service`) on a
  free port with a SQLite database.

Latency of a reading = the cloud's ``received`` time of the batch that stored it minus the
reading's device time (the scheduled publish time), both from the same wall clock. The
publisher's own lag (actual − scheduled publish time) is reported beside it. Goal: p95 < 2 s.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import sqlite3
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tally.bench.common import emit, machine, median, note, percentile
from tally.bench.world import BANK, CLOUD, EDGE, ORG, SIM, SITE, World, make_world, measurements

GOAL_P95_MS = 2000.0
SLOT_MS = 10
"""The publisher wakes every ``SLOT_MS`` and publishes what is due."""


def broker_available(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when something accepts TCP connections at ``host:port``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc}"


async def drop_session(broker: tuple[str, int], client_id: str) -> None:
    """Discard the broker's persistent session of ``client_id`` (connect with a clean
    session), so a finished run leaves no subscription queueing messages behind."""
    import aiomqtt

    async with aiomqtt.Client(broker[0], broker[1], identifier=client_id, clean_session=True):
        pass


def edge_client_id(data_dir: Path) -> str:
    return f"tally-bench-edge-{data_dir.name}"


# -- the cloud process ----------------------------------------------------------------------------


def _cloud(suite: str, secret: bytes, public: bytes, data_dir: str, out: Connection) -> None:
    from tally.cloud.config import CloudSettings
    from tally.cloud.keys import CloudIdentity
    from tally.cloud.server import build_service
    from tally.crypto import SigningKey, get_suite
    from tally.device.trust import load_trust

    async def main() -> None:
        d = Path(data_dir)
        settings = CloudSettings.model_validate(
            {
                "id": CLOUD,
                "org": BANK,
                "port": 0,
                "data_dir": d / "cloud",
                "database_url": f"sqlite:///{d / 'cloud' / 'cloud.db'}",
                "registrations_dir": d / "registrations",
            }
        )
        key = SigningKey(get_suite(suite), secret, public)
        service = build_service(
            settings, CloudIdentity(CLOUD, BANK, key), load_trust(d / "trust.cbor")
        )
        port = await service.server.start()
        out.send(port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(out.fileno(), stop.set)  # the parent closes the pipe to stop us
        await stop.wait()
        await service.stop()

    asyncio.run(main())


# -- the edge process -----------------------------------------------------------------------------


def _edge(
    suite: str,
    secret: bytes,
    public: bytes,
    data_dir: str,
    cloud_port: int,
    broker: tuple[str, int],
    window_ms: int,
    ctl: Connection,
) -> None:
    from tally.bench.world import site_rules
    from tally.crypto import SigningKey, get_suite
    from tally.edge.adapters import MqttSubscriber
    from tally.edge.config import EdgeConfig
    from tally.edge.gateway import EdgeGateway

    async def main() -> None:
        d = Path(data_dir)
        cfg = EdgeConfig.model_validate(
            {
                "id": EDGE,
                "org": ORG,
                "site": SITE,
                "suite": suite,
                "data_dir": d / "edge",
                "trust_file": d / "trust.cbor",
                "registrations_dir": d / "registrations",
                "cloud_url": f"http://127.0.0.1:{cloud_port}",
                "window_ms": window_ms,
                "rules": site_rules(),
            }
        )
        gw = EdgeGateway(cfg, key=SigningKey(get_suite(suite), secret, public))
        await gw.start()
        sub = MqttSubscriber(broker[0], broker[1], edge_client_id(d), gw.on_envelope, site=SITE)
        await sub.start()
        await sub.wait_ready(10)
        ctl.send("ready")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(ctl.fileno(), stop.set)
        await stop.wait()
        await sub.stop()
        await gw.stop()

    asyncio.run(main())


# -- the devices ----------------------------------------------------------------------------------


def _schedule(world: World, seconds: int, start_ms: int) -> list[tuple[int, str, bytes]]:
    """(publish time, device, envelope) for every reading, sorted by time."""
    n = len(world.signers)
    out = []
    for k in range(seconds):
        for i, s in enumerate(world.signers):
            t = start_ms + k * 1000 + (i * 1000) // n
            out.append((t, s.dev, s.next(t, measurements(world.profiles[s.dev], k, i), SIM)))
    out.sort(key=lambda x: x[0])
    return out


async def _publish(broker: tuple[str, int], plan: list[tuple[int, str, bytes]]) -> list[float]:
    from tally.device.publish import MqttPublisher

    lags: list[float] = []
    async with MqttPublisher(broker[0], broker[1]) as pub:
        i = 0
        while i < len(plan):
            now = time.time() * 1000
            due = plan[i][0]
            if due > now:
                await asyncio.sleep((due - now) / 1000)
                continue
            j = i
            limit = now + SLOT_MS
            while j < len(plan) and plan[j][0] <= limit:
                j += 1
            batch = plan[i:j]
            await pub.publish_many([(SITE, dev, env) for _, dev, env in batch], window=20)
            done = time.time() * 1000
            lags.extend(done - t for t, _, _ in batch)
            i = j
    return lags


def _stored(db: Path) -> list[tuple[int, int]]:
    """(device time, cloud received time) of every stored reading."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(
            "SELECT i.t, b.received FROM items i JOIN batches b ON b.id = i.batch_id "
            "WHERE i.kind = 'reading'"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def latency_bench(
    devices: int = 1000,
    seconds: int = 30,
    broker: tuple[str, int] = ("127.0.0.1", 1883),
    window_ms: int = 1000,
    json_only: bool = True,
) -> dict[str, Any]:
    suite = "intl"
    result: dict[str, Any] = {"benchmark": "latency", "suite": suite}
    why = broker_available(*broker)
    if why is not None:
        result.update(skipped=f"no MQTT broker: {why}", machine=machine())
        return result
    note(json_only, f"latency bench: {devices} devices x 1 Hz for {seconds} s via {broker}")
    world = make_world(suite, devices)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tally-bench-latency-") as tmp:
        d = Path(tmp)
        world.trust.save(d / "trust.cbor")
        regs = d / "registrations"
        regs.mkdir()
        for i, reg in enumerate(world.registrations):
            (regs / f"{i:06d}.cose").write_bytes(reg)
        cloud_recv, cloud_send = ctx.Pipe(duplex=False)
        cloud_stop_recv, cloud_stop = ctx.Pipe(duplex=False)
        ck = world.cloud_key
        cloud = ctx.Process(
            target=_cloud, args=(suite, ck.secret_bytes(), ck.public.raw, tmp, cloud_send)
        )
        cloud.start()
        cloud_send.close()
        edge = None
        edge_ctl = None
        try:
            if not cloud_recv.poll(60):
                raise RuntimeError("the cloud did not start within 60 s")
            port = cloud_recv.recv()
            ek = world.edge_key
            edge_ctl, edge_ctl_child = ctx.Pipe(duplex=True)
            edge = ctx.Process(
                target=_edge,
                args=(suite, ek.secret_bytes(), ek.public.raw, tmp, port, broker, window_ms,
                      edge_ctl_child),
            )  # fmt: skip
            edge.start()
            if not edge_ctl.poll(60):
                raise RuntimeError("the edge did not subscribe within 60 s")
            edge_ctl.recv()
            lead_ms = 500 + devices * seconds // 10  # time to sign everything first
            start_ms = int(time.time() * 1000) + lead_ms
            t = time.perf_counter()
            plan = _schedule(world, seconds, start_ms)
            note(json_only, f"  signed {len(plan)} envelopes in {time.perf_counter() - t:.1f} s")
            lags = asyncio.run(_publish(broker, plan))
            note(json_only, "  published; waiting for the cloud to store everything")
            db = d / "cloud" / "cloud.db"
            deadline = time.monotonic() + 60
            rows = _stored(db)
            while len(rows) < len(plan) and time.monotonic() < deadline:
                time.sleep(0.5)
                rows = _stored(db)
        finally:
            if edge_ctl is not None:
                edge_ctl.close()
            if edge is not None:
                edge.join(30)
                if edge.is_alive():
                    edge.terminate()
                asyncio.run(drop_session(broker, edge_client_id(d)))
            cloud_stop.close()
            cloud_recv.close()
            cloud.terminate()
            cloud.join(10)
            del cloud_stop_recv
    lat = [float(r - t) for t, r in rows]
    p95 = percentile(lat, 95)
    result.update(
        {
            "p50_ms": round(median(lat), 1),
            "p95_ms": round(p95, 1),
            "max_ms": round(max(lat), 1) if lat else None,
            "goal_p95_ms": GOAL_P95_MS,
            "goal_met": bool(lat) and len(rows) == len(plan) and p95 < GOAL_P95_MS,
            "published": len(plan),
            "stored": len(rows),
            "publish_lag_p50_ms": round(median(lags), 1),
            "publish_lag_p95_ms": round(percentile(lags, 95), 1),
            "params": {
                "devices": devices,
                "rate_hz_per_device": 1,
                "seconds": seconds,
                "broker": f"{broker[0]}:{broker[1]}",
                "edge_window_ms": window_ms,
                "cloud_db": "sqlite",
                "mqtt_qos": 1,
            },
            "machine": machine(),
        }
    )
    return result


def run_latency_bench(devices: int, seconds: int, host: str, port: int, json_only: bool) -> int:
    """The ``tally bench latency`` command."""
    r = latency_bench(devices, seconds, (host, port), json_only=json_only)
    if "skipped" in r:
        return emit(r, json_only, [f"skipped: {r['skipped']}"])
    line = (
        f"publish -> stored: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms "
        f"({r['stored']}/{r['published']} stored; goal p95 < {GOAL_P95_MS:.0f} ms: "
        f"{'met' if r['goal_met'] else 'NOT met'})"
    )
    return emit(r, json_only, [line])

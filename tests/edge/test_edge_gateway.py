"""The gateway as adapters and operators see it: configuration, the never-raising entry point,
edge-signed meters, stats, and a running gateway uploading to a real cloud endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_edge_helpers import EDGE, SITE, T0, Clock, FakeRules, make_world, temp
from test_edge_uplink import Cloud, Server, _serve, _until

from tally.config import ConfigError
from tally.config import load as load_config
from tally.crypto import SigningKey, parse_sign1
from tally.crypto.keystore import save_key
from tally.device.envelope import DeviceSigner, Measurement, decode_reading
from tally.edge.config import EdgeConfig, load_edge_config
from tally.edge.errors import EdgeError, UnknownEdgeDevice
from tally.edge.gateway import EdgeGateway


def _config(tmp_path: Path, **kw: Any) -> EdgeConfig:
    base: dict[str, Any] = {
        "id": EDGE,
        "org": "warehouse-co",
        "site": SITE,
        "data_dir": str(tmp_path / "edge"),
    }
    base.update(kw)
    return load_edge_config({"edge": base})


def test_config_defaults_and_validation(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert (cfg.window_ms, cfg.gap_grace_ms, cfg.clock_skew_tolerance_ms) == (1000, 30_000, 120_000)
    assert cfg.outbox_file == tmp_path / "edge" / "outbox.sqlite"
    assert cfg.mqtt.port == 0 and cfg.mqtt.topic == "tally/+/+/up" and cfg.http.port == 0
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, window_ms=0, cloud_url="ftp://x", mqtt={"version": "4"}, bogus=1)
    text = str(exc.value)
    for key in ("edge.window_ms", "edge.cloud_url", "edge.mqtt.version", "edge.bogus"):
        assert key in text
    with pytest.raises(ConfigError, match="cloud_ca_file"):
        _config(tmp_path, cloud_url="http://x", cloud_ca_file="ca.pem")
    m = _config(
        tmp_path,
        modbus=[{"device": "meter-1", "host": "10.0.0.7"}],
        mqtt={"port": 1883, "version": 5},
    ).modbus[0]
    assert (m.port, m.unit, m.register_kind) == (502, 1, "input")
    with pytest.raises(ConfigError, match="modbus"):
        _config(tmp_path, modbus=[{"device": "m", "host": "a"}, {"device": "m", "host": "b"}])


def test_config_from_toml_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "edge.toml"
    f.write_text(
        '[edge]\nid = "edge-1"\norg = "o"\nsite = "s"\nwindow_ms = 250\n'
        '[[edge.rules]]\nid = "hot"\ntype = "threshold"\n'
    )
    cfg = load_edge_config(load_config(f, {"TALLY_EDGE__WINDOW_MS": "500"}))
    assert cfg.window_ms == 500 and cfg.rules == [{"id": "hot", "type": "threshold"}]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[tuple[EdgeGateway, Any, Clock, FakeRules]]:
    w = make_world()
    clock = Clock()
    rules = FakeRules()
    g = EdgeGateway(
        _config(tmp_path), key=w.edge_key, registry=w.registry(), rules=rules, clock=clock
    )
    g.open()
    yield g, w, clock, rules
    g.outbox.close()


def test_on_envelope_never_raises_and_counts(gw: Any) -> None:
    g, w, _clock, _rules = gw
    dev = w.device("dev-1")
    g.on_envelope(dev.next(T0, temp("20")), "mqtt:tally/wh1/dev-1/up")
    for junk in (b"", b"\x00" * 70_000, "not bytes", None, dev.next(T0)[:-3]):
        g.on_envelope(junk, "test")
    s = g.stats()
    assert s["received"] == 6 and s["accepted"] == 1
    assert s["rejected"] == {"malformed": 5}
    assert s["internal_errors"] == 0
    assert s["outbox"]["quarantine"] == 5
    assert "not bytes but NoneType" in [d for _r, d, _dv, _raw in g.outbox.quarantine()]


def test_ingest_unsigned_is_signed_by_the_edge_and_chained(gw: Any) -> None:
    g, w, clock, rules = gw
    m = (Measurement("energy", Decimal("125000.123"), "kWh"),)
    r1 = g.ingest_unsigned("meter-1", clock.now, m, {"line": "L1"})
    r2 = g.ingest_unsigned("meter-1", clock.now + 10, m)
    assert (r1.outcome, r2.outcome) == ("first", "accept")
    (_, c1, _), (_, c2, _) = g.outbox.items("reading")
    msg = parse_sign1(c1)
    assert msg.kid == EDGE
    msg.verify(w.edge_key.public)
    r = decode_reading(msg.payload)
    assert (r.dev, r.boot, r.ctr, r.labels) == ("meter-1", 0, 0, (("line", "L1"),))
    assert decode_reading(parse_sign1(c2).payload).prev == w.edge_key.suite.hash(c1)
    assert [o.dev for o in rules.seen] == ["meter-1", "meter-1"]
    with pytest.raises(UnknownEdgeDevice):
        g.ingest_unsigned("dev-1", clock.now, m)  # signs for itself
    with pytest.raises(UnknownEdgeDevice):
        g.ingest_unsigned("nobody", clock.now, m)
    # an envelope claiming to be signed by the meter itself is refused: it has no key
    impostor = DeviceSigner("meter-1", SigningKey.generate("intl"), b"")
    assert g.ingest(impostor.next(T0)).outcome == "no_key"
    assert type(g.rules).__name__ == "FakeRules"


def test_tick_seals_and_stats_report(gw: Any) -> None:
    g, w, clock, _rules = gw
    dev = w.device("dev-2")
    envs = [dev.next(T0, temp("40")) for _ in range(3)]
    g.ingest_many([envs[0], envs[2], envs[2]])
    clock.advance(30_000)
    sealed = g.tick()
    assert [b.n for b in sealed] == [6]  # 2 readings, 2 "hot" events, 1 gap event, 1 gap cert
    s = g.stats()
    assert s["duplicates"] == 1 and s["gaps_certified"] == 1 and s["batches_sealed"] == 1
    assert s["events"] == {"hot": 2, "continuity.gap": 1}
    assert s["outbox"]["pending"] == 0 and s["outbox"]["items"] == 6


def test_authorise_release_passes_through(gw: Any) -> None:
    g, _w, _clock, rules = gw
    g.authorise_release("A1", Decimal("12.5"), ("LOT-1",), T0, T0 + 1, "REL-7")
    assert rules.releases == [("A1", Decimal("12.5"), ("LOT-1",), T0, T0 + 1, "REL-7")]


@pytest.fixture
def cloud() -> Iterator[Server]:
    yield from _serve(Cloud(make_world()))


async def test_running_gateway_from_files_uploads_to_the_cloud(
    tmp_path: Path, cloud: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cloud.cloud.world
    monkeypatch.setenv("TALLY_KEY_PASSPHRASE", "test passphrase")
    save_key(tmp_path / "edge.key", w.edge_key, "test passphrase", scrypt_n=1 << 10)
    w.trust.save(tmp_path / "trust.cbor")
    w.write_registrations(tmp_path / "regs")
    cfg = _config(
        tmp_path,
        key_file=str(tmp_path / "edge.key"),
        trust_file=str(tmp_path / "trust.cbor"),
        registrations_dir=str(tmp_path / "regs"),
        window_ms=20,
        cloud_url=f"http://127.0.0.1:{cloud.port}",
        uplink_backoff_ms=10,
        uplink_backoff_cap_ms=100,
        rules=[{"id": "cold", "type": "threshold", "quantity": "temp", "max": "30"}],
    )
    g = EdgeGateway(cfg)
    await g.start()
    assert type(g.rules).__name__ == "RuleEngine"
    try:
        dev = w.device("dev-1")
        for i in range(20):
            g.on_envelope(dev.next(T0 + i, temp("20")), "test")
        await _until(lambda: g.stats()["batches_acked"] >= 1 and g.outbox.depth()["items"] == 0)
    finally:
        await g.stop()
    items = [i for b in cloud.cloud.stored.values() for i in b]
    assert sum(parse_sign1(i).content_type.endswith("reading+cbor") for i in items) == 20


def test_gateway_refuses_a_key_of_another_suite(tmp_path: Path) -> None:
    w = make_world()
    g = EdgeGateway(
        _config(tmp_path, suite="gm"), key=w.edge_key, registry=w.registry(), rules=FakeRules()
    )
    with pytest.raises(EdgeError, match="edge key is intl"):
        g.open()


async def test_start_stop_without_uplink(tmp_path: Path) -> None:
    w = make_world()
    g = EdgeGateway(
        _config(tmp_path, window_ms=10), key=w.edge_key, registry=w.registry(), rules=FakeRules()
    )
    await g.start()
    g.on_envelope(w.device("dev-1").next(T0), "test")
    await _until(lambda: g.outbox.depth()["pending"] == 0)
    await g.stop()
    await asyncio.sleep(0)

"""The configuration page and the example file cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from tally import config
from tally.cloud.config import CloudSettings, load_settings
from tally.edge.config import EdgeConfig, load_edge_config
from tally.edge.rules import RuleEngine

ROOT = Path(__file__).resolve().parents[1]


def test_example_configuration_is_valid() -> None:
    data = config.load(ROOT / "examples" / "tally.toml", environ={})
    cloud = load_settings(data, "examples/tally.toml")
    edge = load_edge_config(data, "examples/tally.toml")
    assert cloud.tls and cloud.database_url.startswith("postgresql+psycopg://")
    assert cloud.ledger is not None and set(cloud.ledger.peers) == {
        "bank",
        "warehouse",
        "logistics",
        "regulator",
    }
    assert edge.mqtt.version == "5" and edge.modbus[0].device == "wh1-meter-01"
    engine = RuleEngine.from_config(edge.rules, edge.site)
    assert "plausibility-A-01" in engine.rule_ids()


def test_every_setting_is_documented() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", page))
    for model in (CloudSettings, EdgeConfig):
        missing = set(model.model_fields) - documented
        assert not missing, f"{model.__name__} fields not in docs/configuration.md: {missing}"


def test_environment_overrides_the_file() -> None:
    data = config.load(
        ROOT / "examples" / "tally.toml",
        environ={"TALLY_EDGE__WINDOW_MS": "250", "TALLY_EDGE__MQTT__HOST": "broker.internal"},
    )
    edge = load_edge_config(data)
    assert edge.window_ms == 250
    assert edge.mqtt.host == "broker.internal"


def test_bad_values_are_named_with_their_key() -> None:
    data = config.load(ROOT / "examples" / "tally.toml", environ={"TALLY_EDGE__WINDOW_MS": "0"})
    try:
        load_edge_config(data, "site.toml")
    except config.ConfigError as exc:
        assert "site.toml" in str(exc) and "edge.window_ms" in str(exc)
    else:
        raise AssertionError("window_ms = 0 was accepted")

"""Rule configuration: precise errors, and the documented example stays valid."""

from __future__ import annotations

import textwrap
import tomllib
from typing import Any

import pytest

import tally.edge.rules as rules_pkg
from tally.config import ConfigError
from tally.edge.rules import RULE_TYPES, RuleConfigError, RuleEngine
from tally.edge.rules.base import COMMON_KEYS, SELECTOR_KEYS

SQUARE = [["0", "0"], ["0", "1"], ["1", "1"], ["1", "0"]]


def example_rules() -> list[dict[str, Any]]:
    doc = rules_pkg.__doc__ or ""
    start = doc.index("very text)::") + len("very text)::")
    block = doc[start:].split("\nKeys by type")[0]
    rules: list[dict[str, Any]] = tomllib.loads(textwrap.dedent(block))["rules"]
    return rules


def error_of(*rules: Any) -> RuleConfigError:
    with pytest.raises(RuleConfigError) as info:
        RuleEngine.from_config(list(rules), "S1")
    return info.value


def test_documented_example_builds_and_covers_every_type_and_key() -> None:
    rules = example_rules()
    engine = RuleEngine.from_config(rules, "S1")
    assert engine.rule_ids() == [r["id"] for r in rules]
    documented: dict[str, set[str]] = {}
    for r in rules:
        documented.setdefault(r["type"], set()).update(r)
    assert set(documented) == set(RULE_TYPES)
    for name, cls in RULE_TYPES.items():
        missing = (cls.KEYS - SELECTOR_KEYS | COMMON_KEYS) - documented[name]
        assert not missing, f"{name}: keys not shown in the documented example: {missing}"
        assert name in (rules_pkg.__doc__ or "").split("Keys by type")[1]
    assert set().union(*documented.values()) >= SELECTOR_KEYS


def test_error_is_a_config_error_naming_index_id_key() -> None:
    err = error_of(
        {"id": "ok", "type": "tamper"},
        {"id": "cold", "type": "threshold", "quantity": "temperature", "max": "hot"},
    )
    assert isinstance(err, ConfigError)
    assert (err.index, err.rule_id, err.key) == (1, "cold", "max")
    assert "decimal" in err.problem
    assert "rules[1] (id 'cold') key 'max'" in str(err)


def test_unknown_type() -> None:
    err = error_of({"id": "x", "type": "thresold"})
    assert err.key == "type" and "unknown rule type 'thresold'" in err.problem


def test_missing_type_and_missing_id() -> None:
    assert error_of({"id": "x"}).key == "type"
    err = error_of({"type": "tamper"})
    assert (err.key, err.rule_id, err.problem) == ("id", "", "is missing")


@pytest.mark.parametrize(
    ("rule", "key", "words"),
    [
        ({"type": "threshold", "quantity": "temperature"}, "max", "is missing"),
        ({"type": "threshold", "max": "8"}, "quantity", "is missing"),
        ({"type": "threshold", "quantity": "q", "min": "9", "max": "8"}, "min", "above max"),
        ({"type": "rate_of_change", "quantity": "weight"}, "max_per_min", "is missing"),
        (
            {"type": "rate_of_change", "quantity": "w", "max_per_min": "0"},
            "max_per_min",
            "positive",
        ),
        (
            {"type": "rate_of_change", "quantity": "w", "max_per_min": 1, "direction": "left"},
            "direction",
            "one of",
        ),
        ({"type": "offline"}, "timeout_ms", "is missing"),
        ({"type": "offline", "timeout_ms": "5"}, "timeout_ms", "integer"),
        ({"type": "offline", "timeout_ms": 0}, "timeout_ms", "at least 1"),
        ({"type": "plausibility", "devices": ["lc"]}, "location", "is missing"),
        ({"type": "plausibility", "location": "A1"}, "devices", "is missing"),
        ({"type": "geofence"}, "polygon", "is missing"),
        ({"type": "tamper", "severity": "fatal"}, "severity", "one of"),
        ({"type": "tamper", "devices": []}, "devices", "non-empty list"),
        ({"type": "tamper", "devices": ["a", "a"]}, "devices", "twice"),
        ({"type": "tamper", "label_value": "x"}, "label_value", "without 'label'"),
        ({"type": "tamper", "treshold": 1}, "treshold", "not a key"),
    ],
)
def test_bad_keys_are_named(rule: dict[str, Any], key: str, words: str) -> None:
    err = error_of({"id": "r", **rule})
    assert err.key == key
    assert words in err.problem


@pytest.mark.parametrize(
    ("polygon", "words"),
    [
        ([["0", "0"], ["0", "1"]], "at least 3"),
        ([["0", "0"], ["0", "1"], ["0", "0"]], "at least 3"),
        ([["0", "0"], ["0", "1"], ["0", "2"]], "no area"),
        ([["0", "0"], ["0", "1"], ["1"]], "vertex 2"),
        ([["0", "0"], ["0", "1"], ["x", "1"]], "vertex 2"),
        ([["0", "0"], ["0", "1"], ["91", "1"]], "not a valid latitude"),
        ([["0", "0"], ["0", "181"], ["1", "1"]], "not a valid latitude"),
        ("square", "list of [lat, lon] pairs"),
    ],
)
def test_bad_polygon(polygon: Any, words: str) -> None:
    err = error_of({"id": "fence", "type": "geofence", "polygon": polygon})
    assert err.key == "polygon" and words in err.problem


def test_polygon_closing_vertex_and_floats_accepted() -> None:
    closed = [*SQUARE, SQUARE[0]]
    RuleEngine.from_config([{"id": "a", "type": "geofence", "polygon": closed}], "S1")
    floats = [[0.5, 0.25], [0.5, 1.0], [1.5, 1]]
    RuleEngine.from_config([{"id": "b", "type": "geofence", "polygon": floats}], "S1")


@pytest.mark.parametrize("bad", ["24:00", "7:00", "22:60", "22.00", 2200, ""])
def test_bad_time(bad: Any) -> None:
    err = error_of({"id": "night", "type": "time_of_day", "from": bad, "to": "06:00"})
    assert err.key == "from" and "HH:MM" in err.problem


def test_empty_time_window_and_bad_offset() -> None:
    err = error_of({"id": "n", "type": "time_of_day", "from": "06:00", "to": "06:00"})
    assert err.key == "to" and "empty" in err.problem
    err = error_of(
        {
            "id": "n",
            "type": "time_of_day",
            "from": "22:00",
            "to": "06:00",
            "utc_offset_minutes": 900,
        }
    )
    assert err.key == "utc_offset_minutes"


def test_duplicate_id_and_non_table() -> None:
    err = error_of({"id": "a", "type": "tamper"}, {"id": "a", "type": "tamper"})
    assert (err.index, err.key) == (1, "id") and "rules[0]" in err.problem
    err = error_of({"id": "a", "type": "tamper"}, "tamper")
    assert err.index == 1 and "table" in err.problem
    with pytest.raises(ConfigError):
        RuleEngine.from_config({"id": "a"}, "S1")  # type: ignore[arg-type]


def test_severity_defaults_per_type() -> None:
    engine = RuleEngine.from_config(
        [
            {"id": "t", "type": "tamper"},
            {"id": "p", "type": "plausibility", "location": "A", "devices": ["lc"]},
            {"id": "o", "type": "offline", "timeout_ms": 5},
            {"id": "o2", "type": "offline", "timeout_ms": 5, "severity": "info"},
        ],
        "S1",
    )
    assert [r.sev for r in engine.rules] == ["critical", "critical", "warning", "info"]

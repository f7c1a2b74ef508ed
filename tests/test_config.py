"""The configuration loader: files, environment variables and the errors they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally import config


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"nope\.toml: file not found"):
        config.load(tmp_path / "nope.toml", environ={})


def test_malformed_toml_names_the_file_and_the_position(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[edge]\nid = \n")
    with pytest.raises(config.ConfigError, match=r"bad\.toml: not valid TOML: .*line 2"):
        config.load(f, environ={})


def test_environment_values_are_typed_and_nested() -> None:
    data = config.overlay_env(
        {"edge": {"id": "e"}},
        {
            "TALLY_EDGE__PORT": "8443",
            "TALLY_EDGE__ON": "true",
            "TALLY_EDGE__NAME": "x y",
            "TALLY_SUITE": "gm",
            "OTHER": "1",
        },
    )
    assert data == {"edge": {"id": "e", "port": 8443, "on": True, "name": "x y"}, "suite": "gm"}


def test_the_passphrase_comes_only_from_the_environment() -> None:
    data = config.overlay_env({}, {"TALLY_KEY_PASSPHRASE": "secret"})
    assert data == {}
    secrets = {name: "secret" for name in config.SECRET_ENV} | {"TALLY_CLOUD__PORT": "8443"}
    assert config.overlay_env({}, secrets) == {"cloud": {"port": 8443}}  # secrets stay out
    assert config.passphrase({"TALLY_KEY_PASSPHRASE": "secret"}) == "secret"
    with pytest.raises(config.ConfigError, match="TALLY_KEY_PASSPHRASE is not set"):
        config.passphrase({})

"""Configuration: a TOML file, overlaid by environment variables, validated per section.

Each tier owns a pydantic model for its section (``[edge]``, ``[cloud]`` …). An environment
variable ``TALLY_<SECTION>__<KEY>`` (nested keys joined by ``__``) overrides the file, e.g.
``TALLY_CLOUD__PORT=8443``; ``TALLY_SUITE`` and other top-level keys have no section part.
Values from the environment are parsed as TOML values when they can be (``8443`` → int,
``true`` → bool, ``["a","b"]`` → list) and taken as strings otherwise.

Any problem raises :class:`ConfigError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ENV_PREFIX = "TALLY_"
SECRET_ENV = frozenset({"TALLY_KEY_PASSPHRASE", "TALLY_KEYRING_PASSPHRASE", "TALLY_NEW_PASSWORD"})
"""Environment variables that hold secrets: never read into configuration data."""
M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """Raised when a configuration file or variable is missing, malformed or out of range."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"bad configuration in {source}: " + "; ".join(problems))


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"x = {raw}")["x"]
    except tomllib.TOMLDecodeError:
        return raw


def read_toml(path: Path | None) -> dict[str, Any]:
    """Read a TOML file (or nothing) into a dict; raise ConfigError with the parser's words."""
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None


def overlay_env(data: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return ``data`` with ``TALLY_*`` variables applied (see the module docstring)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in SECRET_ENV:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[path[-1]] = _env_value(raw)
    return out


def _problems(exc: ValidationError, section: str) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (section, *err["loc"]) if p != "")
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        out.append(f"{loc}: {err['msg']}{shown}")
    return out


def section(data: Mapping[str, Any], name: str, model: type[M], source: str = "config") -> M:
    """Validate section ``name`` of ``data`` ("" for the top level) into ``model``."""
    raw = data if name == "" else data.get(name, {})
    if not isinstance(raw, Mapping):
        raise ConfigError(source, [f"[{name}] must be a table"])
    if name == "":
        raw = {k: v for k, v in raw.items() if k in model.model_fields}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, name)) from None


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read ``path`` (optional) and overlay the environment."""
    return overlay_env(read_toml(path), environ)


def passphrase(environ: Mapping[str, str] | None = None, default: str | None = None) -> str:
    """The key passphrase from ``TALLY_KEY_PASSPHRASE`` (never from a file, never logged)."""
    env = os.environ if environ is None else environ
    value = env.get("TALLY_KEY_PASSPHRASE", default)
    if not value:
        raise ConfigError("environment", ["TALLY_KEY_PASSPHRASE is not set"])
    return value

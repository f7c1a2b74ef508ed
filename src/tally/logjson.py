"""Logs as one JSON object per line, for the services (``tally cloud``, ``edge``, ``peer``).

A line looks like::

    {"ts": "2024-05-01T08:00:00.123Z", "level": "WARNING", "logger": "tally.cloud.anchoring",
     "msg": "the ledger refused batch 3 of e1: ...", "edge": "e1"}

``ts`` is the record's time in UTC (ISO 8601, milliseconds); ``level``, ``logger`` and ``msg``
(the message with its arguments filled in) follow, then every field given with
``extra={...}``; an exception's traceback is ``exc`` (and a stack, ``stack``). Fields are never
written when they could hold a secret: one whose name contains ``password``, ``secret``,
``token``, ``key``, ``passphrase`` or ``kek`` (any case, also inside a mapping) is left out,
and so is a value whose type is a key (its class name ends in ``Key``, e.g. a ``SigningKey``).
Values JSON cannot hold are written as text (bytes as hex).

:func:`configure` sets the root logger up, as JSON lines or as plain text (other libraries
than tally only from WARNING up); the commands take ``--log-json`` or ``TALLY_LOG_JSON=1``
(:func:`json_wanted`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from tally.config import ConfigError

ENV = "TALLY_LOG_JSON"
SECRET_WORDS = ("password", "secret", "token", "key", "passphrase", "kek")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_MAX_DEPTH = 8


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` may hold a secret (and is never written)."""
    low = name.lower()
    return any(word in low for word in SECRET_WORDS)


def _is_key_object(value: object) -> bool:
    return type(value).__name__.endswith("Key")


def _omitted(name: str, value: object) -> bool:
    return is_secret_name(name) or _is_key_object(value)


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` without secret-looking fields (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal | Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items() if not _omitted(str(k), v)}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(v, depth + 1) for v in items if not _is_key_object(v)]
    return str(value)


def timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO 8601 UTC with milliseconds and ``Z``."""
    iso = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return iso.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _RECORD_FIELDS or name in out or name.startswith("_"):
                continue
            if _omitted(name, value):
                continue
            out[name] = jsonable(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def parse_level(level: str | int) -> int:
    """A logging level from its name (any case) or number; raises ConfigError naming it."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.upper() in LEVELS:
        return int(logging.getLevelName(level.upper()))
    raise ConfigError("logging", [f"log level {level!r} is not one of {', '.join(LEVELS)}"])


def json_wanted(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to log JSON: ``flag`` (``--log-json``) or ``TALLY_LOG_JSON`` = 1, true, yes or
    on; raises ConfigError for any other value of the variable than 0, false, no, off or ""."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV, "")
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigError(
            "environment", [f"{ENV}: {raw!r} is not a yes or no (use 1 or 0, true or false)"]
        )
    return flag or value in _TRUE


OTHERS_LEVEL = logging.WARNING
"""The least level written for records of other libraries than tally (an HTTP client's
per-request lines stay out)."""


def _ours_or_loud(record: logging.LogRecord) -> bool:
    name = record.name
    return name == "tally" or name.startswith("tally.") or record.levelno >= OTHERS_LEVEL


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure` installs (so that calling it again replaces it)."""


def configure(
    json: bool, level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send tally's log records at ``level`` and above, and other libraries' at WARNING and
    above, to ``stream`` (default stderr), as JSON lines when ``json``, else as plain text;
    return the handler. Calling it again replaces the handler it installed before; other
    handlers are left alone. Raises ConfigError for an unknown level (changing nothing)."""
    lvl = parse_level(level)
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(_ours_or_loud)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    return handler

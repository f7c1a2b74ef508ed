"""JSON log lines: the format, extra fields, secrets never written, exceptions; configuring
the root logger; ``--log-json`` and ``TALLY_LOG_JSON`` on the service commands."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tally import logjson
from tally.config import ConfigError
from tally.crypto import SigningKey, get_suite

PASS = "test passphrase"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def line(record: logging.LogRecord) -> dict[str, Any]:
    text = logjson.JsonFormatter().format(record)
    assert "\n" not in text
    got: dict[str, Any] = json.loads(text)
    return got


def record(msg: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("tally.test", logging.WARNING, __file__, 1, msg, args or None, None)
    rec.created = 1_700_000_000.123456
    rec.__dict__.update(extra)
    return rec


def test_a_line_has_time_level_logger_and_message() -> None:
    got = line(record("batch %d of %s", 3, "e1"))
    assert got == {
        "ts": "2023-11-14T22:13:20.123Z",
        "level": "WARNING",
        "logger": "tally.test",
        "msg": "batch 3 of e1",
    }
    assert list(got) == ["ts", "level", "logger", "msg"]
    assert TS.match(logjson.timestamp(0.0)) and logjson.timestamp(0.0) == "1970-01-01T00:00:00.000Z"


def test_extra_fields_are_written_as_json() -> None:
    got = line(
        record(
            "stored",
            edge="e1",
            n=3,
            ok=True,
            header_hash=b"\x01\xab",
            amount=Decimal("12.50"),
            path=Path("data/cloud.db"),
            labels={"site": "s1", "n": [1, 2]},
            missing=None,
        )
    )
    assert got["msg"] == "stored"
    assert got["edge"] == "e1" and got["n"] == 3 and got["ok"] is True
    assert got["header_hash"] == "01ab"
    assert got["amount"] == "12.50"
    assert got["path"] == "data/cloud.db"
    assert got["labels"] == {"site": "s1", "n": [1, 2]}
    assert got["missing"] is None
    # an extra cannot overwrite the fixed fields
    clash = line(record("real", ts="forged", logger="forged"))
    assert clash["ts"] == "2023-11-14T22:13:20.123Z" and clash["logger"] == "tally.test"


def test_fields_that_may_hold_secrets_are_never_written() -> None:
    key = SigningKey.generate(get_suite("intl"))
    secrets = {
        "password": "hunter2-pw",
        "api_token": "tok-123456",
        "TOKEN": "tok-abcdef",
        "key_passphrase": "pass-phrase-1",
        "client_secret": "shh-secret",
        "signing_key": "raw-key-bytes",
        "Kek": "kek-material",
    }
    rec = record(
        "rotated",
        tenant="acme",
        member=key,  # a key object under an innocent name
        nested={"org": "acme", "db_password": "pw-nested", "keys": ["k1"], "deep": {"token": "t"}},
        **secrets,
    )
    text = logjson.JsonFormatter().format(rec)
    got = json.loads(text)
    for name, secret in secrets.items():
        assert name not in got and secret not in text
    assert "member" not in got and key.public.raw.hex() not in text
    assert key._secret.hex() not in text
    assert got["tenant"] == "acme"
    assert got["nested"] == {"org": "acme", "deep": {}}
    assert "pw-nested" not in text and "k1" not in text
    assert [logjson.is_secret_name(n) for n in ("apiKey", "monkey", "edge", "tokens")] == [
        True,
        True,  # names that merely contain a word are left out too: better safe
        False,
        True,
    ]


def test_exceptions_are_one_field_on_one_line() -> None:
    log = logging.getLogger("tally.test.exc")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logjson.JsonFormatter())
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("boom in batch 4")
        except ValueError:
            log.exception("anchoring pass failed", extra={"edge": "e1"})
        log.warning("after")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["level"] == "ERROR" and first["msg"] == "anchoring pass failed"
    assert first["edge"] == "e1"
    assert first["exc"].startswith("Traceback (most recent call last):")
    assert first["exc"].rstrip().endswith("ValueError: boom in batch 4")
    assert "exc" not in second and second["msg"] == "after"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, put back as it was after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_configure_installs_one_handler_and_filters_by_level(root: logging.Logger) -> None:
    before = list(root.handlers)
    stream = io.StringIO()
    logjson.configure(True, "info", stream)
    logging.getLogger("tally.cloud").info("listening on %s", "http://127.0.0.1:1")
    logging.getLogger("tally.cloud").debug("not shown")
    logging.getLogger("httpx").info("HTTP Request: GET http://peer/v1/status")  # too chatty
    logging.getLogger("httpx").warning("connection pool is full")
    got = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [g["msg"] for g in got] == ["listening on http://127.0.0.1:1", "connection pool is full"]
    assert got[0]["logger"] == "tally.cloud" and got[0]["level"] == "INFO"

    plain = io.StringIO()
    handler = logjson.configure(False, logging.WARNING, plain)
    assert [h for h in root.handlers if h not in before] == [handler]  # replaced, not added
    logging.getLogger("tally.edge").info("not shown")
    logging.getLogger("tally.edge").warning("clock of %s is off", "d1")
    text = plain.getvalue()
    assert text.endswith("WARNING tally.edge: clock of d1 is off\n")
    assert text.count("\n") == 1 and not text.startswith("{")
    assert stream.getvalue().count("\n") == 2  # the JSON handler is gone


def test_a_bad_level_is_refused_and_changes_nothing(root: logging.Logger) -> None:
    handlers, level = list(root.handlers), root.level
    with pytest.raises(ConfigError) as err:
        logjson.configure(True, "loud")
    assert "log level 'loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in str(err.value)
    assert root.handlers == handlers and root.level == level


def test_json_is_wanted_by_flag_or_environment() -> None:
    assert logjson.json_wanted(True, {}) is True
    assert logjson.json_wanted(False, {}) is False
    for raw in ("1", "true", "YES", " on "):
        assert logjson.json_wanted(False, {"TALLY_LOG_JSON": raw}) is True
    for raw in ("0", "false", "no", "off", ""):
        assert logjson.json_wanted(False, {"TALLY_LOG_JSON": raw}) is False
    assert logjson.json_wanted(True, {"TALLY_LOG_JSON": "0"}) is True
    with pytest.raises(ConfigError) as err:
        logjson.json_wanted(True, {"TALLY_LOG_JSON": "maybe"})
    assert "TALLY_LOG_JSON: 'maybe' is not a yes or no" in str(err.value)


def _tally(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tally", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize("command", ["cloud", "edge", "peer"])
def test_the_service_commands_take_log_json(command: str, tmp_path: Path) -> None:
    assert "--log-json" in _tally(command, "--help").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[nothing]\n")
    r = _tally(command, "-c", str(bad), env={"TALLY_LOG_JSON": "maybe"})
    assert r.returncode == 2, r.stderr
    assert "TALLY_LOG_JSON: 'maybe' is not a yes or no" in r.stderr
    assert "Traceback" not in r.stderr


def _cloud_config(tmp_path: Path) -> Path:
    """A runnable cloud (keys, trust, its registration) whose registrations directory also
    holds a file that does not verify, which the cloud logs as a warning at start."""
    env = {"TALLY_KEY_PASSPHRASE": PASS}
    k = tmp_path / "keys"
    regs = tmp_path / "registrations"
    for args in (
        ("keys", "new", str(k / "bank.key")),
        ("keys", "new", str(k / "cloud.key")),
        ("trust", "add", str(tmp_path / "trust.cbor"), "bank", str(k / "bank.key")),
        ("register", "cloud", "cloud-1", "--org", "bank", "--org-key", str(k / "bank.key"),
         "--key", str(k / "cloud.key"), "--out", str(regs)),
    ):  # fmt: skip
        r = _tally(*args, env=env)
        assert r.returncode == 0, r.stderr
    (regs / "junk.cose").write_bytes(b"not a registration")
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(
        f'[cloud]\nid = "cloud-1"\norg = "bank"\nport = 0\ndata_dir = "{tmp_path / "data"}"\n'
        f'key_file = "{k / "cloud.key"}"\ntrust_file = "{tmp_path / "trust.cbor"}"\n'
        f'registrations_dir = "{regs}"\n'
    )
    return cfg


def _run_cloud(cfg: Path, out: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    """Start ``tally cloud``, wait (with a deadline) until it listens, stop it; its stderr."""
    stdout, stderr = out / "stdout.txt", out / "stderr.txt"
    out.mkdir()
    full_env = {"PATH": "/usr/bin:/bin", "TALLY_KEY_PASSPHRASE": PASS, **(env or {})}
    with stdout.open("wb") as so, stderr.open("wb") as se:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tally", "cloud", *flags, "-c", str(cfg)],
            stdout=so,
            stderr=se,
            env=full_env,
        )
        try:
            deadline = time.monotonic() + 30
            while "listening on" not in stdout.read_text():
                assert proc.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, "the cloud did not start within 30 s"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return stderr.read_text()


def test_the_cloud_writes_json_lines_with_the_flag_or_the_variable(tmp_path: Path) -> None:
    cfg = _cloud_config(tmp_path)
    for name, flags, env in (
        ("flag", ("--log-json",), {}),
        ("variable", (), {"TALLY_LOG_JSON": "1"}),
    ):
        err = _run_cloud(cfg, tmp_path / name, *flags, env=env)
        lines = [json.loads(x) for x in err.splitlines() if x.strip()]  # every line is JSON
        skipped = [x for x in lines if "junk.cose" in x["msg"]]
        assert len(skipped) == 1, err
        assert skipped[0]["level"] == "WARNING" and skipped[0]["logger"] == "tally.cloud"
        assert skipped[0]["msg"].startswith("skipping registration file junk.cose")
        assert TS.match(skipped[0]["ts"])
        assert any(x["msg"].startswith("tally cloud cloud-1 listening on") for x in lines), err
        assert PASS not in err
    plain = _run_cloud(cfg, tmp_path / "plain")
    assert "WARNING tally.cloud: skipping registration file junk.cose" in plain
    assert not any(x.startswith("{") for x in plain.splitlines())

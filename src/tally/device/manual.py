"""Readings entered by hand: a person of the device's organisation signs them with the
organisation's key (assurance ``manual``, the lowest level).

The device must be registered with assurance ``manual``. Such a "device" still has a
counter and a hash chain like any other, kept in a small state file per device (it holds no
secret), so the edge checks manual entries for gaps, duplicates and replays too::

    {"boot": 0, "ctr": 12, "prev": "<hex of the previous envelope's hash>"}
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner, Measurement

MANUAL_FIRMWARE = b""
"""Manual entries carry no firmware hash."""


class ManualEntryError(ValueError):
    """Raised when a value given by hand cannot be read, with what was wrong."""


def parse_value(text: str) -> Measurement:
    """``quantity=value:unit`` (e.g. ``weight=12.345:t``) as an exact measurement."""
    try:
        quantity, rest = text.split("=", 1)
        value, unit = rest.rsplit(":", 1)
        number = Decimal(value)
    except (ValueError, InvalidOperation):
        raise ManualEntryError(f"{text!r} is not quantity=value:unit") from None
    if not quantity or not unit or not number.is_finite():
        raise ManualEntryError(f"{text!r} is not quantity=value:unit")
    return Measurement(quantity, number, unit)


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ManualEntryError(f"{text!r} is not key=value")
    return key, value


def _state_file(state_dir: Path, device: str) -> Path:
    return state_dir / f"{device.replace('/', '_')}.json"


def load_signer(state_dir: Path, device: str, org: str, org_key: SigningKey) -> DeviceSigner:
    """The signer of ``device``'s manual entries, continuing its saved counter and chain."""
    path = _state_file(state_dir, device)
    signer = DeviceSigner(device, org_key, MANUAL_FIRMWARE, signer=org)
    if path.exists():
        st = json.loads(path.read_text())
        signer.boot, signer.ctr, signer.prev = (
            int(st["boot"]),
            int(st["ctr"]),
            bytes.fromhex(st["prev"]),
        )
    return signer


def save_signer(state_dir: Path, signer: DeviceSigner) -> None:
    """Persist the counter and chain atomically (write, fsync, rename)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = _state_file(state_dir, signer.dev)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump({"boot": signer.boot, "ctr": signer.ctr, "prev": signer.prev.hex()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

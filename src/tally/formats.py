"""Content types and shared helpers of the telemetry spine's signed objects.

Every signed object is a COSE_Sign1 (see :mod:`tally.crypto.cose`) whose ``cty`` is one of
these media types, so that a signature over one kind of object can never be read as another.
The payload layouts are specified in ``docs/formats.md``.
"""

from __future__ import annotations

from typing import Any

from tally.crypto import DecodeError

CTY_READING = "application/tally.reading+cbor"
CTY_HEARTBEAT = "application/tally.heartbeat+cbor"
CTY_REGISTRATION = "application/tally.registration+cbor"
CTY_REVOCATION = "application/tally.revocation+cbor"
CTY_EVENT = "application/tally.event+cbor"
CTY_GAP = "application/tally.gap+cbor"
CTY_SUMMARY = "application/tally.summary+cbor"
CTY_BATCH = "application/tally.batch+cbor"
CTY_RECEIPT = "application/tally.receipt+cbor"

FORMAT_VERSION = 1


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """Return ``obj[name]`` checked to be of ``kind``; raise DecodeError naming the field."""
    if name not in obj:
        raise DecodeError(where, f"missing field {name!r}")
    v = obj[name]
    if isinstance(v, bool) and kind is int:
        raise DecodeError(where, f"field {name!r} must be int, got bool")
    if not isinstance(v, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DecodeError(where, f"field {name!r} must be {want}, got {type(v).__name__}")
    return v


def check_keys(obj: Any, required: set[str], optional: set[str], where: str) -> dict[str, Any]:
    """Check ``obj`` is a map with exactly the required keys and some optional ones."""
    if not isinstance(obj, dict):
        raise DecodeError(where, f"payload must be a map, got {type(obj).__name__}")
    keys = set(obj)
    missing = required - keys
    if missing:
        raise DecodeError(where, f"missing field(s) {sorted(missing)}")
    extra = keys - required - optional
    if extra:
        raise DecodeError(where, f"unknown field(s) {sorted(map(str, extra))}")
    if obj.get("v") != FORMAT_VERSION:
        raise DecodeError(where, f"unsupported format version {obj.get('v')!r}")
    return obj

"""The reading envelope: one signed reading (or heartbeat) of one device.

Payload (deterministic CBOR map), signed as COSE_Sign1 with ``cty``
``application/tally.reading+cbor`` (or ``…heartbeat+cbor``) and ``kid`` = the signer id
(the device's id; for a device that cannot sign, the id of the edge that signed for it)::

    {"v": 1,
     "dev": tstr,            ; device id
     "boot": uint,           ; boot epoch, persisted by the device, +1 on a counter reset
     "ctr": uint,            ; per-device counter within the boot epoch, from 0, +1 per envelope
     "prev": bstr,           ; suite hash of the previous envelope's COSE bytes; h'' for ctr 0
     "t": int,               ; device clock, ms since the Unix epoch
     "fw": bstr,             ; firmware hash
     "m": [[quantity: tstr, value: decimal (tag 4), unit: tstr], ...],   ; [] for heartbeats
     ? "l": {tstr => tstr}}  ; labels: RFID tag ids, event names, "sim": "1" for simulated data

A reading is identified by ``(dev, boot, ctr)``; its hash is the suite hash of its COSE bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally import formats as F
from tally.crypto import DecodeError, Sign1, SigningKey, Suite, cbor, parse_sign1, sign1


@dataclass(frozen=True)
class Measurement:
    """One sensor value: an exact decimal with its unit (UCUM code)."""

    quantity: str
    value: Decimal
    unit: str


@dataclass(frozen=True)
class Reading:
    """The decoded payload of a reading or heartbeat envelope."""

    dev: str
    boot: int
    ctr: int
    prev: bytes
    t: int
    fw: bytes
    m: tuple[Measurement, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    heartbeat: bool = False

    def to_cbor(self) -> bytes:
        obj: dict[str, Any] = {
            "v": F.FORMAT_VERSION,
            "dev": self.dev,
            "boot": self.boot,
            "ctr": self.ctr,
            "prev": self.prev,
            "t": self.t,
            "fw": self.fw,
            "m": [[x.quantity, x.value, x.unit] for x in self.m],
        }
        if self.labels:
            obj["l"] = dict(self.labels)
        return cbor.encode(obj)

    @property
    def cty(self) -> str:
        return F.CTY_HEARTBEAT if self.heartbeat else F.CTY_READING

    def value(self, quantity: str) -> Decimal | None:
        for x in self.m:
            if x.quantity == quantity:
                return x.value
        return None

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


_REQ = {"v", "dev", "boot", "ctr", "prev", "t", "fw", "m"}


def decode_reading(payload: bytes, heartbeat: bool = False) -> Reading:
    """Decode and validate a reading payload; raise DecodeError naming the bad field."""
    where = "heartbeat" if heartbeat else "reading"
    obj = F.check_keys(cbor.decode(payload, where=where), _REQ, {"l"}, where)
    ms: list[Measurement] = []
    for item in F.field(obj, "m", (list, tuple), where):
        if (
            not isinstance(item, list | tuple)
            or len(item) != 3
            or not isinstance(item[0], str)
            or not isinstance(item[1], Decimal | int)
            or isinstance(item[1], bool)
            or not isinstance(item[2], str)
        ):
            raise DecodeError(where, "each measurement must be [quantity, decimal, unit]")
        ms.append(Measurement(item[0], Decimal(item[1]), item[2]))
    if heartbeat and ms:
        raise DecodeError(where, "a heartbeat carries no measurements")
    labels: tuple[tuple[str, str], ...] = ()
    if "l" in obj:
        lab = obj["l"]
        if not isinstance(lab, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in lab.items()
        ):
            raise DecodeError(where, "labels must map text to text")
        labels = tuple(sorted(lab.items()))
    boot = F.field(obj, "boot", int, where)
    ctr = F.field(obj, "ctr", int, where)
    if boot < 0 or ctr < 0:
        raise DecodeError(where, "boot and ctr must not be negative")
    prev = F.field(obj, "prev", bytes, where)
    if ctr == 0 and prev != b"":
        raise DecodeError(where, "ctr 0 must have an empty prev")
    return Reading(
        dev=F.field(obj, "dev", str, where),
        boot=boot,
        ctr=ctr,
        prev=prev,
        t=F.field(obj, "t", int, where),
        fw=F.field(obj, "fw", bytes, where),
        m=tuple(ms),
        labels=labels,
        heartbeat=heartbeat,
    )


def sign_reading(key: SigningKey, signer: str, reading: Reading) -> bytes:
    """Return the COSE_Sign1 bytes of ``reading`` signed by ``key`` with kid ``signer``."""
    return sign1(key, reading.cty, signer, reading.to_cbor())


def parse_envelope(data: bytes, suite: Suite | None = None) -> tuple[Sign1, Reading]:
    """Parse a reading or heartbeat envelope (signature not yet verified)."""
    msg = parse_sign1(data, suite=suite)
    if msg.content_type == F.CTY_READING:
        return msg, decode_reading(msg.payload)
    if msg.content_type == F.CTY_HEARTBEAT:
        return msg, decode_reading(msg.payload, heartbeat=True)
    raise DecodeError("envelope", f"content type {msg.content_type!r} is not a reading")


@dataclass
class DeviceSigner:
    """The signing half of a device: keeps boot, counter and previous hash.

    ``state`` is what real firmware persists in non-volatile memory.
    """

    dev: str
    key: SigningKey
    fw: bytes
    boot: int = 0
    ctr: int = 0
    prev: bytes = b""
    signer: str = ""

    def __post_init__(self) -> None:
        if not self.signer:
            self.signer = self.dev

    def next(
        self,
        t_ms: int,
        measurements: tuple[Measurement, ...] = (),
        labels: tuple[tuple[str, str], ...] = (),
        heartbeat: bool = False,
    ) -> bytes:
        r = Reading(
            self.dev, self.boot, self.ctr, self.prev, t_ms, self.fw, measurements, labels, heartbeat
        )
        env = sign_reading(self.key, self.signer, r)
        self.prev = self.key.suite.hash(env)
        self.ctr += 1
        return env

    def reset_counter(self) -> None:
        """A reboot that loses the counter: a new boot epoch starting at ctr 0."""
        self.boot += 1
        self.ctr = 0
        self.prev = b""

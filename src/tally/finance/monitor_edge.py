"""From what the edge signs to the collateral monitor's facts.

Edge events (``application/tally.event+cbor``, :class:`tally.edge.formats.Event`):

=========================== =====================================================================
event ``kind``              fact
=========================== =====================================================================
``device_offline``          :class:`DeviceCondition` ``offline`` for each device in ``devs``
``device_online``           :class:`DeviceCondition` ``online`` for each device in ``devs``
``tamper``                  :class:`DeviceCondition` ``tamper`` for each device in ``devs``
``unexplained_weight_drop`` :class:`Removal` at (``site``, ``detail.location``) with
                            ``detail.drop_t`` and ``detail.unexplained_t``
anything else               nothing (thresholds, geofences, continuity: not collateral facts)
=========================== =====================================================================

Their evidence is ``Ref("event", "<edge>/<seq>", <suite hash of the event COSE>)`` followed
by ``Ref("reading", "", h)`` for each reading hash in the event's ``refs``.

Readings (:class:`tally.device.envelope.Reading`): a ``weight`` measurement (t) not labelled
``stable = "0"`` is a :class:`WeightReading` at the reading's ``location`` label (or the
location the caller places the device at); a reading labelled ``direction = "out"`` is an
:class:`OutScan` of its ``lot`` (``location`` and ``release`` labels when present). Their
evidence is ``Ref("reading", "<dev>/<boot>/<ctr>", <suite hash of the envelope>)``.

Tamper switches latch and the edge says nothing when one is reset; an inspection that clears
it, and calibration expiry or renewal, come from the warehouse's or the bank's records as
``DeviceCondition`` facts (``tamper_cleared``, ``uncalibrated``, ``calibrated``) made by the
caller with its own evidence.
"""

from __future__ import annotations

from decimal import Decimal

from tally import formats as F
from tally.crypto import VerifyKey, parse_sign1
from tally.device.envelope import Reading, parse_envelope
from tally.edge.formats import Event, decode_event
from tally.finance.monitor_model import (
    DeviceCondition,
    MonitorError,
    OutScan,
    Ref,
    Removal,
    WeightReading,
)

EdgeFact = DeviceCondition | Removal
ReadingFact = WeightReading | OutScan

_CONDITION_OF = {"device_offline": "offline", "device_online": "online", "tamper": "tamper"}


def event_refs(event: Event, event_hash: bytes) -> tuple[Ref, ...]:
    """The evidence of an edge event: itself, then the readings that caused it."""
    own = Ref("event", f"{event.edge}/{event.seq}", event_hash)
    return (own, *(Ref("reading", "", h) for h in event.refs))


def _decimal(detail: dict[str, object], name: str, where: str) -> Decimal:
    v = detail.get(name)
    if isinstance(v, bool) or not isinstance(v, Decimal | int):
        raise MonitorError(f"{where}: detail {name!r} must be a number, got {v!r}")
    return Decimal(v)


def facts_from_event(event: Event, event_hash: bytes) -> list[EdgeFact]:
    """The monitor's facts in one decoded edge event (``event_hash``: its COSE's suite hash)."""
    evidence = event_refs(event, event_hash)
    cond = _CONDITION_OF.get(event.kind)
    if cond is not None:
        return [DeviceCondition(dev, cond, event.t, evidence) for dev in event.devs]
    if event.kind != "unexplained_weight_drop":
        return []
    where = f"event {event.edge}/{event.seq} ({event.kind})"
    detail = dict(event.detail)
    location = detail.get("location")
    if not isinstance(location, str) or not location:
        raise MonitorError(f"{where}: detail 'location' must be non-empty text, got {location!r}")
    drop = _decimal(detail, "drop_t", where)
    unexplained = _decimal(detail, "unexplained_t", where)
    return [Removal(event.site, location, event.t, drop, unexplained, evidence)]


def facts_from_signed_event(cose: bytes, key: VerifyKey | None = None) -> list[EdgeFact]:
    """Parse (and, given the edge's key, verify) a signed edge event; return its facts.

    Raises :class:`tally.crypto.DecodeError` / :class:`tally.crypto.InvalidSignature`.
    """
    msg = parse_sign1(cose, content_type=F.CTY_EVENT)
    if key is not None:
        msg.verify(key)
    event = decode_event(msg.payload)
    return facts_from_event(event, msg.suite.hash(cose))


def facts_from_reading(
    site: str, reading: Reading, env_hash: bytes, location: str | None = None
) -> list[ReadingFact]:
    """The monitor's facts in one device reading (``env_hash``: its envelope's suite hash)."""
    if reading.heartbeat:
        return []
    ref = Ref("reading", f"{reading.dev}/{reading.boot}/{reading.ctr}", env_hash)
    out: list[ReadingFact] = []
    weight = reading.value("weight")
    place = reading.label("location") or location
    if weight is not None and reading.label("stable") != "0" and place:
        out.append(WeightReading(site, place, reading.dev, weight, reading.t, ref))
    if reading.label("direction") == "out":
        out.append(
            OutScan(
                site,
                reading.label("lot"),
                reading.t,
                reading.dev,
                ref,
                reading.label("location"),
                reading.label("release"),
            )
        )
    return out


def facts_from_envelope(
    site: str, envelope: bytes, location: str | None = None
) -> list[ReadingFact]:
    """Parse a reading envelope (signature checked upstream by the edge and the cloud)."""
    msg, reading = parse_envelope(envelope)
    return facts_from_reading(site, reading, msg.suite.hash(envelope), location)

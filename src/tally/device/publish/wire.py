"""What goes on the wire between a device and its site's edge gateway.

Every transport carries the same bytes: one reading (or heartbeat) envelope, a COSE_Sign1
exactly as :meth:`tally.device.envelope.DeviceSigner.next` returned it. Nothing is wrapped
around it; the envelope's ``kid`` names its signer.

MQTT (3.1.1 or 5), QoS 1, not retained::

    tally/{site}/{device}/up          one envelope per PUBLISH
    tally/{site}/+/up                 what a site's gateway subscribes to

``site`` and ``device`` are single topic levels: non-empty UTF-8 without ``/``, ``+``, ``#``
or NUL. The device level is advisory (routing, access control in the broker); the gateway
trusts only the signed envelope.

HTTP: ``POST /v1/envelopes`` with ``Content-Type: application/cose; cose-type="cose-sign1"``;
``202 Accepted`` on accept, an RFC 9457 ``application/problem+json`` body on error.

CoAP (RFC 7252): confirmable ``POST /up`` with Content-Format 18 (``application/cose;
cose-type="cose-sign1"``); ``2.04 Changed`` on accept, ``4.00``/``4.13``/``4.15`` with a
diagnostic text payload on error.
"""

from __future__ import annotations

TOPIC_ROOT = "tally"
UPLINK_SUFFIX = "up"

COSE_SIGN1_MEDIA_TYPE = 'application/cose; cose-type="cose-sign1"'
"""Media type of a COSE_Sign1 message (RFC 9052 §9.1)."""
COAP_CONTENT_FORMAT_COSE_SIGN1 = 18
"""CoAP Content-Format number of :data:`COSE_SIGN1_MEDIA_TYPE` (RFC 9052 §9.2)."""
PROBLEM_MEDIA_TYPE = "application/problem+json"

HTTP_PATH = "/v1/envelopes"
COAP_PATH = "up"

MAX_ENVELOPE_BYTES = 64 * 1024
"""Default limit on one envelope's size; adapters refuse or drop larger frames."""

COSE_SIGN1_PREFIX = b"\xd2\x84"
"""First bytes of every tally envelope: CBOR tag 18 (COSE_Sign1), then an array of 4."""

_BAD_LEVEL_CHARS = ("/", "+", "#", "\x00")


class TopicError(ValueError):
    """Raised when a site or device id cannot be one MQTT topic level; carries both."""

    def __init__(self, what: str, value: str) -> None:
        self.what = what
        self.value = value
        super().__init__(
            f"{what} {value!r} cannot be an MQTT topic level "
            "(must be non-empty, without '/', '+', '#' or NUL)"
        )


def check_level(what: str, value: str) -> str:
    """Return ``value`` if it is a valid single topic level, else raise :class:`TopicError`."""
    if not value or any(c in value for c in _BAD_LEVEL_CHARS):
        raise TopicError(what, value)
    return value


def uplink_topic(site: str, device: str) -> str:
    """``tally/{site}/{device}/up``: where ``device`` of ``site`` publishes its envelopes."""
    return f"{TOPIC_ROOT}/{check_level('site', site)}/{check_level('device', device)}/up"


def uplink_filter(site: str) -> str:
    """``tally/{site}/+/up``: the filter a site's gateway subscribes to."""
    return f"{TOPIC_ROOT}/{check_level('site', site)}/+/{UPLINK_SUFFIX}"


def parse_uplink_topic(topic: str) -> tuple[str, str] | None:
    """``(site, device)`` of an uplink topic, or ``None`` if ``topic`` is not one."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] != UPLINK_SUFFIX:
        return None
    site, device = parts[1], parts[2]
    if not site or not device or any(c in site + device for c in _BAD_LEVEL_CHARS):
        return None
    return site, device


def looks_like_sign1(data: bytes) -> bool:
    """A cheap structural check: does ``data`` start like a COSE_Sign1 (tag 18, array of 4)?"""
    return data.startswith(COSE_SIGN1_PREFIX)

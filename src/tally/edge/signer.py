"""The edge's signing key at work: events, gap certificates, summaries, batch headers, and the
readings of devices that cannot sign.

Every object is a COSE_Sign1 with ``kid`` = the edge id (see :mod:`tally.edge.formats`).
A reading signed for a device registered with assurance "edge" (e.g. a Modbus meter) is an
ordinary reading envelope (:mod:`tally.device.envelope`) whose ``dev`` is the meter's id and
whose ``kid`` is the edge id; its boot, counter and ``prev`` continue the device's chain as
the edge's continuity state knows it, so it is checked like any other reading.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally import formats as F
from tally.crypto import SigningKey, Suite
from tally.device.envelope import Reading, sign_reading
from tally.edge.formats import BatchHeader, Event, Gap, Summary, sign_object


class EdgeSigner:
    """Signs the edge's own objects with its key; ``edge`` is the key id, ``site`` its site."""

    __slots__ = ("edge", "key", "site", "suite")

    def __init__(self, key: SigningKey, edge: str, site: str) -> None:
        self.key = key
        self.edge = edge
        self.site = site
        self.suite: Suite = key.suite

    def event(
        self,
        seq: int,
        rule: str,
        kind: str,
        sev: str,
        t: int,
        devs: tuple[str, ...],
        refs: tuple[bytes, ...],
        detail: tuple[tuple[str, Any], ...] = (),
    ) -> bytes:
        """Sign an Event (``cty`` ``application/tally.event+cbor``)."""
        ev = Event(self.edge, self.site, seq, rule, kind, sev, t, devs, refs, detail)
        return sign_object(self.key, F.CTY_EVENT, self.edge, ev.to_cbor())

    def gap(self, dev: str, boot: int, first: int, last: int, reason: str, t: int) -> bytes:
        """Sign a Gap certificate for counters ``first``..``last`` (inclusive) of ``dev``."""
        g = Gap(self.edge, dev, boot, first, last, reason, t)
        return sign_object(self.key, F.CTY_GAP, self.edge, g.to_cbor())

    def summary(
        self,
        dev: str,
        boot: int,
        first: int,
        last: int,
        n: int,
        root: bytes,
        stats: tuple[tuple[str, Decimal, Decimal, Decimal, str], ...],
        t: int,
    ) -> bytes:
        """Sign a Summary of ``n`` condensed envelopes whose RFC 9162 root is ``root``."""
        s = Summary(self.edge, dev, boot, first, last, n, root, stats, t)
        return sign_object(self.key, F.CTY_SUMMARY, self.edge, s.to_cbor())

    def header(self, header: BatchHeader) -> bytes:
        """Sign a batch header (``cty`` ``application/tally.batch+cbor``)."""
        return sign_object(self.key, F.CTY_BATCH, self.edge, header.to_cbor())

    def reading(self, reading: Reading) -> bytes:
        """Sign a reading for a device that cannot sign; ``kid`` is the edge id."""
        return sign_reading(self.key, self.edge, reading)

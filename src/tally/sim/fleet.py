"""The simulated devices of the demo: they sign what the site's sensors report, send
heartbeats, and act out the scripted incidents that happen on the wire.

Physical incidents (goods removed at night, a device unplugged, a skewed clock) are played
by :class:`tally.device.sim.Site` itself. The ones acted out here are:

* ``replayed_messages`` — an attacker re-sends a device's last envelopes, byte for byte;
* ``forged_signature`` — an attacker sends an envelope in a device's name, with the next
  counter, signed by a key that is not the device's;
* ``counter_reset`` — the device reboots and loses its counter: a new boot epoch from 0;
* ``link_loss`` — a device's next envelopes are lost in transit (signed, never delivered).

The fleet records every envelope a genuine device produced, so the demo can prove that each
one was stored in the cloud or is covered by a certified gap.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal

from tally.crypto import SigningKey
from tally.device.envelope import Reading, sign_reading
from tally.device.sim import Incident, Site
from tally.device.sim.base import SIM_LABEL, Measurement
from tally.device.sim.incidents import (
    COUNTER_RESET,
    FORGED_SIGNATURE,
    LINK_LOSS,
    REPLAYED_MESSAGES,
)
from tally.sim.provision import Provisioned

MQTT = "mqtt"
HTTP = "http"
COAP = "coap"


@dataclass(frozen=True)
class Outgoing:
    """One envelope on its way to the edge."""

    device: str
    transport: str
    payload: bytes
    genuine: bool


@dataclass
class Fleet:
    prov: Provisioned
    site: Site
    transports: dict[str, str]
    heartbeat_ms: int
    produced: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    produced_kinds: Counter[str] = field(default_factory=Counter)
    lost: list[tuple[str, int, int]] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    replayed: list[bytes] = field(default_factory=list)
    """The envelopes an attacker re-sent, byte for byte."""
    forged: list[tuple[str, int, int]] = field(default_factory=list)
    """(device, boot, ctr) that a forger tried to take."""
    acted: list[tuple[Incident, int]] = field(default_factory=list)
    _history: dict[str, deque[bytes]] = field(default_factory=dict)
    _last_hb: dict[str, int] = field(default_factory=dict)
    _drop: dict[str, int] = field(default_factory=dict)

    def _send(self, dev: str, env: bytes, out: list[Outgoing]) -> None:
        signer = self.prov.signers[dev]
        # the signer has already advanced: the envelope is (boot, ctr - 1)
        ident = (signer.boot, signer.ctr - 1)
        self.produced.setdefault(dev, set()).add(ident)
        self._history.setdefault(dev, deque(maxlen=8)).append(env)
        if self._drop.get(dev, 0) > 0:
            self._drop[dev] -= 1
            self.lost.append((dev, *ident))
            return
        out.append(Outgoing(dev, self.transports.get(dev, MQTT), env, True))

    def _act(self, inc: Incident, t_ms: int, out: list[Outgoing]) -> None:
        dev = inc.device_id
        signer = self.prov.signers.get(dev)
        if signer is None:
            return
        transport = self.transports.get(dev, MQTT)
        if inc.kind == REPLAYED_MESSAGES:
            count = int(inc.param("count") or "2")
            for env in list(self._history.get(dev, ()))[-count:]:
                out.append(Outgoing(dev, transport, env, False))
                self.replayed.append(env)
                self.injected["replayed"] += 1
        elif inc.kind == FORGED_SIGNATURE:
            forger = SigningKey.generate(self.prov.suite)
            fake = Reading(
                dev,
                signer.boot,
                signer.ctr,
                signer.prev,
                t_ms,
                signer.fw,
                (Measurement("door_open", Decimal(0), "1"),),
                (SIM_LABEL, ("event", "door_close")),
            )
            out.append(Outgoing(dev, transport, sign_reading(forger, dev, fake), False))
            self.forged.append((dev, signer.boot, signer.ctr))
            self.injected["forged"] += 1
        elif inc.kind == COUNTER_RESET:
            signer.reset_counter()
        elif inc.kind == LINK_LOSS:
            self._drop[dev] = self._drop.get(dev, 0) + int(inc.param("count") or "3")
        else:
            return
        self.acted.append((inc, t_ms))

    def step(self, t_ms: int) -> list[Outgoing]:
        """Advance the site to ``t_ms`` and return what the devices send now."""
        out: list[Outgoing] = []
        samples = self.site.tick(t_ms)
        for inc in self.site.incidents_due(t_ms):
            self._act(inc, t_ms, out)
        for s in samples:
            signer = self.prov.signers.get(s.device_id)
            if signer is None:  # a device that cannot sign is polled by the edge instead
                continue
            env = signer.next(s.t_ms, s.measurements, s.labels)
            self.produced_kinds["reading"] += 1
            self._send(s.device_id, env, out)
        for dev, signer in self.prov.signers.items():
            if self.site.is_unplugged(dev, t_ms):
                continue
            last = self._last_hb.get(dev)
            if last is None or t_ms - last >= self.heartbeat_ms:
                self._last_hb[dev] = t_ms
                device_t = t_ms + self.site.clock_offset_ms(dev, t_ms)
                env = signer.next(device_t, (), (SIM_LABEL,), heartbeat=True)
                self.produced_kinds["heartbeat"] += 1
                self._send(dev, env, out)
        return out

    @property
    def produced_total(self) -> int:
        return sum(len(v) for v in self.produced.values())

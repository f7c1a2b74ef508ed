"""The edge gateway: configuration, registry, pipeline, rules, batcher and uplink wired up.

Adapters hand frames to :meth:`EdgeGateway.on_envelope` (never raises) and readings of
meters that cannot sign to :meth:`EdgeGateway.ingest_unsigned`. Every ``window_ms`` the
gateway ticks (gap certificates, time-driven rules such as ``offline``, ended condense
runs), seals pending items into a batch and wakes the uplink. Tests drive it without
sleeping: inject ``clock``, call :meth:`EdgeGateway.open` and :meth:`EdgeGateway.tick`.

If the configuration has no rule of type ``offline``, one is added with id ``offline``
and ``timeout_ms`` = ``heartbeat_timeout_ms``, watching every device from its first sign
of life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from tally import config as tally_config
from tally.crypto import SigningKey
from tally.crypto.keystore import load_key
from tally.device.envelope import Measurement, Reading
from tally.device.registration import Assurance
from tally.device.trust import Trust, load_trust
from tally.edge.batcher import Batcher, SealedBatch
from tally.edge.config import EdgeConfig
from tally.edge.errors import EdgeError, RegistrationRejected, UnknownEdgeDevice
from tally.edge.outbox import Outbox
from tally.edge.pipeline import Clock, Pipeline, Result, RuleSink
from tally.edge.registry import Registry
from tally.edge.signer import EdgeSigner
from tally.edge.uplink import Uplink

log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class EdgeGateway:
    """One edge gateway. ``key``, ``trust``, ``registry`` and ``rules`` default to what the
    configuration names (key file with ``TALLY_KEY_PASSPHRASE``, trust file, registrations
    directory, ``rules`` tables through ``tally.edge.rules.RuleEngine``)."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        key: SigningKey | None = None,
        trust: Trust | None = None,
        registry: Registry | None = None,
        rules: Any | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or _wall_ms
        self._key = key
        self._trust = trust
        self.registry: Registry | None = registry
        self.rules = rules
        self._opened = False
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.internal_errors = 0
        self.registration_errors: list[str] = []

    # lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Load keys, trust and registrations, open the outbox and build the pipeline."""
        if self._opened:
            return
        cfg = self.config
        key = self._key if self._key is not None else self._load_key()
        if key.suite.name != cfg.suite:
            raise EdgeError(f"edge key is {key.suite.name}, configuration says {cfg.suite}")
        if self.registry is None:
            trust = self._trust
            if trust is None:
                if cfg.trust_file is None:
                    raise EdgeError("edge.trust_file is not set")
                trust = load_trust(cfg.trust_file)
            if trust.suite.name != cfg.suite:
                raise EdgeError(f"trust file is {trust.suite.name}, configuration says {cfg.suite}")
            self.registry = Registry(trust)
            if cfg.registrations_dir is not None:
                self.registry.load_dir(cfg.registrations_dir, self._registration_error)
        if self.rules is None:
            self.rules = self._build_rules()
        self.signer = EdgeSigner(key, cfg.id, cfg.site)
        self.outbox = Outbox(
            cfg.outbox_file,
            synchronous=cfg.outbox_synchronous,
            dedup_retention_ms=cfg.dedup_retention_ms,
            quarantine_max_rows=cfg.quarantine_max_rows,
        )
        self.pipeline = Pipeline(
            self.signer,
            self.registry,
            self.outbox,
            rules=self.rules,
            clock=self.clock,
            gap_grace_ms=cfg.gap_grace_ms,
            skew_tolerance_ms=cfg.clock_skew_tolerance_ms,
            max_bytes=cfg.outbox_max_bytes,
            summary_window_ms=cfg.summary_window_ms,
        )
        self.batcher = Batcher(self.outbox, self.signer, cfg.max_batch_items)
        self.uplink: Uplink | None = None
        if cfg.cloud_url:
            self.uplink = Uplink(
                self.outbox,
                self.registry,
                cfg.id,
                key.suite,
                cfg.cloud_url,
                ca_file=cfg.cloud_ca_file,
                client_cert_file=cfg.cloud_client_cert_file,
                client_key_file=cfg.cloud_client_key_file,
                clock=self.clock,
                timeout_ms=cfg.uplink_timeout_ms,
                backoff_ms=cfg.uplink_backoff_ms,
                backoff_cap_ms=cfg.uplink_backoff_cap_ms,
                refused_retry_ms=cfg.refused_retry_ms,
            )
        self._opened = True

    def _load_key(self) -> SigningKey:
        if self.config.key_file is None:
            raise EdgeError("edge.key_file is not set")
        return load_key(self.config.key_file, tally_config.passphrase())

    def _registration_error(self, err: RegistrationRejected) -> None:
        log.error("registration not loaded: %s", err)
        self.registration_errors.append(str(err))

    def _build_rules(self) -> RuleSink | None:
        rules: list[dict[str, Any]] = [dict(r) for r in self.config.rules]
        if not any(r.get("type") == "offline" for r in rules):
            rules.append(
                {"id": "offline", "type": "offline", "timeout_ms": self.config.heartbeat_timeout_ms}
            )
        try:
            from tally.edge.rules import RuleEngine
        except ImportError as exc:
            if self.config.rules:
                raise EdgeError(
                    f"rules are configured but the rules engine is missing: {exc}"
                ) from None
            log.warning("no rules engine available; running without rules")
            return None
        engine: RuleSink = RuleEngine.from_config(rules, self.config.site)
        return engine

    async def start(self) -> None:
        """Open (if needed) and start the tick/seal loop and the uplink loop."""
        self.open()
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._tick_loop(self._stop), name="edge-tick")]
        if self.uplink is not None:
            self._tasks.append(asyncio.create_task(self.uplink.run(self._stop), name="edge-uplink"))

    async def stop(self) -> None:
        """Stop the loops, seal what is pending and close the outbox."""
        if self._stop is not None:
            self._stop.set()
            for task in self._tasks:
                try:
                    await asyncio.wait_for(task, timeout=5)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                except Exception:
                    self.internal_errors += 1
                    log.exception("edge task %s failed", task.get_name())
            self._tasks = []
        if self._opened:
            try:
                self.tick()
            finally:
                self.outbox.close()
                self._opened = False

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        window = self.config.window_ms / 1000
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=window)
            if stop.is_set():
                return
            try:
                self.tick()
            except Exception:
                self.internal_errors += 1
                log.exception("edge tick failed")

    def tick(self, now: int | None = None) -> list[SealedBatch]:
        """One window: pipeline tick, seal pending items, wake the uplink."""
        now = self.clock() if now is None else now
        self.pipeline.tick(now)
        sealed = self.batcher.seal(now)
        if sealed and self.uplink is not None:
            self.uplink.wake()
        if sealed:
            with self.outbox.transaction():
                self.outbox.prune_quarantine()
        return sealed

    # ingest ----------------------------------------------------------------------------------

    def on_envelope(self, data: bytes, source: str) -> None:
        """The adapters' callback: admit one envelope; never raises (see ``stats()``)."""
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                self.pipeline.ingest(bytes(data), source)
            else:
                self.pipeline.refuse_input(f"not bytes but {type(data).__name__}", source)
        except Exception:
            self.internal_errors += 1
            log.exception("could not ingest an envelope from %s", source)

    def ingest(self, data: bytes, source: str = "") -> Result:
        """Admit one envelope and say what happened (raises only if the outbox fails)."""
        return self.pipeline.ingest(data, source)

    def ingest_many(self, envelopes: Sequence[bytes], source: str = "") -> list[Result]:
        """Admit many envelopes in one transaction."""
        return self.pipeline.ingest_many(envelopes, source)

    def ingest_unsigned(
        self,
        device_id: str,
        t_ms: int,
        measurements: Iterable[Measurement],
        labels: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Result:
        """Sign a reading of a meter that cannot sign (assurance "edge") and admit it.

        Raises :class:`UnknownEdgeDevice` if ``device_id`` is not registered as such.
        """
        assert self.registry is not None
        entry = self.registry.get(device_id)
        if entry is None:
            raise UnknownEdgeDevice(device_id, "not registered")
        if entry.reg.kind != "device" or entry.reg.assurance is not Assurance.EDGE:
            raise UnknownEdgeDevice(
                device_id, f"registered with assurance {entry.reg.assurance.label}"
            )
        now = self.clock()
        if entry.revoked(t_ms, now):
            self.pipeline._count("rejected.revoked")
            return Result(False, "revoked", device_id)
        boot, ctr, prev = self.pipeline.continuity.next_for(device_id)
        items = labels.items() if isinstance(labels, Mapping) else labels
        reading = Reading(
            device_id, boot, ctr, prev, t_ms, b"", tuple(measurements), tuple(sorted(items))
        )
        return self.pipeline.ingest_signed_by_edge(reading, now)

    def authorise_release(
        self,
        location: str,
        quantity: Decimal,
        lots: tuple[str, ...],
        valid_from_ms: int,
        valid_to_ms: int,
        ref: str,
    ) -> None:
        """Pass a release authorisation to the rules engine (e.g. a bank-approved outflow)."""
        if self.rules is None or not hasattr(self.rules, "authorise_release"):
            raise EdgeError("no rules engine to authorise a release with")
        self.rules.authorise_release(location, quantity, lots, valid_from_ms, valid_to_ms, ref)

    def revoke_release(self, ref: str) -> bool:
        """Revoke an authorised release in the rules engine (its receipt was frozen, outbound
        stopped): no later weight drop is explained by it. False if the engine held no such
        release."""
        if self.rules is None or not hasattr(self.rules, "revoke_release"):
            raise EdgeError("no rules engine to revoke a release with")
        return bool(self.rules.revoke_release(ref))

    # observation -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters since the outbox was created, and the outbox's depth now."""
        c = self.outbox.counters()
        rejected = {k[len("rejected.") :]: v for k, v in c.items() if k.startswith("rejected.")}
        events = {k[len("events.") :]: v for k, v in c.items() if k.startswith("events.")}
        plain = (
            "received",
            "accepted",
            "late",
            "counter_resets",
            "clock_skew",
            "gaps_certified",
            "gap_certificates",
            "condensed",
            "summaries",
            "summarised_readings",
            "gaps_disk_full",
            "batches_sealed",
            "batches_acked",
            "batches_refused",
            "rules_errors",
        )
        out: dict[str, Any] = {k: c.get(k, 0) for k in plain}
        out.update(
            rejected=rejected,
            duplicates=rejected.get("duplicate", 0),
            events=events,
            outbox=self.outbox.depth(),
            internal_errors=self.internal_errors,
            uplink_failures=self.uplink.failures if self.uplink else 0,
            uplink_last_error=self.uplink.last_error if self.uplink else "",
        )
        return out

"""The edge gateway's errors and the reasons it gives for rejecting an envelope.

A rejected envelope is never an exception on the ingest path: the pipeline counts it under
``rejected.<reason>`` and keeps its raw bytes in the quarantine table (duplicates are only
counted). The reasons, in the order the pipeline checks them:

``malformed``          not a strict COSE_Sign1 reading/heartbeat envelope
``wrong_suite``        signed with another crypto suite than the edge's
``unknown_device``     the signer (``kid``) has no registration verified by a trust anchor
``signer_mismatch``    ``kid`` is not the reading's ``dev``, or the signer is not a device
``no_key``             the device is registered with assurance "edge" (cannot sign) but an
                       envelope claiming to be signed by it arrived
``bad_signature``      the signature does not verify under the registered key
``revoked``            the device is revoked (see :mod:`tally.edge.registry`)
``duplicate``          same (dev, boot, ctr) and same bytes as a stored envelope (idempotent)
``conflict``           same (dev, boot, ctr) as a stored envelope but other bytes
``replay_old_epoch``   a boot epoch older than the device's current one
``chain_broken``       ``prev`` does not match the stored neighbouring envelope's hash
``stale``              a counter below the device's last one that is neither open (missing)
                       nor remembered: it arrived after its gap was certified, after the
                       de-duplication retention, or before the device was first seen
"""

from __future__ import annotations

REJECT_REASONS = (
    "malformed",
    "wrong_suite",
    "unknown_device",
    "signer_mismatch",
    "no_key",
    "bad_signature",
    "revoked",
    "duplicate",
    "conflict",
    "replay_old_epoch",
    "chain_broken",
    "stale",
)


class EdgeError(Exception):
    """Base class of every error raised by :mod:`tally.edge`."""


class RegistrationRejected(EdgeError):
    """Raised when a registration or revocation file cannot be loaded into the registry.

    ``source`` names the file (or ``"bytes"``), ``reason`` says what is wrong.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnknownEdgeDevice(EdgeError):
    """Raised by ``ingest_unsigned`` when the device is not registered with assurance "edge"."""

    def __init__(self, dev: str, reason: str) -> None:
        self.dev = dev
        self.reason = reason
        super().__init__(f"device {dev!r} cannot be signed for by this edge: {reason}")


class ReceiptError(EdgeError):
    """Raised when the cloud's answer to an upload is not a valid receipt for that batch.

    ``ctr`` is the batch counter, ``reason`` what is wrong (unknown signer, bad signature,
    mismatching edge/ctr/header hash/count, undecodable bytes).
    """

    def __init__(self, ctr: int, reason: str) -> None:
        self.ctr = ctr
        self.reason = reason
        super().__init__(f"receipt for batch {ctr} refused: {reason}")


class UploadRefused(EdgeError):
    """Raised when the cloud answers an upload with a 4xx status (an RFC 9457 problem).

    ``status`` is the HTTP status, ``problem`` the decoded problem object (or the raw text
    under ``"detail"`` when the body was not JSON).
    """

    def __init__(self, ctr: int, status: int, problem: dict[str, object]) -> None:
        self.ctr = ctr
        self.status = status
        self.problem = problem
        title = problem.get("title") or problem.get("detail") or ""
        super().__init__(f"batch {ctr} refused by the cloud: HTTP {status} {title}".rstrip())


class OutboxError(EdgeError):
    """Raised when the outbox database is not usable (wrong schema version, bad settings)."""

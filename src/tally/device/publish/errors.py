"""Errors of the device-side publishers. Each says when it is raised and carries its data."""

from __future__ import annotations


class PublishError(Exception):
    """Base class: raised when an envelope could not be delivered to the edge.

    ``transport`` is ``"mqtt"``, ``"http"`` or ``"coap"``; ``target`` the broker or URL.
    """

    def __init__(self, transport: str, target: str, detail: str) -> None:
        self.transport = transport
        self.target = target
        self.detail = detail
        super().__init__(f"{transport} publish to {target} failed: {detail}")


class PublishUnreachable(PublishError):
    """Raised when the broker or endpoint could not be reached within the retry deadline."""


class PublishRejected(PublishError):
    """Raised when the endpoint answered but refused the envelope.

    ``status`` is the HTTP status (e.g. 413) or the CoAP code as text (e.g. ``"4.13"``);
    ``problem`` the decoded RFC 9457 problem object (HTTP) or ``{"detail": text}`` (CoAP).
    """

    def __init__(
        self, transport: str, target: str, status: int | str, problem: dict[str, object]
    ) -> None:
        self.status = status
        self.problem = problem
        detail = str(problem.get("detail") or problem.get("title") or "")
        super().__init__(transport, target, f"refused with {status}: {detail}")

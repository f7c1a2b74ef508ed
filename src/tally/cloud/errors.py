"""The cloud tier's errors. Each says when it is raised and carries its data.

Every error maps to one RFC 9457 problem in :mod:`tally.cloud.problems`; ``code`` becomes the
problem's ``type`` (``urn:tally:problem:<code>``) and ``status`` its HTTP status.
"""

from __future__ import annotations


class CloudError(Exception):
    """Base class of every error raised by :mod:`tally.cloud`."""

    code = "cloud_error"
    title = "Cloud error"
    status = 500

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class IngestRejected(CloudError):
    """Raised by ingest when a batch is refused as a whole; nothing of it was stored.

    ``reason`` is one of :data:`REASONS`; ``index`` is the offending item's index in the
    batch when one item is at fault.
    """

    title = "Batch rejected"

    def __init__(self, reason: str, detail: str, index: int | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason = reason
        self.index = index
        self.code = reason
        self.status = REASONS[reason]
        where = f"item {index}: " if index is not None else ""
        super().__init__(where + detail)


REASONS: dict[str, int] = {
    "malformed": 400,  # the upload, header or an item is not a valid tally object
    "wrong_suite": 422,  # header or item uses another crypto suite than the cloud's
    "unknown_edge": 403,  # the header's signer has no edge registration
    "untrusted_org": 403,  # a registration's organisation is not a trust anchor
    "revoked_edge": 403,  # the edge was revoked before the batch's end time
    "bad_header_signature": 403,  # the header's signature does not verify
    "count_mismatch": 422,  # header n differs from the number of items
    "root_mismatch": 422,  # the recomputed RFC 9162 root differs from the header's
    "unknown_device": 422,  # a reading names a device with no registration
    "revoked_device": 422,  # a reading was signed after its device's revocation
    "wrong_signer": 422,  # an item is signed by someone other than who must sign it
    "bad_item_signature": 422,  # an item's signature does not verify
    "duplicate_item": 409,  # an item is already stored (or twice in this batch)
    "broken_chain": 409,  # prev does not match the neighbouring stored batch
    "batch_conflict": 409,  # another header is already stored for (edge, ctr)
}


class BadRequest(CloudError):
    """Raised when a request's parameters or body cannot be understood."""

    code = "bad_request"
    title = "Bad request"
    status = 400


class Unauthorized(CloudError):
    """Raised when a read request carries no bearer token or an unknown one."""

    code = "unauthorized"
    title = "Unauthorized"
    status = 401


class Forbidden(CloudError):
    """Raised when a signed object is valid but its signer may not do what it asks."""

    code = "forbidden"
    title = "Forbidden"
    status = 403


class NotFound(CloudError):
    """Raised when a resource does not exist or is not visible to the caller's organisation."""

    code = "not_found"
    title = "Not found"
    status = 404


class Conflict(CloudError):
    """Raised when a write contradicts what is stored (e.g. another org's subject id)."""

    code = "conflict"
    title = "Conflict"
    status = 409


class RegistrationRejected(CloudError):
    """Raised when a registration or revocation does not verify against the trust anchors."""

    code = "registration_rejected"
    title = "Registration rejected"
    status = 422


class StorageError(CloudError):
    """Base class of errors raised by a storage backend."""

    code = "storage_error"
    title = "Storage error"
    status = 500


class BatchExists(StorageError):
    """Raised by ``store_batch`` when (edge, ctr) is already stored (a concurrent upload)."""

    code = "batch_conflict"
    status = 409

    def __init__(self, edge: str, ctr: int) -> None:
        self.edge = edge
        self.ctr = ctr
        super().__init__(f"batch {ctr} of edge {edge!r} is already stored")


class ItemExists(StorageError):
    """Raised by ``store_batch`` when an item's hash is already stored."""

    code = "duplicate_item"
    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(detail)

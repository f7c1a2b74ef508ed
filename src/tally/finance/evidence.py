"""Proven readings: IoT evidence a contract can rely on.

A receipt is issued only against a device-signed reading that is provably inside an edge
batch anchored on the chain. The evidence a proposal carries for one reading is the map::

    {"reading": bstr,   ; the device's COSE_Sign1 reading bytes (a leaf of the batch)
     "edge": tstr,      ; the edge whose batch holds it
     "ctr": uint,       ; that batch's counter
     "index": uint,     ; the reading's leaf index in the batch
     "path": [bstr]}    ; the RFC 9162 inclusion proof, leaf to root

:func:`verify_reading` checks it against the chain's own state, in this order, and refuses
with a :class:`~tally.ledger.contract.ContractError` saying which step failed:

1. the map's shape, then the reading envelope (a heartbeat is not a reading);
2. the device ``reg/<dev>`` is registered as a device at the site, and was not revoked
   before the reading's ``t``;
3. its signer: the device itself (assurance ``device``) or an edge registered at the site
   (assurance ``edge``); hand-entered readings (``manual``) are not IoT evidence; the
   signature verifies with the signer's registered key and suite;
4. the edge is registered at the site and batch ``anchor/<edge>/<ctr>`` is anchored;
5. ``hash_leaf(reading)`` is at ``index`` of the batch's ``n`` leaves under its ``root``.

What a reading proves: a load cell or weighbridge (profiles ``load_cell``,
``weighbridge``) measures the stock of its storage location, ``weight`` in t, labelled
``location``; an RFID gate (profile ``rfid_gate``) reports a tagged ``lot`` passing in
``direction`` "in" or "out". :func:`from_bundle` turns the cloud's proof bundle of a stored
reading (:mod:`tally.verify.bundle`) into evidence; :func:`evidence_for` builds it from a
batch's leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tally import formats as F
from tally.crypto import CryptoError, InvalidSignature, VerifyKey, get_suite, parse_sign1
from tally.device.envelope import Reading, parse_envelope
from tally.edge.formats import decode_batch_header
from tally.ledger.contract import Context, ContractError
from tally.ledger.contracts.keys import batch_key, reg_key
from tally.merkle import SHA256, Hasher, MerkleError, Tree, verify_inclusion
from tally.verify.bundle import Bundle, decode_bundle

WEIGHT_PROFILES = ("load_cell", "weighbridge")
RFID_PROFILES = ("rfid_gate",)
_KEYS = ("reading", "edge", "ctr", "index", "path")


@dataclass(frozen=True)
class ProvenReading(Reading):
    """A reading shown to be device-signed and inside an anchored batch."""

    hash: bytes = b""
    """The suite hash of the reading's COSE bytes (how receipts and stock name it)."""
    edge: str = ""
    batch: int = 0
    """The counter of the anchored batch holding it."""
    site: str = ""
    profile: str = ""
    """The device's registered sensor profile."""
    org: str = ""
    """The organisation that registered the device (the site's operator)."""


def _shape(evidence: Any, what: str) -> tuple[bytes, str, int, int, list[bytes]]:
    if not isinstance(evidence, Mapping) or set(evidence) != set(_KEYS):
        got = sorted(map(str, evidence)) if isinstance(evidence, Mapping) else None
        raise ContractError(
            f"{what}: must be a map of {', '.join(_KEYS)}, got "
            f"{got if got is not None else type(evidence).__name__}"
        )
    reading, edge, ctr = evidence["reading"], evidence["edge"], evidence["ctr"]
    index, path = evidence["index"], evidence["path"]
    if not isinstance(reading, bytes):
        raise ContractError(f"{what}: reading must be bytes, got {type(reading).__name__}")
    if not isinstance(edge, str) or not edge:
        raise ContractError(f"{what}: edge must be non-empty text, got {edge!r}")
    for name, v in (("ctr", ctr), ("index", index)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ContractError(f"{what}: {name} must be an unsigned integer, got {v!r}")
    if not isinstance(path, list | tuple) or not all(isinstance(p, bytes) for p in path):
        raise ContractError(f"{what}: path must be a list of byte strings")
    return reading, edge, ctr, index, list(path)


def _registered(ctx: Context, subject: str, kind: str, site: str, what: str) -> dict[str, Any]:
    reg = ctx.get(reg_key(subject))
    if reg is None:
        raise ContractError(f"{what}: {kind} {subject!r} is not registered")
    if reg["kind"] != kind:
        raise ContractError(f"{what}: {subject!r} is registered as a {reg['kind']}, not a {kind}")
    if reg["site"] != site:
        raise ContractError(
            f"{what}: {kind} {subject!r} is registered at site {reg['site']!r}, not {site!r}"
        )
    return dict(reg)


def _signer_key(
    ctx: Context, dev_reg: Mapping[str, Any], kid: str, r: Reading, site: str, what: str
) -> VerifyKey:
    assurance = dev_reg["assurance"]
    if assurance == "device":
        if kid != r.dev:
            raise ContractError(f"{what}: signed by {kid!r}, the device signs its own readings")
        signer = dev_reg
    elif assurance == "edge":
        signer = _registered(ctx, kid, "edge", site, what)
        revoked = signer["revoked"]
        if revoked is not None and r.t > revoked["t"]:
            raise ContractError(
                f"{what}: taken at t={r.t}, its signer {kid!r} was revoked at "
                f"t={revoked['t']} ({revoked['reason']})"
            )
    else:
        raise ContractError(
            f"{what}: device {r.dev!r} has assurance {assurance!r}: a hand-entered reading "
            "is not IoT evidence"
        )
    try:
        return VerifyKey(get_suite(signer["suite"]), signer["pub"])
    except CryptoError as exc:
        raise ContractError(f"{what}: the registered key of {kid!r}: {exc}") from None


def verify_reading(
    ctx: Context, evidence: Any, site: str | None, what: str = "evidence"
) -> ProvenReading:
    """Check one proven reading (see the module docstring) taken at ``site`` (None: at the
    device's registered site); return it with its hash, batch and device profile."""
    data, edge, ctr, index, path = _shape(evidence, what)
    try:
        msg, r = parse_envelope(data)
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None
    if r.heartbeat:
        raise ContractError(f"{what}: a heartbeat of {r.dev!r} is not a reading")
    what = f"{what} (reading {r.boot}.{r.ctr} of {r.dev!r})"
    dev = ctx.get(reg_key(r.dev))
    if site is None and dev is not None:
        site = dev["site"]
    dev_reg = _registered(ctx, r.dev, "device", site or "", what)
    site = dev_reg["site"]
    revoked = dev_reg["revoked"]
    if revoked is not None and r.t > revoked["t"]:
        raise ContractError(
            f"{what}: taken at t={r.t}, the device was revoked at t={revoked['t']} "
            f"({revoked['reason']})"
        )
    key = _signer_key(ctx, dev_reg, msg.kid, r, site, what)
    if key.suite.alg != msg.alg:
        raise ContractError(
            f"{what}: signed with suite {msg.suite.name}, the key of {msg.kid!r} is "
            f"{key.suite.name}"
        )
    try:
        msg.verify(key)
    except InvalidSignature:
        raise ContractError(
            f"{what}: the signature does not verify with the registered key of {msg.kid!r}"
        ) from None
    except CryptoError as exc:
        raise ContractError(f"{what}: {exc}") from None
    edge_reg = _registered(ctx, edge, "edge", site, what)
    batch = ctx.get(batch_key(edge, ctr))
    if batch is None:
        raise ContractError(f"{what}: batch {ctr} of edge {edge!r} is not anchored")
    hasher = Hasher.for_name(get_suite(edge_reg["suite"]).hash_name)
    try:
        verify_inclusion(hasher, index, batch["n"], hasher.hash_leaf(data), path, batch["root"])
    except MerkleError as exc:
        raise ContractError(
            f"{what}: not proven inside batch {ctr} of edge {edge!r} at index {index}: {exc}"
        ) from None
    return ProvenReading(
        r.dev, r.boot, r.ctr, r.prev, r.t, r.fw, r.m, r.labels, r.heartbeat,
        hash=msg.suite.hash(data), edge=edge, batch=ctr, site=site,
        profile=dev_reg["profile"], org=dev_reg["org"],
    )  # fmt: skip


def from_bundle(bundle: bytes | Bundle) -> dict[str, Any]:
    """The evidence of the reading in a proof bundle (its item, leaf index, inclusion path
    and the edge and counter of its batch header). Raises CryptoError for a bundle or
    header that does not decode; nothing is verified here (the contract does that)."""
    b = decode_bundle(bundle) if isinstance(bundle, bytes) else bundle
    header = decode_batch_header(parse_sign1(b.header, content_type=F.CTY_BATCH).payload)
    return {
        "reading": b.item,
        "edge": header.edge,
        "ctr": header.ctr,
        "index": b.index,
        "path": list(b.path),
    }


def evidence_for(
    reading: bytes, leaves: Sequence[bytes], edge: str, ctr: int, hasher: Hasher = SHA256
) -> dict[str, Any]:
    """The evidence of ``reading`` in the batch ``ctr`` of ``edge`` whose leaves (the
    items' COSE bytes, in order) are ``leaves``; raise ValueError if it is not one of them."""
    index = list(leaves).index(reading)
    tree = Tree(hasher)
    tree.extend(leaves)
    return {
        "reading": reading,
        "edge": edge,
        "ctr": ctr,
        "index": index,
        "path": tree.inclusion_proof(index),
    }


__all__ = [
    "RFID_PROFILES",
    "WEIGHT_PROFILES",
    "ProvenReading",
    "evidence_for",
    "from_bundle",
    "verify_reading",
]

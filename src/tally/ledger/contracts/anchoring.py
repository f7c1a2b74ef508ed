"""The ``anchoring`` system contract: edge batch roots and business records on the chain.

``anchor_batch(header_cose)`` anchors an edge's signed batch header (``docs/formats.md``
§11, :mod:`tally.edge.formats`): the Merkle root over the batch's readings, events, gaps and
summaries. Checked, in order:

1. the header decodes and its ``kid`` is its ``edge``;
2. the edge is registered (``reg/<edge>``, kind ``edge``) at the header's site with the
   header's suite, and not revoked before the batch's end ``t1``;
3. the signature verifies with the registered key;
4. counter continuity: ``ctr`` is the last anchored counter + 1 (0 for the first batch) and
   ``prev`` is the suite hash of the last anchored header's COSE bytes. A missing batch and
   a repeated one are refused, saying which.

``anchor_record(kind, salted_hash)`` anchors a business record (a warehouse receipt, an
invoice, …) as ``H(salt || record bytes)``, 32 bytes; the salt stays off chain with the
record, so the chain reveals nothing of it. A hash anchored before is refused.

State keys::

    anchor/<edge>                      => {"ctr": uint, "hash": bstr}   ; the last anchored batch
    anchor/<edge>/<ctr, 20 digits>     => {"hash": bstr, "root": bstr, "n": uint,
                                           "t0": int, "t1": int}
    record/<hex of salted_hash>        => {"kind": tstr, "by": tstr, "t": int}

``hash`` is the edge suite's hash of the header COSE bytes (what the next header's ``prev``
and the cloud's receipt name); ``by`` is the proposal's creator and ``t`` its time.

Refusals for batch ``C`` of edge ``E`` (the endorsement's ``error``): ``batch header: <decode
error>``, ``batch C of E: signed by 'K'``, ``… an edge id must not contain '/'``, ``… edge
'E' is not registered``, ``… 'E' is registered as a device, not an edge``, ``… the header
names site 'S', the edge is registered at site 'S0'``, ``… uses suite 'X' (signed with 'Y'),
the edge's key is 'Z'``, ``… ends at t1=T1, the edge was revoked at t=T (reason)``, ``… the
signature does not verify with the edge's registered key``, ``batch N of E is missing: last
anchored is L, got batch C`` (``nothing anchored yet`` for a first batch other than 0),
``batch C of E is already anchored``, ``batch C of E does not chain: its prev is not the hash
of anchored batch L``; for records: ``record <hex>… is already anchored (kind 'K')``.
"""

from __future__ import annotations

from typing import Any

from tally import formats as F
from tally.crypto import CryptoError, DecodeError, InvalidSignature, VerifyKey, get_suite
from tally.edge.formats import BatchHeader, decode_batch_header
from tally.ledger.contract import Context, Contract, ContractError, function
from tally.ledger.contracts.keys import anchor_key, batch_key, record_key, reg_key
from tally.ledger.contracts.registry import parse_signed

SALTED_HASH_SIZE = 32
"""The length of an anchored record hash (both suites' hashes are 32 bytes)."""


def _edge_key(ctx: Context, h: BatchHeader, alg_suite: str, what: str) -> VerifyKey:
    reg = ctx.get(reg_key(h.edge))
    if reg is None:
        raise ContractError(f"{what}: edge {h.edge!r} is not registered")
    if reg["kind"] != "edge":
        raise ContractError(f"{what}: {h.edge!r} is registered as a {reg['kind']}, not an edge")
    if reg["site"] != h.site:
        raise ContractError(
            f"{what}: the header names site {h.site!r}, the edge is registered at "
            f"site {reg['site']!r}"
        )
    if h.suite != reg["suite"] or alg_suite != reg["suite"]:
        raise ContractError(
            f"{what}: uses suite {h.suite!r} (signed with {alg_suite!r}), the edge's key is "
            f"{reg['suite']!r}"
        )
    revoked = reg["revoked"]
    if revoked is not None and h.t1 > revoked["t"]:
        raise ContractError(
            f"{what}: ends at t1={h.t1}, the edge was revoked at t={revoked['t']} "
            f"({revoked['reason']})"
        )
    try:
        return VerifyKey(get_suite(reg["suite"]), reg["pub"])
    except CryptoError as exc:  # cannot happen: checked at registration
        raise ContractError(f"{what}: the edge's registered key: {exc}") from None


class Anchoring(Contract):
    """Edge batch headers and business records (see the module docstring)."""

    name = "anchoring"

    @function
    def anchor_batch(self, ctx: Context, header_cose: Any) -> dict[str, Any]:
        msg = parse_signed(header_cose, F.CTY_BATCH, "batch header")
        try:
            h = decode_batch_header(msg.payload)
        except DecodeError as exc:
            raise ContractError(str(exc)) from None
        what = f"batch {h.ctr} of {h.edge}"
        if msg.kid != h.edge:
            raise ContractError(f"{what}: signed by {msg.kid!r}")
        if "/" in h.edge:
            raise ContractError(f"{what}: an edge id must not contain '/'")
        key = _edge_key(ctx, h, msg.suite.name, what)
        try:
            msg.verify(key)
        except InvalidSignature:
            raise ContractError(
                f"{what}: the signature does not verify with the edge's registered key"
            ) from None
        except CryptoError as exc:
            raise ContractError(f"{what}: {exc}") from None
        last = ctx.get(anchor_key(h.edge))
        expected = 0 if last is None else last["ctr"] + 1
        if h.ctr < expected:
            raise ContractError(f"{what} is already anchored")
        if h.ctr > expected:
            before = "nothing anchored yet" if last is None else f"last anchored is {last['ctr']}"
            raise ContractError(
                f"batch {expected} of {h.edge} is missing: {before}, got batch {h.ctr}"
            )
        if last is not None and h.prev != last["hash"]:
            raise ContractError(
                f"{what} does not chain: its prev is not the hash of anchored batch {last['ctr']}"
            )
        digest = get_suite(h.suite).hash(msg.encoded)
        ctx.put(anchor_key(h.edge), {"ctr": h.ctr, "hash": digest})
        ctx.put(
            batch_key(h.edge, h.ctr),
            {"hash": digest, "root": h.root, "n": h.n, "t0": h.t0, "t1": h.t1},
        )
        return {"edge": h.edge, "ctr": h.ctr, "hash": digest}

    @function
    def anchor_record(self, ctx: Context, kind: Any, salted_hash: Any) -> str:
        if not isinstance(kind, str) or not kind:
            raise ContractError(f"anchor_record: kind must be non-empty text, got {kind!r}")
        if not isinstance(salted_hash, bytes) or len(salted_hash) != SALTED_HASH_SIZE:
            got = len(salted_hash) if isinstance(salted_hash, bytes) else type(salted_hash).__name__
            raise ContractError(
                f"anchor_record: the salted hash must be {SALTED_HASH_SIZE} bytes, got {got}"
            )
        key = record_key(salted_hash)
        known = ctx.get(key)
        if known is not None:
            raise ContractError(
                f"record {salted_hash.hex()[:16]}… is already anchored (kind {known['kind']!r})"
            )
        ctx.put(key, {"kind": kind, "by": ctx.creator, "t": ctx.time})
        return key

"""The offline verifier of transaction bundles: one ledger transaction checked with nothing
but the bundle (:mod:`tally.verify.txbundle`) and the consortium genesis.

:func:`verify_tx_bundle` never raises for a bad bundle; it returns a :class:`TxVerdict` whose
steps run in this order and stop at the first failure (``docs/formats.md`` §33 gives
every reason):

1. ``bundle``          decode the bundle (:func:`tally.verify.txbundle.decode_tx_bundle`);
2. ``suite``           the bundle's suite is the genesis's;
3. ``checkpoint``      the checkpoint payload decodes and names the genesis chain;
4. ``quorum``          it is final: at least ``checkpoint_quorum`` distinct genesis members
                       signed exactly its bytes (:func:`tally.ledger.proofs.
                       verify_final_checkpoint`);
5. ``chain inclusion`` RFC 9162 inclusion of the transaction bytes at ``index`` in the
                       checkpoint's transaction log;
6. ``block``           the transaction is in the checkpoint's own block: the final checkpoint
                       of the block before (``prev``, none for block 1) ends the log before
                       ``index``;
7. ``transaction``     the proposal is signed by its creator, a genesis member, for the
                       genesis chain; every endorsement is a genesis member's, for this
                       transaction, one per member, all agreeing, without a contract error;
8. ``policy``          the endorsing members satisfy the genesis policy of the proposal's
                       ``contract.fn`` (:mod:`tally.ledger.policy`);
9. ``time``            (when ``now_ms`` is given) the proposal is not dated more than
                       :data:`~tally.verify.verifier.MAX_CLOCK_SKEW_MS` after it.

What a VALID verdict proves: the transaction was ordered in block N, under the final
checkpoint of block N, and endorsed as the genesis policy of its function requires, with the
result shown. What it does not prove: the peers' validity code. A transaction that lost an
MVCC race (or was a repeat of an earlier one) is ordered and endorsed all the same, but
changed nothing; only the peers' state says which. Membership changes after genesis (rotated
or revoked keys, changed policies) are not followed: the genesis is the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tally.crypto import CryptoError, DecodeError, get_suite, parse_sign1
from tally.ledger.errors import CheckpointInvalid, NotFinal
from tally.ledger.formats import decode_checkpoint, decode_transaction
from tally.ledger.genesis import Genesis
from tally.ledger.policy import describe, satisfied
from tally.ledger.proofs import verify_final_checkpoint
from tally.merkle import MerkleError
from tally.verify.chain import (
    ChainCheckFailed,
    _check_endorsements,
    _check_proposal,
    chain_id,
    check_checkpoint,
    check_quorum,
    check_tx_inclusion,
    short,
)
from tally.verify.txbundle import TxBundle, decode_tx_bundle
from tally.verify.verdict import Step
from tally.verify.verifier import MAX_CLOCK_SKEW_MS

__all__ = ["TxVerdict", "show", "verify_tx_bundle"]

VALIDITY_NOTE = "validity (MVCC) is the peers' verdict, not proven here"
"""What every VALID line says about the transaction's validity code."""


@dataclass
class TxVerdict:
    """What :func:`verify_tx_bundle` concluded about one transaction bundle. ``ok`` and
    ``reason`` are always set; the rest as far as the checks got."""

    ok: bool = False
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    suite: str | None = None
    genesis: bytes | None = None
    """The chain id of the genesis the bundle was checked against."""
    members: int | None = None
    quorum: int | None = None
    checkpoint_height: int | None = None
    """The final checkpoint's height: the block that ordered the transaction."""
    checkpoint_signers: tuple[str, ...] = ()
    tx_index: int | None = None
    """The transaction's position in the transaction log."""
    size: int | None = None
    """The log size at the checkpoint."""
    block_start: int | None = None
    """The log size before the transaction's block."""
    tx_id: bytes | None = None
    contract: str | None = None
    fn: str | None = None
    creator: str | None = None
    t: int | None = None
    """The proposal's time (the creator's clock, ms)."""
    args: tuple[str, ...] = ()
    """Each argument of the call, summarised by :func:`show`."""
    result: str | None = None
    """The endorsed result, summarised by :func:`show`."""
    endorsers: tuple[str, ...] = ()
    policy: str | None = None
    """The genesis policy of ``contract.fn`` in text form."""

    def line(self) -> str:
        """The one-line answer: ``VALID transaction …`` or ``INVALID: <reason>``."""
        if not self.ok:
            return f"INVALID: {self.reason}"
        tx = short(self.tx_id or b"")
        g = (self.genesis or b"").hex()[:16]
        return (
            f"VALID transaction {tx} {self.contract}.{self.fn}({', '.join(self.args)})"
            f" by {self.creator} → {self.result}: ordered and endorsed under final"
            f" checkpoint {self.checkpoint_height} (block {self.checkpoint_height}, log"
            f" position {self.tx_index}; signed by {', '.join(self.checkpoint_signers)},"
            f" quorum {self.quorum} of {self.members}; endorsed by {', '.join(self.endorsers)}"
            f" under {self.policy}); {VALIDITY_NOTE} — genesis {g}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the verdict (bytes as hex)."""
        return {
            "valid": self.ok,
            "kind": "transaction",
            "line": self.line(),
            "reason": self.reason,
            "suite": self.suite,
            "genesis": self.genesis.hex() if self.genesis is not None else None,
            "members": self.members,
            "quorum": self.quorum,
            "checkpoint_height": self.checkpoint_height,
            "checkpoint_signers": list(self.checkpoint_signers),
            "block": self.checkpoint_height,
            "block_start": self.block_start,
            "tx_index": self.tx_index,
            "size": self.size,
            "tx_id": self.tx_id.hex() if self.tx_id is not None else None,
            "contract": self.contract,
            "fn": self.fn,
            "creator": self.creator,
            "t": self.t,
            "args": list(self.args),
            "result": self.result,
            "endorsers": list(self.endorsers),
            "policy": self.policy,
            "validity": "not proven: the peers' verdict (MVCC)",
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }


# -- showing what was called ------------------------------------------------------------------

MAX_SHOWN = 120
"""Characters of one shown value before it is cut with an ellipsis."""


def _show_bytes(v: bytes) -> str:
    with suppress(CryptoError, ValueError):
        msg = parse_sign1(v)
        kind = msg.content_type.removeprefix("application/tally.").removesuffix("+cbor")
        return f"<signed {kind} by {msg.kid}, {len(v)} bytes>"
    return f"h'{v[:4].hex()}{'…' if len(v) > 4 else ''}' ({len(v)} bytes)"


def _show(v: Any, depth: int) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, str):
        return json.dumps(v if len(v) <= 40 else v[:39] + "…", ensure_ascii=False)
    if isinstance(v, bytes):
        return _show_bytes(v)
    if isinstance(v, list | tuple):
        if depth >= 2:
            return f"[{len(v)} item(s)]"
        parts = [_show(x, depth + 1) for x in v[:4]]
        return "[" + ", ".join(parts) + (f", … {len(v) - 4} more" if len(v) > 4 else "") + "]"
    if isinstance(v, dict):
        if depth >= 2:
            return f"{{{len(v)} field(s)}}"
        items = list(v.items())
        parts = [f"{k if isinstance(k, str) else _show(k, 2)}: {_show(x, depth + 1)}"
                 for k, x in items[:6]]  # fmt: skip
        return "{" + ", ".join(parts) + (f", … {len(v) - 6} more" if len(v) > 6 else "") + "}"
    return f"<{type(v).__name__}>"


def show(value: Any) -> str:
    """A short, deterministic rendering of a contract value: decimals exactly, signed objects
    as ``<signed KIND by KID, N bytes>``, other bytes by their first 4 bytes, text quoted,
    nesting below two levels and long values cut."""
    out = _show(value, 0)
    return out if len(out) <= MAX_SHOWN else out[: MAX_SHOWN - 1] + "…"


# -- the checks -------------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class _Stop(Exception):
    """Checking stopped at a failed step (already recorded)."""


@dataclass
class _Detail:
    text: str = ""


def _describe(exc: BaseException, own: tuple[str, ...]) -> str:
    if isinstance(exc, _Fail | ChainCheckFailed):
        return exc.detail
    if isinstance(exc, DecodeError) and exc.where in own:
        return exc.reason
    if isinstance(exc, CryptoError | MerkleError):
        return str(exc)
    return f"malformed data ({type(exc).__name__}: {exc})"


def _final(genesis: Genesis, payload: bytes, sigs: Sequence[bytes]) -> None:
    """Check ``payload`` is a final checkpoint of ``genesis``; _Fail saying why it is not."""
    try:
        verify_final_checkpoint(genesis, payload, sigs)
    except NotFinal as exc:
        who = f" ({', '.join(exc.signers)})" if exc.signers else ""
        raise _Fail(
            f"{len(exc.signers)} distinct members signed, quorum is {exc.quorum}{who}"
        ) from None
    except CheckpointInvalid as exc:
        raise _Fail(exc.reason) from None


class _Run:
    def __init__(self, genesis: Genesis, now_ms: int | None) -> None:
        self.g = genesis
        self.chain_id = chain_id(genesis)
        self.now_ms = now_ms
        self.v = TxVerdict(genesis=self.chain_id, members=len(genesis.members),
                           quorum=genesis.checkpoint_quorum)  # fmt: skip

    @contextmanager
    def step(self, name: str, *own: str) -> Iterator[_Detail]:
        d = _Detail()
        try:
            yield d
        except Exception as exc:  # a bad bundle must never escape as an exception
            self.v.steps.append(Step(name, False, _describe(exc, own)))
            raise _Stop from None
        self.v.steps.append(Step(name, True, d.text))

    def run(self, data: bytes) -> None:
        g, v = self.g, self.v
        with self.step("bundle", "bundle") as d:
            b = decode_tx_bundle(data)
            d.text = f"{len(data)} bytes, transaction of {len(b.chain.tx)} bytes"
        with self.step("suite") as d:
            suite = get_suite(b.suite)
            if suite is not g.suite:
                raise _Fail(f"bundle suite {suite.name!r}, genesis suite {g.suite.name!r}")
            v.suite = suite.name
            d.text = f"{suite.name} (alg {suite.alg}, {suite.hash_name})"
        proof = b.chain
        with self.step("checkpoint", "checkpoint") as d:
            cp = check_checkpoint(g, self.chain_id, proof)
            d.text = f"height {cp.height}, log size {cp.size}, root {short(cp.root)}"
        with self.step("quorum") as d:
            v.checkpoint_signers = check_quorum(g, proof)
            v.checkpoint_height = cp.height
            d.text = (
                f"signed by {', '.join(v.checkpoint_signers)}"
                f" (quorum {g.checkpoint_quorum} of {len(g.members)})"
            )
        with self.step("chain inclusion") as d:
            check_tx_inclusion(g.suite, proof, cp)
            v.tx_index, v.size = proof.index, proof.size
            d.text = f"tx {proof.index} of {proof.size}, {len(proof.path)} path hash(es)"
        with self.step("block") as d:
            v.block_start = self.check_block(b, cp.height)
            d.text = f"block {cp.height} holds log positions {v.block_start}..{cp.size - 1}"
        self.check_transaction(proof.tx)
        if self.now_ms is not None:
            with self.step("time") as d:
                t = v.t or 0
                if t > self.now_ms + MAX_CLOCK_SKEW_MS:
                    raise _Fail(f"proposal t {t} is {t - self.now_ms} ms after now {self.now_ms}")
                d.text = f"nothing dated after {self.now_ms}"

    def check_block(self, b: TxBundle, height: int) -> int:
        """The log size before block ``height``, proven by the previous final checkpoint."""
        index = b.chain.index
        if b.prev is None:
            if height > 1:
                raise _Fail(
                    f"the bundle has no checkpoint of block {height - 1}, needed to place log"
                    f" position {index} in block {height}"
                )
            return 0
        if height <= 1:
            raise _Fail("the bundle carries a previous checkpoint, but block 1 has none before it")
        try:
            before = decode_checkpoint(b.prev.checkpoint)
        except DecodeError as exc:
            raise _Fail(f"previous checkpoint: {exc.reason}") from None
        if before.height != height - 1:
            raise _Fail(f"the previous checkpoint is of block {before.height}, want {height - 1}")
        try:
            _final(self.g, b.prev.checkpoint, b.prev.sigs)
        except _Fail as exc:
            raise _Fail(f"previous checkpoint: {exc.detail}") from None
        if before.size > index:
            raise _Fail(
                f"log position {index} is not in block {height}: block {before.height} ends at"
                f" log size {before.size}"
            )
        return before.size

    def check_transaction(self, tx: bytes) -> None:
        g, v = self.g, self.v
        with self.step("transaction", "transaction") as d:
            t = decode_transaction(tx)
            p = _check_proposal(g, self.chain_id, t.proposal)
            v.contract, v.fn, v.creator, v.t = p.contract, p.fn, p.creator, p.t
            v.args = tuple(show(a) for a in p.args)
            v.tx_id = g.suite.hash(t.proposal)
            ends = _check_endorsements(g, t.endorsements, v.tx_id)
            e = next(iter(ends.values()))
            if e.error:
                raise _Fail(f"the contract refused: {e.error} (the transaction changed nothing)")
            v.result = show(e.result)
            v.endorsers = tuple(sorted(ends))
            d.text = (
                f"tx {short(v.tx_id)}: {p.contract}.{p.fn} by {p.creator!r},"
                f" endorsed by {', '.join(v.endorsers)}"
            )
        with self.step("policy") as d:
            name = f"{p.contract}.{p.fn}"
            policy = g.policy(p.contract, p.fn)
            if policy is None:
                raise _Fail(f"the genesis has no policy for {name}")
            text = describe(policy)
            if not satisfied(policy, set(v.endorsers), g.members):
                raise _Fail(
                    f"endorsements by {', '.join(v.endorsers)} do not satisfy {text},"
                    f" the genesis policy of {name}"
                )
            v.policy = text
            d.text = f"{text} ({name}) satisfied by {', '.join(v.endorsers)}"


def verify_tx_bundle(data: bytes, genesis: Genesis, now_ms: int | None = None) -> TxVerdict:
    """Check the transaction bundle ``data`` against ``genesis`` (already loaded and checked
    with :func:`tally.ledger.genesis.load_genesis`); return a :class:`TxVerdict`, never raise
    for bad input. ``now_ms``, when given, rejects a proposal dated more than
    :data:`~tally.verify.verifier.MAX_CLOCK_SKEW_MS` after it."""
    run = _Run(genesis, now_ms)
    v = run.v
    try:
        run.run(data)
    except _Stop:
        last = v.steps[-1]
        v.ok, v.reason = False, f"{last.name}: {last.detail}"
        return v
    v.ok, v.reason = True, "valid"
    return v

"""``POST /v1/verify``: check a proof bundle or a transaction bundle, step by step.

The body is the bundle (``application/cbor``, at most 4 MiB) exactly as ``GET
/v1/proofs/items/{hash}`` or the demo's ``bundles/`` give it. The answer is what ``tally
verify --json`` prints (:mod:`tally.verify.cli`): ``valid``, the one-line verdict, the first
failed step's ``reason`` and every step run; a bundle that does not verify is a 200 with
``valid: false`` — the verdict is the answer. A proof bundle is checked against the
consortium's genesis when the cloud has one (its members are the trust anchors and the
chain part is checked), else against the cloud's trust anchors; a transaction bundle needs
the genesis. What is not configured answers 503 and says what is missing.

Any caller that may read its own evidence may verify (the policy on ``evidence``); each
verification is recorded in the audit log (``bundle.verify``, with the bundle's SHA-256).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from tally.cloud.api.deps import require
from tally.cloud.api.openapi import problems
from tally.cloud.api.routing import CBOR, CborRoute
from tally.cloud.api.schemas_admin import Verdict
from tally.cloud.api.writes import Done, Write, run
from tally.cloud.authz import ResourceRef
from tally.cloud.errors import CloudError
from tally.device.trust import Trust
from tally.ledger.genesis import Genesis
from tally.verify.chain import trust_disagreement
from tally.verify.txbundle import TX_BUNDLE_KIND, bundle_kind
from tally.verify.txverify import verify_tx_bundle
from tally.verify.verifier import verify_bundle

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

Verifier = Callable[[bytes], dict[str, Any]]
BASE = ("valid", "kind", "line", "reason", "steps")


class VerifyUnavailable(CloudError):
    """Raised when a bundle cannot be checked for want of a genesis or trust anchors."""

    code = "verification_unavailable"
    title = "Verification unavailable"
    status = 503


def verifier(
    genesis: Genesis | None, trust: Trust | None, clock: Callable[[], int]
) -> Verifier | None:
    """What checks bundles with ``genesis`` and ``trust`` (as ``tally verify --genesis
    --trust``); None without either. ValueError when the two disagree."""
    if genesis is None and trust is None:
        return None
    if genesis is not None and trust is not None:
        why = trust_disagreement(trust, genesis)
        if why is not None:
            raise ValueError(f"the trust anchors contradict the genesis: {why}")

    def check(data: bytes) -> dict[str, Any]:
        if bundle_kind(data) == TX_BUNDLE_KIND:
            if genesis is None:
                raise VerifyUnavailable(
                    "a transaction bundle is checked against the consortium's genesis, and "
                    "this cloud was not given one"
                )
            return verify_tx_bundle(data, genesis, now_ms=clock()).to_json()
        return verify_bundle(data, trust, genesis=genesis, now_ms=clock()).to_json()

    return check


def verdict(got: dict[str, Any]) -> Verdict:
    kind: Literal["proof", "transaction"] = (
        "transaction" if got.get("kind") == "transaction" else "proof"
    )
    facts = {k: v for k, v in got.items() if k not in BASE}
    return Verdict(
        valid=bool(got.get("valid")), kind=kind, line=str(got.get("line", "")),
        reason=str(got.get("reason", "")), steps=list(got.get("steps", [])), facts=facts,
    )  # fmt: skip


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=CborRoute, tags=["verify"])
    check = ctx.verify_bundle or verifier(ctx.genesis, ctx.trust, ctx.clock)

    @r.post(
        "/v1/verify", response_model=Verdict,
        responses=problems(400, 401, 403, 409, 413, 415, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {
            CBOR: {"schema": {"type": "string", "format": "binary"}}}}},
    )  # fmt: skip
    async def verify(request: Request, w: Write) -> Response:
        """Verify a proof or transaction bundle; the verdict with every step."""
        data = await request.body()
        digest = hashlib.sha256(data).hexdigest()

        def work() -> Done:
            require(w.caller.principal, "read", ResourceRef("evidence", w.caller.tenant))
            if check is None:
                raise VerifyUnavailable(
                    "this cloud has neither the consortium's genesis nor trust anchors to "
                    "verify against"
                )
            out = verdict(check(data))
            detail = {"valid": out.valid, "kind": out.kind, "bytes": len(data)}
            return Done(out, 200, digest[:32], detail)

        return await run_in_threadpool(run, request, w, "bundle.verify", "bundle", digest[:32],
                                       work)  # fmt: skip

    return r

"""How every write of the API runs: once per idempotency key, and recorded in the audit log.

A write handler declares a :data:`Write` parameter (the caller, with CSRF for sessions, and
the request's ``Idempotency-Key`` and fingerprint) and returns ``writes.run(w, action, kind,
rid, work)``. ``work`` does the change and returns a :class:`Done`; :func:`run` appends the
audit entry (``outcome`` ``ok``, or ``denied``/``failed`` with the problem's code when
``work`` raises), stores the response under the key and answers it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from tally.cloud.api.deps import Caller, context, outcome_of, record, write_caller
from tally.cloud.api.idempotency import (
    KEY_HEADER,
    KEY_PATTERN,
    REPLAYED_HEADER,
    Idempotency,
    fingerprint,
)
from tally.cloud.errors import CloudError
from tally.cloud.problems import PROBLEM_JSON, problem_body

JSON = "application/json"


@dataclass(frozen=True)
class WriteRequest:
    """A write's caller, its idempotency key (or None) and its request fingerprint."""

    caller: Caller
    key: str | None
    fingerprint: str


async def write_request(
    request: Request,
    caller: Annotated[Caller, Depends(write_caller)],
    idempotency_key: Annotated[
        str | None,
        Header(alias=KEY_HEADER, pattern=KEY_PATTERN,
               description="makes the write safe to retry: 1-64 of A-Z a-z 0-9 _ -"),
    ] = None,
) -> WriteRequest:  # fmt: skip
    body = await request.body()
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return WriteRequest(caller, idempotency_key, fingerprint(request.method, target, body))


Write = Annotated[WriteRequest, Depends(write_request)]


@dataclass(frozen=True)
class Done:
    """A write's result: the response ``body`` with ``status``, the id of the resource it
    changed, the audit ``detail``, and what to store for a replay if not ``body`` itself
    (a new API token's secret is never stored)."""

    body: BaseModel
    status: int = 200
    rid: str | None = None
    detail: dict[str, Any] | None = None
    replay: BaseModel | None = None


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def run(
    request: Request, w: WriteRequest, action: str, kind: str, rid: str,
    work: Callable[[], Done],
) -> Response:  # fmt: skip
    """Do ``work`` once for ``w``'s key, recorded as ``action`` on the ``kind`` ``rid``."""
    ctx = context(request)
    idem: Idempotency = request.app.state.api_idempotency
    scope, key = w.caller.key_scope, w.key
    if key is not None:
        stored = idem.begin(scope, key, w.fingerprint)
        if stored is not None:
            media = PROBLEM_JSON if stored.status >= 400 else JSON
            headers = {REPLAYED_HEADER: "true"}
            return Response(stored.body, stored.status, headers=headers, media_type=media)
    try:
        done = work()
    except CloudError as exc:
        if exc.status >= 500:
            if key is not None:
                idem.abandon(scope, key)
            record(ctx, w.caller, action, kind, rid, "failed", status=exc.status, code=exc.code)
            raise
        record(ctx, w.caller, action, kind, rid, outcome_of(exc.status), status=exc.status,
               code=exc.code, reason=exc.detail)  # fmt: skip
        if key is not None:
            body = json.dumps(problem_body(exc), ensure_ascii=False, separators=(",", ":")).encode()
            idem.finish(scope, key, exc.status, body)
        raise
    except Exception as exc:
        if key is not None:
            idem.abandon(scope, key)
        with contextlib.suppress(Exception):
            record(ctx, w.caller, action, kind, rid, "failed", status=500,
                   error=type(exc).__name__)  # fmt: skip
        raise
    except BaseException:
        if key is not None:
            idem.abandon(scope, key)
        raise
    try:
        record(ctx, w.caller, action, kind, done.rid or rid, "ok", **(done.detail or {}))
    except BaseException:
        if key is not None:
            idem.abandon(scope, key)
        raise
    body = _json(done.body)
    if key is not None:
        idem.finish(scope, key, done.status, body if done.replay is None else _json(done.replay))
    return Response(body, done.status, media_type=JSON)

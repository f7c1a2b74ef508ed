"""One mapping from exceptions to RFC 9457 problem details (``application/problem+json``).

A problem body is ``{"type": "urn:tally:problem:<code>", "title": …, "status": …,
"detail": …}``; a rejected batch adds ``"reason"`` (its code) and, when one item is at fault,
``"index"``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from tally.cloud.errors import CloudError, IngestRejected, Unauthorized

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:tally:problem:"


def problem_body(exc: Exception) -> dict[str, Any]:
    """The problem object for ``exc`` (any unknown exception is a 500 that says nothing)."""
    if isinstance(exc, CloudError):
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + exc.code,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
        }
        if isinstance(exc, IngestRejected):
            body["reason"] = exc.reason
            if exc.index is not None:
                body["index"] = exc.index
        return body
    if isinstance(exc, RequestValidationError):
        errs = "; ".join(
            ".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", ""))
            for e in exc.errors()
        )
        return {
            "type": TYPE_PREFIX + "bad_request",
            "title": "Bad request",
            "status": 400,
            "detail": errs,
        }
    if isinstance(exc, StarletteHTTPException):
        return {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
        }
    return {
        "type": TYPE_PREFIX + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": "the server could not complete the request",
    }


def problem_response(exc: Exception) -> JSONResponse:
    body = problem_body(exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    if isinstance(exc, StarletteHTTPException) and exc.headers:
        headers = dict(exc.headers)  # a 405 keeps its Allow header
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Route every error of ``app`` through :func:`problem_response`."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return problem_response(exc)

    app.add_exception_handler(CloudError, handler)
    app.add_exception_handler(RequestValidationError, handler)
    app.add_exception_handler(StarletteHTTPException, handler)
    app.add_exception_handler(Exception, handler)

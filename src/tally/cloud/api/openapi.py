"""The API's OpenAPI document, served at ``GET /v1/openapi.json``.

FastAPI's document of the API's routes (and of the login routes of
:mod:`tally.cloud.session_api`, described here by hand), made to say what the server really
answers: every error is an RFC 9457 problem (``application/problem+json``, schema
``Problem``) with the statuses each route declares; FastAPI's default 422 validation answer
is removed, since a malformed parameter or body is a 400 problem here; the two ways to
authenticate are security schemes (``apiToken``: ``Bearer tly_…``; ``session``: the
cookie, with ``X-CSRF-Token`` on writes).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from tally.cloud.api.schemas import Problem
from tally.cloud.api.schemas_admin import LoginIn, LoginOut, Me
from tally.cloud.problems import PROBLEM_JSON
from tally.cloud.session_api import COOKIE

PATH = "/v1/openapi.json"
REF = "#/components/schemas/{model}"
DESCRIPTIONS = {
    400: "malformed parameter, header, body or cursor",
    401: "no valid session or API token",
    403: "refused: the policy's reason, a token's missing scope, or a missing CSRF token",
    404: "no such resource, or one the caller may not know of",
    409: "conflicts with the resource's state, or the idempotent request is still running",
    413: "the body is too large",
    415: "the body is not of the media type the route takes",
    422: "the request is understood but cannot be done (the reason in detail), or the "
    "idempotency key was used for another request",
    423: "the account is locked",
    503: "this cloud is not configured for it",
}
PUBLIC = frozenset({("/v1/ping", "get"), ("/v1/session", "post")})
SESSION_PATHS = ("/v1/session", "/v1/me")
AUTH: list[dict[str, list[str]]] = [{"apiToken": []}, {"session": []}]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses."""
    schema = {"$ref": REF.format(model="Problem")}
    return {
        s: {"description": DESCRIPTIONS[s], "content": {PROBLEM_JSON: {"schema": schema}}}
        for s in statuses
    }


def _json(model: type[Any]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _session_paths() -> dict[str, Any]:
    p = problems
    return {
        "/v1/session": {
            "post": {
                "tags": ["session"], "summary": "Log in", "operationId": "login",
                "requestBody": {"required": True, "content": _json(LoginIn)},
                "responses": {
                    "200": {"description": "a session: its cookie is set",
                            "content": _json(LoginOut)},
                    **p(400, 401, 415, 423),
                },
            },
            "delete": {
                "tags": ["session"], "summary": "Log out", "operationId": "logout",
                "security": [{"session": []}],
                "parameters": [{"name": "X-CSRF-Token", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {"204": {"description": "logged out"}, **p(401, 403)},
            },
        },
        "/v1/me": {
            "get": {
                "tags": ["session"], "summary": "Who the caller is", "operationId": "me",
                "security": [*AUTH, {"bearerToken": []}],
                "responses": {"200": {"description": "the caller", "content": _json(Me)},
                              **p(401)},
            }
        },
    }  # fmt: skip


def _clean(spec: dict[str, Any]) -> None:
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.get("responses", {})
            default = responses.get("422", {})
            if "HTTPValidationError" in str(default):
                del responses["422"]
            if (path, method) not in PUBLIC:
                op.setdefault("security", AUTH)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def build(app: FastAPI, routes: list[BaseRoute]) -> dict[str, Any]:
    """The document of ``routes`` (the API's) and the session routes of ``app``."""
    session = [r for r in app.routes if isinstance(r, APIRoute) and r.path in SESSION_PATHS]
    spec = get_openapi(
        title="tally platform API",
        version="1",
        description=(
            "The platform API of the tally cloud: receipts, loans, notes, trades, documents, "
            "alerts, financing applications, organisations, the chain, dashboards, live "
            "events, verification, the audit log and administration. Money in integer fen, "
            "times in ms since the Unix epoch. Errors are RFC 9457 problems."
        ),
        routes=[*routes, *session],
    )
    spec["paths"].update(_session_paths())
    _clean(spec)
    components = spec["components"]
    schemas = components["schemas"]
    for model in (Problem, LoginIn, LoginOut, Me):
        got = model.model_json_schema(ref_template=REF)
        schemas.update(got.pop("$defs", {}))
        schemas[model.__name__] = got
    components["securitySchemes"] = {
        "apiToken": {"type": "http", "scheme": "bearer", "bearerFormat": "tly_…",
                     "description": "an identity API token; its scopes apply"},
        "session": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                    "description": "a console session (POST /v1/session); writes also "
                    "need its CSRF token in X-CSRF-Token"},
        "bearerToken": {"type": "http", "scheme": "bearer",
                        "description": "a configured read token (GET /v1/me only)"},
    }  # fmt: skip
    return spec

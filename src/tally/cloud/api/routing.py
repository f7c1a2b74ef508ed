"""The API's routes check a request body before anything else reads it.

:class:`JsonRoute` (every route of the API): a route that takes a JSON body refuses another
media type (415, ``unsupported_media_type``) and a body over :data:`JSON_MAX` bytes (413,
``payload_too_large``); a route without a body refuses any body over that size. :class:`CborRoute`
(``POST /v1/verify``) takes ``application/cbor`` up to :data:`CBOR_MAX` bytes. The size is
checked against ``Content-Length`` first and then while the body is read, so a large body is
never held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tally.cloud.app import PayloadTooLarge, UnsupportedMediaType
from tally.cloud.errors import BadRequest

JSON = "application/json"
CBOR = "application/cbor"
JSON_MAX = 64 * 1024
CBOR_MAX = 4 << 20
"""A bundle's largest size (:data:`tally.verify.txbundle.MAX_BUNDLE_SIZE`)."""


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited(request: Request, media: str | None, most: int) -> None:
    """Check the body's media type (when ``media``) and size, and keep it for the handler."""
    if media is not None:
        got = media_type(request)
        if got != media:
            raise UnsupportedMediaType(f"send {media}, not {got or 'no content type'}")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > most:
            raise PayloadTooLarge(f"{declared} bytes, at most {most}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > most:
            raise PayloadTooLarge(f"more than {most} bytes, at most {most}")
        chunks.append(chunk)
    request._body = b"".join(chunks)


class JsonRoute(APIRoute):
    """A route whose body, if it takes one, is JSON of at most :data:`JSON_MAX` bytes."""

    def body_media(self) -> str | None:
        return JSON if self.body_field is not None else None

    body_max = JSON_MAX

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        media, most = self.body_media(), self.body_max

        async def handler(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                await read_limited(request, media, most)
            return await original(request)

        return handler


class CborRoute(JsonRoute):
    """A route that takes ``application/cbor`` of at most :data:`CBOR_MAX` bytes."""

    body_max = CBOR_MAX

    def body_media(self) -> str | None:
        return CBOR

"""Helpers of the in-process console tests: the CSRF token a page's forms carry, and the
type of the ``login`` fixture."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')

Login = Callable[..., Awaitable[httpx.Response]]
"""``await login(username, password=PW, tenant="")``: the console login form's POST."""


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    m = _CSRF_FIELD.search(html)
    assert m is not None, "no CSRF field in the page"
    return m.group(1)

"""The console's static files: the vendored scripts are exactly the ones SHA256SUMS names,
and they are served with the console's own script and stylesheet."""

from __future__ import annotations

import hashlib

import httpx

from tally.cloud.console import STATIC

VENDOR = STATIC / "vendor"


def test_vendored_files_match_sha256sums() -> None:
    lines = (VENDOR / "SHA256SUMS").read_text().splitlines()
    sums = dict(reversed(line.split(maxsplit=1)) for line in lines if line.strip())
    assert set(sums) == {"echarts-5.6.0.min.js", "htmx-2.0.11.min.js"}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    scripts = {p.name for p in VENDOR.glob("*.js")}
    assert scripts == set(sums), "every vendored script is listed in SHA256SUMS"


async def test_static_files_are_served(client: httpx.AsyncClient) -> None:
    for path, kind in (("/static/console.css", "text/css"),
                       ("/static/console.js", "javascript"),
                       ("/static/vendor/htmx-2.0.11.min.js", "javascript"),
                       ("/static/vendor/echarts-5.6.0.min.js", "javascript")):  # fmt: skip
        r = await client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    page = await client.get("/console/login")
    for path in ("/static/console.css", "/static/console.js", "/static/vendor/htmx-2.0.11.min.js",
                 "/static/vendor/echarts-5.6.0.min.js"):  # fmt: skip
        assert path in page.text
    assert (await client.get("/static/nope.js")).status_code == 404

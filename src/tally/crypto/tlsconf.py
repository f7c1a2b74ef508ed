"""TLS settings shared by tally's listeners and clients: SSL contexts from configured files,
the node certificates of servers that are also clients, and a CA made for one local run.

Every context comes from :mod:`tally.crypto.x509ca` (TLS 1.2 or later; a certificate is checked
for its key, its validity and its use before it is loaded)::

    server_tls(cert_file, key_file, client_ca_file)   None when neither file is configured; with
                                                      client_ca_file: mutual TLS
    client_tls(ca_file, cert_file, key_file)          None when nothing is configured
    uvicorn_ssl(ctx)                                  hands a context to uvicorn.Config

A **node** certificate carries both ExtendedKeyUsage serverAuth and clientAuth: a NATS server
presents one certificate on its cluster routes, both when it accepts a route and when it dials
one, and checks the other end's as a client's. ``x509ca`` issues one use per certificate
(``tally certs issue --kind server|client``), so :func:`issue_node` issues these, with the same
profile otherwise.

:func:`make_local_pki` makes, for a consortium run on one machine, a CA and the certificates
its servers and clients need, all for the loopback names ``127.0.0.1`` and ``localhost``.
Every refusal is an :class:`~tally.crypto.x509ca.X509Error` naming the setting and the rule.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tally.crypto import x509ca
from tally.crypto.x509ca import CA, LEAF_DAYS, Issued, X509Error

__all__ = [
    "LOOPBACK",
    "LocalPki",
    "X509Error",
    "client_tls",
    "issue_node",
    "make_local_pki",
    "server_tls",
    "uvicorn_ssl",
]

LOOPBACK = ("127.0.0.1", "localhost")
"""The names every certificate of a local run is issued for."""


def server_tls(
    cert_file: Path | None,
    key_file: Path | None,
    client_ca_file: Path | None = None,
    *,
    setting: str = "tls",
) -> ssl.SSLContext | None:
    """The context of a TLS listener, or None when neither ``cert_file`` nor ``key_file`` is
    given (plain TCP). With ``client_ca_file`` every client must present a certificate that
    chains to it (mutual TLS). ``setting`` prefixes the names in refusals
    (``tls_cert_file``…)."""
    if cert_file is None and key_file is None:
        if client_ca_file is not None:
            raise X509Error(f"{setting}_client_ca_file needs {setting}_cert_file and "
                            f"{setting}_key_file")  # fmt: skip
        return None
    if cert_file is None or key_file is None:
        raise X509Error(f"{setting}_cert_file and {setting}_key_file must be given together")
    return x509ca.server_context(Path(cert_file), Path(key_file), _opt(client_ca_file))


def client_tls(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext | None:
    """The context of a TLS client that checks the server against ``ca_file`` (else the
    system's CAs) and presents ``cert_file``/``key_file`` when given; None when none of the
    three is given (the caller's default applies)."""
    if ca_file is None and cert_file is None and key_file is None:
        return None
    return x509ca.client_context(_opt(ca_file), _opt(cert_file), _opt(key_file))


def uvicorn_ssl(ctx: ssl.SSLContext) -> Callable[[Any, Any], ssl.SSLContext]:
    """An ``ssl_context_factory`` for ``uvicorn.Config`` that serves with ``ctx``."""

    def factory(_config: Any, _default: Any) -> ssl.SSLContext:
        return ctx

    return factory


def issue_node(
    ca: CA,
    common_name: str,
    sans: Iterable[str],
    directory: Path,
    valid_days: int = LEAF_DAYS,
    *,
    now: dt.datetime | None = None,
) -> Issued:
    """Issue a certificate fit for a TLS server and a TLS client (a NATS server's routes),
    as ``<cn>.pem`` and ``<cn>-key.pem`` in ``directory``; otherwise as
    :func:`tally.crypto.x509ca.issue` (which checks the name, the names and the lifetime
    and refuses to overwrite a file). Its ``kind`` is ``"node"``."""
    names = list(sans)
    if not names:
        raise X509Error("a node certificate needs its subject alternative names")
    # x509ca.issue checks every argument and writes a client certificate; the node
    # certificate is then made from the same key and checks, with both uses
    probe = x509ca.issue(ca, "client", common_name, names, directory, valid_days, now=now)
    cert = _both_uses(ca, probe.cert, probe.key)
    probe.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued("node", cert, probe.key, probe.cert_file, probe.key_file)


def _both_uses(ca: CA, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, x509ca.cn_of(cert))]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        value = eku if isinstance(ext.value, x509.ExtendedKeyUsage) else ext.value
        builder = builder.add_extension(value, critical=ext.critical)
    return builder.sign(ca.key, hashes.SHA256())


@dataclass(frozen=True)
class LocalPki:
    """The certificates of one local run, in ``directory``: ``ca.pem`` (and its key), and a
    certificate with its key per name asked for (:attr:`servers`, :attr:`clients`,
    :attr:`nodes`: common name -> certificate file; the key is ``<cn>-key.pem``)."""

    directory: Path
    name: str
    servers: dict[str, Path]
    clients: dict[str, Path]
    nodes: dict[str, Path]

    @property
    def ca_file(self) -> Path:
        return self.directory / x509ca.CA_CERT

    @staticmethod
    def key_of(cert_file: Path) -> Path:
        """The key file beside ``cert_file`` (``<cn>.pem`` -> ``<cn>-key.pem``)."""
        return cert_file.with_name(cert_file.stem + "-key.pem")

    def pair(self, cert_file: Path) -> tuple[Path, Path]:
        """``cert_file`` and its key file."""
        return cert_file, self.key_of(cert_file)

    def server_context(self, cn: str, *, mutual: bool = True) -> ssl.SSLContext:
        """The listener context of server ``cn`` (mutual TLS with this CA unless told)."""
        cert = self.servers[cn]
        ctx = server_tls(cert, self.key_of(cert), self.ca_file if mutual else None)
        assert ctx is not None
        return ctx

    def client_context(self, cn: str | None = None) -> ssl.SSLContext:
        """A client context trusting this CA alone, presenting client ``cn`` when given."""
        cert = None if cn is None else self.clients[cn]
        ctx = client_tls(self.ca_file, cert, None if cert is None else self.key_of(cert))
        assert ctx is not None
        return ctx


def make_local_pki(
    directory: Path,
    name: str,
    *,
    servers: Sequence[str] = (),
    clients: Sequence[str] = (),
    nodes: Sequence[str] = (),
    valid_days: int = 30,
) -> LocalPki:
    """A CA named ``name`` in ``directory`` (which must not hold one yet) and, issued from
    it for :data:`LOOPBACK`, a server certificate per name in ``servers``, a client
    certificate per name in ``clients`` and a node certificate per name in ``nodes``, each
    valid for ``valid_days`` (the CA a day longer)."""
    ca = x509ca.make_ca(name, directory, valid_days + 1)
    made: dict[str, dict[str, Path]] = {"server": {}, "client": {}, "node": {}}
    for kind, cns in (("server", servers), ("client", clients), ("node", nodes)):
        for cn in cns:
            if kind == "node":
                issued = issue_node(ca, cn, LOOPBACK, directory, valid_days)
            else:
                issued = x509ca.issue(ca, kind, cn, LOOPBACK, directory, valid_days)
            made[kind][cn] = issued.cert_file
    return LocalPki(directory, name, made["server"], made["client"], made["node"])


def _opt(path: Path | str | None) -> Path | None:
    return None if path is None else Path(path)

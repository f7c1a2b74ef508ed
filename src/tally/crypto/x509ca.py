"""A local X.509 certificate authority for tally's TLS listeners and their clients.

Transport security is separate from tally's signed evidence: the keys here only protect
connections (who may connect to a listener, and that a client talks to the right server).
They are ECDSA P-256 keys with SHA-256 signatures, in PEM.

Files a CA directory holds (made by :func:`make_ca`, ``tally certs ca DIR``)::

    ca.pem          the CA's self-signed certificate: give it to every party that checks
    ca-key.pem      its private key (PKCS#8, unencrypted, mode 0600): keep it off servers

and each issued certificate (:func:`issue`, ``tally certs issue``) is ``<common name>.pem``
with its key ``<common name>-key.pem`` (mode 0600) in the directory asked for.

Profile. CA: BasicConstraints CA:true, pathlen 0 (critical); KeyUsage keyCertSign, cRLSign,
digitalSignature (critical); SubjectKeyIdentifier. Issued: BasicConstraints CA:false
(critical); KeyUsage digitalSignature (critical); ExtendedKeyUsage serverAuth (kind
``server``) or clientAuth (kind ``client``); SubjectAlternativeName with the DNS names and IP
addresses given (without any: the common name, which must then be one); Subject and
Authority key identifiers. Validity starts five minutes in the past, to allow for clock skew,
and an issued certificate may not outlast its CA.

:func:`server_context` and :func:`client_context` build the ``ssl.SSLContext`` of an HTTPS
listener (with ``client_ca_file``: mutual TLS, a client certificate signed by that CA is
required) and of a client (presenting its certificate when given one). Every refusal is an
:class:`X509Error` naming the value and the rule; a refused call writes nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tally.crypto.errors import CryptoError

KINDS = ("server", "client")
"""What an issued certificate is for: a TLS server or a TLS client."""

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
CA_DAYS = 3650
LEAF_DAYS = 365
MAX_DAYS = 36500
SKEW = dt.timedelta(minutes=5)

_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NUMERIC = re.compile(r"^[0-9.]+$")

SanName = x509.DNSName | x509.IPAddress


class X509Error(CryptoError):
    """Raised for a bad name, kind, lifetime or address, an unreadable or unfit certificate
    or key file, a certificate outside its validity, or a file that would be overwritten."""


@dataclass(frozen=True)
class CA:
    """A certificate authority: its certificate and key, and the files they are in."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def name(self) -> str:
        return cn_of(self.cert)


@dataclass(frozen=True)
class Issued:
    """An issued certificate and its key, and the files they were written to."""

    kind: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path


def cn_of(cert: x509.Certificate) -> str:
    """The certificate subject's common name ('' when it has none)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode()


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint, as lower-case hex pairs joined by ':'."""
    return cert.fingerprint(hashes.SHA256()).hex(":")


def parse_san(text: str) -> SanName:
    """A subject alternative name from text: an IPv4/IPv6 address, else a DNS name."""
    if not text:
        raise X509Error("a subject alternative name is empty")
    if ":" in text or _NUMERIC.match(text):
        family = "IPv6" if ":" in text else "IPv4"
        try:
            return x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            msg = f"subject alternative name {text!r} is not a valid {family} address"
            raise X509Error(msg) from None
    labels = text.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise X509Error(
            f"subject alternative name {text!r} is neither an IP address nor a DNS name "
            "(labels of letters, digits and '-', 1 to 63 characters, at most 253 in all)"
        )
    return x509.DNSName(text)


def make_ca(
    name: str,
    directory: Path,
    valid_days: int = CA_DAYS,
    *,
    now: dt.datetime | None = None,
) -> CA:
    """Create a CA in ``directory`` (made if missing): ``ca.pem`` and ``ca-key.pem``."""
    if not name.strip():
        raise X509Error("the CA name is empty")
    if len(name) > 64 or not name.isprintable():
        raise X509Error(f"the CA name {name!r} must be 1 to 64 printable characters")
    days = _days(valid_days)
    cert_file, key_file = Path(directory) / CA_CERT, Path(directory) / CA_KEY
    _refuse_existing(cert_file, key_file)
    start = _now(now) - SKEW
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usage = _key_usage(cert_sign=True)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + SKEW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(cert_file, key_file, cert, key)
    return CA(cert, key, cert_file, key_file)


def load_ca(directory: Path, *, now: dt.datetime | None = None) -> CA:
    """Read the CA in ``directory``; its key must match, and it must be a valid CA now."""
    cert_file, key_file = Path(directory) / CA_CERT, Path(directory) / CA_KEY
    cert = load_certificate(cert_file)
    key = load_private_key(key_file)
    _same_key(cert, cert_file, key, key_file)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise X509Error(f"{cert_file} is not a CA certificate (BasicConstraints CA:true)")
    check_validity(cert, now=now, where=str(cert_file))
    return CA(cert, key, cert_file, key_file)


def issue(
    ca: CA,
    kind: str,
    common_name: str,
    sans: Iterable[str],
    directory: Path,
    valid_days: int = LEAF_DAYS,
    *,
    now: dt.datetime | None = None,
) -> Issued:
    """Issue a ``kind`` ("server" or "client") certificate for ``common_name`` with ``sans``
    (DNS names and IP addresses) into ``directory``: ``<cn>.pem`` and ``<cn>-key.pem``."""
    if kind not in KINDS:
        raise X509Error(f"certificate kind {kind!r} is not one of {', '.join(KINDS)}")
    if not common_name:
        raise X509Error("the common name is empty")
    if not _CN.match(common_name):
        raise X509Error(
            f"common name {common_name!r} must be 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it names the files)"
        )
    names = list(dict.fromkeys(parse_san(s) for s in sans))
    if not names:
        try:
            names = [parse_san(common_name)]
        except X509Error:
            raise X509Error(
                f"no subject alternative names given, and the common name {common_name!r} "
                "cannot stand for one: it is neither an IP address nor a DNS name"
            ) from None
    days = _days(valid_days)
    start = _now(now) - SKEW
    end = start + SKEW + dt.timedelta(days=days)
    if end > ca.cert.not_valid_after_utc:
        raise X509Error(
            f"valid_days {days} would outlast the CA {ca.name!r}, valid until "
            f"{ca.cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    cert_file = Path(directory) / f"{common_name}.pem"
    key_file = Path(directory) / f"{common_name}-key.pem"
    _refuse_existing(cert_file, key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_EKU[kind]]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    _write(cert_file, key_file, cert, key)
    return Issued(kind, cert, key, cert_file, key_file)


def load_certificate(path: Path) -> x509.Certificate:
    """The first PEM certificate in ``path``."""
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise X509Error(f"{path} is not a PEM certificate: {exc}") from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM ECDSA private key from ``path``."""
    data = _read(path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise X509Error(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise X509Error(f"{path} holds a {type(key).__name__}, not an ECDSA key")
    return key


def load_issued(
    cert_file: Path,
    key_file: Path,
    kind: str | None = None,
    ca: x509.Certificate | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate and its key, checked: the key matches, the certificate is valid ``now``,
    fit for ``kind`` (when given) and signed by ``ca`` (when given)."""
    cert = load_certificate(cert_file)
    key = load_private_key(key_file)
    _same_key(cert, cert_file, key, key_file)
    check_validity(cert, now=now, where=str(cert_file))
    if kind is not None:
        check_usage(cert, kind, where=str(cert_file))
    if ca is not None:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise X509Error(f"{cert_file} is not issued by CA {cn_of(ca)!r}") from None
    return cert, key


def check_validity(
    cert: x509.Certificate, *, now: dt.datetime | None = None, where: str = "certificate"
) -> None:
    """Raise X509Error when ``cert`` is expired or not yet valid at ``now``."""
    t = _now(now)
    if t < cert.not_valid_before_utc:
        raise X509Error(
            f"{where} ({cn_of(cert)!r}) is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    if t > cert.not_valid_after_utc:
        raise X509Error(
            f"{where} ({cn_of(cert)!r}) expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
        )


def check_usage(cert: x509.Certificate, kind: str, *, where: str = "certificate") -> None:
    """Raise X509Error when ``cert`` may not be used as a TLS ``kind``. A certificate
    without an ExtendedKeyUsage extension may be used for either."""
    if kind not in KINDS:
        raise X509Error(f"certificate kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if _EKU[kind] not in usages and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        other = [k for k in KINDS if _EKU[k] in usages]
        what = f"a {other[0]} certificate" if other else "not a TLS certificate"
        raise X509Error(f"{where} ({cn_of(cert)!r}) is {what}, not for a TLS {kind}")


def server_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca_file`` clients must present a
    certificate that chains to it (mutual TLS)."""
    load_issued(cert_file, key_file, "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if client_ca_file is not None:
        load_certificate(client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca_file))
    return ctx


def client_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that checks the server against ``ca_file`` (else the
    system's CAs) and its host name, presenting ``cert_file``/``key_file`` when given."""
    if (cert_file is None) != (key_file is None):
        raise X509Error("a client certificate needs both its certificate file and its key file")
    if ca_file is not None:
        load_certificate(ca_file)
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        load_issued(cert_file, key_file, "client")
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def _days(valid_days: int) -> int:
    if isinstance(valid_days, bool) or not isinstance(valid_days, int):
        raise X509Error(f"valid_days must be a whole number of days, got {valid_days!r}")
    if not 1 <= valid_days <= MAX_DAYS:
        raise X509Error(f"valid_days must be from 1 to {MAX_DAYS}, got {valid_days}")
    return valid_days


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise X509Error(f"the time {now.isoformat()} has no time zone")
    return now.astimezone(dt.UTC)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _same_key(
    cert: x509.Certificate, cert_file: Path, key: ec.EllipticCurvePrivateKey, key_file: Path
) -> None:
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise X509Error(f"the key in {key_file} does not belong to the certificate {cert_file}")


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise X509Error(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise X509Error(f"cannot read {what} file {path}: {exc.strerror}") from None


def _refuse_existing(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            raise X509Error(f"{p} already exists; refusing to overwrite it")


def _write(
    cert_file: Path, key_file: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    """Write the key (created 0600, never over an existing file), then the certificate."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    for path, data, mode in ((key_file, key_pem, 0o600), (cert_file, _pem(cert), 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)  # whatever the umask


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)

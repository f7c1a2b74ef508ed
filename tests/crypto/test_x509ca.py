"""The local CA: certificates that parse, chain to the CA and carry the right extensions; TLS
handshakes (in memory) that admit the right certificates and refuse the others; expiry; precise
refusals that write nothing; and the ``tally certs`` commands."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from typer.testing import CliRunner

from tally.cli import app
from tally.crypto import CryptoError
from tally.crypto import x509ca as X

E = TypeVar("E", bound=x509.ExtensionType)


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def ca(tmp_path: Path) -> X.CA:
    return X.make_ca("test CA", tmp_path / "ca")


@pytest.fixture
def other_ca(tmp_path: Path) -> X.CA:
    return X.make_ca("other CA", tmp_path / "other")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _ext(cert: x509.Certificate, cls: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(cls)


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str = "127.0.0.1"
) -> ssl.SSLObject:
    """A TLS handshake through memory buffers; returns the server's end. Raises the
    ssl.SSLError of whichever end refused."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, end, out, peer in (
            ("client", client, c_out, s_in),
            ("server", server, s_out, c_in),
        ):
            if not done[side]:
                try:
                    end.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            if data := out.read():
                peer.write(data)
        if all(done.values()):
            client.write(b"ping")  # a TLS 1.3 client learns of a refusal only on its next read
            s_in.write(c_out.read())
            assert server.read(4) == b"ping"
            return server
    raise AssertionError("the handshake did not finish")


def test_the_ca_is_a_self_signed_p256_ca_with_a_private_key_file(ca: X.CA) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    assert cert == ca.cert and ca.name == "test CA"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert (ca.cert_file.name, ca.key_file.name) == ("ca.pem", "ca-key.pem")
    assert _mode(ca.key_file) == 0o600
    assert b"PRIVATE KEY" in ca.key_file.read_bytes()
    loaded = X.load_ca(ca.cert_file.parent)
    assert loaded.cert == ca.cert
    assert loaded.key.private_numbers() == ca.key.private_numbers()


def test_a_server_certificate_has_the_server_profile_and_chains(ca: X.CA, tmp_path: Path) -> None:
    sans = ["cloud.example", "127.0.0.1", "::1", "cloud.example"]
    s = X.issue(ca, "server", "cloud", sans, tmp_path / "tls")
    assert (s.cert_file.name, s.key_file.name) == ("cloud.pem", "cloud-key.pem")
    assert _mode(s.key_file) == 0o600
    cert = x509.load_pem_x509_certificate(s.cert_file.read_bytes())
    assert X.cn_of(cert) == "cloud" and cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["cloud.example"]  # duplicates dropped
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    # an independent RFC 5280 path validation, by host name and by address
    builder = PolicyBuilder().store(Store([ca.cert]))
    for name in (x509.DNSName("cloud.example"), x509.IPAddress(ipaddress.ip_address("::1"))):
        assert builder.build_server_verifier(name).verify(cert, [])[-1] == ca.cert
    with pytest.raises(VerificationError):
        builder.build_server_verifier(x509.DNSName("other.example")).verify(cert, [])
    got, key = X.load_issued(s.cert_file, s.key_file, "server", ca.cert)
    assert got == cert and key.public_key() == s.key.public_key()


def test_client_and_server_certificates_are_not_interchangeable(ca: X.CA, tmp_path: Path) -> None:
    s = X.issue(ca, "server", "cloud", ["127.0.0.1"], tmp_path)
    c = X.issue(ca, "client", "edge-1", [], tmp_path)
    assert list(_ext(c.cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = _ext(c.cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["edge-1"]  # the common name by default
    builder = PolicyBuilder().store(Store([ca.cert]))
    assert builder.build_client_verifier().verify(c.cert, []).chain[-1] == ca.cert
    with pytest.raises(VerificationError):
        builder.build_client_verifier().verify(s.cert, [])
    with pytest.raises(VerificationError):
        server_name = x509.DNSName("edge-1")
        builder.build_server_verifier(server_name).verify(c.cert, [])
    with pytest.raises(
        X.X509Error, match=r"\('edge-1'\) is a client certificate, not for a TLS server"
    ):
        X.load_issued(c.cert_file, c.key_file, "server")
    with pytest.raises(
        X.X509Error, match=r"\('cloud'\) is a server certificate, not for a TLS client"
    ):
        X.check_usage(s.cert, "client")
    with pytest.raises(X.X509Error, match="is a client certificate, not for a TLS server"):
        X.server_context(c.cert_file, c.key_file)
    with pytest.raises(X.X509Error, match="is a server certificate, not for a TLS client"):
        X.client_context(ca.cert_file, s.cert_file, s.key_file)


def test_mutual_tls_admits_only_client_certificates_of_the_ca(
    ca: X.CA, other_ca: X.CA, tmp_path: Path
) -> None:
    s = X.issue(ca, "server", "cloud", ["127.0.0.1"], tmp_path)
    c = X.issue(ca, "client", "edge-1", [], tmp_path)
    stranger = X.issue(other_ca, "client", "edge-x", [], tmp_path)
    server_ctx = X.server_context(s.cert_file, s.key_file, client_ca_file=ca.cert_file)

    end = handshake(server_ctx, X.client_context(ca.cert_file, c.cert_file, c.key_file))
    peer = x509.load_der_x509_certificate(end.getpeercert(binary_form=True) or b"")
    assert X.cn_of(peer) == "edge-1"

    with pytest.raises(ssl.SSLError, match="peer did not return a certificate"):
        handshake(server_ctx, X.client_context(ca.cert_file))
    with pytest.raises(ssl.SSLError, match="unable to get local issuer certificate"):
        handshake(server_ctx, X.client_context(ca.cert_file, stranger.cert_file, stranger.key_file))
    # a server certificate of the right CA, presented as a client's, is refused by OpenSSL too
    raw = ssl.create_default_context(cafile=str(ca.cert_file))
    raw.load_cert_chain(str(s.cert_file), str(s.key_file))
    with pytest.raises(ssl.SSLError, match="unsuitable certificate purpose"):
        handshake(server_ctx, raw)
    # and a server presenting a client certificate is refused by the client
    bad_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bad_server.load_cert_chain(str(c.cert_file), str(c.key_file))
    with pytest.raises(ssl.SSLError, match="unsuitable certificate purpose"):
        handshake(bad_server, X.client_context(ca.cert_file), host="edge-1")
    # without client_ca_file no certificate is asked for
    plain = handshake(X.server_context(s.cert_file, s.key_file), X.client_context(ca.cert_file))
    assert plain.getpeercert() is None


def _utc(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC"


def test_expired_and_not_yet_valid_certificates(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    past = now - dt.timedelta(days=400)
    ca = X.make_ca("old CA", tmp_path / "ca", 3650, now=past)
    old = X.issue(ca, "server", "old", ["127.0.0.1"], tmp_path, 30, now=past)
    ends = past + dt.timedelta(days=30)
    assert old.cert.not_valid_after_utc == ends
    assert old.cert.not_valid_before_utc == past - dt.timedelta(minutes=5)
    with pytest.raises(X.X509Error, match=rf"old\.pem \('old'\) expired at {_utc(ends)}"):
        X.load_issued(old.cert_file, old.key_file)
    assert X.load_issued(old.cert_file, old.key_file, now=past)[0] == old.cert
    soon = now + dt.timedelta(days=10)
    future = X.issue(ca, "client", "soon", [], tmp_path, 30, now=soon)
    starts = _utc(soon - dt.timedelta(minutes=5))
    with pytest.raises(X.X509Error, match=rf"\('soon'\) is not valid before {starts}"):
        X.load_issued(future.cert_file, future.key_file, "client")
    later = past + dt.timedelta(days=3651)
    with pytest.raises(X.X509Error, match=r"ca\.pem \('old CA'\) expired at "):
        X.load_ca(tmp_path / "ca", now=later)
    assert X.load_ca(tmp_path / "ca").cert == ca.cert
    # the contexts refuse an expired certificate, and so does a TLS client
    with pytest.raises(X.X509Error, match=r"\('old'\) expired at"):
        X.server_context(old.cert_file, old.key_file)
    with pytest.raises(X.X509Error, match=r"\('soon'\) is not valid before"):
        X.client_context(ca.cert_file, future.cert_file, future.key_file)
    raw = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    raw.load_cert_chain(str(old.cert_file), str(old.key_file))
    with pytest.raises(ssl.SSLError, match="certificate has expired"):
        handshake(raw, X.client_context(ca.cert_file))


ISSUE_CASES: list[tuple[tuple[object, ...], dict[str, object], str]] = [
    (("peer", "cloud", []), {}, "certificate kind 'peer' is not one of server, client"),
    (("server", "", []), {}, "the common name is empty"),
    (("server", "a b", []), {}, "common name 'a b' must be 1 to 64 letters"),
    (("server", "../up", []), {}, "common name '../up' must be 1 to 64 letters"),
    (("server", "c", ["10.0.0.300"]), {}, "'10.0.0.300' is not a valid IPv4 address"),
    (("server", "c", ["fe80::zz"]), {}, "'fe80::zz' is not a valid IPv6 address"),
    (("server", "c", [""]), {}, "a subject alternative name is empty"),
    (("server", "c", ["a_b.example"]), {}, "'a_b.example' is neither an IP address nor a DNS"),
    (("client", "edge_1", []), {}, "the common name 'edge_1' cannot stand for one"),
    (("server", "c", []), {"valid_days": 0}, "valid_days must be from 1 to 36500, got 0"),
    (("server", "c", []), {"valid_days": True}, "a whole number of days, got True"),
    (("server", "c", []), {"valid_days": 3651}, "valid_days 3651 would outlast the CA 'test CA'"),
    (("server", "c", []), {"now": dt.datetime(2030, 1, 1)}, "has no time zone"),
]


@pytest.mark.parametrize(("args", "kw", "message"), ISSUE_CASES)
def test_bad_input_to_issue_is_refused_precisely_and_writes_nothing(
    ca: X.CA, tmp_path: Path, args: tuple[Any, ...], kw: dict[str, Any], message: str
) -> None:
    before = _tree(tmp_path)
    with pytest.raises(X.X509Error, match=re.escape(message)):
        X.issue(ca, args[0], args[1], args[2], tmp_path / "out", **kw)
    assert _tree(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "days", "message"),
    [
        ("", 10, "the CA name is empty"),
        ("a\nb", 10, "the CA name 'a\\nb' must be 1 to 64 printable characters"),
        ("C" * 65, 10, "must be 1 to 64 printable characters"),
        ("CA", 36501, "valid_days must be from 1 to 36500, got 36501"),
    ],
)
def test_bad_input_to_make_ca_is_refused_precisely_and_writes_nothing(
    tmp_path: Path, name: str, days: int, message: str
) -> None:
    with pytest.raises(X.X509Error, match=re.escape(message)):
        X.make_ca(name, tmp_path / "ca", days)
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_overwritten(ca: X.CA, tmp_path: Path) -> None:
    s = X.issue(ca, "server", "cloud", [], tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(X.X509Error, match=r"cloud\.pem already exists; refusing to overwrite"):
        X.issue(ca, "client", "cloud", [], tmp_path)
    with pytest.raises(X.X509Error, match=r"ca\.pem already exists; refusing to overwrite"):
        X.make_ca("again", ca.cert_file.parent)
    assert _tree(tmp_path) == before
    assert X.load_issued(s.cert_file, s.key_file)[0] == s.cert


def test_unfit_files_are_named(ca: X.CA, tmp_path: Path) -> None:
    s = X.issue(ca, "server", "cloud", [], tmp_path)
    c = X.issue(ca, "client", "edge-1", [], tmp_path)
    with pytest.raises(
        X.X509Error, match=r"edge-1-key\.pem does not belong to the certificate .*cloud\.pem"
    ):
        X.load_issued(s.cert_file, c.key_file)
    with pytest.raises(X.X509Error, match=r"certificate file .*nope\.pem does not exist"):
        X.load_certificate(tmp_path / "nope.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(X.X509Error, match=r"junk\.pem is not a PEM certificate"):
        X.load_certificate(junk)
    with pytest.raises(X.X509Error, match=r"junk\.pem is not an unencrypted PEM private key"):
        X.load_private_key(junk)
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(X.X509Error, match=r"rsa\.pem holds a .*RSA.*, not an ECDSA key"):
        X.load_private_key(rsa_key)
    with pytest.raises(X.X509Error, match=r"is not a CA certificate"):
        leaf_dir = tmp_path / "leaf"
        leaf_dir.mkdir()
        (leaf_dir / "ca.pem").write_bytes(s.cert_file.read_bytes())
        (leaf_dir / "ca-key.pem").write_bytes(s.key_file.read_bytes())
        X.load_ca(leaf_dir)
    other = X.make_ca("other CA", tmp_path / "other")
    with pytest.raises(X.X509Error, match=r"cloud\.pem is not issued by CA 'other CA'"):
        X.load_issued(s.cert_file, s.key_file, ca=other.cert)
    with pytest.raises(X.X509Error, match="needs both its certificate file and its key file"):
        X.client_context(ca.cert_file, c.cert_file, None)
    assert isinstance(X.X509Error("x"), CryptoError)


def test_tally_certs_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["certs", "ca", str(tmp_path / "ca"), "--name", "site CA"])
    assert r.exit_code == 0, r.output
    assert "CA 'site CA' until" in r.output and "sha256 " in r.output
    args = ["certs", "issue", str(tmp_path / "tls"), "--ca", str(tmp_path / "ca")]
    r = runner.invoke(
        app,
        [*args, "--kind", "server", "--cn", "cloud", "--san", "127.0.0.1", "--san", "cloud.lan"],
    )
    assert r.exit_code == 0, r.output
    assert "cloud.pem: server 'cloud' until" in r.output
    r = runner.invoke(app, [*args, "--kind", "client", "--cn", "edge-1", "--days", "30"])
    assert r.exit_code == 0, r.output
    ca = X.load_ca(tmp_path / "ca")
    cert, _ = X.load_issued(
        tmp_path / "tls" / "cloud.pem", tmp_path / "tls" / "cloud-key.pem", "server", ca.cert
    )
    names = _ext(cert, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["cloud.lan"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    client, _ = X.load_issued(
        tmp_path / "tls" / "edge-1.pem", tmp_path / "tls" / "edge-1-key.pem", "client", ca.cert
    )
    assert client.not_valid_after_utc - client.not_valid_before_utc == dt.timedelta(
        days=30, minutes=5
    )
    # a refusal is one line on stderr, exit status 2, and nothing written
    before = _tree(tmp_path)
    r2 = subprocess.run(
        [sys.executable, "-m", "tally", *args, "--kind", "client", "--cn", "x", "--san", "1.2.3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r2.returncode == 2
    assert (
        r2.stderr.strip() == "tally: subject alternative name '1.2.3' is not a valid IPv4 address"
    )
    assert _tree(tmp_path) == before

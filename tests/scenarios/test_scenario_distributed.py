"""A deployment as an operator builds it, with the real services of the machine.

Story: two organisations set up keys, a trust file and registrations with the ``tally``
commands; the bank runs ``tally cloud`` on PostgreSQL behind TLS; the warehouse runs
``tally edge`` subscribed to the site's Mosquitto with MQTT 5. A device publishes signed
readings. Then things break: the cloud is killed with SIGKILL and restarted while the
device keeps publishing, and the edge is killed with SIGKILL while the device publishes.
At the end every reading the device produced is stored exactly once or covered by a
certified gap, and a proof bundle of a stored reading verifies offline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from tally.cli import app
from tally.cloud.config import token_digest
from tally.crypto.keystore import load_key
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.publish.mqtt import MqttPublisher
from tally.verify.cli import run_verify

PASS = "correct horse battery staple"
DEADLINE_S = 60.0


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"TALLY_KEY_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    return result.output


def _tls(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tally test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, cert_file, key_file = d / "ca.pem", d / "cloud.pem", d / "cloud-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class Proc:
    """A ``tally`` subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.out = log.open("ab")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tally", *args],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_for(self, text: str, timeout: float = DEADLINE_S) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log.read_text(errors="replace"):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen; log:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait(timeout=30)
        self.out.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill(signal.SIGKILL)


def _wait(pred: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _publish(pub: MqttPublisher, site: str, dev: DeviceSigner, n: int) -> None:
    for _ in range(n):
        t = int(time.time() * 1000)
        env = dev.next(t, (Measurement("weight", dev.ctr * 1 + 100, "t"),), (("sim", "1"),))
        await pub.publish(site, dev.dev, env)


def test_scenario_distributed_cloud_and_edge_survive_sigkill(
    tmp_path: Path,
    postgres_url: str,
    mosquitto: tuple[str, int],
    free_port: Callable[[], int],
    procs: list[Proc],
) -> None:
    site = f"site-{secrets.token_hex(4)}"
    dev_id = f"{site}-lc-01"
    keys, regs, trust = tmp_path / "keys", tmp_path / "registrations", tmp_path / "trust.cbor"
    # --- the organisations set up by hand --------------------------------------------------
    for name in ("bank", "warehouse", "edge-1", "cloud-1", "lc-01"):
        _cli("keys", "new", str(keys / f"{name}.key"))
    _cli("trust", "add", str(trust), "bank", str(keys / "bank.key"))
    _cli("trust", "add", str(trust), "warehouse", str(keys / "warehouse.key"))
    common = ["--out", str(regs)]
    _cli(
        "register",
        "cloud",
        "cloud-1",
        "--org",
        "bank",
        "--org-key",
        str(keys / "bank.key"),
        "--key",
        str(keys / "cloud-1.key"),
        *common,
    )
    _cli(
        "register",
        "edge",
        "edge-1",
        "--org",
        "warehouse",
        "--org-key",
        str(keys / "warehouse.key"),
        "--key",
        str(keys / "edge-1.key"),
        "--site",
        site,
        *common,
    )
    _cli(
        "register",
        "device",
        dev_id,
        "--org",
        "warehouse",
        "--org-key",
        str(keys / "warehouse.key"),
        "--key",
        str(keys / "lc-01.key"),
        "--site",
        site,
        "--profile",
        "load_cell",
        *common,
    )
    ca, cert, cert_key = _tls(tmp_path)
    cloud_port = free_port()
    token = secrets.token_urlsafe(16)
    cfg = tmp_path / "tally.toml"
    cfg.write_text(f"""
[cloud]
id = "cloud-1"
org = "bank"
port = {cloud_port}
database_url = "{postgres_url}"
key_file = "{keys / "cloud-1.key"}"
trust_file = "{trust}"
registrations_dir = "{regs}"
tls_cert_file = "{cert}"
tls_key_file = "{cert_key}"
api_tokens = [{{ sha256 = "{token_digest(token)}", org = "warehouse", role = "operator" }}]

[edge]
id = "edge-1"
org = "warehouse"
site = "{site}"
key_file = "{keys / "edge-1.key"}"
data_dir = "{tmp_path / "edge"}"
trust_file = "{trust}"
registrations_dir = "{regs}"
cloud_url = "https://127.0.0.1:{cloud_port}"
cloud_ca_file = "{ca}"
window_ms = 200
gap_grace_ms = 2000
uplink_backoff_ms = 100
uplink_backoff_cap_ms = 1000

[edge.mqtt]
host = "{mosquitto[0]}"
port = {mosquitto[1]}
version = "5"
topic = "tally/{site}/+/up"
client_id = "edge-1-{site}"
""")
    env = {**os.environ, "TALLY_KEY_PASSPHRASE": PASS}
    cloud = Proc(["cloud", "-c", str(cfg)], tmp_path / "cloud.log", env)
    procs.append(cloud)
    cloud.wait_for("listening on https://")
    edge = Proc(["edge", "-c", str(cfg)], tmp_path / "edge.log", env)
    procs.append(edge)
    edge.wait_for("running")

    api = httpx.Client(
        base_url=f"https://127.0.0.1:{cloud_port}",
        verify=ssl.create_default_context(cafile=str(ca)),
        headers={"Authorization": f"Bearer {token}"},
    )

    def stored() -> list[dict[str, object]]:
        try:
            r = api.get(f"/v1/devices/{dev_id}/readings", params={"limit": 1000})
        except httpx.HTTPError:
            return []
        return list(r.json()["items"]) if r.status_code == 200 else []

    def gaps() -> list[dict[str, object]]:
        r = api.get(f"/v1/devices/{dev_id}/gaps")
        return list(r.json()["gaps"]) if r.status_code == 200 else []

    signer = DeviceSigner(dev_id, load_key(keys / "lc-01.key", PASS), b"\x01" * 32)
    pub = MqttPublisher(mosquitto[0], mosquitto[1], "5", client_id=f"dev-{site}")

    async def run() -> None:
        await pub.connect()
        # 1. the normal path
        await _publish(pub, site, signer, 20)
        await asyncio.to_thread(_wait, lambda: len(stored()) == 20, "20 readings stored")
        # 2. the cloud dies hard; the device keeps publishing; the cloud comes back
        cloud.kill(signal.SIGKILL)
        await _publish(pub, site, signer, 20)
        back = Proc(["cloud", "-c", str(cfg)], tmp_path / "cloud.log", env)
        procs.append(back)
        await asyncio.to_thread(back.wait_for, "listening on https://")
        await asyncio.to_thread(_wait, lambda: len(stored()) == 40, "40 readings stored")
        # 3. the edge dies hard while the device publishes; it comes back
        task = asyncio.create_task(_publish(pub, site, signer, 30))
        await asyncio.sleep(0.05)
        edge.kill(signal.SIGKILL)
        await task
        again = Proc(["edge", "-c", str(cfg)], tmp_path / "edge2.log", env)
        procs.append(again)
        await asyncio.to_thread(again.wait_for, "running")
        await _publish(pub, site, signer, 5)  # reveals any gap at the end of the run
        await pub.close()

    asyncio.run(run())
    produced = signer.ctr  # 75 readings, counters 0..74 in boot 0

    def accounted() -> bool:
        got = {int(str(i["ctr"])) for i in stored()}
        covered = {c for g in gaps() for c in range(int(str(g["from"])), int(str(g["to"])) + 1)}
        return len(got | covered) == produced

    _wait(accounted, "every produced reading stored or certified missing")
    items = stored()
    ctrs = [int(str(i["ctr"])) for i in items]
    assert len(ctrs) == len(set(ctrs)), "a reading was stored twice"
    covered = {c for g in gaps() for c in range(int(str(g["from"])), int(str(g["to"])) + 1)}
    assert set(ctrs) | covered == set(range(produced))
    assert not set(ctrs) & covered
    # a stored reading's proof verifies offline against the trust file
    h = str(items[-1]["hash"])
    bundle = api.get(f"/v1/proofs/items/{h}")
    assert bundle.status_code == 200
    (tmp_path / "reading.cbor").write_bytes(bundle.content)
    assert run_verify(tmp_path / "reading.cbor", trust, False) == 0
    api.close()

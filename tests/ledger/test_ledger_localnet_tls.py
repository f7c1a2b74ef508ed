"""``run_localnet`` with TLS (the default of ``tally consortium up``): a CA made per run, peers
serving HTTPS with mutual TLS, NATS speaking mutual TLS on its client ports and routes; a
client of the run's CA gets a transaction final, a client without a certificate gets nothing,
and the next run's CA replaces the last one, whose client certificate is then refused.

Every wait is bounded; stop leaves no process behind. Without a ``nats-server`` binary the
test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import require_nats_server
from tally.crypto.keystore import load_key
from tally.crypto.tlsconf import client_tls
from tally.crypto.x509ca import fingerprint, load_certificate
from tally.ledger.genesis import read_genesis
from tally.ledger.localnet import LocalNet, describe, run_localnet
from tally.ledger.remote import RemoteConsortium

PASS = "localnet-tls-test-passphrase"
DEADLINE = 40.0
MEMBERS = [("bank-1", ["bank"]), ("wh-1", ["warehouse"])]

pytestmark = pytest.mark.timeout(180)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def run_once(directory: Path, body: Callable[[LocalNet], Awaitable[Any]]) -> Any:
    """Run the consortium (TLS by default), run ``body(net)`` once it is ready, stop."""
    ready: asyncio.Future[LocalNet] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_localnet(directory, PASS, members=MEMBERS, ready_timeout=DEADLINE,
                     on_ready=ready.set_result, stop=stop)
    )  # fmt: skip
    try:
        async with asyncio.timeout(DEADLINE):
            either: set[asyncio.Future[Any]] = {runner, ready}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()
            raise AssertionError("run_localnet returned before it was ready")
        net = ready.result()
        result = await body(net)
    finally:
        stop.set()
        async with asyncio.timeout(DEADLINE):
            await runner
    for pid in [*net.pids.values(), *net.nats_pids]:
        assert not alive(pid), f"pid {pid} still runs"
    return result


async def status(url: str, verify: ssl.SSLContext | bool) -> httpx.Response:
    async with httpx.AsyncClient(verify=verify, timeout=5.0) as http:
        return await http.get(f"{url}/v1/status")


async def test_localnet_serves_its_peers_and_nats_over_mutual_tls(tmp_path: Path) -> None:
    require_nats_server()
    directory = tmp_path / "net"

    async def first(net: LocalNet) -> tuple[str, int]:
        assert net.ca_file == directory / "tls" / "ca.pem"
        assert net.client_cert_file is not None and net.client_key_file is not None
        assert all(u.startswith("https://127.0.0.1:") for u in net.peers.values())
        assert all(u.startswith("tls://127.0.0.1:") for u in net.nats_urls)
        assert str(net.ca_file) in describe(net)
        toml = (directory / "members" / "wh-1" / "peer.toml").read_text()
        assert "tls_client_ca_file" in toml and "nats_cert_file" in toml
        url = net.peers["bank-1"]
        bare = client_tls(net.ca_file)
        assert bare is not None
        with pytest.raises(httpx.TransportError):
            await status(url, bare)  # no client certificate
        ctx = net.client_context()
        assert ctx is not None and (await status(url, ctx)).json()["org"] == "bank-1"
        key = load_key(directory / "members" / "bank-1" / "member.key", PASS)
        record = ["invoice", hashlib.sha256(b"simulated localnet TLS record").digest()]
        async with RemoteConsortium(read_genesis(net.genesis), net.peers, timeout=DEADLINE,
                                    tls=ctx) as rc:  # fmt: skip
            r = await rc.submit("anchoring", "anchor_record", record, "bank-1", key)
        assert r.valid, (r.code, r.reason)
        kept = tmp_path / "kept"  # the first run's client certificate, for the second run
        kept.mkdir()
        for f in (net.ca_file, net.client_cert_file, net.client_key_file):
            shutil.copy(f, kept / f.name)
        return fingerprint(load_certificate(net.ca_file)), r.height

    ca1, height = await run_once(directory, first)

    async def second(net: LocalNet) -> str:
        assert net.ca_file is not None and net.client_cert_file is not None
        kept = tmp_path / "kept"
        old = client_tls(kept / "ca.pem", kept / "client.pem", kept / "client-key.pem")
        assert old is not None
        with pytest.raises(httpx.TransportError):
            await status(net.peers["bank-1"], old)  # the last run's CA is not trusted
        ctx = net.client_context()
        assert ctx is not None
        async with asyncio.timeout(DEADLINE):
            while (await status(net.peers["wh-1"], ctx)).json()["height"] < height:
                await asyncio.sleep(0.05)  # it carries on from the first run's blocks
        return fingerprint(load_certificate(net.ca_file))

    ca2 = await run_once(directory, second)
    assert ca2 != ca1

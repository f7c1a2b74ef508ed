"""``run_localnet``: a consortium of 4 peer processes over a 3-server JetStream cluster in one
directory. Every peer answers for the same chain at one height; a transaction commits; stop
leaves no process behind; a second run on the same directory reuses the genesis and carries
on from the committed block.

Without a ``nats-server`` binary the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import require_nats_server
from tally.crypto.keystore import load_key
from tally.ledger.bootstrap import create_consortium
from tally.ledger.genesis import Ordering, read_genesis
from tally.ledger.localnet import LocalNet, LocalNetError, describe, run_localnet
from tally.ledger.remote import RemoteConsortium

PASS = "localnet-test-passphrase"
DEADLINE = 30.0
ORGS = ["bank-1", "core-1", "reg-1", "wh-1"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes only once reaped: run_localnet reaps its children
    return True


async def statuses(net: LocalNet) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5.0, verify=net.client_context() or True) as http:
        got = await asyncio.gather(*(http.get(f"{u}/v1/status") for u in net.peers.values()))
    return {org: r.json() for org, r in zip(net.peers, got, strict=True)}


async def converged(net: LocalNet, height: int) -> dict[str, Any]:
    """Poll until every peer is at ``height`` with one block and state; return one status."""
    async with asyncio.timeout(DEADLINE):
        while True:
            s = await statuses(net)
            if all(v["height"] == height for v in s.values()):
                assert len({(v["chain"], v["block"], v["state"]) for v in s.values()}) == 1, s
                return next(iter(s.values()))
            await asyncio.sleep(0.05)


async def run_once(directory: Path, body: Any) -> tuple[LocalNet, Any]:
    """Run the consortium, run ``body(net)`` once it is ready, stop; (net, body's result)."""
    ready: asyncio.Future[LocalNet] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_localnet(directory, PASS, ready_timeout=DEADLINE, on_ready=ready.set_result,
                     stop=stop)
    )  # fmt: skip
    try:
        async with asyncio.timeout(DEADLINE):
            either: set[asyncio.Future[Any]] = {runner, ready}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # raises what made it stop
            raise AssertionError("run_localnet returned before it was ready")
        net = ready.result()
        result = await body(net)
    finally:
        stop.set()
        async with asyncio.timeout(DEADLINE):
            await runner
    for org, pid in net.pids.items():
        assert not alive(pid), f"peer {org} (pid {pid}) still runs"
    for pid in net.nats_pids:
        assert not alive(pid), f"nats-server pid {pid} still runs"
    return net, result


async def test_localnet_runs_stops_and_restarts_with_its_data(tmp_path: Path) -> None:
    require_nats_server()
    directory = tmp_path / "net"

    async def first(net: LocalNet) -> dict[str, Any]:
        assert sorted(net.peers) == ORGS and len(net.nats_urls) == 3 and len(net.nats_pids) == 3
        assert all(alive(pid) for pid in [*net.pids.values(), *net.nats_pids])
        text = describe(net)
        assert net.chain in text and all(url in text for url in net.peers.values())
        start = await converged(net, 0)
        assert start["chain"] == net.chain and start["error"] is None
        g = read_genesis(net.genesis)
        key = load_key(directory / "members" / "bank-1" / "member.key", PASS)
        record = ["invoice", hashlib.sha256(b"simulated localnet record").digest()]
        async with RemoteConsortium(g, net.peers, timeout=DEADLINE, tls=net.client_context()) as rc:
            r = await rc.submit("anchoring", "anchor_record", record, "bank-1", key)
        assert r.valid, (r.code, r.reason, r.error)
        return await converged(net, r.height)

    net1, after = await run_once(directory, first)
    assert after["height"] >= 1
    assert (directory / "members" / "wh-1" / "peer.toml").is_file()
    assert "serving at" in (directory / "members" / "wh-1" / "peer.log").read_text()
    genesis_bytes = (directory / "genesis.cbor").read_bytes()

    async def second(net: LocalNet) -> dict[str, Any]:
        return await converged(net, after["height"])

    net2, again = await run_once(directory, second)
    assert (directory / "genesis.cbor").read_bytes() == genesis_bytes
    assert net2.chain == net1.chain
    assert set(net2.pids.values()).isdisjoint(net1.pids.values())
    assert (again["block"], again["state"]) == (after["block"], after["state"])


async def test_localnet_refuses_a_solo_consortium(tmp_path: Path) -> None:
    create_consortium(tmp_path, {"bank-1": ["bank"]}, PASS, ordering=Ordering("solo"),
                      scrypt_n=1 << 10)  # fmt: skip
    with pytest.raises(LocalNetError, match="need 'jetstream'"):
        await run_localnet(tmp_path, PASS, ready_timeout=DEADLINE)
    assert not (tmp_path / "nats").exists()

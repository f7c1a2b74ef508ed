"""Four member peers as separate ``tally peer`` processes over a 3-server JetStream cluster,
driven over HTTP by :class:`~tally.ledger.remote.RemoteConsortium`: every transaction valid
and final with at least the quorum's signatures, all peers at one state; one peer killed
(SIGKILL) while transactions go on, restarted, and caught up to the same state.

Everything runs on free ports and is stopped at the end; every wait polls with a deadline.
Without a ``nats-server`` binary the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services import require_nats_server
from tally.crypto import SigningKey
from tally.ledger.bootstrap import Created, create_consortium
from tally.ledger.errors import EndorsementFailed
from tally.ledger.genesis import Ordering
from tally.ledger.natscluster import NatsCluster
from tally.ledger.peerservice import PeerConfig, PeerService, PeerServiceError
from tally.ledger.policy import parse_policy
from tally.ledger.remote import RemoteConsortium, RemoteResult

PASS = "distributed-test-passphrase"
ORGS = ("bank", "logistics", "supplier", "warehouse")
TWO_OF_FOUR = "2-OF(org:bank, org:logistics, org:supplier, org:warehouse)"
DEADLINE = 20.0
URL = re.compile(r"serving at (http://\S+)")


def consortium(directory: Path, kind: str = "jetstream") -> Created:
    return create_consortium(
        directory,
        {org: [org] for org in ORGS},
        PASS,
        name="distributed-test",
        policies={
            "registry.*": parse_policy(TWO_OF_FOUR),
            "anchoring.*": parse_policy(TWO_OF_FOUR),
        },
        ordering=Ordering(kind, 20, 20),
        scrypt_n=1 << 10,
    )


class PeerProcess:
    """One ``python -m tally peer`` process; output goes to files in its directory."""

    def __init__(self, created: Created, org: str, directory: Path, nats: list[str]) -> None:
        self.org = org
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "peer.toml"
        self.config.write_text(
            "[peer]\n"
            f'org = "{org}"\n'
            f'key_file = "{created.key_path(org)}"\n'
            f'genesis = "{created.genesis_path}"\n'
            f'data_dir = "{directory / "data"}"\n'
            'host = "127.0.0.1"\nport = 0\n'
            f"nats = [{', '.join(repr(u).replace(chr(39), chr(34)) for u in nats)}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.url = ""

    @property
    def out(self) -> Path:
        return self.directory / f"out.{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env["TALLY_KEY_PASSPHRASE"] = PASS
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tally", "peer", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    async def wait_url(self) -> str:
        async with asyncio.timeout(DEADLINE):
            while True:
                assert self.proc is not None
                text = self.out.read_text(errors="replace")
                m = URL.search(text)
                if m:
                    self.url = m.group(1)
                    return self.url
                if self.proc.poll() is not None:
                    raise AssertionError(f"peer {self.org} exited {self.proc.returncode}: {text}")
                await asyncio.sleep(0.02)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    require_nats_server()
    async with NatsCluster(tmp_path / "nats", size=3) as c:
        yield c


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[dict[str, PeerProcess]]:
    procs: dict[str, PeerProcess] = {}
    yield procs
    for p in procs.values():
        p.stop()


async def statuses(rc: RemoteConsortium, orgs: list[str]) -> dict[str, dict[str, object]]:
    got = await asyncio.gather(*(rc.status(o) for o in orgs))
    return {o: s for o, s in zip(orgs, got, strict=True) if s is not None}


async def converge(rc: RemoteConsortium, orgs: list[str], height: int) -> dict[str, object]:
    """Poll until every one of ``orgs`` is at ``height`` with one state; return that status."""
    async with asyncio.timeout(DEADLINE):
        while True:
            s = await statuses(rc, orgs)
            if len(s) == len(orgs) and all(v["height"] == height for v in s.values()):
                assert len({(v["block"], v["state"]) for v in s.values()}) == 1, s
                return next(iter(s.values()))
            await asyncio.sleep(0.05)


def check(r: RemoteResult, quorum: int) -> None:
    assert r.valid, (r.code, r.reason, r.error)
    cp = r.final_checkpoint
    assert cp.checkpoint.height == r.height
    assert len(cp.signers) >= quorum and len(set(cp.signers)) == len(cp.signers)


async def test_four_peer_processes_order_commit_and_recover(
    tmp_path: Path, cluster: NatsCluster, peers: dict[str, PeerProcess]
) -> None:
    created = consortium(tmp_path / "consortium")
    g = created.genesis
    assert g.checkpoint_quorum == 3
    for org in ORGS:
        peers[org] = PeerProcess(created, org, tmp_path / "peers" / org, cluster.urls)
        peers[org].start()
    urls = dict(zip(ORGS, await asyncio.gather(*(peers[o].wait_url() for o in ORGS)),
                    strict=True))  # fmt: skip
    keys: dict[str, SigningKey] = created.keys

    def record(i: int) -> list[object]:
        return ["invoice", hashlib.sha256(b"simulated record %d" % i).digest()]

    async with RemoteConsortium(g, urls, timeout=DEADLINE) as rc:
        await converge(rc, list(ORGS), 0)
        results = [
            await rc.submit("anchoring", "anchor_record", record(i), ORGS[i % 4], keys[ORGS[i % 4]])
            for i in range(10)
        ]
        for r in results:
            check(r, g.checkpoint_quorum)
        assert len({r.tx_id for r in results}) == 10
        top = max(r.height for r in results)
        before = await converge(rc, list(ORGS), top)

        # a repeated record: the contract refuses, the transaction is ordered as invalid
        dup = await rc.submit("anchoring", "anchor_record", record(0), "bank", keys["bank"])
        assert dup.code == "contract_error" and "already anchored" in dup.error
        assert dup.final_checkpoint.checkpoint.height == dup.height
        # a proposal signed with a key that is not the member's is refused at endorsement
        with pytest.raises(EndorsementFailed, match="refused"):
            await rc.submit("anchoring", "anchor_record", record(99), "bank",
                            SigningKey.generate(g.suite))  # fmt: skip
        before = await converge(rc, list(ORGS), dup.height)

        # one peer dies; 3 of 4 still satisfy 2-OF-4 and the quorum of 3
        peers["warehouse"].kill()
        live = ["bank", "logistics", "supplier"]
        more = [
            await rc.submit("anchoring", "anchor_record", record(10 + i), live[i % 3],
                            keys[live[i % 3]])
            for i in range(5)
        ]  # fmt: skip
        for r in more:
            check(r, g.checkpoint_quorum)
            assert "warehouse" not in r.final_checkpoint.signers
        top2 = max(r.height for r in more)
        assert top2 > top
        after = await converge(rc, live, top2)
        assert after["state"] != before["state"]

        # it restarts from its own files and catches up to the same state
        peers["warehouse"].start()
        rc.peers["warehouse"] = await peers["warehouse"].wait_url()
        caught = await converge(rc, list(ORGS), top2)
        assert caught["state"] == after["state"]
        # and its checkpoints of the blocks it missed are there, signed by it
        resp = await rc.http.get(f"{rc.peers['warehouse']}/v1/checkpoints/{top2}")
        assert resp.status_code == 200
        tx = await rc.http.get(f"{rc.peers['warehouse']}/v1/tx/{more[-1].tx_id.hex()}")
        assert tx.status_code == 200 and tx.json()["code"] == "valid"
        missing = await rc.http.get(f"{rc.peers['bank']}/v1/tx/{'00' * 32}")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

    # SIGTERM stops every peer gracefully
    for org in ORGS:
        assert peers[org].stop() == 0, peers[org].out.read_text()


def test_solo_ordering_is_refused(tmp_path: Path) -> None:
    created = consortium(tmp_path / "solo", kind="solo")
    cfg = PeerConfig(org="bank", key_file=created.key_path("bank"),
                     genesis=created.genesis_path, data_dir=tmp_path / "d",
                     nats=["nats://127.0.0.1:1"])  # fmt: skip
    with pytest.raises(PeerServiceError, match="solo"):
        PeerService(cfg, PASS)


def test_peer_command_refuses_solo_ordering(tmp_path: Path) -> None:
    created = consortium(tmp_path / "solo", kind="solo")
    p = PeerProcess(created, "bank", tmp_path / "bank", ["nats://127.0.0.1:1"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env["TALLY_KEY_PASSPHRASE"] = PASS
    done = subprocess.run(
        [sys.executable, "-m", "tally", "peer", "--config", str(p.config)],
        capture_output=True, env=env, timeout=DEADLINE, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs 'jetstream'" in done.stderr and "Traceback" not in done.stderr


def test_a_peer_keeps_its_state_in_postgresql_when_configured(
    tmp_path: Path, postgres_url: str
) -> None:
    from tally.ledger.peerservice import PeerConfig, _state
    from tally.ledger.state_postgres import PostgresState
    from tally.ledger.state_sqlite import SqliteState

    base = {"org": "bank", "key_file": tmp_path / "k", "genesis": tmp_path / "g",
            "data_dir": tmp_path, "nats": ["nats://127.0.0.1:1"]}  # fmt: skip
    local = _state(PeerConfig.model_validate(base))
    remote = _state(PeerConfig.model_validate({**base, "state_url": postgres_url,
                                               "state_schema": "peer_bank"}))  # fmt: skip
    try:
        assert isinstance(local, SqliteState)
        assert isinstance(remote, PostgresState) and remote.schema == "peer_bank"
        remote.apply(1, [("k", 1, (1, 0))], b"\x01" * 32)
        assert remote.get("k") == (1, (1, 0)) and remote.height() == 1
    finally:
        local.close()
        remote.close()

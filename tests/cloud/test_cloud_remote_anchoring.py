"""A cloud anchoring through member peers that run as their own processes: four ``tally peer``
processes over a 3-server JetStream cluster, the edge and device put on chain through the
``registry`` contract over HTTP, a cloud (in process, on a free port) configured with
``[cloud.ledger]`` ingesting signed batches, its anchorer anchoring them, and a proof bundle
from its API that the offline verifier accepts with nothing but the genesis.

The consortium members ``bank``, ``acme`` and ``other`` hold the organisations' own keys (the
trust file's root keys), ``carrier`` a key of its own. Everything runs on free ports and is
stopped at the end; every wait polls with a deadline. Without a ``nats-server`` binary the
test is skipped, or fails when ``CI=true``.

Simulated data: every reading carries the label ``sim = "1"``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cloud_factory import T0, TOKENS, World

from services import require_nats_server
from tally import config
from tally.cloud.anchoring import RemoteLedgerLink
from tally.cloud.config import LedgerSettings, load_settings
from tally.cloud.server import build_service, remote_ledger
from tally.cloud.storage.api import ItemQuery
from tally.crypto import SigningKey
from tally.crypto.keystore import save_key
from tally.ledger.genesis import Genesis, Member, Ordering, load_genesis
from tally.ledger.natscluster import NatsCluster
from tally.ledger.policy import parse_policy
from tally.ledger.remote import RemoteConsortium
from tally.verify.bundle import decode_bundle
from tally.verify.verifier import verify_bundle

PASS = "remote-anchoring-test-passphrase"
ORGS = ("bank", "acme", "other", "carrier")
ROLES = {"bank": "bank", "acme": "warehouse", "other": "supplier", "carrier": "logistics"}
TWO_OF_FOUR = "2-OF(org:bank, org:acme, org:other, org:carrier)"
DEADLINE = 20.0
URL = re.compile(r"serving at (http://\S+)")


def write_consortium(world: World, directory: Path) -> tuple[Genesis, Path, dict[str, Path]]:
    """The genesis (members' keys = the world's organisation keys, plus ``carrier``) signed by
    every member, and each member's encrypted key file."""
    keys: dict[str, SigningKey] = {**world.org_keys, "carrier": SigningKey.generate(world.suite)}
    two = parse_policy(TWO_OF_FOUR)
    g = Genesis(
        name="remote-anchoring-test",
        suite=world.suite,
        t=T0 - 10_000,
        members={o: Member(o, (ROLES[o],), keys[o].public.raw) for o in ORGS},
        policies={"membership.*": two, "registry.*": two, "anchoring.*": two},
        checkpoint_quorum=3,
        ordering=Ordering("jetstream", 20, 20),
    )
    data = g.to_file([g.sign(o, k) for o, k in sorted(keys.items())])
    load_genesis(data)
    directory.mkdir(parents=True)
    (directory / "genesis.cbor").write_bytes(data)
    paths = {o: directory / "members" / o / "member.key" for o in ORGS}
    for o in ORGS:
        save_key(paths[o], keys[o], PASS, scrypt_n=1 << 10)
    return g, directory / "genesis.cbor", paths


class PeerProcess:
    """One ``python -m tally peer`` process; its output goes to a file in its directory."""

    def __init__(self, org: str, key: Path, genesis: Path, directory: Path, nats: list[str]):
        self.org = org
        self.out = directory / "out.log"
        directory.mkdir(parents=True)
        cfg = directory / "peer.toml"
        nats_list = ", ".join(f'"{u}"' for u in nats)
        cfg.write_text(
            f'[peer]\norg = "{org}"\nkey_file = "{key}"\ngenesis = "{genesis}"\n'
            f'data_dir = "{directory / "data"}"\nhost = "127.0.0.1"\nport = 0\n'
            f"nats = [{nats_list}]\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env["TALLY_KEY_PASSPHRASE"] = PASS
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tally", "peer", "--config", str(cfg)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    async def wait_url(self) -> str:
        async with asyncio.timeout(DEADLINE):
            while True:
                text = self.out.read_text(errors="replace")
                m = URL.search(text)
                if m:
                    return m.group(1)
                if self.proc.poll() is not None:
                    raise AssertionError(f"peer {self.org} exited {self.proc.returncode}: {text}")
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    require_nats_server()
    async with NatsCluster(tmp_path / "nats", size=3) as c:
        yield c


@pytest.fixture
def peers() -> Iterator[list[PeerProcess]]:
    procs: list[PeerProcess] = []
    yield procs
    for p in procs:
        p.stop()


def test_the_ledger_subsection_is_read_with_the_clouds_org_as_default(tmp_path: Path) -> None:
    data = config.load(None, {})
    data = {
        "cloud": {
            "org": "bank",
            "data_dir": str(tmp_path),
            "ledger": {
                "genesis": "g.cbor",
                "key_file": "bank.key",
                "peers": {"bank": "http://127.0.0.1:1"},
            },
        }
    }
    s = load_settings(data)
    assert s.ledger is not None and s.ledger.org == "bank" and s.ledger.timeout_s == 15.0
    with pytest.raises(config.ConfigError, match="peers"):
        load_settings({"cloud": {**data["cloud"], "ledger": {"genesis": "g", "key_file": "k"}}})


async def test_a_cloud_anchors_through_peer_processes_and_its_bundles_verify(
    world: World, tmp_path: Path, cluster: NatsCluster, peers: list[PeerProcess]
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    g, genesis_path, key_paths = write_consortium(world, tmp_path / "consortium")
    for org in ORGS:
        peers.append(PeerProcess(org, key_paths[org], genesis_path, tmp_path / "peers" / org,
                                 cluster.urls))  # fmt: skip
    urls = dict(zip(ORGS, await asyncio.gather(*(p.wait_url() for p in peers)), strict=True))
    started = loop.time()

    # the chain learns the edge and the device (and the rest of acme's and the cloud's)
    async with RemoteConsortium(g, urls, timeout=DEADLINE) as rc:
        for reg in [world.registrations[0], world.registrations[1], *world.registrations[3:]]:
            r = await rc.submit("registry", "register", [reg], "bank", world.org_keys["bank"])
            assert r.valid, (r.code, r.reason, r.error)
            assert r.log_index is not None and r.final_checkpoint.checkpoint.size > r.log_index
        # the log endpoint: a path at a size, nothing beyond the log
        size, last = r.final_checkpoint.checkpoint.size, r.log_index
        assert last is not None
        entry = await rc.log_entry("acme", last, size)
        assert entry is not None and entry.root == r.final_checkpoint.checkpoint.root
        at_bank = await rc.log_entry("bank", last, size)
        assert at_bank is not None and (at_bank.tx, at_bank.path) == (entry.tx, entry.path)
        assert await rc.log_entry("acme", last, size + 1000) is None
        assert await rc.log_entry("acme", size + 1000, size) is None
    registered = loop.time()

    ledger = LedgerSettings(genesis=genesis_path, key_file=key_paths["bank"], peers=urls,
                            timeout_s=DEADLINE)  # fmt: skip
    settings = world.settings(str(tmp_path / "cloud"), ledger=ledger)
    assert settings.ledger is not None and settings.ledger.org == "bank"
    link = remote_ledger(settings.ledger, PASS)
    service = build_service(settings, world.identity, world.trust, ledger=link)
    world.register_all(service.storage)
    try:
        port = await service.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for b in range(3):
                items = [world.reading("d1", T0 + 10_000 * b + 1000 * i) for i in range(3)]
                resp = await c.post("/v1/batches", content=world.upload("e1", items),
                                    headers={"content-type": "application/cbor"})  # fmt: skip
                assert resp.status_code == 200, resp.text
            assert service.anchorer is not None
            service.anchorer.notify()
            async with asyncio.timeout(DEADLINE):
                while service.storage.anchor_counts().get("anchored", 0) < 3:
                    assert service.storage.anchor_counts().get("refused", 0) == 0, (
                        service.anchorer.stats.refusals
                    )
                    await asyncio.sleep(0.05)
            anchored = loop.time()

            reading = service.storage.items(ItemQuery(device="d1", limit=100)).items[4]
            rec = service.storage.anchors([reading.batch_id])[reading.batch_id]
            resp = await c.get(f"/v1/proofs/items/{reading.hash.hex()}",
                               headers={"authorization": f"Bearer {TOKENS['acme']}"})  # fmt: skip
            assert resp.status_code == 200, resp.text
    finally:
        await service.stop()
        await link.close()

    bundle = decode_bundle(resp.content)
    assert bundle.chain is not None and bundle.chain.index == rec.log_index
    verdict = verify_bundle(resp.content, None, genesis=g, require_anchor=True)
    assert verdict.ok, verdict.reason
    assert f"anchored in tx {rec.log_index} of checkpoint" in verdict.line()
    # a link with nothing cached (a restarted cloud) finds the latest final checkpoint from
    # the peers, which still run
    with pytest.raises(ValueError, match="not the genesis key"):
        RemoteLedgerLink(RemoteConsortium(g, urls), "bank", world.org_keys["acme"])
    fresh = RemoteLedgerLink(RemoteConsortium(g, urls), "bank", world.org_keys["bank"])
    try:
        proof = await fresh.chain_proof(rec.log_index or 0)  # nothing cached: built now
    finally:
        await fresh.close()
    assert proof is not None and proof.tx == bundle.chain.tx
    assert proof.size >= bundle.chain.size
    rebuilt = replace(bundle, chain=proof).encode()
    other = verify_bundle(rebuilt, None, genesis=g, require_anchor=True)
    assert other.ok, other.reason
    print(
        f"\npeers up {started - began:.2f}s, 6 registrations {registered - started:.2f}s, "
        f"3 batches anchored {anchored - registered:.2f}s"
    )

"""The peer service over mutual TLS, and its ``GET /v1/blocks``.

Live: one member's peer serving HTTPS with ``tls_client_ca_file`` over a one-server NATS that
speaks mutual TLS, with certificates of a CA made for the test. A client without a
certificate, with another CA's certificate, or speaking plain HTTP is refused at the
handshake; :class:`RemoteConsortium` presenting its client certificate gets a transaction
final, and ``/v1/blocks`` shows the block it landed in. In process: ``/v1/blocks`` paging,
its refusals of bad parameters, and blocks indexed again from the transaction log.

Every wait is bounded; everything started is stopped. Without a ``nats-server`` binary the
live tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import require_nats_server
from tally import config
from tally.crypto.keystore import load_key
from tally.crypto.tlsconf import LocalPki, client_tls, make_local_pki
from tally.ledger.bootstrap import Created, create_consortium
from tally.ledger.client import Client
from tally.ledger.errors import EndorsementFailed
from tally.ledger.genesis import Ordering
from tally.ledger.natscluster import NatsCluster, NatsTls
from tally.ledger.orderer import build_block
from tally.ledger.peerservice import PeerConfig, PeerService, PeerServiceError
from tally.ledger.remote import RemoteConsortium

PASS = "peer-tls-test-passphrase"
DEADLINE = 20.0
RECORD = ["invoice", hashlib.sha256(b"simulated record over TLS").digest()]


@pytest.fixture
def created(tmp_path: Path) -> Created:
    return create_consortium(tmp_path / "c", {"bank": ["bank"]}, PASS, name="peer-tls-test",
                             ordering=Ordering("jetstream", 20, 20), scrypt_n=1 << 10)  # fmt: skip


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_local_pki(tmp_path / "tls", "peer test CA", servers=["peer"],
                          clients=["cloud", "member"], nodes=["nats"], valid_days=2)  # fmt: skip


def tls_config(pki: LocalPki) -> dict[str, Path]:
    cert, key = pki.pair(pki.servers["peer"])
    member, member_key = pki.pair(pki.clients["member"])
    return {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": pki.ca_file,
            "nats_ca_file": pki.ca_file, "nats_cert_file": member,
            "nats_key_file": member_key}  # fmt: skip


@pytest.fixture
async def service(tmp_path: Path, created: Created, pki: LocalPki) -> AsyncIterator[PeerService]:
    require_nats_server()
    nats_tls = NatsTls(*pki.pair(pki.nodes["nats"]), pki.ca_file)
    async with NatsCluster(tmp_path / "nats", size=1, tls=nats_tls) as cluster:
        cfg = PeerConfig.model_validate({
            "org": "bank", "key_file": created.key_path("bank"), "genesis": created.genesis_path,
            "data_dir": tmp_path / "bank", "nats": cluster.urls, **tls_config(pki),
        })  # fmt: skip
        svc = PeerService(cfg, PASS)
        try:
            await svc.start()
            yield svc
        finally:
            await svc.stop()


def tls12(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """In TLS 1.2 a refused client certificate fails the handshake itself."""
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def refused(url: str, verify: ssl.SSLContext | bool) -> None:
    async with httpx.AsyncClient(verify=verify, timeout=DEADLINE) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"{url}/v1/status")


async def test_the_peer_serves_only_clients_with_a_certificate_of_its_ca(
    service: PeerService, pki: LocalPki, tmp_path: Path
) -> None:
    url = service.url
    assert url.startswith("https://127.0.0.1:")
    bare = client_tls(pki.ca_file)
    assert bare is not None
    await refused(url, bare)  # no client certificate
    async with httpx.AsyncClient(verify=tls12(bare), timeout=DEADLINE) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/v1/status")
    other = make_local_pki(tmp_path / "other", "someone else's CA", clients=["cloud"])
    await refused(url, client_tls(pki.ca_file, *other.pair(other.clients["cloud"])) or False)
    await refused(url.replace("https://", "http://"), False)  # plain HTTP to the TLS port

    good = client_tls(pki.ca_file, *pki.pair(pki.clients["cloud"]))
    async with httpx.AsyncClient(verify=good or False, timeout=DEADLINE) as http:
        r = await http.get(f"{url}/v1/status")
    assert r.status_code == 200 and r.json()["org"] == "bank"


async def test_a_transaction_over_mutual_tls_and_its_block(
    service: PeerService, created: Created, pki: LocalPki
) -> None:
    key = load_key(created.key_path("bank"), PASS)
    cloud = pki.pair(pki.clients["cloud"])
    async with RemoteConsortium(created.genesis, {"bank": service.url}, timeout=DEADLINE,
                                ca_file=pki.ca_file, client_cert_file=cloud[0],
                                client_key_file=cloud[1]) as rc:  # fmt: skip
        r = await rc.submit("anchoring", "anchor_record", RECORD, "bank", key)
        status = await rc.status("bank")
    assert r.valid and r.final_checkpoint.signers == ("bank",), (r.code, r.reason)
    assert status is not None and status["height"] >= r.height

    async with RemoteConsortium(created.genesis, {"bank": service.url}, timeout=1.0,
                                ca_file=pki.ca_file) as rc:  # fmt: skip
        assert await rc.status("bank") is None  # no client certificate: no answer
        with pytest.raises(EndorsementFailed, match="no peers cannot satisfy"):
            await rc.submit("anchoring", "anchor_record", RECORD, "bank", key)

    async with httpx.AsyncClient(verify=client_tls(pki.ca_file, *cloud) or False) as http:
        got = (await http.get(f"{service.url}/v1/blocks", params={"after": r.height - 1,
                                                                  "limit": 1})).json()  # fmt: skip
    assert got["height"] >= r.height and [b["height"] for b in got["blocks"]] == [r.height]
    block = got["blocks"][0]
    assert block["signers"] == ["bank"] and isinstance(block["time"], int)
    assert len(block["hash"]) == 64 and len(block["state"]) == 64
    want = {"id": r.tx_id.hex(), "index": r.index, "contract": "anchoring",
            "fn": "anchor_record", "creator": "bank", "code": "valid", "reason": None}  # fmt: skip
    assert block["txs"][r.index] == want
    if got["height"] == r.height:
        assert (block["hash"], block["state"]) == (status["block"], status["state"])


def test_settings_and_certificates_are_checked_at_start(
    tmp_path: Path, created: Created, pki: LocalPki
) -> None:
    base = {"org": "bank", "key_file": str(created.key_path("bank")),
            "genesis": str(created.genesis_path), "data_dir": str(tmp_path / "bank"),
            "nats": ["tls://127.0.0.1:1"]}  # fmt: skip
    cert, key = pki.pair(pki.servers["peer"])
    for extra, error in [
        ({"tls_cert_file": str(cert)}, "tls_cert_file and tls_key_file must be given together"),
        ({"tls_client_ca_file": str(pki.ca_file)}, "tls_client_ca_file needs tls_cert_file"),
        ({"nats_key_file": str(key)}, "nats_cert_file and nats_key_file must be given together"),
    ]:
        with pytest.raises(config.ConfigError, match=error):
            config.section({"peer": {**base, **extra}}, "peer", PeerConfig, "peer.toml")
    client, client_key = pki.pair(pki.clients["cloud"])
    wrong = PeerConfig.model_validate({**base, "tls_cert_file": client, "tls_key_file": client_key})
    with pytest.raises(PeerServiceError, match=r"cloud\.pem \('cloud'\) is a client certificate"):
        PeerService(wrong, PASS)
    swapped = PeerConfig.model_validate({**base, "nats_cert_file": cert, "nats_key_file": key})
    with pytest.raises(PeerServiceError, match=r"is a server certificate, not for a TLS client"):
        PeerService(swapped, PASS)
    assert not (tmp_path / "bank").exists()  # refused before anything was written


# -- GET /v1/blocks in process ----------------------------------------------------------


class InProcess:
    """A peer service that is not started: blocks are committed by hand, HTTP through ASGI."""

    def __init__(self, created: Created, directory: Path) -> None:
        self.created = created
        cfg = PeerConfig(org="bank", key_file=created.key_path("bank"),
                         genesis=created.genesis_path, data_dir=directory,
                         nats=["nats://127.0.0.1:1"])  # fmt: skip
        self.service = PeerService(cfg, PASS)
        self.client = Client("bank", load_key(created.key_path("bank"), PASS), created.genesis)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.service.app),
                                      base_url="http://peer")  # fmt: skip

    def commit(self, n: int, junk: bool = False) -> list[bytes]:
        """Commit a block of ``n`` anchoring transactions (and an undecodable one)."""
        peer = self.service.peer
        txs, ids = [], []
        for i in range(n):
            proposal, tx_id = self.client.propose("anchoring", "anchor_record",
                                                  ["invoice", bytes([i]) * 32])  # fmt: skip
            txs.append(Client.transaction(proposal, self.client.endorse(proposal, {"bank": peer})))
            ids.append(tx_id)
        t = 1_700_000_000_000 + peer.height
        txs += [b"junk"] if junk else []
        block = build_block(self.created.genesis, peer.height + 1, peer.block_hash, t, txs)
        self.service.index.record(peer.commit(block), block)
        return ids

    async def blocks(self, query: str, status: int = 200) -> dict[str, Any]:
        r = await self.http.get(f"/v1/blocks{query}")
        assert r.status_code == status, r.text
        got: dict[str, Any] = r.json()
        return got

    async def close(self) -> None:
        await self.http.aclose()
        self.service.index.close()
        self.service.peer.close()


@pytest.fixture
async def local(tmp_path: Path, created: Created) -> AsyncIterator[InProcess]:
    p = InProcess(created, tmp_path / "bank")
    try:
        yield p
    finally:
        await p.close()


async def test_blocks_page_from_after_in_height_order(local: InProcess) -> None:
    assert await local.blocks("") == {"height": 0, "blocks": []}
    first = local.commit(2, junk=True)
    local.commit(1)
    local.commit(3)
    got = await local.blocks("?after=0&limit=2")
    assert got["height"] == 3 and [b["height"] for b in got["blocks"]] == [1, 2]
    one = got["blocks"][0]
    assert one["time"] == 1_700_000_000_000 and one["signers"] == ["bank"]
    assert [t["id"] for t in one["txs"][:2]] == [i.hex() for i in first]
    assert one["txs"][2] == {"id": None, "index": 2, "contract": None, "fn": None,
                             "creator": None, "code": "malformed",
                             "reason": "the transaction does not decode"}  # fmt: skip
    assert [b["height"] for b in (await local.blocks("?after=2"))["blocks"]] == [3]
    assert (await local.blocks("?after=3"))["blocks"] == []
    assert len((await local.blocks(""))["blocks"]) == 3


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("?limit=0", "parameter 'limit' must be an integer from 1 to 200, got '0'"),
        ("?limit=201", "parameter 'limit' must be an integer from 1 to 200, got '201'"),
        ("?limit=ten", "parameter 'limit' must be an integer from 1 to 200, got 'ten'"),
        ("?after=-1", "parameter 'after' must be a block height (an integer from 0), got '-1'"),
        ("?after=", "parameter 'after' must be a block height (an integer from 0), got ''"),
        ("?after=1&after=2", "parameter 'after' is given 2 times; give it at most once"),
        ("?from=1", "unknown parameter 'from' (the parameters are after, limit)"),
    ],
)
async def test_bad_block_parameters_are_refused_precisely(
    local: InProcess, query: str, detail: str
) -> None:
    body = await local.blocks(query, 400)
    assert (body["type"], body["status"], body["detail"]) == (
        "urn:tally:ledger:malformed", 400, detail
    )  # fmt: skip


async def test_blocks_missing_from_the_index_come_back_from_the_log(
    tmp_path: Path, created: Created
) -> None:
    p = InProcess(created, tmp_path / "bank")
    ids = p.commit(2)
    p.commit(1)
    before = (await p.blocks(""))["blocks"]
    await p.close()
    db = sqlite3.connect(tmp_path / "bank" / "index.sqlite")
    with db:  # as an index from before blocks were kept, or a crash before the index
        db.execute("DELETE FROM blocks")
        db.execute("DELETE FROM block_txs WHERE height = 1")
    db.close()
    again = InProcess(created, tmp_path / "bank")
    try:
        after = (await again.blocks(""))["blocks"]
    finally:
        await again.close()
    assert [b["height"] for b in after] == [1, 2] and after[0]["time"] is None
    assert [t["id"] for t in after[0]["txs"]] == [i.hex() for i in ids]
    for b, a in zip(before, after, strict=True):
        assert {**b, "time": None} == a  # all else, codes and states too, as before


async def test_the_cloud_reaches_peers_over_mutual_tls_from_its_settings(
    service: PeerService, created: Created, pki: LocalPki
) -> None:
    from tally.cloud.config import LedgerSettings
    from tally.cloud.server import ServerError, remote_ledger

    cert, key = pki.pair(pki.clients["cloud"])
    base = {"genesis": created.genesis_path, "org": "bank", "key_file": created.key_path("bank"),
            "peers": {"bank": service.url}, "ca_file": pki.ca_file}  # fmt: skip
    link = remote_ledger(
        LedgerSettings.model_validate(base | {"client_cert_file": cert, "client_key_file": key}),
        PASS,
    )
    try:
        status = await link.remote.status("bank")
        assert status is not None and status["org"] == "bank"
    finally:
        await link.close()
    with pytest.raises(ValueError, match="client_cert_file and client_key_file go together"):
        LedgerSettings.model_validate(base | {"client_cert_file": cert})
    missing = base | {"ca_file": pki.ca_file.parent / "absent.pem"}
    with pytest.raises(ServerError, match=r"cloud\.ledger"):
        remote_ledger(LedgerSettings.model_validate(missing), PASS)

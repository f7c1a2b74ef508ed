"""The projector reading a real peer service over HTTP (:class:`PeerSource`): one member's
peer (the bank) with the finance contracts, ordered by JetStream on a one-server local NATS.
Transactions go through the peer's HTTP API; the projector reads ``/v1/status``,
``/v1/blocks`` and ``/v1/state`` (a full scan: the HTTP source gives no writes) and projects
the blocks with the orderer's times and the records with their rows. Bad answers and an
unreachable peer raise SourceError naming the URL.

Without a ``nats-server`` binary the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from services import require_nats_server
from tally.cloud.live import EventHub
from tally.cloud.storage import open_storage
from tally.cloud.views.model import OrgRow
from tally.cloud.views.project import Projector
from tally.cloud.views.sources import PeerSource, SourceError
from tally.cloud.views.store import Views
from tally.crypto import SigningKey
from tally.crypto.keystore import load_key
from tally.finance.policies import finance_contracts
from tally.ledger.bootstrap import Created, create_consortium
from tally.ledger.contract import Registry
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Ordering
from tally.ledger.natscluster import NatsCluster
from tally.ledger.peerservice import PeerConfig, PeerService
from tally.ledger.policy import parse_policy
from tally.ledger.remote import RemoteConsortium

PASS = "projector-peer-test-passphrase"
DEADLINE = 20.0
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    storage = open_storage(f"sqlite:///{tmp_path / 'cloud.db'}")
    storage.migrate()
    yield Views(storage.engine)
    storage.close()


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[tuple[PeerService, Created]]:
    require_nats_server()
    members = {"bank": ["bank"]}
    created = create_consortium(
        tmp_path / "c", members, PASS, name="projector-peer-test", scrypt_n=1 << 10,
        ordering=Ordering("jetstream", 20, 20),
        policies={f"{c}.*": parse_policy("org:bank") for c in ("parties", "market", "credit")},
    )  # fmt: skip
    async with NatsCluster(tmp_path / "nats", size=1) as cluster:
        cfg = PeerConfig(org="bank", key_file=created.key_path("bank"),
                         genesis=created.genesis_path, data_dir=tmp_path / "bank",
                         nats=cluster.urls)  # fmt: skip
        svc = PeerService(cfg, PASS, Registry(*system_contracts(), *finance_contracts()))
        try:
            await svc.start()
            yield svc, created
        finally:
            await svc.stop()


async def test_a_peer_over_http_is_projected(
    peer: tuple[PeerService, Created], views: Views
) -> None:
    svc, created = peer
    key = load_key(created.key_path("bank"), PASS)
    party = SigningKey.generate(created.genesis.suite).public.raw
    calls = [
        ("parties", "register", ["sme-9", "Simulated SME Nine", "supplier", "intl", party]),
        ("market", "set_commodity", ["copper", "t", Decimal("0.005")]),
        ("market", "set_price", ["copper", Decimal(70_000), "CNY"]),
        ("credit", "set_limit", ["sme-9", 10**8, "CNY"]),
    ]
    async with RemoteConsortium(created.genesis, {"bank": svc.url}, timeout=DEADLINE) as rc:
        for contract, fn, args in calls:
            r = await rc.submit(contract, fn, args, "bank", key)
            assert r.valid, (contract, fn, r.code, r.reason, r.error)
    source = PeerSource(svc.url)
    hub = EventHub()
    sub = hub.subscribe()
    try:
        res = await asyncio.to_thread(Projector(views, source, hub, simulated=True).sync)
        height = svc.peer.height
        assert (res.height, res.blocks, res.full_scan) == (height, height, True)
        assert res.rows == {"org": 1, "limit": 1}
        assert views.org("sme-9") == OrgRow("sme-9", "Simulated SME Nine", "supplier", None,
                                            None, None, None, "bank", True)  # fmt: skip
        fns = []
        for h in range(1, height + 1):
            block = views.block(h)
            assert block is not None and block.signers == ("bank",)
            assert block.hash == svc.peer.txlog.block_hash_at(h).hex()
            assert block.time_ms is not None and block.state is not None
            fns += [(x.contract, x.fn, x.creator, x.code) for x in views.block_txs(h)]
        assert fns == [(c, f, "bank", "valid") for c, f, _ in calls]
        kinds = []
        while sub.pending():
            e = await sub.next(1.0)
            assert e is not None
            kinds.append(e.kind)
        assert kinds == ["block"] * height
        # nothing new: no block, no row
        again = await asyncio.to_thread(Projector(views, source, hub).sync)
        assert (again.blocks, sum(again.rows.values())) == (0, 0)
        # the peer's answers are checked
        with pytest.raises(ValueError, match=r"limit 201 within 1\.\.200"):
            source.blocks(0, 201)
    finally:
        source.close()


def test_bad_answers_and_an_unreachable_peer_raise_source_errors(free_port: object) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/status":
            return httpx.Response(200, json={"height": "ten"})
        if request.url.path == "/v1/blocks":
            return httpx.Response(200, json={"height": 3, "blocks": [
                {"height": 2, "hash": "ab", "time": 1, "state": None, "signers": [], "txs": []},
                {"height": 1, "hash": "cd", "time": 1, "state": None, "signers": [], "txs": []},
            ]})  # fmt: skip
        return httpx.Response(404, json={"detail": "no such thing here"})

    source = PeerSource("http://peer.test", transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(SourceError, match=r"/v1/status: height 'ten' is not a height"):
            source.height()
        with pytest.raises(SourceError, match=r"heights \[2, 1\].* not ascending"):
            source.blocks(0, 10)
        with pytest.raises(SourceError, match=r"/v1/state: HTTP 404: no such thing here"):
            source.scan("party/")
    finally:
        source.close()
    port = free_port()  # type: ignore[operator]
    away = PeerSource(f"http://127.0.0.1:{port}", timeout=2.0)
    try:
        with pytest.raises(SourceError, match=f"peer http://127.0.0.1:{port}/v1/status: Connect"):
            away.height()
    finally:
        away.close()

"""The local NATS JetStream cluster over mutual TLS: three servers on free ports whose client
ports and routes speak TLS only with certificates of a CA made for the test; a client without
TLS, without a certificate, or with another CA's certificate is refused, and the JetStream
orderer presenting its client certificate orders blocks over TLS.

Every wait is bounded; the cluster is stopped at the end. Without a ``nats-server`` binary the
tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from services import require_nats_server
from tally.crypto import INTL, SigningKey, cbor
from tally.crypto.tlsconf import LocalPki, X509Error, client_tls, issue_node, make_local_pki
from tally.crypto.x509ca import check_usage, load_ca, load_certificate
from tally.ledger.genesis import Genesis, Member, Ordering
from tally.ledger.jetstream import JetStreamOrderer, OrdererUnavailable
from tally.ledger.natscluster import (
    NatsCluster,
    NatsTls,
)

DEADLINE = 20.0


def genesis() -> Genesis:
    key = SigningKey(INTL, bytes(range(32)))
    return Genesis(
        name="nats-tls-test",
        suite=INTL,
        t=0,
        members={"bank": Member("bank", ("bank",), key.public.raw)},
        policies={},
        checkpoint_quorum=1,
        ordering=Ordering("jetstream", 3, 30),
    )


def tx(i: int) -> bytes:
    return cbor.encode({"v": 1, "proposal": i.to_bytes(4, "big"), "endorsements": []})


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_local_pki(
        tmp_path / "tls", "nats test CA", clients=["orderer"], nodes=["nats"], valid_days=2
    )


@pytest.fixture
async def cluster(tmp_path: Path, pki: LocalPki) -> AsyncIterator[NatsCluster]:
    require_nats_server()
    tls = NatsTls(*pki.pair(pki.nodes["nats"]), pki.ca_file)
    async with NatsCluster(tmp_path / "nats", size=3, tls=tls) as c:
        yield c


async def refused(cluster: NatsCluster, tls: ssl.SSLContext | None, url: str) -> None:
    """Connect as a one-shot client: the server must drop it (nothing gets in)."""
    errors: list[Exception] = []

    async def note(exc: Exception) -> None:
        errors.append(exc)

    async with asyncio.timeout(DEADLINE):
        with pytest.raises((OSError, nats.errors.Error, TimeoutError)):
            nc = await nats.connect(
                [url], tls=tls, allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=2, error_cb=note,
            )  # fmt: skip
            await nc.close()


async def plain_answer(url: str) -> bytes:
    """All the server answers a client that speaks plain NATS (no TLS) on ``url`` after its
    INFO (which says TLS is required), until it closes the connection."""
    host, port = url.removeprefix("tls://").rsplit(":", 1)
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            info = await reader.readline()
            assert info.startswith(b"INFO ") and b'"tls_required":true' in info
            writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()


def test_a_node_certificate_serves_both_ends_of_a_route(pki: LocalPki) -> None:
    cert = load_certificate(pki.nodes["nats"])
    check_usage(cert, "server")
    check_usage(cert, "client")  # a route's dialling end presents it as a client
    with pytest.raises(X509Error, match="needs its subject alternative names"):
        issue_node(load_ca(pki.directory), "other", [], pki.directory)
    with pytest.raises(X509Error, match="already exists"):
        issue_node(load_ca(pki.directory), "nats", ["127.0.0.1"], pki.directory, 1)


async def test_the_cluster_speaks_mutual_tls_only(
    cluster: NatsCluster, pki: LocalPki, tmp_path: Path
) -> None:
    assert all(u.startswith("tls://127.0.0.1:") for u in cluster.urls)
    conf = (cluster.directory / "n0" / "server.conf").read_text()
    assert conf.count("verify: true") == 2 and conf.count("ca_file:") == 2  # clients, routes
    url = cluster.urls[0]
    assert await plain_answer(url) == b""  # no TLS at all: closed, no PONG
    no_cert = client_tls(pki.ca_file)
    await refused(cluster, no_cert, url)  # TLS, but no client certificate
    other = make_local_pki(tmp_path / "other", "someone else's CA", clients=["orderer"])
    stranger = client_tls(pki.ca_file, *other.pair(other.clients["orderer"]))
    await refused(cluster, stranger, url)  # a client certificate of another CA
    log = (cluster.directory / "n0" / "server.log").read_text()
    assert "TLS handshake error" in log and "certificate" in log

    good = client_tls(pki.ca_file, *pki.pair(pki.clients["orderer"]))
    async with asyncio.timeout(DEADLINE):
        nc = await nats.connect([url], tls=good, allow_reconnect=False, connect_timeout=2)
        try:
            assert nc.is_connected and nc.connected_url is not None
        finally:
            await nc.close()


async def test_the_orderer_orders_over_tls(cluster: NatsCluster, pki: LocalPki) -> None:
    g = genesis()
    good = client_tls(pki.ca_file, *pki.pair(pki.clients["orderer"]))
    async with asyncio.timeout(DEADLINE):
        async with JetStreamOrderer(g, cluster.urls, tls=good, timeout=DEADLINE) as orderer:
            for i in range(3):
                await orderer.submit(tx(i))
            blocks = orderer.blocks(1)
            first = await anext(blocks)
            await blocks.aclose()  # type: ignore[attr-defined]
    assert first.height == 1 and first.chain == g.chain
    assert list(first.txs) == [tx(0), tx(1), tx(2)]

    bare = JetStreamOrderer(g, cluster.urls, tls=client_tls(pki.ca_file), timeout=1.0)
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(OrdererUnavailable, match="connecting"):
            await bare.start()

"""The peer's read-only ``GET /v1/state``: pages of one prefix in key order, followed with
``after``, as deterministic CBOR with the height they were read at; bounded in items and
bytes; every bad parameter refused with a precise RFC 9457 problem, changing nothing.

The service is built as ``tally peer`` builds it and spoken to through its HTTP app; its
state is written directly, as a committed block would leave it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tally.crypto import cbor
from tally.ledger import peerservice
from tally.ledger.bootstrap import create_consortium
from tally.ledger.genesis import Ordering
from tally.ledger.peerservice import PeerConfig, PeerService

PASS = "peer-state-test-passphrase"


class Peer:
    def __init__(self, service: PeerService, http: httpx.AsyncClient) -> None:
        self.service = service
        self.http = http
        self.height = 0

    def commit(self, writes: dict[str, Any]) -> None:
        """Write ``writes`` as the next block would (None deletes)."""
        self.height += 1
        rows = [(k, v, (self.height, i)) for i, (k, v) in enumerate(sorted(writes.items()))]
        self.service.peer.state.apply(self.height, rows, b"\x01" * 32)

    def snapshot(self) -> list[tuple[str, Any, Any]]:
        return self.service.peer.state.range("")

    async def page(self, **params: str) -> dict[str, Any]:
        resp = await self.http.get("/v1/state", params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/cbor"
        got = cbor.decode(resp.content, max_size=16 << 20)  # refuses non-deterministic CBOR
        assert isinstance(got, dict)
        return got

    async def problem(self, query: str) -> str:
        """The detail of the 400 problem ``/v1/state?<query>`` gets; state unchanged."""
        before = self.snapshot()
        resp = await self.http.get(f"/v1/state?{query}")
        assert resp.status_code == 400, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        body = resp.json()
        assert (body["type"], body["title"], body["status"]) == (
            "urn:tally:ledger:malformed", "malformed", 400
        )  # fmt: skip
        assert self.snapshot() == before and self.service.peer.height == self.height
        detail: str = body["detail"]
        return detail


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[Peer]:
    created = create_consortium(
        tmp_path / "c", {"bank": ["bank"], "wh": ["warehouse"]}, PASS,
        ordering=Ordering("jetstream", 20, 20), scrypt_n=1 << 10,
    )  # fmt: skip
    cfg = PeerConfig(org="wh", key_file=created.key_path("wh"), genesis=created.genesis_path,
                     data_dir=tmp_path / "wh", nats=["nats://127.0.0.1:1"])  # fmt: skip
    service = PeerService(cfg, PASS)
    transport = httpx.ASGITransport(app=service.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://peer") as http:
            yield Peer(service, http)
    finally:
        service.index.close()
        service.peer.close()


def order(i: int) -> dict[str, Any]:
    return {"id": f"W-{i}:release:1", "weight": Decimal(f"{i}.125"), "loan": None,
            "to": 10**12 + i, "lots": ["a", "b"]}  # fmt: skip


async def test_pages_follow_the_prefix_in_key_order(peer: Peer) -> None:
    inside = {f"relord/S/W-{i:04d}:release:1": order(i) for i in range(1203)}
    peer.commit({**inside, "relord/S": 1, "relord/S0": 2, "relord/T/x": 3, "rcpt/W-1": 4})
    peer.commit({"other/key": "x"})  # the height moves on
    want = sorted(inside.items())
    got: list[tuple[str, Any]] = []
    after: str | None = None
    pages = []
    while True:
        params = {"prefix": "relord/S/"} | ({} if after is None else {"after": after})
        page = await peer.page(**params)
        assert set(page) == {"height", "items", "more"} and page["height"] == 2
        pages.append((len(page["items"]), page["more"]))
        got += [(k, v) for k, v in page["items"]]
        if not page["more"]:
            break
        after = page["items"][-1][0]
    assert pages == [(500, True), (500, True), (203, False)]
    assert got == want  # values round-trip exactly, decimals and all
    assert got[7][1]["weight"] == Decimal("7.125")

    small = await peer.page(prefix="relord/S/", limit="2", after="relord/S/W-0100")
    assert [k for k, _ in small["items"]] == [
        "relord/S/W-0100:release:1", "relord/S/W-0101:release:1"
    ]  # fmt: skip
    assert small["more"] is True
    last = await peer.page(prefix="relord/S/", after=want[-1][0])
    assert (last["items"], last["more"]) == ([], False)
    before_all = await peer.page(prefix="relord/S/", after="a", limit="1")  # before the prefix
    assert before_all["items"][0][0] == want[0][0]
    exact = await peer.page(prefix="rcpt/W-1", limit="1")
    assert exact["items"] == [["rcpt/W-1", 4]]
    none = await peer.page(prefix="nothing/")
    assert none == {"height": 2, "items": [], "more": False}


async def test_a_page_is_bounded_in_bytes_but_holds_at_least_one_item(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peerservice, "MAX_PAGE_BYTES", 4096)
    big = "x" * 3000
    peer.commit({f"blob/{i}": big for i in range(5)} | {"blob/5": "y" * 9000})
    sizes = []
    after = None
    while True:
        params = {"prefix": "blob/"} | ({} if after is None else {"after": after})
        resp = await peer.http.get("/v1/state", params=params)
        assert len(resp.content) <= 4096 or resp.content.count(b"y" * 9000) == 1
        page = cbor.decode(resp.content)
        sizes.append(len(page["items"]))
        if not page["more"]:
            break
        after = page["items"][-1][0]
    assert sizes == [1, 1, 1, 1, 1, 1]  # two 3 kB values do not fit in 4 kB; the 9 kB one alone


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "parameter 'prefix' is required and must not be empty (the whole state is not "
             "served)"),
        ("prefix=", "parameter 'prefix' is required and must not be empty (the whole state is "
                    "not served)"),
        ("prefix=a&limit=0", "parameter 'limit' must be an integer from 1 to 1000, got '0'"),
        ("prefix=a&limit=1001", "parameter 'limit' must be an integer from 1 to 1000, "
                                "got '1001'"),
        ("prefix=a&limit=%2B5", "parameter 'limit' must be an integer from 1 to 1000, "
                                "got '+5'"),
        ("prefix=a&limit=ten", "parameter 'limit' must be an integer from 1 to 1000, "
                               "got 'ten'"),
        ("prefix=a&limit=", "parameter 'limit' must be an integer from 1 to 1000, got ''"),
        ("prefix=a&after=", "parameter 'after' is not a state key: leave it out to start at "
                            "the prefix"),
        ("prefix=a%00b", "parameter 'prefix' is not a state key: must not contain NUL"),
        ("prefix=a&after=b%00", "parameter 'after' is not a state key: must not contain NUL"),
        ("prefix=" + "k" * 1025, "parameter 'prefix' is not a state key: 1025 UTF-8 bytes, "
                                 "more than 1024"),
        ("prefix=a&prefix=b", "parameter 'prefix' is given 2 times; give it at most once"),
        ("prefix=a&limit=1&limit=2", "parameter 'limit' is given 2 times; give it at most "
                                     "once"),
        ("prefix=a&from=b", "unknown parameter 'from' (the parameters are prefix, after, "
                            "limit)"),
    ],
)  # fmt: skip
async def test_bad_parameters_are_refused_precisely(peer: Peer, query: str, detail: str) -> None:
    peer.commit({"a/1": 1})
    assert await peer.problem(query) == detail


async def test_limit_bounds_are_inclusive(peer: Peer) -> None:
    peer.commit({f"k/{i:04d}": i for i in range(1001)})
    assert len((await peer.page(prefix="k/", limit="1"))["items"]) == 1
    full = await peer.page(prefix="k/", limit="1000")
    assert len(full["items"]) == 1000 and full["more"] is True
    assert len((await peer.page(prefix="k/"))["items"]) == 500

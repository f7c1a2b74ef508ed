"""HTTP round trips: HttpPublisher -> uvicorn-served HttpEndpoint on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.publish import HttpPublisher, PublishRejected
from tally.device.publish.wire import COSE_SIGN1_MEDIA_TYPE
from tally.edge.adapters import HttpEndpoint


def envelopes(dev: str, n: int) -> list[bytes]:
    signer = DeviceSigner(dev, SigningKey.generate("intl"), fw=b"\x02" * 32)
    return [
        signer.next(1_700_000_000_000 + i, (Measurement("weight", Decimal("1.250"), "t"),))
        for i in range(n)
    ]


async def test_publisher_round_trip() -> None:
    got: list[tuple[bytes, str]] = []
    async with HttpEndpoint(lambda d, s: got.append((d, s)), port=0) as ep:
        assert ep.port > 0
        envs = envelopes("scale-1", 5)
        async with HttpPublisher(ep.url) as pub:
            for env in envs:
                await pub.publish("site-a", "scale-1", env)
            assert pub.published == 5
    assert [d for d, _ in got] == envs  # delivered synchronously, before the 202
    assert all(s.startswith("http:127.0.0.1:") for _, s in got)
    assert ep.stats.delivered == 5 and ep.stats.refused == 0


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"\xd2\x84" + b"\x00" * 2000, COSE_SIGN1_MEDIA_TYPE, 413, "payload-too-large"),
        (b"", COSE_SIGN1_MEDIA_TYPE, 400, "empty-body"),
        (b"hello, not cbor", COSE_SIGN1_MEDIA_TYPE, 400, "not-cose-sign1"),
        (b"\xd2\x84\x40", "application/json", 415, "unsupported-media-type"),
        (
            b"\xd2\x84\x40",
            'application/cose; cose-type="cose-encrypt0"',
            415,
            "unsupported-media-type",
        ),
    ],
)
async def test_bad_requests_get_problem_details(
    body: bytes, ctype: str, status: int, code: str
) -> None:
    got: list[bytes] = []
    async with (
        HttpEndpoint(lambda d, s: got.append(d), max_bytes=1024) as ep,
        httpx.AsyncClient() as client,
    ):
        resp = await client.post(
            f"{ep.url}/v1/envelopes", content=body, headers={"content-type": ctype}
        )
        assert resp.status_code == status
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["type"] == f"urn:tally:problem:{code}"
        assert problem["status"] == status and problem["detail"]
        # the endpoint still serves after the bad request
        ok = await client.post(
            f"{ep.url}/v1/envelopes",
            content=envelopes("d", 1)[0],
            headers={"content-type": COSE_SIGN1_MEDIA_TYPE},
        )
        assert ok.status_code == 202
    assert len(got) == 1 and ep.stats.refused == 1


async def test_chunked_oversized_body_is_refused_while_streaming() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"\xd2\x84"
        for _ in range(100):
            yield b"\x00" * 1000

    async with HttpEndpoint(lambda d, s: None, max_bytes=4096) as ep, httpx.AsyncClient() as c:
        resp = await c.post(
            f"{ep.url}/v1/envelopes",
            content=chunks(),
            headers={"content-type": COSE_SIGN1_MEDIA_TYPE},
        )
        assert resp.status_code == 413 and resp.json()["max_bytes"] == 4096


async def test_wrong_method_and_path_are_problems_too() -> None:
    async with HttpEndpoint(lambda d, s: None) as ep, httpx.AsyncClient() as c:
        r1 = await c.get(f"{ep.url}/v1/envelopes")
        r2 = await c.post(f"{ep.url}/v1/other", content=b"x")
    assert r1.status_code == 405 and r1.json()["type"] == "urn:tally:problem:method-not-allowed"
    assert r2.status_code == 404 and r2.json()["type"] == "urn:tally:problem:not-found"


async def test_publisher_raises_rejected_with_the_problem_and_callback_errors_are_contained() -> (
    None
):
    def broken(data: bytes, source: str) -> None:
        raise RuntimeError("gateway bug")

    async with HttpEndpoint(broken, max_bytes=100) as ep, HttpPublisher(ep.url) as pub:
        with pytest.raises(PublishRejected) as info:
            await pub.publish("s", "d", b"\xd2\x84" + b"\x00" * 200)
        assert info.value.status == 413
        assert info.value.problem["type"] == "urn:tally:problem:payload-too-large"
        await pub.publish("s", "d", b"\xd2\x84\x00")  # accepted although the callback raises
    assert ep.stats.callback_errors == 1

"""CoAP round trips: CoapPublisher -> aiocoap CoapEndpoint on a free UDP port."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiocoap
import pytest

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.publish import CoapPublisher, PublishRejected
from tally.edge.adapters import CoapEndpoint


def envelopes(dev: str, n: int, labels: int = 0) -> list[bytes]:
    signer = DeviceSigner(dev, SigningKey.generate("intl"), fw=b"\x03" * 32)
    extra = tuple((f"tag{k:04d}", "E200" + "0" * 20) for k in range(labels))
    return [
        signer.next(
            1_700_000_000_000 + i, (Measurement("rssi", Decimal("-61.5"), "dB[mW]"),), extra
        )
        for i in range(n)
    ]


async def test_publisher_round_trip_including_a_blockwise_envelope() -> None:
    got: list[tuple[bytes, str]] = []
    async with CoapEndpoint(lambda d, s: got.append((d, s)), port=0) as ep:
        envs = envelopes("gate-1", 3) + envelopes("gate-2", 1, labels=120)
        assert len(envs[-1]) > 3000  # needs RFC 7959 block-wise transfer
        async with CoapPublisher("127.0.0.1", ep.port) as pub:
            for env in envs:
                await pub.publish("site-a", "gate", env)
    assert [d for d, _ in got] == envs
    assert all(s.startswith("coap:") for _, s in got)


async def test_concurrent_first_publishes_share_one_client_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[aiocoap.Context] = []
    real = aiocoap.Context.create_client_context

    async def counting(*args: object, **kwargs: object) -> aiocoap.Context:
        ctx = await real(*args, **kwargs)  # type: ignore[arg-type]
        created.append(ctx)
        return ctx

    monkeypatch.setattr(aiocoap.Context, "create_client_context", counting)
    got: list[bytes] = []
    async with CoapEndpoint(lambda d, s: got.append(d), port=0) as ep:
        envs = envelopes("door-1", 6)
        pub = CoapPublisher("127.0.0.1", ep.port)  # no context yet: the publishes race for it
        try:
            await asyncio.gather(*(pub.publish("site-a", "door-1", e) for e in envs))
        finally:
            await pub.close()
    assert sorted(got) == sorted(envs)
    assert len(created) == 1


async def _post(port: int, payload: bytes, fmt: int | None) -> aiocoap.Message:
    ctx = await aiocoap.Context.create_client_context(transports=["udp6"])
    try:
        req = aiocoap.Message(code=aiocoap.POST, uri=f"coap://127.0.0.1:{port}/up", payload=payload)
        if fmt is not None:
            req.opt.content_format = fmt
        resp: aiocoap.Message = await ctx.request(req).response
        return resp
    finally:
        await ctx.shutdown()


@pytest.mark.parametrize(
    ("payload", "fmt", "code"),
    [
        (b"\xd2\x84\x40", 50, aiocoap.UNSUPPORTED_CONTENT_FORMAT),  # application/json
        (b"\xd2\x84\x40", None, aiocoap.UNSUPPORTED_CONTENT_FORMAT),
        (b"\xd2\x84" + b"\x00" * 600, 18, aiocoap.REQUEST_ENTITY_TOO_LARGE),
        (b"garbage!", 18, aiocoap.BAD_REQUEST),
        (b"", 18, aiocoap.BAD_REQUEST),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    payload: bytes, fmt: int | None, code: aiocoap.numbers.codes.Code
) -> None:
    got: list[bytes] = []
    async with CoapEndpoint(lambda d, s: got.append(d), port=0, max_bytes=512) as ep:
        resp = await _post(ep.port, payload, fmt)
        assert resp.code == code and resp.payload  # diagnostic text
        if code == aiocoap.REQUEST_ENTITY_TOO_LARGE:
            assert resp.opt.size1 == 512
        ok = await _post(ep.port, b"\xd2\x84\x40", 18)
        assert ok.code == aiocoap.CHANGED
    assert got == [b"\xd2\x84\x40"] and ep.stats.refused == 1


async def test_publisher_raises_rejected_and_callback_errors_are_contained() -> None:
    def broken(data: bytes, source: str) -> None:
        raise ValueError("gateway bug")

    async with CoapEndpoint(broken, port=0, max_bytes=64) as ep:
        async with CoapPublisher("127.0.0.1", ep.port) as pub:
            with pytest.raises(PublishRejected) as info:
                await pub.publish("s", "d", b"\xd2\x84" + b"\x01" * 100)
            assert info.value.status == "4.13"
            await pub.publish("s", "d", b"\xd2\x84\x01")
        assert ep.stats.callback_errors == 1

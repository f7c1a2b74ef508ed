"""The price feed: the simulated walk, quote files (CSV, JSON lines) and the HTTP adapter
against a real local HTTP server, with precise errors for malformed quotes."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tally.finance.prices import (
    AsyncHttpPriceFeed,
    FeedError,
    HttpPriceFeed,
    PriceError,
    PriceTick,
    RandomWalk,
    read_quotes,
)

T0 = 1_760_000_000_000

# -- the simulated walk -------------------------------------------------------------------------


def test_random_walk_is_reproducible_labelled_and_quantised() -> None:
    start = {"copper": "68000", "rebar": D("3700.005")}
    a = RandomWalk(start, seed=7, t0_ms=T0).ticks(50)
    b = RandomWalk(start, seed=7, t0_ms=T0).ticks(50)
    assert a == b
    assert a[:2] == [
        PriceTick("copper", D("68000.00"), "CNY", T0, "simulated"),
        PriceTick("rebar", D("3700.00"), "CNY", T0, "simulated"),  # half-even to 0.01
    ]
    assert a[-1].t_ms == T0 + 49 * 60_000
    assert {t.source for t in a} == {"simulated"}
    assert all(t.price.as_tuple().exponent == -2 for t in a)
    copper = [t.price for t in a if t.commodity == "copper"]
    assert len(set(copper)) > 10  # it moves
    for prev, now in itertools.pairwise(copper):
        assert abs(now - prev) <= prev * D("0.0100") + D("0.01")  # at most 2 × 50 bp a step
    other = RandomWalk(start, seed=8, t0_ms=T0).ticks(50)
    assert [t.price for t in other] != [t.price for t in a]


def test_adding_a_commodity_leaves_the_others_paths_alone() -> None:
    one = RandomWalk({"copper": "68000"}, seed=3, t0_ms=T0).ticks(20)
    two = RandomWalk({"copper": "68000", "corn": "2700"}, seed=3, t0_ms=T0).ticks(20)
    assert one == [t for t in two if t.commodity == "copper"]


def test_random_walk_never_goes_below_a_cent() -> None:
    ticks = RandomWalk({"scrap": "0.01"}, seed=1, t0_ms=T0, step_bp=4999).ticks(200)
    assert min(t.price for t in ticks) == D("0.01")


@pytest.mark.parametrize(
    ("start", "kw", "message"),
    [
        ({}, {}, "random walk: no commodities given"),
        ({"copper": "-5"}, {}, "random walk start of 'copper': field 'price': '-5' must be a "
         "positive finite number"),
        ({"copper": "abc"}, {}, "random walk start of 'copper': field 'price': 'abc' is not a "
         "decimal number"),
        ({"a/b": "1"}, {}, "random walk start of 'a/b': field 'commodity': 'a/b' must be "
         "non-empty text without '/' or surrounding spaces"),
        ({"copper": "1"}, {"step_bp": 6000}, "random walk: step_bp 6000 must be an integer in "
         "[0, 5000)"),
        ({"copper": "1"}, {"currency": "cny"}, "random walk: field 'currency': 'cny' must be "
         "three capital letters"),
    ],
)  # fmt: skip
def test_random_walk_bad_start(start: dict[str, str], kw: dict[str, object], message: str) -> None:
    with pytest.raises(PriceError) as e:
        RandomWalk(start, seed=1, t0_ms=T0, **kw)  # type: ignore[arg-type]
    assert str(e.value) == message


# -- quote files --------------------------------------------------------------------------------


def test_csv_quotes(tmp_path: Path) -> None:
    p = tmp_path / "shfe.csv"
    p.write_text(
        "commodity,price,currency,t_ms,source\n"
        f"copper,68250.50,CNY,{T0},SHFE\n"
        "\n"
        f"aluminium, 19010 ,CNY,{T0 + 1},\n"
        f"copper,68300,CNY,{T0 + 60_000},SHFE\n"
    )
    assert read_quotes(p) == [
        PriceTick("copper", D("68250.50"), "CNY", T0, "SHFE"),
        PriceTick("aluminium", D("19010"), "CNY", T0 + 1, "file:shfe.csv"),
        PriceTick("copper", D("68300"), "CNY", T0 + 60_000, "SHFE"),
    ]


def test_json_lines_quotes_read_numbers_exactly(tmp_path: Path) -> None:
    p = tmp_path / "quotes.jsonl"
    p.write_text(
        f'{{"commodity": "copper", "price": 68250.10, "currency": "CNY", "t_ms": {T0}}}\n'
        f'{{"commodity": "corn", "price": "2701.3", "currency": "CNY", "t_ms": {T0}, '
        '"source": "DCE"}\n'
    )
    assert read_quotes(p) == [
        PriceTick("copper", D("68250.10"), "CNY", T0, "file:quotes.jsonl"),
        PriceTick("corn", D("2701.3"), "CNY", T0, "DCE"),
    ]
    assert str(read_quotes(p)[0].price) == "68250.10"


HEADER = "commodity,price,currency,t_ms\n"
BAD_CSV = [
    (HEADER + f"copper,abc,CNY,{T0}\n",
     "q.csv line 2: field 'price': 'abc' is not a decimal number"),
    (HEADER + f"copper,0,CNY,{T0}\n",
     "q.csv line 2: field 'price': '0' must be a positive finite number"),
    (HEADER + f"copper,NaN,CNY,{T0}\n",
     "q.csv line 2: field 'price': 'NaN' must be a positive finite number"),
    (HEADER + f"copper,1,cny,{T0}\n",
     "q.csv line 2: field 'currency': 'cny' must be three capital letters"),
    (HEADER + "copper,1,CNY,soon\n",
     "q.csv line 2: field 't_ms': 'soon' must be an integer (ms since the epoch)"),
    (HEADER + "copper,1,CNY,-5\n", "q.csv line 2: field 't_ms': -5 must not be negative"),
    (HEADER + f"copper,1,CNY,{T0},x\n",
     "q.csv line 2: 5 values for 4 columns ['commodity', 'price', 'currency', 't_ms']"),
    ("commodity,price,t_ms\ncopper,1,5\n", "q.csv line 2: missing field(s) ['currency']"),
    (HEADER[:-1] + ",venue\ncopper,1,CNY,5,SHFE\n", "q.csv line 2: unknown field(s) ['venue']"),
    ("", "q.csv: no header row (want columns ['commodity', 'price', 'currency', 't_ms'])"),
    (HEADER + f"copper,1,CNY,{T0}\ncorn,1,CNY,{T0}\ncopper,1,CNY,{T0 - 1}\n",
     f"q.csv line 4: quote of copper at t_ms {T0 - 1} is older than the one at q.csv line 2 "
     f"(t_ms {T0})"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_CSV)
def test_bad_csv_quotes(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "q.csv"
    p.write_text(text)
    with pytest.raises(PriceError) as e:
        read_quotes(p)
    assert str(e.value) == message


BAD_JSONL = [
    ('{"commodity": "copper"\n', "q.jsonl line 1: not JSON (Expecting ',' delimiter at column 23)"),
    ('[1, 2]\n', "q.jsonl line 1: a quote must be an object, got list"),
    ('{"commodity": "copper", "price": true, "currency": "CNY", "t_ms": 1}\n',
     "q.jsonl line 1: field 'price': True must be a decimal string or number, got bool"),
    ('{"commodity": "copper", "price": "1", "currency": "CNY", "t_ms": 1.5}\n',
     "q.jsonl line 1: field 't_ms': Decimal('1.5') must be an integer (ms since the epoch)"),
    ('{"commodity": "", "price": "1", "currency": "CNY", "t_ms": 1}\n',
     "q.jsonl line 1: field 'commodity': '' must be non-empty text without '/' or surrounding "
     "spaces"),
    ('\n{"commodity": "c", "price": "1", "currency": "CNY", "t_ms": 1, "source": 5}\n',
     "q.jsonl line 2: field 'source': 5 must be non-empty text"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_JSONL)
def test_bad_json_lines_quotes(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text(text)
    with pytest.raises(PriceError) as e:
        read_quotes(p)
    assert str(e.value) == message


def test_unknown_quote_file_format(tmp_path: Path) -> None:
    p = tmp_path / "q.xml"
    p.write_text("<quotes/>")
    with pytest.raises(PriceError, match=r"^q.xml: unknown quote file format '.xml'"):
        read_quotes(p)
    p.write_text(HEADER + f"copper,1,CNY,{T0}\n")
    assert read_quotes(p, fmt="csv")[0].price == 1


# -- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"[]"
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Answer]]:
    answer = Answer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer.hits.append(self.path)
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/quotes", answer
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _q(commodity: str, price: str, t: int) -> str:
    return f'{{"commodity": "{commodity}", "price": {price}, "currency": "CNY", "t_ms": {t}}}'


def test_http_feed_returns_only_newer_quotes(server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.body = (
        f'{{"quotes": [{_q("copper", "68000.5", T0)}, {_q("corn", "2700", T0)}]}}'.encode()
    )
    with HttpPriceFeed(url) as feed:
        assert feed.poll() == [
            PriceTick("copper", D("68000.5"), "CNY", T0, "http:127.0.0.1"),
            PriceTick("corn", D("2700"), "CNY", T0, "http:127.0.0.1"),
        ]
        assert feed.poll() == []
        answer.body = f"[{_q('copper', '68010', T0 + 1)}, {_q('corn', '2700', T0)}]".encode()
        assert [(t.commodity, t.price) for t in feed.poll()] == [("copper", D("68010"))]
    assert answer.hits == ["/v1/quotes"] * 3


def test_http_feed_malformed_quote_is_precise_and_changes_nothing(
    server: tuple[str, Answer],
) -> None:
    url, answer = server
    with HttpPriceFeed(url, source="oracle") as feed:
        bad = _q("corn", '"x"', T0)
        answer.body = f"[{_q('copper', '68000', T0)}, {bad}]".encode()
        with pytest.raises(PriceError) as e:
            feed.poll()
        assert str(e.value) == "quotes[1]: field 'price': 'x' is not a decimal number"
        answer.body = f"[{_q('copper', '68000', T0)}]".encode()
        assert feed.poll() == [PriceTick("copper", D("68000"), "CNY", T0, "oracle")]
        answer.body = b'{"data": []}'
        with pytest.raises(PriceError, match=r"an object answer must hold only 'quotes'$"):
            feed.poll()


def test_http_feed_errors(server: tuple[str, Answer]) -> None:
    url, answer = server
    with HttpPriceFeed(url, timeout_s=5) as feed:
        answer.status = 503
        with pytest.raises(FeedError) as e:
            feed.poll()
        assert str(e.value) == f"GET {url}: HTTP 503"
        answer.status, answer.body = 200, b"<html>"
        with pytest.raises(FeedError, match=r"the answer is not JSON"):
            feed.poll()


def test_http_feed_unreachable() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()  # nothing listens on that port now
    feed = HttpPriceFeed(f"http://127.0.0.1:{dead}/q", timeout_s=5)
    try:
        with pytest.raises(FeedError, match=rf"^GET http://127.0.0.1:{dead}/q: ConnectError"):
            feed.poll()
    finally:
        feed.close()


async def test_async_http_feed(server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.body = f"[{_q('rubber', '13000', T0)}]".encode()
    feed = AsyncHttpPriceFeed(url)
    try:
        assert await feed.poll() == [PriceTick("rubber", D("13000"), "CNY", T0, "http:127.0.0.1")]
        assert await feed.poll() == []
        answer.status = 500
        with pytest.raises(FeedError, match=r"HTTP 500$"):
            await feed.poll()
    finally:
        await feed.aclose()

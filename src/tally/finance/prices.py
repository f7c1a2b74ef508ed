"""Commodity prices for the bank's collateral monitor: ticks and where they come from.

A :class:`PriceTick` is one quote: ``commodity``, ``price`` (a positive :class:`~decimal.Decimal`,
currency units per commodity unit, e.g. CNY per tonne), ``currency`` (ISO 4217, three capital
letters), ``t_ms`` (ms since the Unix epoch) and ``source`` (who quoted it). Three sources:

* :class:`RandomWalk` — a simulated, reproducible random walk per commodity, labelled
  ``source = "simulated"``. Each commodity draws from its own generator seeded with the walk's
  seed and the commodity's name (adding a commodity does not change the others' paths); each
  step moves the price by an integer number of basis points (the sum of two uniform draws in
  ``[-step_bp, step_bp]``) and quantises it to 0.01, never below 0.01. No floats are involved.
* :func:`read_quotes` — a file of quotes: CSV with a header row naming the columns, or JSON
  lines (one object per line). Columns / keys: ``commodity``, ``price``, ``currency``,
  ``t_ms`` and optionally ``source`` (default ``file:<file name>``). JSON prices may be strings
  or numbers (numbers are read as exact decimals, never as floats).
* :class:`HttpPriceFeed` / :class:`AsyncHttpPriceFeed` — poll a JSON endpoint answering either
  a list of quote objects or ``{"quotes": [...]}``; each poll returns only quotes newer than the
  last one returned for their commodity. ``source`` defaults to ``http:<host>``.

A malformed quote raises :class:`PriceError` naming the place (file line, ``quotes[i]``), the
field, the value and the rule; nothing of a bad file or a bad answer is returned. A feed that
cannot be reached or answers other than 200 raises :class:`FeedError`. Within a file the quotes
of one commodity must not go back in time.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

CENT = Decimal("0.01")
_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
SIMULATED = "simulated"
FIELDS = ("commodity", "price", "currency", "t_ms")
OPTIONAL = ("source",)
_CURRENCY = re.compile(r"[A-Z]{3}")
_DIGITS = re.compile(r"-?[0-9]+")


class PriceError(ValueError):
    """A malformed quote or quote file; the message names where, which field and why."""


class FeedError(RuntimeError):
    """A price feed could not be read (connection, timeout, HTTP status, not JSON)."""


@dataclass(frozen=True)
class PriceTick:
    commodity: str
    price: Decimal
    currency: str
    t_ms: int
    source: str

    @property
    def ref_id(self) -> str:
        """How alerts name this tick: ``<source>/<commodity>/<t_ms>/<price>``."""
        return f"{self.source}/{self.commodity}/{self.t_ms}/{self.price}"


# -- checking one quote -------------------------------------------------------------------------


def _commodity(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v or "/" in v or v != v.strip():
        raise PriceError(
            f"{where}: field 'commodity': {v!r} must be non-empty text without '/' "
            "or surrounding spaces"
        )
    return v


def _price(v: Any, where: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int | Decimal):
        raise PriceError(
            f"{where}: field 'price': {v!r} must be a decimal string or number, "
            f"got {type(v).__name__}"
        )
    try:
        d = Decimal(v.strip()) if isinstance(v, str) else Decimal(v)
    except InvalidOperation:
        raise PriceError(f"{where}: field 'price': {v!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise PriceError(f"{where}: field 'price': {v!r} must be a positive finite number")
    return d


def _currency(v: Any, where: str) -> str:
    if not isinstance(v, str) or not _CURRENCY.fullmatch(v):
        raise PriceError(f"{where}: field 'currency': {v!r} must be three capital letters")
    return v


def _t_ms(v: Any, where: str) -> int:
    if isinstance(v, str) and _DIGITS.fullmatch(v.strip()):
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, int):
        raise PriceError(f"{where}: field 't_ms': {v!r} must be an integer (ms since the epoch)")
    if v < 0:
        raise PriceError(f"{where}: field 't_ms': {v} must not be negative")
    return v


def _source(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise PriceError(f"{where}: field 'source': {v!r} must be non-empty text")
    return v


def parse_quote(obj: Any, where: str, default_source: str) -> PriceTick:
    """One quote from a mapping (a JSON object or a CSV row); raise :class:`PriceError`."""
    if not isinstance(obj, dict):
        raise PriceError(f"{where}: a quote must be an object, got {type(obj).__name__}")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise PriceError(f"{where}: missing field(s) {missing}")
    extra = sorted(str(k) for k in obj if k not in FIELDS and k not in OPTIONAL)
    if extra:
        raise PriceError(f"{where}: unknown field(s) {extra}")
    source = obj.get("source")
    return PriceTick(
        commodity=_commodity(obj["commodity"], where),
        price=_price(obj["price"], where),
        currency=_currency(obj["currency"], where),
        t_ms=_t_ms(obj["t_ms"], where),
        source=default_source if source in (None, "") else _source(source, where),
    )


def _in_order(ticks: Iterable[tuple[str, PriceTick]]) -> list[PriceTick]:
    last: dict[str, tuple[int, str]] = {}
    out: list[PriceTick] = []
    for where, t in ticks:
        prev = last.get(t.commodity)
        if prev is not None and t.t_ms < prev[0]:
            raise PriceError(
                f"{where}: quote of {t.commodity} at t_ms {t.t_ms} is older than the one "
                f"at {prev[1]} (t_ms {prev[0]})"
            )
        last[t.commodity] = (t.t_ms, where)
        out.append(t)
    return out


# -- files --------------------------------------------------------------------------------------


def parse_csv(text: str, name: str, source: str | None = None) -> list[PriceTick]:
    """Quotes from CSV text with a header row; ``name`` is used in error messages."""
    default = source or f"file:{name}"
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    out: list[tuple[str, PriceTick]] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            dup = sorted({c for c in header if header.count(c) > 1})
            if dup:
                raise PriceError(f"{name} line {line}: column(s) {dup} appear more than once")
            continue
        where = f"{name} line {line}"
        if len(row) != len(header):
            raise PriceError(f"{where}: {len(row)} values for {len(header)} columns {header}")
        out.append((where, parse_quote(dict(zip(header, row, strict=True)), where, default)))
    if header is None:
        raise PriceError(f"{name}: no header row (want columns {list(FIELDS)})")
    return _in_order(out)


def parse_json_lines(text: str, name: str, source: str | None = None) -> list[PriceTick]:
    """Quotes from JSON lines (one object per non-blank line)."""
    default = source or f"file:{name}"
    out: list[tuple[str, PriceTick]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {i}"
        try:
            obj = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as e:
            raise PriceError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
        out.append((where, parse_quote(obj, where, default)))
    return _in_order(out)


def read_quotes(
    path: str | Path, *, fmt: str | None = None, source: str | None = None
) -> list[PriceTick]:
    """All quotes of a file, in file order. ``fmt`` is ``"csv"`` or ``"jsonl"``; by default
    it follows the suffix (``.csv``; ``.jsonl``, ``.ndjson``, ``.json``)."""
    p = Path(path)
    kind = fmt or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(
        p.suffix.lower()
    )
    if kind not in ("csv", "jsonl"):
        raise PriceError(
            f"{p.name}: unknown quote file format {fmt or p.suffix!r} (use 'csv' or 'jsonl')"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PriceError(f"{p.name}: not UTF-8 text (byte {e.start})") from None
    if kind == "csv":
        return parse_csv(text, p.name, source)
    return parse_json_lines(text, p.name, source)


# -- HTTP ---------------------------------------------------------------------------------------


def decode_answer(body: bytes, url: str, source: str) -> list[PriceTick]:
    """The quotes of an endpoint's JSON answer (a list, or an object with ``quotes``)."""
    try:
        obj = json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FeedError(f"GET {url}: the answer is not JSON ({e})") from None
    if isinstance(obj, dict):
        if set(obj) != {"quotes"}:
            raise PriceError(f"GET {url}: an object answer must hold only 'quotes'")
        obj = obj["quotes"]
    if not isinstance(obj, list):
        raise PriceError(f"GET {url}: 'quotes' must be a list, got {type(obj).__name__}")
    return _in_order(
        (f"quotes[{i}]", parse_quote(q, f"quotes[{i}]", source)) for i, q in enumerate(obj)
    )


class _Newer:
    """Keeps the newest ``t_ms`` handed out per commodity; passes on only newer quotes."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def select(self, ticks: list[PriceTick]) -> list[PriceTick]:
        seen = dict(self.last)
        out = []
        for t in ticks:
            if t.t_ms > seen.get(t.commodity, -1):
                seen[t.commodity] = t.t_ms
                out.append(t)
        self.last = seen
        return out


def _check(resp: httpx.Response, url: str) -> bytes:
    if resp.status_code != 200:
        raise FeedError(f"GET {url}: HTTP {resp.status_code}")
    return resp.content


class HttpPriceFeed:
    """Polls ``url`` (blocking); :meth:`poll` returns the quotes newer than those seen."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        source: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self.source = source or f"http:{httpx.URL(url).host}"
        self._own = client is None
        self._client = client or httpx.Client(timeout=timeout_s)
        self._newer = _Newer()

    def poll(self) -> list[PriceTick]:
        try:
            resp = self._client.get(self.url)
        except httpx.HTTPError as e:
            raise FeedError(f"GET {self.url}: {type(e).__name__}: {e}") from None
        return self._newer.select(decode_answer(_check(resp, self.url), self.url, self.source))

    def close(self) -> None:
        if self._own:
            self._client.close()

    def __enter__(self) -> HttpPriceFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHttpPriceFeed:
    """The asyncio twin of :class:`HttpPriceFeed`."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        source: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.source = source or f"http:{httpx.URL(url).host}"
        self._own = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._newer = _Newer()

    async def poll(self) -> list[PriceTick]:
        try:
            resp = await self._client.get(self.url)
        except httpx.HTTPError as e:
            raise FeedError(f"GET {self.url}: {type(e).__name__}: {e}") from None
        return self._newer.select(decode_answer(_check(resp, self.url), self.url, self.source))

    async def aclose(self) -> None:
        if self._own:
            await self._client.aclose()


# -- simulation ---------------------------------------------------------------------------------


class RandomWalk:
    """A reproducible random walk of each commodity's price (``source = "simulated"``).

    The first :meth:`step` quotes the start prices at ``t0_ms``; each later step is
    ``step_ms`` later and moves every price. Ticks come in commodity name order.
    """

    def __init__(
        self,
        start: Mapping[str, Decimal | str | int],
        *,
        seed: int,
        t0_ms: int,
        step_ms: int = 60_000,
        step_bp: int = 50,
        currency: str = "CNY",
    ) -> None:
        if not start:
            raise PriceError("random walk: no commodities given")
        if isinstance(step_bp, bool) or not isinstance(step_bp, int) or not 0 <= step_bp < 5000:
            raise PriceError(f"random walk: step_bp {step_bp!r} must be an integer in [0, 5000)")
        if step_ms <= 0:
            raise PriceError(f"random walk: step_ms {step_ms} must be positive")
        self.currency = _currency(currency, "random walk")
        self.t_ms = _t_ms(t0_ms, "random walk")
        self.step_ms = step_ms
        self.step_bp = step_bp
        self._prices: dict[str, Decimal] = {}
        self._rng: dict[str, random.Random] = {}
        for c in sorted(start):
            where = f"random walk start of {c!r}"
            p = _price(start[c], where).quantize(CENT, rounding=ROUND_HALF_EVEN)
            self._prices[_commodity(c, where)] = max(p, CENT)
            self._rng[c] = random.Random(f"tally-prices/{seed}/{c}")
        self._started = False

    def prices(self) -> dict[str, Decimal]:
        return dict(self._prices)

    def step(self) -> list[PriceTick]:
        if self._started:
            self.t_ms += self.step_ms
            for c, rng in self._rng.items():
                bp = rng.randint(-self.step_bp, self.step_bp) + rng.randint(
                    -self.step_bp, self.step_bp
                )
                scaled = _CTX.divide(_CTX.multiply(self._prices[c], 10_000 + bp), 10_000)
                moved = scaled.quantize(CENT, context=_CTX)
                self._prices[c] = max(moved, CENT)
        self._started = True
        return [
            PriceTick(c, p, self.currency, self.t_ms, SIMULATED) for c, p in self._prices.items()
        ]

    def ticks(self, steps: int) -> list[PriceTick]:
        """The ticks of ``steps`` further steps, in order."""
        return [t for _ in range(steps) for t in self.step()]

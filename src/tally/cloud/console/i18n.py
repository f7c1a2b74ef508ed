"""The console's two languages: the message catalogue, the choice of language, and numbers,
money and times in the reader's locale.

Languages are ``zh`` (简体中文, formatted as ``zh_CN``) and ``en`` (formatted as ``en_US``,
or as the English variant the browser asks for first, e.g. ``en_GB``). The choice is the
``tally_lang`` cookie when it names one of them, else the first language of
``Accept-Language`` that is one of them (q-values respected), else Chinese.

The catalogue is ``catalogue.json`` beside this module: ``{"key": {"en": "…", "zh": "…"}}``,
texts with ``{name}`` placeholders filled by :meth:`Lang.t`. A test checks that both languages
have every key with the same placeholders, and that every key the templates use exists.

Money is in fen (integer; 1 yuan = 100 fen) and shown in CNY with Babel; times are ms since
the Unix epoch, shown in China Standard Time (``Asia/Shanghai``), which the page footer says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_compact_decimal, format_currency, format_decimal, format_percent

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
LANG_COOKIE = "tally_lang"
LOCALES = {"zh": "zh_CN", "en": "en_US"}
EN_VARIANTS = {"en_GB", "en_AU", "en_CA", "en_IE", "en_IN", "en_NZ", "en_SG", "en_HK", "en_US"}
CURRENCY = "CNY"
TIMEZONE = ZoneInfo("Asia/Shanghai")
CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_LANG_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q=([0-9.]+))?\s*$")


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """The message catalogue: key → {language → text}."""
    data: dict[str, dict[str, str]] = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return data


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a catalogue text."""
    return set(_PLACEHOLDER.findall(text))


def accepted(header: str | None) -> list[str]:
    """The language tags of an ``Accept-Language`` header, best first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")[:32]):
        m = _LANG_RANGE.match(part)
        if m is None:
            continue
        try:
            q = float(m.group(2)) if m.group(2) is not None else 1.0
        except ValueError:
            continue
        if q > 0:
            ranked.append((-q, i, m.group(1)))
    return [tag for _q, _i, tag in sorted(ranked)]


def negotiate(cookie: str | None, accept_language: str | None) -> tuple[str, str]:
    """``(language, Babel locale)`` for a request: the cookie, else Accept-Language, else zh."""
    tags = accepted(accept_language)
    en_locale = LOCALES["en"]
    for tag in tags:
        parts = tag.split("-")
        if parts[0].lower() == "en" and len(parts) > 1:
            cand = f"en_{parts[-1].upper()}"
            if cand in EN_VARIANTS:
                en_locale = cand
            break
    if cookie in LANGS:
        return cookie, (en_locale if cookie == "en" else LOCALES["zh"])
    for tag in tags:
        primary = tag.split("-")[0].lower()
        if primary in LANGS:
            return primary, (en_locale if primary == "en" else LOCALES["zh"])
    return DEFAULT_LANG, LOCALES[DEFAULT_LANG]


@dataclass(frozen=True)
class Lang:
    """One reader's language and locale: texts and formatting for the templates."""

    code: str
    locale: str

    @property
    def html_lang(self) -> str:
        """The page's ``lang`` attribute (BCP 47): ``zh-CN``, ``en-US`` …"""
        return self.locale.replace("_", "-")

    def t(self, key: str, **values: Any) -> str:
        """The text of ``key`` in this language; the key itself when it is not catalogued."""
        entry = catalogue().get(key)
        if entry is None:
            return key
        text = entry.get(self.code) or entry.get("en") or key
        return text.format(**values) if values else text

    def label(self, prefix: str, value: str) -> str:
        """The text of ``<prefix>.<value>`` (a status, a severity), else the value itself
        with spaces for underscores: a status the catalogue does not know is still shown."""
        key = f"{prefix}.{value}"
        return self.t(key) if key in catalogue() else value.replace("_", " ")

    def money(self, fen: int | None, compact: bool = False) -> str:
        """An amount in fen as CNY: ``¥1,234.56`` (zh) / ``CN¥1,234.56`` (en); ``—`` for None;
        ``compact``: ``¥1.2亿`` / ``CN¥123.5M``."""
        if fen is None:
            return "—"
        yuan = Decimal(fen) / 100
        if compact and abs(yuan) >= 10_000:
            sym = format_currency(0, CURRENCY, locale=self.locale, format="¤")
            number = format_compact_decimal(yuan, locale=self.locale, fraction_digits=1)
            return f"{sym}{number}"
        return format_currency(yuan, CURRENCY, locale=self.locale)

    def number(self, value: int | float | str | Decimal | None, digits: int = 3) -> str:
        """A number grouped in this locale (at most ``digits`` decimals); ``—`` for None and
        the text itself when it is not a number."""
        if value is None:
            return "—"
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        fmt = "#,##0" + ("." + "#" * digits if digits > 0 else "")
        return format_decimal(dec, format=fmt, locale=self.locale)

    def percent(self, ratio: float | str | Decimal | None, digits: int = 1) -> str:
        """A ratio as a percentage (``1.345`` → ``134.5%``); ``—`` for None."""
        if ratio is None:
            return "—"
        try:
            dec = Decimal(str(ratio))
        except InvalidOperation:
            return str(ratio)
        fmt = "#,##0" + ("." + "0" * digits if digits > 0 else "") + "%"
        return format_percent(dec, format=fmt, locale=self.locale)

    def datetime(self, ms: int | None, style: str = "medium") -> str:
        """A time (ms since the epoch) in China Standard Time, in this locale; ``—`` for None."""
        if ms is None:
            return "—"
        when = datetime.fromtimestamp(ms / 1000, TIMEZONE)
        return format_datetime(when, style, tzinfo=TIMEZONE, locale=self.locale)

    def date(self, ms: int | None) -> str:
        """The date of a time (ms), in China Standard Time, in this locale."""
        if ms is None:
            return "—"
        return format_date(datetime.fromtimestamp(ms / 1000, TIMEZONE).date(), locale=self.locale)

    def js_texts(self, prefix: str = "js.") -> dict[str, str]:
        """The texts the page's script needs (keys starting with ``prefix``), for a JSON block."""
        return {k[len(prefix) :]: self.t(k) for k in catalogue() if k.startswith(prefix)}

"""The console's languages: the catalogue is complete in both, every key the templates and
routes use exists, the language is chosen as documented, and numbers, money and times are
formatted in the reader's locale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tally.cloud.console import i18n
from tally.cloud.console.i18n import LANGS, Lang, catalogue, negotiate, placeholders

CONSOLE = Path(i18n.__file__).parent
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z = 2023-11-15 06:13:20 in China


def test_every_key_has_both_languages_with_the_same_placeholders() -> None:
    for key, texts in catalogue().items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key
        assert placeholders(texts["en"]) == placeholders(texts["zh"]), key


def _used_keys() -> set[str]:
    used: set[str] = set()
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']\s*[,)]""", text))
        used |= set(re.findall(r"""set_flash\(\w+, "(?:ok|error)", "([a-z_.]+)\"""", text))
        used |= set(re.findall(r"""\("(apply\.[a-z_]+)", \{""", text))
    return used


def test_every_key_used_is_catalogued() -> None:
    used = _used_keys()
    assert len(used) > 150  # the scan finds the keys
    assert sorted(used - set(catalogue())) == []


def test_keys_built_from_values_are_catalogued() -> None:
    from tally.cloud.console.pages import PAGES
    from tally.cloud.identity import TENANT_KINDS, USER_ROLES

    keys = {f"nav.{p.key}" for p in PAGES} | {f"kind.{k}" for k in TENANT_KINDS}
    keys |= {f"role.{r}" for r in USER_ROLES} | {f"error.{s}" for s in (400, 403, 404, 500)}
    keys |= {f"decision.done.{d}" for d in ("approve", "refuse", "withdraw")}
    keys |= {"subject.receipt", "subject.note", "limit.credit", "limit.limit"}
    assert sorted(keys - set(catalogue())) == []


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, ("zh", "zh_CN")),
        (None, "en-US,en;q=0.9", ("en", "en_US")),
        (None, "en-GB,en;q=0.9", ("en", "en_GB")),
        (None, "fr-FR, en;q=0.5, zh;q=0.8", ("zh", "zh_CN")),
        (None, "de, *;q=0.1", ("zh", "zh_CN")),
        (None, "en;q=0, zh-TW;q=0.3", ("zh", "zh_CN")),
        ("en", "zh-CN", ("en", "en_US")),
        ("zh", "en-GB", ("zh", "zh_CN")),
        ("klingon", "en-AU", ("en", "en_AU")),
        (None, "garbage;;;q=x, en", ("en", "en_US")),
    ],
)
def test_language_choice(cookie: str | None, header: str | None, expected: tuple[str, str]) -> None:
    assert negotiate(cookie, header) == expected


def test_formats_follow_the_locale() -> None:
    zh, en, gb = Lang("zh", "zh_CN"), Lang("en", "en_US"), Lang("en", "en_GB")
    assert zh.money(123_456_789) == "¥1,234,567.89"
    assert en.money(123_456_789) == "CN¥1,234,567.89"
    assert zh.money(152_000_000, compact=True) == "¥152万"
    assert en.money(152_000_000, compact=True) == "CN¥1.5M"
    assert zh.money(None) == "—"
    assert en.percent("1.345") == "134.5%" and en.percent("0.0435", 2) == "4.35%"
    assert zh.number("1234567.891") == "1,234,567.891" and en.number("x") == "x"
    assert zh.datetime(T0) == "2023年11月15日 06:13:20"
    assert en.datetime(T0) == "Nov 15, 2023, 6:13:20\u202fAM"
    assert gb.datetime(T0) == "15 Nov 2023, 06:13:20"
    assert en.date(T0) == "Nov 15, 2023" and zh.date(None) == "—"
    assert en.label("status", "margin_call") == "margin call"
    assert zh.label("status", "margin_call") == "追加保证金"
    assert en.label("status", "brand_new") == "brand new"  # an uncatalogued status still shows
    assert en.t("apply.submitted", id="a-1", bank="b") == "Application a-1 submitted to b."
    assert en.t("no.such.key") == "no.such.key"

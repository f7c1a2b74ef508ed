"""Reading one rule's table from the site configuration, with precise errors.

A :class:`Spec` wraps the raw table of one rule. Each getter checks one key and raises
:class:`~tally.edge.rules.errors.RuleConfigError` naming the rule and the key; :meth:`done`
rejects keys no getter asked for, so a misspelt key is an error rather than a silent default.

Numbers meant as exact decimals may be written as strings (``"7.5"``), integers or TOML
floats; a float is taken by its shortest decimal spelling (``7.5`` → ``Decimal("7.5")``),
which is what was written in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tally.edge.rules.errors import RuleConfigError
from tally.edge.rules.model import SEVERITIES

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_MISSING: Any = object()


def to_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal (from str, int, float or Decimal), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, int):
            d = Decimal(value)
        elif isinstance(value, float):
            d = Decimal(repr(value))
        elif isinstance(value, str):
            d = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class Spec:
    """The raw table of rule number ``index`` of ``site``."""

    def __init__(self, raw: Any, index: int, site: str) -> None:
        self.site = site
        self.index = index
        self.rule_id = ""
        if not isinstance(raw, Mapping):
            raise RuleConfigError(site, index, "", "", f"must be a table, got {raw!r}")
        self.raw: Mapping[str, Any] = raw
        self._used: set[str] = set()
        rid = raw.get("id")
        if "id" not in raw:
            raise self.error("id", "is missing")
        if not isinstance(rid, str) or not rid.strip():
            raise self.error("id", f"must be a non-empty string, got {rid!r}")
        self._used.add("id")
        self.rule_id = rid

    def error(self, key: str, problem: str) -> RuleConfigError:
        return RuleConfigError(self.site, self.index, self.rule_id, key, problem)

    def has(self, key: str) -> bool:
        return key in self.raw

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            raise self.error(key, "is missing")
        return default

    def string(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, str) or not v:
            raise self.error(key, f"must be a non-empty string, got {v!r}")
        return v

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if v not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def severity(self, default: str) -> str:
        v: str = self.choice("severity", SEVERITIES, default)
        return v

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, list | tuple) or not v or not all(isinstance(x, str) and x for x in v):
            raise self.error(key, f"must be a non-empty list of non-empty strings, got {v!r}")
        if len(set(v)) != len(v):
            raise self.error(key, f"lists a name twice: {v!r}")
        return tuple(v)

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.error(key, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be at least {minimum}, got {v}")
        return v

    def decimal(self, key: str, default: Any = _MISSING, minimum: Decimal | None = None) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        d = to_decimal(v)
        if d is None:
            raise self.error(key, f'must be a decimal number (e.g. "7.5"), got {v!r}')
        if minimum is not None and d < minimum:
            raise self.error(key, f"must be at least {minimum}, got {d}")
        return d

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def minute_of_day(self, key: str) -> int:
        """A local time ``"HH:MM"`` (00:00–23:59) as minutes after midnight."""
        v = self._get(key, _MISSING)
        m = _HHMM.match(v) if isinstance(v, str) else None
        if m is None:
            raise self.error(key, f'must be a time "HH:MM" from 00:00 to 23:59, got {v!r}')
        return int(m.group(1)) * 60 + int(m.group(2))

    def value(self, key: str) -> Any:
        """The raw value of ``key`` (which must be present), for type-specific checks."""
        return self._get(key, _MISSING)

    def done(self) -> None:
        """Raise for the first key (in sorted order) that no getter asked for."""
        unknown = sorted(k for k in self.raw if k not in self._used)
        if unknown:
            raise self.error(unknown[0], "is not a key of this rule type")

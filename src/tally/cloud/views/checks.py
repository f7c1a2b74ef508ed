"""Checks of the rows written to the read model: each field of the right type, enums known.

A row that fails raises :class:`~tally.cloud.errors.BadRequest` naming the kind, the row id,
the field and what was expected, and nothing is written. The types come from the model's
dataclass annotations, read once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from tally.cloud.errors import BadRequest
from tally.cloud.views.model import (
    APPLICATION_STATUSES,
    LIMIT_KINDS,
    SEVERITIES,
    SUBJECT_KINDS,
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LimitRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
)

MAX_TEXT = 200
LONG_TEXT = frozenset({"message", "reason"})
ENUMS: dict[str, tuple[str, ...]] = {
    "severity": SEVERITIES,
    "subject_kind": SUBJECT_KINDS,
}
MODELS = (
    OrgRow, ReceiptRow, LoanRow, NoteRow, TradeRow, DocumentRow, AlertRow, ApplicationRow,
    BlockRow, TxRow, LimitRow,
)  # fmt: skip


def _spec(cls: type[Any]) -> tuple[tuple[str, type[Any], bool], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        nullable = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            nullable = type(None) in args
            hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint) or hint
        out.append((f.name, origin, nullable))
    return tuple(out)


SPECS = {cls: _spec(cls) for cls in MODELS}


def _rid(row: Any) -> str:
    for name in ("id", "no", "hash", "height"):
        if hasattr(row, name):
            return repr(getattr(row, name))
    return f"{getattr(row, 'bank', '?')!r}/{getattr(row, 'party', '?')!r}"


def _problem(row: Any, want: type[Any]) -> str | None:
    """What is wrong with ``row`` as a ``want``, or None (kept cheap: bulk loads call it)."""
    for name, typ, nullable in SPECS[want]:
        value = getattr(row, name)
        if value is None:
            if not nullable:
                return f"{name} must not be null"
            continue
        kind = type(value)
        if typ is str:
            if kind is not str:
                return f"{name} must be str, got {value!r}"
            if name not in LONG_TEXT:
                if not value and not nullable:
                    return f"{name} must not be empty"
                if len(value) > MAX_TEXT:
                    return f"{name} has {len(value)} characters, more than {MAX_TEXT}"
            if name in ENUMS and value not in ENUMS[name]:
                return f"{name} must be one of {', '.join(ENUMS[name])}, got {value!r}"
        elif typ is int or typ is float:
            if kind is not int and not (typ is float and kind is float):
                return f"{name} must be {typ.__name__}, got {value!r}"
            if value < 0 and name.endswith("_fen"):
                return f"{name} must not be negative, got {value}"
        elif typ is tuple:
            if kind is not tuple or not all(type(v) is str for v in value):
                return f"{name} must be a tuple of strings, got {value!r}"
        elif not isinstance(value, typ):
            return f"{name} must be {typ.__name__}, got {value!r}"
    if want is ApplicationRow and row.status not in APPLICATION_STATUSES:
        return f"status must be one of {', '.join(APPLICATION_STATUSES)}, got {row.status!r}"
    if want is LimitRow and row.kind not in LIMIT_KINDS:
        return f"kind must be one of {', '.join(LIMIT_KINDS)}, got {row.kind!r}"
    return None


def check_row(row: Any, cls: type[Any] | None = None) -> None:
    """Raise BadRequest unless ``row`` is a well-formed ``cls`` (default: its own class)."""
    want = cls or type(row)
    if want not in SPECS or not isinstance(row, want):
        raise BadRequest(f"expected a {want.__name__}, got {type(row).__name__}")
    problem = _problem(row, want)
    if problem is not None:
        raise BadRequest(f"{want.__name__} {_rid(row)}: {problem}")

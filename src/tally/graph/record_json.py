"""The JSON form of the graph's records (tally.graph.records): writing and checked reading.

:func:`to_json` gives a record's JSON object: exactly its dataclass fields in declaration
order, a :class:`~tally.graph.records.Role` as ``{"person", "role", "share_bp"}``, tuples as
arrays. :func:`from_json` reads one back and checks every field against its declared type:
text, integers ``>= 0`` (money, times, counts), booleans, numbers ``>= 0``, arrays of those,
and the enumerations (firm kind, industry, role, note and loan states, loan kind). A
``"sim"`` label (synthetic data) is allowed and ignored. It raises
:class:`~tally.graph.records.RecordError` naming the record kind and the field: ``Loan
record: field 'outstanding' must be an integer >= 0, got -5``. Each record class's field
checkers are built once, so reading is a dict lookup and a call per field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tally.graph.records import (
    FIRM_KINDS,
    INDUSTRIES,
    KINDS,
    LOAN_KINDS,
    LOAN_STATES,
    NOTE_STATES,
    ROLES,
    RecordError,
    Role,
)

_CHOICES: dict[str, tuple[str, ...]] = {
    "Firm.kind": FIRM_KINDS,
    "Firm.industry": INDUSTRIES,
    "Role.role": ROLES,
    "Note.state": NOTE_STATES,
    "Loan.state": LOAN_STATES,
    "Loan.kind": LOAN_KINDS,
}


Parser = Callable[[Any], Any]
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}
_PARSERS: dict[type[Any], list[tuple[str, Parser, bool]]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_json(rec: Any) -> dict[str, Any]:
    """The JSON object of a record (roles as objects, tuples as lists)."""
    out: dict[str, Any] = {}
    for name in _names(type(rec)):
        v = getattr(rec, name)
        if type(v) is tuple:
            v = [to_json(x) if type(x) is Role else x for x in v]
        out[name] = v
    return out


def _parser(kind: str, name: str, typ: str) -> Parser:
    """A function that checks and converts one field's JSON value (see :func:`from_json`)."""

    def bad(v: Any, what: str) -> RecordError:
        return RecordError(kind, name, f"must be {what}, got {v!r:.60}")

    if typ.endswith(" | None"):
        inner = _parser(kind, name, typ[: -len(" | None")])
        return lambda v: None if v is None else inner(v)
    if typ.startswith("tuple["):
        item = _parser(kind, name, typ[len("tuple[") : -len(", ...]")])

        def many(v: Any) -> tuple[Any, ...]:
            if type(v) is not list:
                raise bad(v, "an array")
            return tuple(item(x) for x in v)

        return many
    if typ == "Role":
        return _role
    allowed = _CHOICES.get(f"{kind}.{name}")

    def one(v: Any) -> Any:
        t = type(v)
        if typ == "str":
            if t is not str:
                raise bad(v, "text")
            if allowed is not None and v not in allowed:
                raise bad(v, "one of " + ", ".join(allowed))
            return v
        if typ == "int":
            if t is not int or v < 0:
                raise bad(v, "an integer >= 0")
            return v
        if typ == "bool":
            if t is not bool:
                raise bad(v, "true or false")
            return v
        if t not in (int, float) or not v >= 0:  # float
            raise bad(v, "a number >= 0")
        return float(v)

    return one


def _role(v: Any) -> Role:
    if not isinstance(v, dict):
        raise RecordError("Role", "roles", f"must hold objects, got {v!r:.60}")
    return _build(Role, v)  # type: ignore[no-any-return]


def _build(cls: type[Any], obj: dict[str, Any]) -> Any:
    kind = cls.__name__
    parsers = _PARSERS.get(cls)
    if parsers is None:
        parsers = _PARSERS[cls] = [
            (f.name, _parser(kind, f.name, str(f.type)), f.default is dataclasses.MISSING)
            for f in dataclasses.fields(cls)
        ]
    if len(obj) > len(parsers) + ("sim" in obj):
        names = _names(cls)
        extra = sorted(k for k in obj if k not in names and k != "sim")
        raise RecordError(
            kind, extra[0], "is not a field (the fields are " + ", ".join(names) + ")"
        )
    args: dict[str, Any] = {}
    for name, parse, required in parsers:
        if name in obj:
            args[name] = parse(obj[name])
        elif required:
            raise RecordError(kind, name, "is missing")
    if len(args) + ("sim" in obj) != len(obj):
        names = _names(cls)
        extra = sorted(k for k in obj if k not in names and k != "sim")
        raise RecordError(
            kind, extra[0], "is not a field (the fields are " + ", ".join(names) + ")"
        )
    return cls(**args)


def from_json(kind: str, obj: Any) -> Any:
    """The record of file stem ``kind`` from its JSON object (a ``"sim"`` label is
    allowed and ignored); :class:`RecordError` if a field is missing, unknown or invalid."""
    cls = KINDS.get(kind)
    if cls is None:
        raise RecordError(kind, "kind", "is not a record kind (" + ", ".join(KINDS) + ")")
    if not isinstance(obj, dict):
        raise RecordError(cls.__name__, "*", f"must be a JSON object, got {obj!r:.60}")
    return _build(cls, obj)


__all__ = ["from_json", "to_json"]

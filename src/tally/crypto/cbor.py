"""Deterministic CBOR (RFC 8949 §4.2.1, core deterministic encoding requirements).

Encoding rules, the only ones tally produces and accepts:

* integers, byte strings, text strings, arrays and maps in the shortest head form;
* definite lengths only;
* map keys sorted by the bytewise lexicographic order of their deterministic encodings,
  no duplicate keys;
* ``true``/``false``/``null``;
* exact decimals as tag 4 ``[exponent, mantissa]`` (RFC 8949 §3.4.4), normalised so the
  mantissa has no trailing zeros unless it is zero (``Decimal("1.50")`` encodes as ``1.5``);
* other tags (e.g. 18 for COSE_Sign1) only where a format says so, via :class:`Tag`;
* no floating-point numbers anywhere.

:func:`decode` parses with ``cbor2`` and then re-encodes: bytes that are not exactly the
deterministic encoding of what they decode to are rejected with :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import cbor2

from tally.crypto.errors import DecodeError


@dataclass(frozen=True)
class Tag:
    """A CBOR tag: ``number`` applied to ``value``."""

    number: int
    value: Any


def _head(major: int, n: int) -> bytes:
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes((mt | 26,)) + struct.pack(">I", n)
    if n < 0x10000000000000000:
        return bytes((mt | 27,)) + struct.pack(">Q", n)
    raise ValueError("integer too large for deterministic CBOR (bignums are not used)")


def _decimal_parts(d: Decimal) -> tuple[int, int]:
    if not d.is_finite():
        raise ValueError(f"non-finite decimal {d} cannot be encoded")
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    mant = 0
    for dgt in digits[:end]:
        mant = mant * 10 + dgt
    if mant == 0:
        return 0, 0
    exp += len(digits) - end
    return exp, -mant if sign else mant


_SMALL = [bytes((i,)) for i in range(256)]
_KEYS: dict[str, bytes] = {}
_KEYS_MAX = 4096


def _text_key(k: str) -> bytes:
    kb = _KEYS.get(k)
    if kb is None:
        b = k.encode("utf-8")
        kb = _head(3, len(b)) + b
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[k] = kb
    return kb


def _first(kv: tuple[bytes, Any]) -> bytes:
    return kv[0]


def _enc(obj: Any, out: list[bytes]) -> None:
    # Fast paths on the exact type (the common case); subclasses fall through below.
    t = type(obj)
    if t is str:
        b = obj.encode("utf-8")
        n = len(b)
        out.append(_SMALL[0x60 | n] if n < 24 else _head(3, n))
        out.append(b)
        return
    if t is int:
        if 0 <= obj < 24:
            out.append(_SMALL[obj])
        elif -25 < obj < 0:
            out.append(_SMALL[0x1F - obj])
        else:
            out.append(_head(0, obj) if obj >= 0 else _head(1, -1 - obj))
        return
    if t is bytes:
        n = len(obj)
        out.append(_SMALL[0x40 | n] if n < 24 else _head(2, n))
        out.append(obj)
        return
    if t is list or t is tuple:
        n = len(obj)
        out.append(_SMALL[0x80 | n] if n < 24 else _head(4, n))
        for item in obj:
            _enc(item, out)
        return
    if isinstance(obj, Mapping):
        items = [(_text_key(k) if type(k) is str else encode(k), v) for k, v in obj.items()]
        items.sort(key=_first)
        for i in range(1, len(items)):
            if items[i][0] == items[i - 1][0]:
                raise ValueError("duplicate map key")
        n = len(items)
        out.append(_SMALL[0xA0 | n] if n < 24 else _head(5, n))
        for kb, v in items:
            out.append(kb)
            _enc(v, out)
        return
    # bool before int: bool is a subclass of int
    if obj is True:
        out.append(b"\xf5")
    elif obj is False:
        out.append(b"\xf4")
    elif obj is None:
        out.append(b"\xf6")
    elif isinstance(obj, int):
        out.append(_head(0, obj) if obj >= 0 else _head(1, -1 - obj))
    elif isinstance(obj, bytes | bytearray | memoryview):
        b = bytes(obj)
        out.append(_head(2, len(b)))
        out.append(b)
    elif isinstance(obj, str):
        b = obj.encode("utf-8")
        out.append(_head(3, len(b)))
        out.append(b)
    elif isinstance(obj, list | tuple):
        out.append(_head(4, len(obj)))
        for item in obj:
            _enc(item, out)
    elif isinstance(obj, Decimal):
        exp, mant = _decimal_parts(obj)
        out.append(b"\xc4\x82")  # tag 4, array of 2
        _enc(exp, out)
        _enc(mant, out)
    elif isinstance(obj, Tag):
        out.append(_head(6, obj.number))
        _enc(obj.value, out)
    elif isinstance(obj, cbor2.CBORTag):
        out.append(_head(6, obj.tag))
        _enc(obj.value, out)
    elif isinstance(obj, float):
        raise ValueError("floating-point numbers are not allowed; use Decimal")
    else:
        raise ValueError(f"type {type(obj).__name__} cannot be encoded in tally's CBOR")


def encode(obj: Any) -> bytes:
    """Return the deterministic CBOR encoding of ``obj``; raise ValueError if it has none."""
    out: list[bytes] = []
    _enc(obj, out)
    return b"".join(out)


def _tag_hook(*args: Any) -> Any:
    # cbor2 5.x calls hook(decoder, tag); 6.x calls hook(tag, immutable)
    tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
    value = list(tag.value) if isinstance(tag.value, tuple) else tag.value
    return Tag(tag.tag, value)


def head(major: int, n: int) -> bytes:
    """The shortest head of major type ``major`` with argument ``n`` (RFC 8949 §3)."""
    if n < 24:
        return _SMALL[(major << 5) | n]
    return _head(major, n)


def decode_structure(data: bytes, where: str = "CBOR", max_size: int = 1 << 20) -> Any:
    """Parse one CBOR item WITHOUT the deterministic-encoding check.

    Only for callers that then compare ``data`` with the encoding they expect (as
    :func:`tally.crypto.cose.parse_sign1` does); everyone else uses :func:`decode`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(where, f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(where, f"{len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError(where, "empty input")
    try:
        return cbor2.loads(bytes(data), tag_hook=_tag_hook)
    except Exception as exc:  # cbor2 raises several types, incl. ValueError/RecursionError
        raise DecodeError(where, f"malformed CBOR: {exc}") from None


def decode(data: bytes, where: str = "CBOR", max_size: int = 1 << 20) -> Any:
    """Decode one deterministic CBOR item, rejecting anything else with :class:`DecodeError`.

    Tags other than 4 (decimal fraction) come back as :class:`Tag`. Trailing bytes,
    indefinite lengths, unsorted or duplicate map keys, non-shortest heads and floats are
    all rejected, because the re-encoding of what was decoded would differ from ``data``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(where, f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(where, f"{len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError(where, "empty input")
    try:
        obj = cbor2.loads(data, tag_hook=_tag_hook)
    except Exception as exc:  # cbor2 raises several types, incl. ValueError/RecursionError
        raise DecodeError(where, f"malformed CBOR: {exc}") from None
    try:
        again = encode(obj)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(where, f"not allowed: {exc}") from None
    if again != data:
        if data.startswith(again):
            raise DecodeError(where, f"{len(data) - len(again)} trailing bytes")
        raise DecodeError(where, "not the deterministic encoding (RFC 8949 §4.2.1)")
    return obj

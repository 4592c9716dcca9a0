"""Compact JSON on the gateway's hot path: ``orjson`` (in C, several times faster than
the standard library) where it gives exactly what the standard library would, the
standard library otherwise. Used by ``llmops.runtime.httpio`` (request and response
bodies) and the OpenAI-compatible client (request payloads and replies).

- :func:`dumps` is ``json.dumps(value, ensure_ascii=False, allow_nan=False,
  separators=(",", ":")).encode()``: what orjson cannot write as the standard library
  would (integers over 64 bits, lone surrogates, keys other than str/int/float/bool/None,
  unknown types) goes to the standard library, which raises or writes it as before; NaN
  and infinity raise ``ValueError`` as they do there (orjson would write ``null``).
- :func:`loads_or` parses with orjson and, when orjson refuses the text, returns what
  ``fallback`` (the caller's standard-library parse, with its own error messages) does:
  orjson accepts less than the standard library (UTF-8 only, no NaN, no lone surrogates,
  nesting up to 1,024) and parses what it accepts to the same values, but for integers
  over 64 bits, which it reads as floats: a text with a run of 19 digits or more is left
  to the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

_STD = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_OPTIONS = orjson.OPT_NON_STR_KEYS
T = TypeVar("T")
#: a number orjson might read as a float where the standard library keeps an int
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")
#: bytes with each ASCII digit as b"1" and every other byte as b"0": a run of 19 digits is
#: a run of 19 b"1"s, found by a substring search (both in C: ~7x faster than the regex)
_DIGIT_MAP = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_RUN_OF_19 = b"1" * 19


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``ValueError`` for NaN or infinity, ``TypeError``
    for what JSON cannot represent (as ``json.dumps`` raises them)."""
    try:
        data = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _STD.encode(value).encode("utf-8")
    if b"null" in data and _not_finite(value):  # orjson writes NaN and infinity as null
        raise ValueError("Out of range float values are not JSON compliant")
    return data


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_finite(k) or _not_finite(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_not_finite(v) for v in value)
    return False


def loads_or(raw: bytes | str, fallback: Callable[[], T]) -> Any | T:
    """``raw`` parsed by orjson, or ``fallback()`` when orjson refuses it or might read a
    long integer otherwise."""
    value = _loads(raw)
    return fallback() if value is _REFUSED else value


def try_loads(raw: bytes | str) -> Any:
    """``raw`` parsed as :func:`loads_or` parses it, or None when that would take the
    fallback (for callers to whom a JSON ``null`` is as wrong as no JSON)."""
    value = _loads(raw)
    return None if value is _REFUSED else value


_REFUSED: Any = object()


def _loads(raw: bytes | str) -> Any:
    if isinstance(raw, str):
        if _LONG_DIGITS_TEXT.search(raw) is not None:
            return _REFUSED
    elif _RUN_OF_19 in raw.translate(_DIGIT_MAP):
        return _REFUSED
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _REFUSED

"""A small JSONPath subset for ``json-path`` assertions; pure.

Supported: ``$`` (the whole document), ``.name``, ``['name']`` / ``["name"]`` (any key,
e.g. with dots or dashes), ``[0]`` and negative ``[-1]`` list indices, in any
combination: ``$.answer``, ``$.items[0].id``, ``$['content-type']``. Wildcards, filters,
slices and recursive descent are not supported (a clear error says so).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

Step = str | int

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")

MISSING = object()


class JsonPathError(ValueError):
    """A path outside the supported subset; the message says what is accepted."""


@lru_cache(maxsize=512)
def parse_path(path: str) -> tuple[Step, ...]:
    """``$.a.b[0]`` -> ``("a", "b", 0)``; raises :class:`JsonPathError`."""
    text = path.strip()
    if not text.startswith("$"):
        raise JsonPathError(f"json-path {path!r} must start with '$', e.g. $.answer")
    steps: list[Step] = []
    at = 1
    while at < len(text):
        if text[at] == ".":
            found = _NAME.match(text, at + 1)
            if found is None:
                raise JsonPathError(
                    f"json-path {path!r}: expected a name after '.' at position {at + 1} "
                    "(use ['key'] for other keys; wildcards and '..' are not supported)"
                )
            steps.append(found.group(0))
            at = found.end()
            continue
        index = _INDEX.match(text, at)
        if index is not None:
            steps.append(int(index.group(1)))
            at = index.end()
            continue
        quoted = _QUOTED.match(text, at)
        if quoted is not None:
            raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            steps.append(re.sub(r"\\(.)", r"\1", raw))
            at = quoted.end()
            continue
        raise JsonPathError(
            f"json-path {path!r}: unexpected {text[at:at + 10]!r} at position {at + 1}; "
            "supported: $.name, ['key'], [0], [-1]"
        )
    return tuple(steps)


def resolve(document: Any, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` in ``document``, or :data:`MISSING`."""
    current = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return MISSING
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return MISSING
            current = current[step]
    return current


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON means it: ``false`` is not ``0``, ``1`` equals ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)

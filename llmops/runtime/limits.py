"""Resource bounds of template rendering and the checks that enforce them before work is
done; called by ``llmops.runtime.sandbox`` (operators, method calls, filters).

Every check is a pure function of the limits and the arguments an operation is about to
run with: an amplifier (``'a' * 10**9``, ``9 ** 10**9``, ``'x'.center(10**9)``, a format
width of a billion, ``replace`` or ``join`` that multiply a string) is refused with
:class:`RenderLimitExceeded` before anything is allocated. :func:`weight` estimates how
many characters a value prints as, so results can be bounded too.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Bounds on one render; the defaults fit prompts of a few hundred kilobytes."""

    max_value_chars: int = 256 * 1024
    max_emitted_chars: int = 1024 * 1024
    max_output_chars: int = 256 * 1024
    max_range: int = 10_000
    max_steps: int = 50_000
    max_int_bits: int = 64 * 1024
    max_seconds: float = 1.0


class RenderLimitExceeded(SecurityError):
    """A template went over one of the :class:`RenderLimits`."""


def too_big(limits: RenderLimits, size: int, what: str) -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"{what} would be about {size:,} characters; the limit is {limits.max_value_chars:,}"
    )


def refuse_over(limits: RenderLimits, size: int, what: str) -> None:
    if size > limits.max_value_chars:
        raise too_big(limits, size, what)


def weight(value: Any, cap: int) -> int:
    """Roughly how many characters ``value`` prints as; stops counting once above ``cap``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += 4 * len(item) + 2
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 * len(item) + 2
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > cap:
            return total
    return total


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_FIELD = re.compile(r"\{[^{}]*(\{)?")


def format_problem(fmt: str, limit: int, style: str) -> str | None:
    """Why a ``%`` or ``{}`` format string may print too much (widths), or None."""
    numbers: list[str] = []
    if style == "%":
        for match in _PERCENT_SPEC.finditer(fmt):
            for group in match.groups():
                if group == "*":
                    return "format widths taken from arguments ('*') are not allowed"
                if group:
                    numbers.append(group)
    else:
        for match in _BRACE_FIELD.finditer(fmt):
            if match.group(1):
                return "nested replacement fields in a format spec are not allowed"
            spec = match.group(0).partition(":")[2]
            numbers.extend(re.findall(r"\d+", spec))
    for number in numbers:
        if len(number) > 9 or int(number) > limit:
            return f"a format width of {number} is over the limit of {limit:,} characters"
    return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def join_size(separator: Any, items: Any, cap: int) -> int:
    if not isinstance(items, list | tuple):
        return 0
    return len(separator) * max(len(items) - 1, 0) + weight(list(items), cap)


# -- operators ---------------------------------------------------------------------------


def check_binop(limits: RenderLimits, operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when its result would be too large."""
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(seq, str | bytes | list | tuple):
                refuse_over(
                    limits,
                    weight(seq, limits.max_value_chars) * max(count, 0),
                    "a repeated sequence",
                )
        if is_int(left) and is_int(right):
            bits = left.bit_length() + right.bit_length()
            if bits > limits.max_int_bits:
                raise RenderLimitExceeded(f"an integer product of about {bits:,} bits is too large")
    elif operator == "**":
        if is_int(left) and is_int(right) and right > 0 and abs(left) > 1:
            bits = left.bit_length() * right
            if bits > limits.max_int_bits:
                raise RenderLimitExceeded(
                    f"{left} ** {right} would have about {bits:,} bits; "
                    f"the limit is {limits.max_int_bits:,}"
                )
    elif operator == "%" and isinstance(left, str):
        problem = format_problem(left, limits.max_value_chars, "%")
        if problem:
            raise RenderLimitExceeded(problem)


# -- method calls on strings -------------------------------------------------------------


def check_method(
    limits: RenderLimits, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Refuse a call of an amplifying ``str``/``bytes`` method with arguments that would
    produce too much (``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``,
    ``replace``, ``join``, ``translate``, ``format``, ``format_map``)."""
    wrapped = getattr(func, "__wrapped__", func)
    owner = getattr(wrapped, "__self__", None)
    if not isinstance(owner, str | bytes) or not isinstance(
        wrapped, types.BuiltinMethodType | types.MethodWrapperType
    ):
        return
    name = wrapped.__name__
    cap = limits.max_value_chars
    size = 0
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        size = width if isinstance(width, int) else 0
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        size = len(owner) + tabs * tabsize if isinstance(tabsize, int) else 0
    elif name == "replace" and len(args) >= 2:
        size = replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else None)
    elif name == "join" and args:
        size = join_size(owner, args[0], cap)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        size = len(owner) * longest
    elif name in ("format", "format_map") and isinstance(owner, str):
        problem = format_problem(owner, cap, "{}")
        if problem:
            raise RenderLimitExceeded(problem)
    refuse_over(limits, size, f"str.{name}()")


# -- filters -----------------------------------------------------------------------------

#: ``(environment, limits, args, kwargs) -> (args, kwargs)``: refuses, or passes the
#: (possibly materialised) arguments on. ``args`` start with the filtered value.
FilterCheck = Callable[
    [Any, RenderLimits, tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]
]
Args = tuple[Any, ...]
Kwargs = dict[str, Any]


def _arg(args: Args, kwargs: Kwargs, index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _center(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    width = _arg(args, kw, 1, "width", 80)
    refuse_over(limits, width if is_int(width) else 0, "filter center")
    return args, kw


def _indent(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    width = _arg(args, kw, 1, "width", 4)
    per_line = len(width) if isinstance(width, str) else width if is_int(width) else 0
    lines = str(args[0]).count("\n") + 1 if args else 1
    refuse_over(limits, lines * per_line, "filter indent")
    return args, kw


def _format(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    if args and isinstance(args[0], str):
        problem = format_problem(args[0], limits.max_value_chars, "%")
        if problem:
            raise RenderLimitExceeded(problem)
    return args, kw


def _count(index: int, name: str) -> FilterCheck:
    def check(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
        count = _arg(args, kw, index, name, 0)
        if is_int(count) and count > limits.max_range:
            raise RenderLimitExceeded(f"{name} {count:,} is over the limit of {limits.max_range:,}")
        return args, kw

    return check


def _join(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    if not args:
        return args, kw
    items: list[Any] = list(args[0])
    attribute = _arg(args, kw, 2, "attribute", None)
    if attribute is not None:
        getter = make_attrgetter(env, attribute)
        items = [getter(item) for item in items]
    separator = str(_arg(args, kw, 1, "d", ""))
    refuse_over(limits, join_size(separator, items, limits.max_value_chars), "filter join")
    return (items, separator), {}


def _replace(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    if len(args) >= 3:
        size = replace_size(args[0], args[1], args[2], _arg(args, kw, 3, "count", None))
        refuse_over(limits, size, "filter replace")
    return args, kw


def _tojson(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    indent = _arg(args, kw, 1, "indent", None)
    if is_int(indent) and indent > 16:
        raise RenderLimitExceeded("tojson indent is limited to 16")
    return args, kw


def _wordwrap(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    wrapstring = _arg(args, kw, 3, "wrapstring", None)
    width = _arg(args, kw, 1, "width", 79)
    if isinstance(wrapstring, str) and args and is_int(width) and width > 0:
        text = str(args[0])
        breaks = len(text) // width + text.count("\n") + 1
        refuse_over(limits, len(text) + breaks * len(wrapstring), "filter wordwrap")
    return args, kw


def _urlize(env: Any, limits: RenderLimits, args: Args, kw: Kwargs) -> tuple[Args, Kwargs]:
    target = str(_arg(args, kw, 3, "target", "") or "")
    rel = str(_arg(args, kw, 4, "rel", "") or "")
    if len(target) + len(rel) > 200:
        raise RenderLimitExceeded("urlize target and rel are limited to 200 characters")
    return args, kw


#: The built-in filters whose output can be much larger than their input.
FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "batch": _count(1, "linecount"),
    "slice": _count(1, "slices"),
    "join": _join,
    "replace": _replace,
    "tojson": _tojson,
    "wordwrap": _wordwrap,
    "urlize": _urlize,
}

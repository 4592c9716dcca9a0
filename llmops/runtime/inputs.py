"""Bind a caller's inputs to an app's declared inputs; called by ``llmops.runtime.loaded``
(every render), the server and ``llmops prompt render`` (``-v key=value`` coercion).

Defaults are applied, unknown names rejected with a did-you-mean, missing required ones
rejected, and each value checked with the same rule manifests use
(:func:`~llmops.domain.models.app.input_value_problem`). Every problem is reported at once.
Values are data: nothing here (or later) ever treats them as template source.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from llmops.domain.models.app import InputSpec, input_value_problem
from llmops.runtime.errors import InputProblem, InputRejected

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def bind_inputs(declared: Mapping[str, InputSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs to render with: every declared name, in declared order.

    A declared input that is not given takes its default, or None when it is optional;
    an explicit JSON ``null`` for an optional input counts as not given.
    Raises :class:`InputRejected` listing every problem.
    """
    problems: list[InputProblem] = []
    for name in given:
        if name not in declared:
            problems.append(InputProblem(name, _unknown(name, declared)))
    bound: dict[str, Any] = {}
    for name, spec in declared.items():
        value = given.get(name)
        if value is None:
            if spec.default is not None:
                bound[name] = spec.default
            elif spec.is_required:
                what = f" ({spec.description})" if spec.description else ""
                problems.append(InputProblem(name, f"is required{what}"))
            else:
                bound[name] = None
            continue
        problem = input_value_problem(spec, value)
        if problem:
            problems.append(InputProblem(name, problem))
        bound[name] = value
    if problems:
        raise InputRejected(problems)
    return bound


def _unknown(name: str, declared: Mapping[str, InputSpec]) -> str:
    if not declared:
        return "is not declared: this app takes no inputs"
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"is not declared by the app{hint} (declared: {', '.join(declared)})"


def coerce_text(spec: InputSpec | None, raw: str) -> Any:
    """``raw`` (from a command line) as the declared type; unknown names stay text.

    Raises ValueError with a message when ``raw`` cannot be read as that type.
    """
    if spec is None or spec.type == "string":
        return raw
    text = raw.strip()
    if spec.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"must be an integer (got {raw!r})") from None
    if spec.type == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"must be a finite number (got {raw!r})")
        return value
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"must be a boolean: true or false (got {raw!r})")

"""Deterministic text checks: equals, contains, icontains, contains-any, contains-all,
regex, starts-with and length. Registered in ``registry``; pure functions.

Matching is case-sensitive except ``icontains``; ``equals`` ignores whitespace around
the reply and the value. Every fail reason quotes what was expected and what came back.
"""

from __future__ import annotations

import re

from llmops.domain.evals import GradingResult
from llmops.domain.models.evalsuite import Assertion
from llmops.evals.assertions.context import GradeContext, around, snippet
from llmops.evals.assertions.registry import handler, verdict

_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _pattern(source: str) -> re.Pattern[str]:
    found = _REGEX_CACHE.get(source)
    if found is None:
        found = _REGEX_CACHE[source] = re.compile(source)
    return found


@handler("equals")
def equals(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    expected = str(assertion.value)
    if output.strip() == expected.strip():
        return verdict(True, f"output equals {snippet(expected)}")
    return verdict(False, f"expected output to equal {snippet(expected)}; got {snippet(output)}")


@handler("contains")
def contains(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    needle = str(assertion.value)
    at = output.find(needle)
    if at >= 0:
        return verdict(True, f"output contains {needle!r}: {around(output, at, at + len(needle))}")
    return verdict(False, f"expected output to contain {needle!r}; got {snippet(output)}")


@handler("icontains")
def icontains(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    needle = str(assertion.value)
    at = output.casefold().find(needle.casefold())
    if at >= 0:
        where = around(output, at, at + len(needle))
        return verdict(True, f"output contains {needle!r} (case-insensitive): {where}")
    return verdict(
        False, f"expected output to contain {needle!r} (case-insensitive); got {snippet(output)}"
    )


def _values(assertion: Assertion) -> list[str]:
    value = assertion.value
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@handler("contains-any")
def contains_any(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    values = _values(assertion)
    for needle in values:
        at = output.find(needle)
        if at >= 0:
            where = around(output, at, at + len(needle))
            return verdict(True, f"output contains {needle!r}: {where}")
    wanted = ", ".join(map(repr, values))
    return verdict(False, f"expected output to contain any of {wanted}; got {snippet(output)}")


@handler("contains-all")
def contains_all(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    values = _values(assertion)
    missing = [v for v in values if v not in output]
    if not missing:
        return verdict(True, f"output contains all of {', '.join(map(repr, values))}")
    found = len(values) - len(missing)
    return verdict(
        False,
        f"expected output to contain all of {', '.join(map(repr, values))}; "
        f"missing {', '.join(map(repr, missing))}; got {snippet(output)}",
        score=found / len(values),
    )


@handler("regex")
def regex(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    source = str(assertion.value)
    found = _pattern(source).search(output)
    if found is not None:
        return verdict(
            True, f"output matches /{source}/: {around(output, found.start(), found.end())}"
        )
    return verdict(False, f"expected output to match /{source}/; got {snippet(output)}")


@handler("starts-with")
def starts_with(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    prefix = str(assertion.value)
    if output.lstrip().startswith(prefix):
        return verdict(True, f"output starts with {prefix!r}")
    return verdict(False, f"expected output to start with {prefix!r}; got {snippet(output, 60)}")


@handler("length")
def length(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    size = len(output)
    low, high = assertion.min, assertion.max
    bounds = (
        f"between {low} and {high}"
        if low is not None and high is not None
        else f"at least {low}"
        if low is not None
        else f"at most {high}"
    )
    if (low is None or size >= low) and (high is None or size <= high):
        return verdict(True, f"output is {size} characters long ({bounds})")
    return verdict(
        False, f"expected output to be {bounds} characters; got {size}: {snippet(output, 60)}"
    )

"""Input and output guardrails as pure registered checks; called by
``llmops.runtime.invoke`` (every request) and ``llmops.runtime.streamguard`` (streams).

Each check is ``(value, config) -> GuardrailResult``; the registries
:data:`INPUT_GUARDRAILS` and :data:`OUTPUT_GUARDRAILS` are keyed by the name that appears
in error bodies and in ``llmops_guardrail_blocks_total{guardrail=…}``. Checks run in
registry order and the first failure decides. PII redaction is not a block: it rewrites
the reply (:func:`redact_output`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema.protocols import Validator

from llmops.domain.models.app import InputGuardrails
from llmops.runtime import injection, pii
from llmops.runtime.canary import contains_canary


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """The verdict of one guardrail; ``reason`` says why it failed, for a person."""

    name: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """What the output guardrails need, prepared once per loaded app."""

    canary: str
    block_canary: bool = True
    max_length: int | None = None
    validator: Validator | None = None
    redact: tuple[str, ...] = ()
    repair_retries: int = 0


InputCheck = Callable[[Mapping[str, Any], InputGuardrails], GuardrailResult]
OutputCheck = Callable[[str, OutputPolicy], GuardrailResult]

#: The verdicts of checks that pass, made once (results are immutable).
_PASSED = {
    name: GuardrailResult(name, True)
    for name in (
        "input-max-length",
        "deny-patterns",
        "prompt-injection",
        "canary",
        "output-max-length",
        "json-schema",
    )
}


def _strings(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in inputs.items() if isinstance(v, str)]


def _too_long(total: int, limit: int) -> GuardrailResult:
    return GuardrailResult(
        "input-max-length",
        False,
        f"string inputs total {total:,} characters; the limit is {limit:,}",
    )


def _denied(name: str, index: int) -> GuardrailResult:
    return GuardrailResult(
        "deny-patterns",
        False,
        f"input {name!r} matches deny pattern {index} of guardrails.input.denyPatterns",
    )


def _injected(name: str, verdict: injection.InjectionScore) -> GuardrailResult:
    return GuardrailResult(
        "prompt-injection",
        False,
        f"input {name!r} looks like a prompt-injection attempt: {verdict.explain()}",
    )


def check_input_length(inputs: Mapping[str, Any], config: InputGuardrails) -> GuardrailResult:
    total = sum(len(v) for _, v in _strings(inputs))
    if total > config.max_length:
        return _too_long(total, config.max_length)
    return _PASSED["input-max-length"]


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_REGEX_SYNTAX = frozenset(".^$*+?{}[]|()\\")


@lru_cache(maxsize=256)
def _denies(pattern: str) -> Callable[[str], bool]:
    """Whether a text matches deny ``pattern`` anywhere. A pattern that is plain ASCII
    text, case-sensitive or behind ``(?i)`` (``(?i)BEGIN RSA PRIVATE KEY``), is a
    substring test on ASCII text (lower-cased for ``(?i)``): the regex engine's answer,
    several times faster."""
    compiled = _compiled(pattern)
    fold = pattern.startswith("(?i)")
    literal = pattern[4:] if fold else pattern
    if not literal.isascii() or not _REGEX_SYNTAX.isdisjoint(literal):
        return lambda text: compiled.search(text) is not None
    needle = literal.lower() if fold else literal

    def test(text: str) -> bool:
        if not text.isascii():
            return compiled.search(text) is not None
        return needle in (text.lower() if fold else text)

    return test


def check_deny_patterns(inputs: Mapping[str, Any], config: InputGuardrails) -> GuardrailResult:
    if not config.deny_patterns:
        return _PASSED["deny-patterns"]
    for name, value in _strings(inputs):
        for index, pattern in enumerate(config.deny_patterns, start=1):
            if _denies(pattern)(value):
                return _denied(name, index)
    return _PASSED["deny-patterns"]


def check_injection(inputs: Mapping[str, Any], config: InputGuardrails) -> GuardrailResult:
    if config.injection_heuristics:
        for name, value in _strings(inputs):
            verdict = injection.score(value)
            if verdict.flagged:
                return _injected(name, verdict)
    return _PASSED["prompt-injection"]


INPUT_GUARDRAILS: dict[str, InputCheck] = {
    "input-max-length": check_input_length,
    "deny-patterns": check_deny_patterns,
    "prompt-injection": check_injection,
}


def check_canary(text: str, policy: OutputPolicy) -> GuardrailResult:
    if policy.block_canary and contains_canary(text, policy.canary):
        return GuardrailResult(
            "canary", False, "the reply contains the release's canary token (a system-prompt leak)"
        )
    return _PASSED["canary"]


def check_output_length(text: str, policy: OutputPolicy) -> GuardrailResult:
    if policy.max_length is not None and len(text) > policy.max_length:
        return GuardrailResult(
            "output-max-length",
            False,
            f"the reply is {len(text):,} characters; the limit is {policy.max_length:,}",
        )
    return _PASSED["output-max-length"]


class NotJson(ValueError):
    """A reply that should be JSON but is not."""


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_json_reply(text: str) -> Any:
    """The JSON value of a reply, tolerating a Markdown code fence around it."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped)
    except ValueError as exc:
        raise NotJson(f"the reply is not JSON ({exc})") from None


def schema_problem(value: Any, validator: Validator) -> str | None:
    """The most relevant reason ``value`` breaks the schema, or None."""
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"at {where}: {error.message[:300]}"


def check_json_schema(text: str, policy: OutputPolicy) -> GuardrailResult:
    if policy.validator is None:
        return _PASSED["json-schema"]
    try:
        value = parse_json_reply(text)
    except NotJson as exc:
        return GuardrailResult("json-schema", False, str(exc))
    problem = schema_problem(value, policy.validator)
    if problem:
        return GuardrailResult(
            "json-schema", False, f"the reply breaks the output schema {problem}"
        )
    return _PASSED["json-schema"]


OUTPUT_GUARDRAILS: dict[str, OutputCheck] = {
    "canary": check_canary,
    "output-max-length": check_output_length,
    "json-schema": check_json_schema,
}


def first_input_failure(
    inputs: Mapping[str, Any], config: InputGuardrails
) -> GuardrailResult | None:
    """The first input guardrail that fails, or None."""
    for check in INPUT_GUARDRAILS.values():
        result = check(inputs, config)
        if not result.passed:
            return result
    return None


_BUILT_IN_INPUT_CHECKS = [*INPUT_GUARDRAILS.values()]


class InputPolicy:
    """The input guardrails of one app, prepared once per loaded app (each deny pattern's
    test made at load, not looked up per request): :meth:`first_failure` is
    :func:`first_input_failure` for its configuration, with the string inputs collected
    once for the three built-in checks instead of once per check."""

    __slots__ = ("config", "denies", "injection", "max_length")

    def __init__(self, config: InputGuardrails) -> None:
        self.config = config
        self.max_length = config.max_length
        self.denies = tuple(_denies(pattern) for pattern in config.deny_patterns)
        self.injection = config.injection_heuristics

    def first_failure(self, inputs: Mapping[str, Any]) -> GuardrailResult | None:
        """The first input guardrail that fails, or None."""
        if [*INPUT_GUARDRAILS.values()] != _BUILT_IN_INPUT_CHECKS:
            return first_input_failure(inputs, self.config)  # a check added or replaced
        strings = [(k, v) for k, v in inputs.items() if isinstance(v, str)]
        total = sum([len(v) for _, v in strings])
        if total > self.max_length:
            return _too_long(total, self.max_length)
        if self.denies:
            for name, value in strings:
                for index, denies in enumerate(self.denies, start=1):
                    if denies(value):
                        return _denied(name, index)
        if self.injection:
            for name, value in strings:
                verdict = injection.score(value)
                if verdict.flagged:
                    return _injected(name, verdict)
        return None


_BUILT_IN_OUTPUT_CHECKS = [*OUTPUT_GUARDRAILS.values()]


def first_output_failure(text: str, policy: OutputPolicy) -> GuardrailResult | None:
    """The first output guardrail that fails, or None."""
    if policy.validator is None and [*OUTPUT_GUARDRAILS.values()] == _BUILT_IN_OUTPUT_CHECKS:
        # the built-in checks of an app without a schema, inlined (a call less per check)
        if policy.block_canary and contains_canary(text, policy.canary):
            return check_canary(text, policy)
        if policy.max_length is not None and len(text) > policy.max_length:
            return check_output_length(text, policy)
        return None
    for check in OUTPUT_GUARDRAILS.values():
        result = check(text, policy)
        if not result.passed:
            return result
    return None


def redact_output(value: Any, kinds: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """``value`` (text, or parsed JSON) with PII replaced in every string; counts per kind."""
    if not kinds:
        return value, {}
    if isinstance(value, str):  # a text app's reply: no walk
        return pii.redact(value, kinds)
    counts: dict[str, int] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            text, found = pii.redact(item, kinds)
            for kind, count in found.items():
                counts[kind] = counts.get(kind, 0) + count
            return text
        if isinstance(item, list):
            return [walk(x) for x in item]
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        return item

    return walk(value), counts

"""Errors of the prompt runtime; raised by rendering, input binding and guardrails, mapped
to HTTP statuses by ``llmops.runtime.server`` and to exit codes by ``llmops.cli``.

    InvalidInput (llmops.domain.errors)
    ├── InputRejected        the caller's inputs: unknown, missing or ill-typed   (HTTP 400)
    └── RenderFailed         a template failed while rendering; names file:line   (HTTP 400)
    GuardrailBlocked         a guardrail refused the request (side "input", HTTP 400)
                             or the model's reply (side "output", HTTP 502)

Upstream (model) failures stay ``Retryable``/``Permanent`` from the adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmops.domain.chat import Usage
from llmops.domain.errors import InvalidInput, LlmopsError

Side = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One thing wrong with one input."""

    name: str
    message: str

    def render(self) -> str:
        return f"input {self.name!r}: {self.message}"


class InputRejected(InvalidInput):
    """The inputs do not fit the app's declared inputs; ``problems`` lists each one."""

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        self.problems: tuple[InputProblem, ...] = tuple(problems)
        super().__init__("; ".join(p.render() for p in self.problems))


class RenderFailed(InvalidInput):
    """A template raised while rendering (sandbox violation, undefined name, a limit)."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")


class GuardrailBlocked(LlmopsError):
    """A guardrail said no. ``guardrail`` is its registered name, ``reason`` says why;
    ``usage`` is what the model calls made before an output block cost."""

    exit_code = 1

    def __init__(self, side: Side, guardrail: str, reason: str, usage: Usage | None = None) -> None:
        super().__init__(f"{side} blocked by guardrail {guardrail}: {reason}")
        self.side: Side = side
        self.guardrail = guardrail
        self.reason = reason
        self.usage = usage

"""Prepare an eval run before any model call: every case rendered once, checked by the
input guardrails, and the JSON Schema files its assertions name loaded once.

Called by ``llmops.evals.api``; the runner then only calls the model and grades. Pure
except for reading schema files. A case whose inputs cannot be rendered is kept with its
``problem`` (its samples become errors) rather than stopping the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import InvalidInput
from llmops.domain.models.evalsuite import Assertion, Case
from llmops.evals.assertions.structured import load_schema_file
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.invoke import prepare
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.render import RenderedPrompt


@dataclass(frozen=True, slots=True)
class PlannedCase:
    """One case ready to run: rendered, or blocked by an input guardrail, or broken."""

    suite: str
    case: Case
    assertions: tuple[Assertion, ...]
    rendered: RenderedPrompt | None
    blocked: GuardrailBlocked | None = None
    problem: str | None = None


def plan_case(loaded: LoadedApp, suite: str, case: Case) -> PlannedCase:
    """Bind, guard and render ``case`` the way the runtime does for a request."""
    assertions = tuple(case.assert_)
    try:
        rendered = prepare(loaded, case.inputs)
    except GuardrailBlocked as exc:
        return PlannedCase(suite, case, assertions, None, blocked=exc)
    except InvalidInput as exc:  # InputRejected, RenderFailed
        return PlannedCase(suite, case, assertions, None, problem=exc.message)
    return PlannedCase(suite, case, assertions, rendered)


def plan_cases(
    loaded: LoadedApp, suites: Sequence[tuple[str, Sequence[Case]]]
) -> list[PlannedCase]:
    """Every case of ``suites`` in order, prepared."""
    return [plan_case(loaded, name, case) for name, cases in suites for case in cases]


def schema_files(
    loaded: LoadedApp, planned: Sequence[PlannedCase], display_dir: str
) -> dict[str, Mapping[str, Any]]:
    """Every schema file named by a ``json-schema`` assertion, parsed (relative to the app
    directory). The app's own output schema is reused when a suite names the same file.
    Raises ``InvalidInput`` listing each file that cannot be used."""
    found: dict[str, Mapping[str, Any]] = {}
    own = loaded.app.spec.guardrails.output.json_schema
    if isinstance(own, str) and loaded.output_schema is not None:
        found[own] = loaded.output_schema
    problems: dict[str, str] = {}
    for item in planned:
        for assertion in item.assertions:
            rel = assertion.value
            if assertion.base_type != "json-schema" or not isinstance(rel, str):
                continue
            if rel in found or rel in problems:
                continue
            try:
                found[rel] = load_schema_file(loaded.app_dir, rel)
            except ValueError as exc:
                problems[rel] = f"suite {item.suite!r}, case {item.case.id!r}: {exc}"
    if problems:
        diagnostics = [
            Diagnostic(f"{display_dir}/{rel}", 0, 0, "", message)
            for rel, message in problems.items()
        ]
        raise InvalidInput(diagnostics[0].render(), diagnostics)
    return found

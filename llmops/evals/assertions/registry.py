"""The assertion registry and the one place ``not-`` inverts a verdict.

Handler modules (``text``, ``structured``, ``metrics``, ``safety``, ``model_graded``)
register themselves here; ``llmops.evals.assertions`` imports them all, and the runner
calls :func:`grade_all`. A handler is ``(output, assertion, ctx) -> GradingResult``:
plain functions for the deterministic types, ``async`` functions for the model-graded
ones (they await the judge or embedding hook in the context).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from llmops.domain.evals import AssertionResult, GradingResult
from llmops.domain.models.evalsuite import BASE_ASSERTION_TYPES, Assertion
from llmops.evals.assertions.context import GradeContext

SyncHandler = Callable[[str, Assertion, GradeContext], GradingResult]
AsyncHandler = Callable[[str, Assertion, GradeContext], Awaitable[GradingResult]]
S = TypeVar("S", bound=SyncHandler)
A = TypeVar("A", bound=AsyncHandler)

#: Deterministic handlers, keyed by base type (no ``not-``).
SYNC_HANDLERS: dict[str, SyncHandler] = {}
#: Model-graded handlers, keyed by base type.
ASYNC_HANDLERS: dict[str, AsyncHandler] = {}


def _check_new(base_type: str) -> None:
    if base_type not in BASE_ASSERTION_TYPES:
        raise ValueError(f"{base_type!r} is not a base assertion type")
    if base_type in SYNC_HANDLERS or base_type in ASYNC_HANDLERS:
        raise ValueError(f"{base_type!r} has a handler already")


def handler(base_type: str) -> Callable[[S], S]:
    """Register a deterministic handler for ``base_type``."""

    def register(func: S) -> S:
        _check_new(base_type)
        SYNC_HANDLERS[base_type] = func
        return func

    return register


def model_graded(base_type: str) -> Callable[[A], A]:
    """Register an async (model-graded) handler for ``base_type``."""

    def register(func: A) -> A:
        _check_new(base_type)
        ASYNC_HANDLERS[base_type] = func
        return func

    return register


def error(reason: str) -> GradingResult:
    """No verdict: the grader itself could not decide (never inverted, never a pass)."""
    return GradingResult(passed=False, score=0.0, reason=f"ERROR: {reason}", error=True)


def verdict(passed: bool, reason: str, score: float | None = None) -> GradingResult:
    """A pass or a fail; ``score`` defaults to 1.0 / 0.0."""
    return GradingResult(passed, (1.0 if passed else 0.0) if score is None else score, reason)


def apply_not(result: GradingResult, assertion: Assertion) -> GradingResult:
    """The verdict of ``assertion`` from its base type's result: the one place ``not-``
    is applied. Pass and fail swap (and the score becomes ``1 - score``); an error stays
    an error, because no verdict was reached to invert."""
    if result.error or not assertion.inverted:
        return result
    if result.passed:
        reason = f"expected the opposite ({assertion.type}), but: {result.reason}"
    else:
        reason = f"as expected ({assertion.type}): {result.reason}"
    return GradingResult(not result.passed, 1.0 - result.score, reason)


def grade(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    """Grade with a deterministic handler; a crashing handler is an ERROR, not a raise."""
    func = SYNC_HANDLERS.get(assertion.base_type)
    if func is None:
        return error(f"{assertion.type} needs a model and must be graded with agrade()")
    try:
        result = func(output, assertion, ctx)
    except Exception as exc:  # a bug in a handler must not end the run
        result = error(f"{assertion.type} grader crashed: {type(exc).__name__}: {exc}")
    return apply_not(result, assertion)


async def agrade(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    """Grade with any handler, awaiting the model-graded ones."""
    func = ASYNC_HANDLERS.get(assertion.base_type)
    if func is None:
        return grade(output, assertion, ctx)
    try:
        result = await func(output, assertion, ctx)
    except Exception as exc:
        result = error(f"{assertion.type} grader failed: {type(exc).__name__}: {exc}")
    return apply_not(result, assertion)


def to_result(result: GradingResult, assertion: Assertion) -> AssertionResult:
    return AssertionResult(
        type=assertion.type,
        outcome=result.outcome,
        score=result.score,
        reason=result.reason,
        weight=assertion.weight,
    )


async def grade_all(
    output: str, assertions: Sequence[Assertion], ctx: GradeContext
) -> tuple[AssertionResult, ...]:
    """Every assertion on one reply, in order; only model-graded ones are awaited."""
    results: list[AssertionResult] = []
    for assertion in assertions:
        if assertion.base_type in ASYNC_HANDLERS:
            graded = await agrade(output, assertion, ctx)
        else:
            graded = grade(output, assertion, ctx)
        results.append(to_result(graded, assertion))
    return tuple(results)


def grade_all_sync(
    output: str, assertions: Sequence[Assertion], ctx: GradeContext
) -> tuple[AssertionResult, ...] | None:
    """Like :func:`grade_all` when no assertion needs a model (the fast path), else None."""
    for assertion in assertions:
        if assertion.base_type in ASYNC_HANDLERS:
            return None
    return tuple(to_result(grade(output, a, ctx), a) for a in assertions)

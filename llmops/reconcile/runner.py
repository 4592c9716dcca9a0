"""The step runner: one app's small steps in order, one loop owning early exit and errors.

Called by ``llmops.ops.reconcile`` for every app of every stage. A step is a function
``(context, app) -> StepOutcome | None`` (None: nothing to say); the runner stops an app's
steps at the first ``waiting``/``refused``/``failed`` outcome and turns an exception into
a ``failed`` outcome on that app alone, so one app's failure never stops the others
(Flux: ``reconcilers := []…{reconcileSource, reconcileArtifact}``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from llmops.domain.errors import LlmopsError
from llmops.reconcile import conditions as c
from llmops.reconcile.result import AppResult, Condition, StepOutcome

Ctx = TypeVar("Ctx")


@dataclass
class AppWork:
    """One app in one stage while a pass works on it (frozen into ``AppResult`` after)."""

    app: str
    env: str
    desired: str | None = None
    live: str | None = None
    live_ready: bool = False
    endpoint: str | None = None
    steps: list[StepOutcome] = field(default_factory=list)
    conditions: dict[str, Condition] = field(default_factory=dict)
    error: str | None = None
    stopped: bool = False
    #: per-stage scratch the steps share (the bundle, the DesiredApp, the live app…)
    facts: dict[str, Any] = field(default_factory=dict)

    def set(self, type_: str, status: c.Status, reason: str, message: str = "") -> None:
        self.conditions[type_] = Condition(type_, status, reason, message)

    def record(self, outcome: StepOutcome) -> None:
        self.steps.append(outcome)
        if outcome.status in c.STOPS:
            self.stopped = True
        if outcome.status == "failed" and self.error is None and outcome.reason == c.ERROR:
            self.error = outcome.message

    def phase(self) -> c.Phase:
        statuses = {s.status for s in self.steps}
        if self.error is not None or "failed" in statuses:
            return "Degraded" if self.live_ready else "Failed"
        if "refused" in statuses:
            return "Degraded"
        if "waiting" in statuses:
            return "Waiting"
        if self.desired is not None and not (self.live == self.desired and self.live_ready):
            return "Progressing"
        return "Ready"

    def freeze(self) -> AppResult:
        ordered = sorted(
            self.conditions.values(),
            key=lambda cond: c.CONDITIONS.index(cond.type) if cond.type in c.CONDITIONS else 99,
        )
        return AppResult(
            app=self.app,
            env=self.env,
            desired=self.desired,
            live=self.live,
            phase=self.phase(),
            steps=tuple(self.steps),
            conditions=tuple(ordered),
            endpoint=self.endpoint,
            error=self.error,
        )


Step = Callable[[Ctx, AppWork], StepOutcome | None]


@dataclass(frozen=True, slots=True)
class Steps(Generic[Ctx]):
    """A named list of steps run in order for each app."""

    steps: tuple[tuple[str, Step[Ctx]], ...]

    def run(self, ctx: Ctx, work: AppWork) -> None:
        """Run every step on ``work`` until one stops it; errors become ``failed`` outcomes."""
        for name, step in self.steps:
            if work.stopped:
                return
            run_step(name, step, ctx, work)


def run_step(name: str, step: Step[Ctx], ctx: Ctx, work: AppWork) -> None:
    """One step on one app; an exception is recorded on the app, never raised."""
    try:
        outcome = step(ctx, work)
    except LlmopsError as exc:
        outcome = StepOutcome(name, "failed", c.ERROR, exc.message)
    except Exception as exc:  # one app's bug must not stop the others
        if os.environ.get("LLMOPS_DEBUG"):
            raise
        outcome = StepOutcome(
            name, "failed", c.ERROR, f"internal error: {type(exc).__name__}: {exc}"
        )
    if outcome is not None:
        work.record(outcome)


def for_each(works: Sequence[AppWork], action: Callable[[AppWork], None]) -> None:
    """``action`` on every app that has not stopped (helper for stage-wide steps)."""
    for work in works:
        if not work.stopped:
            action(work)

"""The protocol every deploy target implements (kubernetes, docker, local).

A target reports what runs (``live``), compares it with what should run (``plan``, pure
given the live state) and applies a plan once (``apply``): blue/green per app, a
post-deploy ``verify`` of the new colour before traffic moves, and the old colour kept
serving when anything fails. Used by ``llmops.ops`` (plan, apply, rollback) and by
``llmops.reconcile``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from llmops.domain.deploy import ApplyResult, DeployPlan, DesiredApp, LiveApp, TargetKind


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A post-deploy check of one app's new colour."""

    ok: bool
    message: str = ""


#: ``verify(desired, base_url)``: run the post-deploy smoke check against the new colour,
#: reachable at ``base_url`` (e.g. ``http://127.0.0.1:18081``); never raises for a failed check.
Verify = Callable[[DesiredApp, str], VerifyResult]


class Target(Protocol):
    """One environment's deployment target."""

    kind: TargetKind

    def live(self) -> Mapping[str, LiveApp]:
        """What runs now, per app name (only objects/processes llmops owns)."""
        ...

    def plan(self, desired: Sequence[DesiredApp], live: Mapping[str, LiveApp]) -> DeployPlan:
        """Desired vs live: pure, no I/O. Apps live but not desired are deletions (prune)."""
        ...

    def apply(
        self,
        plan: DeployPlan,
        *,
        verify: Verify | None = None,
        timeout: float = 120.0,
        grace: float = 0.0,
    ) -> ApplyResult:
        """Apply ``plan`` once. Per app: start the new colour, wait until ready (``timeout``),
        ``verify`` it, switch traffic, retire the old colour after ``grace`` seconds. On a
        failure the old colour keeps serving and the app's outcome is ``rolled-back``."""
        ...

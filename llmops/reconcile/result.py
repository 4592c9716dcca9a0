"""The result of a reconcile pass: per stage, per app, the steps run and the conditions. Frozen.

Built by ``llmops.reconcile.runner`` and ``llmops.ops.reconcile``; rendered by the CLI
(``llmops reconcile``, ``llmops up``) and read by the controller. ``PassResult.work``
lists every effect the pass had on the world (an archived release, a gate run, an apply,
a ledger entry, a commit); an empty list is a no-op pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.reconcile.conditions import Phase, Status, StepStatus, worst


@dataclass(frozen=True, slots=True)
class Condition:
    """One named condition of an app in an environment."""

    type: str
    status: Status
    reason: str
    message: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step did for one app: ``done`` (an effect), ``skipped`` (nothing needed),
    or a stop: ``waiting`` (a policy holds it), ``refused``, ``failed``."""

    step: str
    status: StepStatus
    reason: str
    message: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "step": self.step,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class AppResult:
    """One app in one environment after the pass."""

    app: str
    env: str
    desired: str | None
    live: str | None
    phase: Phase
    steps: tuple[StepOutcome, ...] = ()
    conditions: tuple[Condition, ...] = ()
    endpoint: str | None = None
    error: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @staticmethod
    def from_json(raw: Any) -> AppResult:
        """An ``AppResult`` back from :meth:`to_json` (``KeyError``/``TypeError`` if not one)."""
        return AppResult(
            app=str(raw["app"]),
            env=str(raw["env"]),
            desired=raw.get("desired"),
            live=raw.get("live"),
            phase=raw["phase"],
            steps=tuple(
                StepOutcome(str(s["step"]), s["status"], str(s["reason"]), str(s["message"]))
                for s in raw.get("steps", ())
            ),
            conditions=tuple(
                Condition(str(x["type"]), x["status"], str(x["reason"]), str(x["message"]))
                for x in raw.get("conditions", ())
            ),
            endpoint=raw.get("endpoint"),
            error=raw.get("error"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "desired": self.desired,
            "live": self.live,
            "phase": self.phase,
            "endpoint": self.endpoint,
            "error": self.error,
            "steps": [s.to_json() for s in self.steps],
            "conditions": [c.to_json() for c in self.conditions],
        }


@dataclass(frozen=True, slots=True)
class StageResult:
    """One environment of the pipeline after the pass."""

    env: str
    target: str
    apps: tuple[AppResult, ...] = ()
    changes: int = 0
    error: str | None = None

    @property
    def phase(self) -> Phase:
        return "Failed" if self.error else worst([a.phase for a in self.apps])

    def app(self, name: str) -> AppResult | None:
        return next((a for a in self.apps if a.app == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "target": self.target,
            "phase": self.phase,
            "changes": self.changes,
            "error": self.error,
            "apps": [a.to_json() for a in self.apps],
        }


@dataclass(frozen=True, slots=True)
class PassResult:
    """One reconcile pass over the pipeline's stages."""

    root: str
    commit: str | None
    dry_run: bool
    started: str
    duration_s: float
    stages: tuple[StageResult, ...] = ()
    work: tuple[str, ...] = ()
    #: decided by content hashes alone (the memo matched): nothing was loaded or planned
    shortcut: bool = False
    #: the earliest time a waiting policy (soak) may let the pass do more, ISO 8601
    wake_at: str | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return not self.work

    @property
    def phase(self) -> Phase:
        return "Failed" if self.error else worst([s.phase for s in self.stages])

    @property
    def ok(self) -> bool:
        return self.error is None and all(
            s.error is None and all(a.error is None for a in s.apps) for s in self.stages
        )

    def stage(self, env: str) -> StageResult | None:
        return next((s for s in self.stages if s.env == env), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "commit": self.commit,
            "dryRun": self.dry_run,
            "started": self.started,
            "durationSeconds": round(self.duration_s, 4),
            "noop": self.noop,
            "shortcut": self.shortcut,
            "phase": self.phase,
            "ok": self.ok,
            "wakeAt": self.wake_at,
            "error": self.error,
            "work": list(self.work),
            "notes": list(self.notes),
            "stages": [s.to_json() for s in self.stages],
        }

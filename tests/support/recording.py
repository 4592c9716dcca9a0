"""A deploy target that runs nothing and a gate that runs no model: for reconciler tests
and ``benchmarks/bench_reconcile.py``, which measure the reconciler, not processes or
model calls. The target records what it was asked to run and reports it as live (ready,
no drift); the gate returns a passing verdict and a small report to archive as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmops.deploy.target import Verify
from llmops.domain.deploy import ApplyResult, Change, Deployed, DeployPlan, DesiredApp, LiveApp
from llmops.domain.evals import GateResult
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.releases.bundle import Bundle


class RecordingTarget:
    """A target that runs nothing: it records what it was asked to run and reports it."""

    kind = "local"

    def __init__(self, env: str) -> None:
        self.env = env
        self.running: dict[str, LiveApp] = {}
        self.applies = 0

    def live(self) -> Mapping[str, LiveApp]:
        return dict(self.running)

    def plan(self, desired: Sequence[DesiredApp], live: Mapping[str, LiveApp]) -> DeployPlan:
        changes = []
        for d in desired:
            now = live.get(d.app)
            kind = (
                "create"
                if now is None
                else "unchanged"
                if now.fingerprint == d.fingerprint
                else "update"
            )
            changes.append(Change(kind, d.app, f"record {d.app}"))  # type: ignore[arg-type]
        wanted = {d.app for d in desired}
        changes += [Change("delete", app, f"record {app}") for app in sorted(set(live) - wanted)]
        return DeployPlan(self.env, "local", tuple(desired), tuple(changes))

    def apply(
        self,
        plan: DeployPlan,
        *,
        verify: Verify | None = None,
        timeout: float = 120.0,
        grace: float = 0.0,
    ) -> ApplyResult:
        self.applies += 1
        desired = {d.app: d for d in plan.desired}
        results = []
        for ch in plan.changes:
            if ch.kind == "delete":
                self.running.pop(ch.app, None)
                results.append(Deployed(ch.app, self.env, None, "pruned"))
            elif ch.kind == "unchanged":
                results.append(
                    Deployed(ch.app, self.env, self.running[ch.app].release, "unchanged")
                )
            else:
                d = desired[ch.app]
                previous = self.running.get(ch.app)
                endpoint = f"record://{self.env}/{ch.app}"
                self.running[ch.app] = LiveApp(
                    d.app, self.env, d.release, d.fingerprint, "blue", True, endpoint
                )
                results.append(
                    Deployed(
                        d.app,
                        self.env,
                        d.release,
                        "deployed",
                        "blue",
                        endpoint,
                        previous=previous.release if previous else None,
                    )
                )
        return ApplyResult(self.env, "local", tuple(results))


def recorded_gate(
    repo: Repo, archive: Any, bundle: Bundle, stage: Stage, baseline: str | None
) -> tuple[GateResult, bytes]:
    result = GateResult(stage.env, True, (), 1.0, 1.0, 0.9)
    report = json.dumps({"kind": "RecordedGate", "release": bundle.release_id, "stage": stage.env})
    return result, report.encode()

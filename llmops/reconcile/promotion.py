"""One promotion from inside a pass: the promotion plan, its gate, and the pin through git.

Called by ``llmops.ops.reconcile`` when a stage's policy lets a release move on. It is
``llmops promote`` (``llmops.ops.promote``) without loading the repository again: the
pass already holds the manifests and the app's ledger entries, so the cost of a
promotion does not grow with the number of apps. The decisions are the promotion
package's own: ``llmops.promote.plan.plan_promotion`` (every named check),
``llmops.promote.apply.apply_plan`` (commit and push with re-checks on a rejected
push, or a branch and pull request), and the same ``promoted`` ledger entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmops.archive.base import Archive
from llmops.domain.archive import LedgerEntry
from llmops.domain.evals import GateResult
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.promote.apply import MAX_ATTEMPTS, Workspace, apply_plan, refuse_if_needed
from llmops.promote.checks import InFlight, PromotionPlan, find_stage, promotion_branch
from llmops.promote.conditions import SOAK_WAIVED
from llmops.promote.plan import plan_promotion

if TYPE_CHECKING:
    from llmops.adapters.github import PullRequests
    from llmops.adapters.gitops import GitOps


class PromotionPort(Protocol):
    """What a promotion needs from the pass."""

    repo: Repo
    archive: Archive

    def of(self, app: str) -> list[LedgerEntry]: ...

    def head_release(self, app: str) -> str | None: ...

    def wrote(self, what: str, *entries: LedgerEntry) -> None: ...

    def archive_release(self, app: str) -> LedgerEntry | None: ...

    def target_gate(
        self, app: str, release: str, stage: Stage, baseline: str | None
    ) -> tuple[GateResult, LedgerEntry]:
        """Run and record ``stage``'s gate on ``release`` (an archived or work-tree one)."""
        ...

    def reload(self) -> None:
        """Read the manifests again (after the remote moved under a push)."""
        ...


@dataclass(frozen=True, slots=True)
class Promoted:
    """What one promotion did."""

    plan: PromotionPlan
    commit: str | None
    branch: str | None
    pull_request: str | None = None
    body_file: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def applied(self) -> bool:
        return self.commit is not None


def promote_now(
    port: PromotionPort,
    app: str,
    env: str,
    *,
    git: GitOps,
    pulls: PullRequests | None,
    remote: str,
    now: Callable[[], datetime],
    sleep: Callable[[float], None] = time.sleep,
    soak_waived_by: str | None = None,
) -> Promoted:
    """Promote ``app`` into ``env``; ``Refused`` (with the plan) when a check forbids it.

    ``soak_waived_by`` (only ``llmops up --skip-soak`` gives it) waives a soak that has
    not elapsed; the ``promoted`` entry then records who waived it as ``soakWaivedBy``."""
    branch = promotion_branch("promote", env, app)
    found = pulls.find_open(branch) if pulls is not None else None
    in_flight = InFlight(git.remote_branch_exists(remote, branch), found.url if found else None)

    def make_plan(no_run: bool = False) -> PromotionPlan:
        return plan_promotion(
            port.repo,
            port.of(app),
            app,
            env,
            now=now(),
            head_release=port.head_release(app),
            no_run=no_run,
            in_flight=in_flight,
            has_object=port.archive.has,
            waive_soak=soak_waived_by is not None,
        )

    plan = make_plan()
    if plan.noop:
        return Promoted(plan, None, None, notes=("already pinned",))
    refuse_if_needed(plan)
    if plan.run_evals:
        located = find_stage(port.repo, env)
        assert located is not None and plan.candidate is not None
        stage = located[1].spec.stages[located[2]]
        port.target_gate(app, plan.candidate, stage, plan.current)
        plan = make_plan(no_run=True)
        refuse_if_needed(plan)
    if plan.candidate_from_work_tree and plan.candidate is not None:
        entry = port.archive_release(app)
        if entry is not None:
            port.wrote(f"ledger: released {app}", entry)
        plan = make_plan(no_run=True)
        refuse_if_needed(plan)

    def replan() -> PromotionPlan:
        port.reload()
        return make_plan(no_run=True)

    top = git.toplevel().resolve()
    space = Workspace(
        git=git,
        remote=remote,
        pulls=pulls if plan.mode == "pull-request" else None,
        env_path=(Path(port.repo.root) / plan.env_file).resolve().relative_to(top).as_posix(),
        repo_root=Path(port.repo.root),
        sleep=sleep,
    )
    applied = apply_plan(plan, space, replan, None, MAX_ATTEMPTS)
    if applied.commit is not None:
        done = applied.plan
        data: dict[str, Any] = {
            "mode": done.mode,
            "state": "proposed" if done.mode == "pull-request" else "committed",
            "commit": applied.commit,
            "branch": applied.branch,
            "pr_url": applied.pull_request,
            "previous": done.current,
            "pipeline": done.pipeline,
            "attempts": applied.attempts,
            "source": done.source,
            "by": "reconcile",
        }
        if applied.body_file:
            data["body_file"] = applied.body_file
        if soak_waived_by is not None and soak_waived(done):
            data["soakWaivedBy"] = soak_waived_by
        entry = port.archive.append(
            "promoted",
            app,
            release=done.candidate,
            env=env,
            evidence={f"gate-{e.stage}": e.report for e in done.evidence},
            data=data,
        )
        port.wrote(f"ledger: promoted {app} {env}", entry)
    return Promoted(
        applied.plan,
        applied.commit,
        applied.branch,
        applied.pull_request,
        applied.body_file,
        applied.notes,
    )


def soak_waived(plan: PromotionPlan) -> bool:
    """Whether ``plan`` moves only because its soak was waived."""
    return any(check.reason == SOAK_WAIVED for check in plan.checks)
